"""The all-in-one function (root func.yaml) from its build context: one Service, every step.

``deploy.build`` writes build/all-in-one/ (the top-level ``function/`` package, each step's
package inside it, the shared library vendored); it is installed into a fresh venv from a
temporary copy and served by func-python, then routed to as the all-in-one overlay's Triggers
would: ticks by their PingSource, events by type, dead letters to the dispatcher's recording.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from deploy import build
from deploy.trial import Installed, install_copy, serving
from sandbox.processes import free_port

pytestmark = pytest.mark.timeout(240)

UNREACHABLE = f"http://127.0.0.1:{free_port()}/"  # nothing listens here
# The union of every step's settings, as the root func.yaml maps them from the Secret and ConfigMap.
SETTINGS = {
    "BROKER_URL": UNREACHABLE, "LOG_LEVEL": "INFO",
    "ETL_SOURCE_URL": f"{UNREACHABLE}fhir", "ETL_DEFAULT_ZONE": "Europe/London", "ETL_ATTEMPTS": "1",
    "APPOINTMENT_EVENTS_SECRET": "deploy-test-secret-0123456789abcdef",
    "TWILIO_ACCOUNT_SID": "AC" + "0" * 32, "TWILIO_AUTH_TOKEN": "t", "TWILIO_FROM_NUMBER": "+15005550006",
    "EMAIL_FROM": "clinic@example.org", "SES_REGION": "eu-west-1",
}  # fmt: skip
PINGSOURCES = "/apis/v1/namespaces/patient-notify/pingsources"


def event(event_type: str, source: str, data: dict[str, Any], **extensions: str) -> dict[str, Any]:
    headers = {
        "ce-specversion": "1.0", "ce-id": f"{event_type}-{source}", "ce-source": source, "ce-type": event_type,
        "ce-time": "2026-11-24T09:00:00Z", "content-type": "application/json",
    }  # fmt: skip
    headers.update({f"ce-{name}": value for name, value in extensions.items()})
    return {"headers": headers, "content": json.dumps(data).encode()}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    out = tmp_path_factory.mktemp("build")
    return install_copy(build.build_all_in_one(out=out), out / "trial")


@pytest.fixture
def url(installed: Installed, migrated_database_url: str, tmp_path: Path) -> Iterator[str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", **SETTINGS, "DATABASE_URL": migrated_database_url}
    with (tmp_path / "all-in-one.log").open("wb") as log, serving(installed, env, log) as served:
        yield served


def rows(database_url: str, sql: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql.encode()).fetchall()


class TestAllInOne:
    def test_context_holds_every_step(self, installed: Installed) -> None:
        """The build context and the installed package carry every step inside the root function."""
        site_packages = next((installed.environment / "lib").glob("python3*/site-packages"))
        for name in build.STEPS:
            assert (installed.context / "function" / "steps" / name / "func.py").is_file()
            assert (site_packages / "function" / "steps" / name / "func.py").is_file()

    def test_health_probes(self, url: str) -> None:
        """Alive and ready once every step has started; anything but POST is refused with 405."""
        assert httpx.get(f"{url}health/liveness").text == "OK"
        assert httpx.get(f"{url}health/readiness").text == "OK"
        assert httpx.get(url).status_code == 405

    def test_ticks_go_to_the_step_of_their_pingsource(self, url: str, migrated_database_url: str) -> None:
        """scheduler-tick plans reminders (handled, nothing rejected); etl-tick runs one ETL pass."""
        planned = httpx.post(
            url, **event("dev.knative.sources.ping", f"{PINGSOURCES}/scheduler-tick", {"job": "plan-reminders"})
        )
        passed = httpx.post(url, **event("dev.knative.sources.ping", f"{PINGSOURCES}/etl-tick", {"job": "etl-pass"}))
        assert (planned.status_code, planned.json()) == (200, {"outcome": "handled"})
        assert passed.status_code == 200
        assert rows(migrated_database_url, "SELECT count(*) FROM rejected_events") == [(0,)]
        assert rows(migrated_database_url, "SELECT status FROM etl_runs") == [("failed",)]  # the source is down

    def test_events_go_to_the_step_of_their_type(self, url: str, migrated_database_url: str) -> None:
        """A reminder for an unknown appointment reaches the dispatcher, which rejects it (202)."""
        due = {
            "appointment_id": "apt-unknown",
            "appointment_version": 1,
            "local_date": "2026-12-01",
            "due_at": "2026-11-28T10:00:00Z",
        }
        response = httpx.post(url, **event("org.patientnotify.reminder.due.v1", "/patient-notify/scheduler", due))
        assert (response.status_code, response.json()) == (202, {"outcome": "rejected and recorded"})
        assert rows(migrated_database_url, "SELECT receiver, reason FROM rejected_events") == [
            ("dispatcher", "unknown appointment apt-unknown")
        ]

    def test_dead_letters_are_recorded(self, url: str, migrated_database_url: str) -> None:
        """An event the broker gave up on (knativeerrordest) is kept as a dead letter, answered 202."""
        send = {"notification_id": 7, "appointment_id": "apt-1", "channel": "sms"}
        dead = event("org.patientnotify.sms.send.v1", "/patient-notify/dispatcher", send,
                     knativeerrordest="http://patient-notify.patient-notify.svc", knativeerrorcode="503")  # fmt: skip
        response = httpx.post(url, **dead)
        assert (response.status_code, response.json()) == (202, {"outcome": "dead letter recorded"})
        assert rows(migrated_database_url, "SELECT event_type, error_code FROM dead_letters") == [
            ("org.patientnotify.sms.send.v1", "503")
        ]
