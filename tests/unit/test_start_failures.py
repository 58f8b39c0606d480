"""A bad config fails at start naming the variable; any other failure at start fails it naming the type.

Each case starts a function with one bad value or one broken part: ``start`` stops before the
database, so nothing connects. The integration test ``test_lifecycle`` covers a bad DATABASE_URL.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from patient_notify.function import EventFunction, Route, Runtime
from patient_notify.http_function import Handler, HttpFunction, HttpRuntime, HttpSettings
from patient_notify.settings import Settings
from tests.support.functions import load_module

BASE = {"DATABASE_URL": "postgresql://pn@127.0.0.1:9/pn", "BROKER_URL": "http://127.0.0.1:9/"}
# What each function needs besides BASE to start.
GOOD = {
    "etl": {"ETL_SOURCE_URL": "http://127.0.0.1:9/fhir", "ETL_DEFAULT_ZONE": "Europe/London"},
    "email-sender": {"EMAIL_FROM": "clinic@hospital.example", "SES_REGION": "eu-west-1"},
    "sms-sender": {
        "TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
        "TWILIO_AUTH_TOKEN": "t",
        "TWILIO_FROM_NUMBER": "+12025550100",
    },
    "monitor": {},
}
SECRET = "hunter2"


@pytest.fixture(autouse=True)
def root_logger_restored() -> Iterator[None]:
    """``start`` binds the root logger to the stderr pytest captures meanwhile: undone after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def logged(capsys: pytest.CaptureFixture[str]) -> tuple[list[dict[str, Any]], str]:
    """The start.* lines, and everything written."""
    text = capsys.readouterr().err
    lines = [json.loads(line) for line in text.splitlines()]
    return [line for line in lines if str(line["msg"]).startswith("start.")], text


class TestABadValue:
    @pytest.mark.parametrize(
        ("name", "overrides", "variable"),
        [
            ("etl", {"ETL_DEFAULT_ZONE": "Mars/Olympus"}, "ETL_DEFAULT_ZONE"),  # zoneinfo: a KeyError
            ("etl", {"ETL_DEFAULT_ZONE": "Europe"}, "ETL_DEFAULT_ZONE"),  # zoneinfo: IsADirectoryError
            ("email-sender", {"SES_REGION": "eu west 1"}, "SES_REGION"),  # botocore: when its client is built
            ("sms-sender", {"SNS_REGION": "eu west 1"}, "SNS_REGION"),  # the same, for the failover
            ("monitor", {"RABBITMQ_URL": f"amqp://pn:{SECRET}@rabbit:notaport/"}, "RABBITMQ_URL"),  # pika: the port
            ("monitor", {"RABBITMQ_URL": "CHANGE-ME-or-empty"}, "RABBITMQ_URL"),  # pika: an IndexError
        ],
    )
    def test_start_fails_naming_the_variable(
        self, capsys: pytest.CaptureFixture[str], name: str, overrides: dict[str, str], variable: str
    ) -> None:
        """Liveness and readiness fail naming the variable (a crash loop), logged once as start.config_invalid."""
        function = load_module(name, "func").new()
        function.start({**BASE, **GOOD[name], **overrides})
        alive, reason = function.alive()
        assert not alive and variable in reason
        assert function.ready() == (False, reason) and function.serving is None
        [line], text = logged(capsys)
        assert (line["msg"], line["function"], line["variable"]) == ("start.config_invalid", name, variable)
        assert SECRET not in reason + text


def _broken_routes(_settings: Settings, _runtime: Runtime) -> Mapping[str, Route]:
    raise KeyError(f"token {SECRET}")  # a library's bug, say, whose message quotes a secret


def _broken_handlers(_settings: HttpSettings, _runtime: HttpRuntime) -> Mapping[str, Handler]:
    raise KeyError(f"token {SECRET}")


# Each function shape, assembled around a wire() that raises.
SHAPES: list[Callable[[], Any]] = [
    lambda: EventFunction("broken", Settings, _broken_routes),
    lambda: HttpFunction("broken", HttpSettings, _broken_handlers),
]


class TestAnUnexpectedFailure:
    @pytest.mark.parametrize("make", SHAPES, ids=["event", "http"])
    def test_start_fails_naming_the_type_never_the_message(
        self, capsys: pytest.CaptureFixture[str], make: Callable[[], Any]
    ) -> None:
        """An exception in assembly fails liveness and readiness as 'start failed: KeyError', logged as start.failed."""
        function = make()
        function.start(BASE)
        assert function.alive() == (False, "start failed: KeyError")
        assert function.ready() == (False, "start failed: KeyError") and function.serving is None
        [line], text = logged(capsys)
        assert (line["msg"], line["function"], line["error_type"]) == ("start.failed", "broken", "KeyError")
        assert SECRET not in text
