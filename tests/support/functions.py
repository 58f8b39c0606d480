"""Import a function's modules by file path.

Every function directory holds a package named ``function``, so they cannot all be imported by
that name in one test run. ``load_module`` loads ``functions/<name>/function/<module>.py`` as
``fn_<name>.<module>`` (dashes become underscores) instead, once per run. The package itself
is registered without running its ``__init__.py``, so loading one adapter never imports the
whole function, while relative imports inside the function still resolve.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["load_module"]

FUNCTIONS_DIR = Path(__file__).resolve().parents[2] / "functions"


def load_module(function_name: str, module: str) -> ModuleType:
    package = _load_package(function_name)
    qualified = f"{package.__name__}.{module}"
    if qualified not in sys.modules:
        _execute(qualified, FUNCTIONS_DIR / function_name / "function" / f"{module}.py")
    return sys.modules[qualified]


def _load_package(function_name: str) -> ModuleType:
    name = "fn_" + function_name.replace("-", "_")
    if name not in sys.modules:
        directory = FUNCTIONS_DIR / function_name / "function"
        spec = importlib.util.spec_from_file_location(
            name, directory / "__init__.py", submodule_search_locations=[str(directory)]
        )
        if spec is None:
            raise ImportError(f"cannot load {directory}")
        sys.modules[name] = importlib.util.module_from_spec(spec)  # registered, not executed
    return sys.modules[name]


def _execute(name: str, path: Path) -> None:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before exec: dataclasses and relative imports look it up
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
