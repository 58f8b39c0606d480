"""Bad input over real HTTP: kept, alerted and answered 2xx (never a 400 the broker would drop)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import psycopg
import pytest

from sandbox.processes import FunctionProcess


def _rejections(url: str) -> list[tuple[str, str, int]]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT r.reason, a.kind, length(r.body) FROM rejected_events r"
            " JOIN alerts a ON a.dedup_key = 'rejected:' || r.id ORDER BY r.id"
        ).fetchall()


CE = {"ce-specversion": "1.0", "ce-id": "e1", "ce-source": "/appointments", "content-type": "application/json"}


class TestBadInput:
    @pytest.mark.parametrize(("headers", "body", "reason"), [
        ({"content-type": "text/plain"}, b"hello", "not a CloudEvent"),  # not a CloudEvent at all
        ({**CE, "ce-type": "com.example.unknown"}, b"{}", "unknown event type"),  # a type nobody handles
        ({**CE, "ce-type": "org.patientnotify.reminder.due.v1"}, b'{"appointment_id": ""}', "invalid data"),
        ({**CE, "ce-type": "org.patientnotify.reminder.due.v1"}, b"{not json", "data is not JSON"),
    ])  # fmt: skip
    def test_is_recorded_with_its_reason_alerted_and_answered_2xx(
        self, dispatcher: FunctionProcess, migrated_database_url: str, headers: dict[str, str], body: bytes, reason: str
    ) -> None:
        """The request is kept whole in rejected_events with the reason, an alert is raised, the answer is 202."""
        response = httpx.post(dispatcher.url, headers=headers, content=body)
        assert response.status_code == 202
        [(stored_reason, alert_kind, length)] = _rejections(migrated_database_url)
        assert stored_reason.startswith(reason) and alert_kind == "event_rejected" and length == len(body)

    def test_a_dead_letter_is_recorded_and_alerted(
        self, dispatcher: FunctionProcess, migrated_database_url: str
    ) -> None:
        """An event carrying knativeerrordest is kept as a dead letter with a critical alert."""
        headers = {**CE, "ce-type": "org.patientnotify.sms.send.v1", "ce-knativeerrordest": "http://sms-sender",
                   "ce-knativeerrorcode": "503"}  # fmt: skip
        assert httpx.post(dispatcher.url, headers=headers, content=b'{"notification_id": 1}').status_code == 202
        with psycopg.connect(migrated_database_url) as conn:
            rows = conn.execute(
                "SELECT d.error_code, a.severity FROM dead_letters d JOIN alerts a ON a.subject = d.event_id"
            ).fetchall()
        assert rows == [("503", "critical")]


class TestBadConfig:
    def test_a_missing_variable_is_named_and_the_function_reports_dead(self, tmp_path: Path) -> None:
        """Without DATABASE_URL: an error log names it, and liveness and readiness fail with its name."""
        with (tmp_path / "scheduler.log").open("wb") as log:
            process = FunctionProcess("scheduler", {"BROKER_URL": "http://127.0.0.1:1/", "DATABASE_URL": ""}, log)
            process.start()
            try:
                responses = {
                    probe: _first_answer(f"{process.url}health/{probe}") for probe in ("liveness", "readiness")
                }
                for response in responses.values():
                    assert response.status_code == 500 and "DATABASE_URL" in response.text
            finally:
                process.stop()
        assert '"variable": "DATABASE_URL"' in (tmp_path / "scheduler.log").read_text()


def _first_answer(url: str, timeout: float = 60.0) -> httpx.Response:
    """The probe's first HTTP answer, once the process listens (however slowly it starts)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return httpx.get(url, timeout=5.0)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)  # polling for the listening socket, not a synchronisation
