"""The fault-injection tier: the system under injected faults, each scenario with exact pass criteria.

Each scenario records its measured figures with the ``figures`` fixture; they are printed at the
end of the run (the terminal summary) and written to ``.data/faults/results.json``, which
``docs/reliability.md`` quotes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sandbox.processes import ROOT
from sandbox.ses import SesStandIn

RESULTS = ROOT / ".data" / "faults" / "results.json"
_FIGURES: dict[str, dict[str, Any]] = {}

Figures = Callable[..., None]


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> Figures:
    """``figures(name=value, ...)``: what this scenario measured, kept under the test's id."""

    def record(**values: Any) -> None:
        _FIGURES.setdefault(request.node.name, {}).update(values)

    return record


@pytest.fixture
def ses() -> Iterator[SesStandIn]:
    with SesStandIn() as stand_in:
        yield stand_in


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("fault scenarios: measured")
    for name, values in _FIGURES.items():
        terminalreporter.write_line(f"{name}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    RESULTS.write_text(json.dumps({**previous, **_FIGURES}, indent=2, default=str) + "\n")
