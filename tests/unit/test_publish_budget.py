"""The scheduler's and the monitor's publish budgets fit inside their Triggers' timeouts, with the
worst chunk still in flight.

Past the Trigger's timeout the broker takes the tick for failed and delivers it again: the tick
must answer before, even when the ingress hangs on its last chunk (CHUNK_ROUNDS rounds of POSTs,
each up to the shared client's timeout).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from patient_notify.lifecycle import HTTP_TIMEOUT_S
from tests.support.functions import load_module

TRIGGERS = Path(__file__).resolve().parents[2] / "knative" / "base" / "triggers.yaml"
ANSWER_MARGIN_S = 10.0  # the work after publishing stops (checks, the answer), at least


def _seconds(duration: str) -> float:
    """An ISO 8601 duration as Knative writes them: PT2M, PT30S, PT1M30S."""
    match = re.fullmatch(r"PT(?:(\d+)M)?(?:(\d+)S)?", duration)
    assert match and any(match.groups()), duration
    return int(match[1] or 0) * 60.0 + int(match[2] or 0)


@pytest.mark.parametrize(("function", "trigger_name"), [("scheduler", "scheduler-tick"), ("monitor", "monitor-tick")])
def test_the_budget_and_a_hung_last_chunk_end_before_the_trigger_gives_up(function: str, trigger_name: str) -> None:
    [trigger] = [d for d in yaml.safe_load_all(TRIGGERS.read_text())
                 if d and d["metadata"]["name"] == trigger_name]  # fmt: skip
    func = load_module(function, "func")
    worst = func.PUBLISH_BUDGET_S + func.CHUNK_ROUNDS * HTTP_TIMEOUT_S + ANSWER_MARGIN_S
    assert worst <= _seconds(trigger["spec"]["delivery"]["timeout"])
