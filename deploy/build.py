"""Self-contained `func` build contexts: ``python -m deploy.build <name>|all|all-in-one``.

`func build` sees only the directory it is given, and every function imports the shared library
from outside its own. ``build/<name>/`` is therefore the function's own func.yaml and code, the
shared library vendored beside them, and a pyproject.toml whose dependency on
``patient-notify-shared`` points at the vendored copy (``{root:uri}``: hatchling resolves it
against the directory being installed, as func's own scaffolding does for the function), so
``pip install .`` there installs everything, and ``func deploy --path build/<name>`` ships it.

``all-in-one`` is the root func.yaml: the top-level ``function/`` package with every step's
package inside it (``function/steps/<name>/``), and the union of the steps' dependencies.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tomllib
from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = ["ALL_IN_ONE", "FUNCTIONS", "STEPS", "build", "build_all_in_one", "build_function"]

ROOT = Path(__file__).resolve().parents[1]
FUNCTIONS = ("etl", "scheduler", "dispatcher", "sms-sender", "email-sender", "monitor", "webhooks")
# webhooks is public HTTP (provider callbacks), not events: its own Service in either shape.
STEPS = tuple(name for name in FUNCTIONS if name != "webhooks")
ALL_IN_ONE = "all-in-one"
SHARED = "patient-notify-shared"
VENDORED = f"vendor/{SHARED}"
SHARED_REQUIREMENT = f"{SHARED} @ {{root:uri}}/{VENDORED}"
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", ".mypy_cache", ".pytest_cache", ".ruff_cache")


def build(target: str, root: Path = ROOT, out: Path | None = None) -> list[Path]:
    """Build one function, ``all`` (every function) or ``all-in-one``; the contexts written."""
    out = out or root / "build"
    if target == "all":
        return [build_function(name, root, out) for name in FUNCTIONS]
    if target == ALL_IN_ONE:
        return [build_all_in_one(root, out)]
    if target not in FUNCTIONS:
        raise SystemExit(f"unknown function {target!r}: one of {', '.join(FUNCTIONS)}, all, {ALL_IN_ONE}")
    return [build_function(target, root, out)]


def build_function(name: str, root: Path = ROOT, out: Path | None = None) -> Path:
    source = root / "functions" / name
    context = _fresh(out or root / "build", name)
    shutil.copy2(source / "func.yaml", context / "func.yaml")
    shutil.copytree(source / "function", context / "function", ignore=_IGNORE)
    _vendor_shared(root, context)
    pyproject = (source / "pyproject.toml").read_text(encoding="utf-8")
    (context / "pyproject.toml").write_text(vendored_pyproject(pyproject), encoding="utf-8")
    return context


def build_all_in_one(root: Path = ROOT, out: Path | None = None) -> Path:
    context = _fresh(out or root / "build", ALL_IN_ONE)
    shutil.copy2(root / "func.yaml", context / "func.yaml")
    shutil.copytree(root / "function", context / "function", ignore=_IGNORE)
    for name in STEPS:
        shutil.copytree(root / "functions" / name / "function", context / "function" / "steps" / name, ignore=_IGNORE)
    _vendor_shared(root, context)
    requirements = _union(_dependencies(root / "functions" / name / "pyproject.toml") for name in STEPS)
    (context / "pyproject.toml").write_text(all_in_one_pyproject(requirements), encoding="utf-8")
    return context


def vendored_pyproject(text: str) -> str:
    """The function's pyproject.toml with the shared library taken from ``vendor/``."""
    quoted = f'"{SHARED}"'
    if text.count(quoted) != 1 or SHARED not in tomllib.loads(text)["project"]["dependencies"]:
        raise ValueError(f'expected exactly one dependency "{SHARED}" in the function\'s pyproject.toml')
    rewritten = text.replace(quoted, f'"{SHARED_REQUIREMENT}"') + _DIRECT_REFERENCES
    assert SHARED_REQUIREMENT in tomllib.loads(rewritten)["project"]["dependencies"]
    return rewritten


def all_in_one_pyproject(requirements: Sequence[str]) -> str:
    dependencies = ",\n".join(f'    "{requirement}"' for requirement in [SHARED_REQUIREMENT, *requirements])
    text = _ALL_IN_ONE_PYPROJECT.format(dependencies=dependencies) + _DIRECT_REFERENCES
    tomllib.loads(text)  # fails here, not in func's builder
    return text


def _dependencies(pyproject: Path) -> list[str]:
    declared = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    return [str(requirement) for requirement in declared if requirement != SHARED]


def _union(groups: Iterable[list[str]]) -> list[str]:
    """Every requirement once; the same package pinned two ways is an error, not a guess."""
    chosen: dict[str, str] = {}
    for requirement in (r for group in groups for r in group):
        name = _project_name(requirement)
        if chosen.setdefault(name, requirement) != requirement:
            raise ValueError(f"{name} is required as {chosen[name]!r} and as {requirement!r}")
    return sorted(chosen.values())


def _project_name(requirement: str) -> str:
    for index, character in enumerate(requirement):
        if not (character.isalnum() or character in "-_."):
            return requirement[:index].lower().replace("_", "-")
    return requirement.lower().replace("_", "-")


def _vendor_shared(root: Path, context: Path) -> None:
    target = context / VENDORED
    target.mkdir(parents=True)
    shutil.copy2(root / "shared" / "pyproject.toml", target / "pyproject.toml")
    shutil.copytree(root / "shared" / "patient_notify", target / "patient_notify", ignore=_IGNORE)


def _fresh(out: Path, name: str) -> Path:
    context = out / name
    if context.exists():
        shutil.rmtree(context)
    context.mkdir(parents=True)
    return context


_DIRECT_REFERENCES = """
# Written by `uv run task build`: the shared library comes from vendor/, beside this file.
[tool.hatch.metadata]
allow-direct-references = true
"""

_ALL_IN_ONE_PYPROJECT = """\
# Written by `uv run task build FN=all-in-one` from functions/*/pyproject.toml.
[project]
name = "function"
version = "0.1.0"
description = "Patient Notify: every step in one function (the all-in-one Service)."
requires-python = ">=3.11"
dependencies = [
{dependencies},
]

[build-system]
requires = ["hatchling>=1.27"]
build-backend = "hatchling.build"

[tool.hatch.build.targets.wheel]
packages = ["function"]
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.build", description=__doc__.splitlines()[0])
    parser.add_argument("target", help=f"a function ({', '.join(FUNCTIONS)}), all, or {ALL_IN_ONE}")
    args = parser.parse_args(argv)
    for context in build(args.target):
        print(f"built {context.relative_to(ROOT) if context.is_relative_to(ROOT) else context}")  # noqa: T201 - a command's output
    return 0


if __name__ == "__main__":
    sys.exit(main())
