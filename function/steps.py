"""Load each step's own function (``functions/<name>/function/``) by path, under a unique name.

Every step is a package named ``function`` (func's convention), so they cannot all be imported
by that name into one process. Each is loaded as ``patient_notify_step_<name>`` instead, with its
directory as the package path so its relative imports resolve, and its ``new()`` builds the step
exactly as its own Service would.

Where the steps live: in the repository, ``functions/<name>/function/``; in the all-in-one build
context (``uv run task build FN=all-in-one``), ``function/steps/<name>/``, inside this package so
that ``pip install .`` ships them with it.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol, cast

from patient_notify.function import ASGIReceive, ASGISend

__all__ = ["Step", "load_step", "step_directory"]

_HERE = Path(__file__).resolve().parent
BUNDLED = _HERE / "steps"
REPOSITORY = _HERE.parent / "functions"


class Step(Protocol):
    """The func-python function shape every step's ``new()`` returns (an EventFunction)."""

    name: str

    def start(self, cfg: Mapping[str, str]) -> None: ...
    def alive(self) -> tuple[bool, str]: ...
    def ready(self) -> tuple[bool, str]: ...
    def stop(self) -> None: ...
    async def handle(self, scope: Mapping[str, Any], receive: ASGIReceive, send: ASGISend) -> None: ...


def step_directory(name: str) -> Path:
    bundled = BUNDLED / name
    return bundled if bundled.is_dir() else REPOSITORY / name / "function"


def load_step(name: str) -> Step:
    """A fresh instance of the step's function, from its own ``new()``."""
    package = f"patient_notify_step_{name.replace('-', '_')}"
    if package not in sys.modules:
        _load_package(package, step_directory(name))
    return cast(Step, sys.modules[package].new())


def _load_package(package: str, directory: Path) -> None:
    spec = importlib.util.spec_from_file_location(
        package, directory / "__init__.py", submodule_search_locations=[str(directory)]
    )
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load the step in {directory}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[package] = module  # before exec: its relative imports look the package up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[package]
        raise
