"""``task dev`` as a person uses it: the system left running, an event sent by hand, the message seen, Ctrl-C.

The banner's URLs are the interface: the test reads the ingress and the sent-messages server from
it, posts a signed cancellation as the banner's curl recipe does, and reads the notice back from
``/sms`` or ``/email``. Then SIGINT, as Ctrl-C sends, must stop every process it started.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import httpx
import psutil
import psycopg
import pytest
from cloudevents.core.bindings.http import to_binary_event
from cloudevents.core.v1.event import CloudEvent

from patient_notify.signing import sign_event
from sandbox.demo.system import EVENTS_SECRET
from sandbox.processes import ROOT

T = TypeVar("T")


def _until(what: str, probe: Callable[[], T | None], timeout: float = 120.0) -> T:
    """Poll ``probe`` (a database row, an HTTP listing) until it gives something; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (found := probe()) is not None:
            return found
        time.sleep(0.2)  # a polling interval for a condition, with a deadline: not a synchronisation
    raise AssertionError(f"{what}: not seen within {timeout:.0f} s")


def _banner(stdout: IO[str]) -> dict[str, str]:
    """Read stdout until the banner's list of URLs is complete: {label: first URL on the line}.

    ``sent messages`` is the SMS listing (``…/sms``); the email one is beside it (``…/email``).
    """
    urls: dict[str, str] = {}
    for line in stdout:
        if match := re.match(r"^  (broker ingress|sent messages)\s+(http://\S+)", line):
            urls[match[1]] = match[2]
        if len(urls) == 2:
            return urls
    raise AssertionError("task dev exited before printing its URLs")


@pytest.fixture
def dev(empty_database_url: str, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, str], str]]:
    env = {**os.environ, "DATABASE_URL": empty_database_url}
    env.pop("RABBITMQ_URL", None)  # the in-process broker: what a fresh machine gets
    command = [sys.executable, "-m", "sandbox.demo", "dev", "--data-dir", str(tmp_path), "--appointments", "60"]
    # Its own process group: a failed test must not leave the seven functions behind, as a bare kill would.
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True,  # noqa: S603 - our module
                               start_new_session=True)  # fmt: skip
    try:
        assert process.stdout is not None
        yield process, _banner(process.stdout), empty_database_url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # as Ctrl-C: it stops what it started
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(30)


def _cancellation(appointment_id: str, location_id: str) -> tuple[dict[str, str], bytes]:
    event = CloudEvent(attributes={
        "id": f"dev-test-{appointment_id}", "source": "/hospital/appointments", "specversion": "1.0",
        "type": "org.patientnotify.appointment.changed.v1", "subject": appointment_id,
        "datacontenttype": "application/json",
    }, data={
        "appointment_id": appointment_id, "source_version": 99, "reason": "cancelled",
        "starts_at": "2030-01-01T09:00:00Z", "location_id": location_id, "status": "cancelled",
    })  # fmt: skip
    message = to_binary_event(sign_event(event, EVENTS_SECRET.encode(), now=datetime.now(UTC)))
    return dict(message.headers), message.body


def test_an_event_sent_by_hand_is_delivered_and_ctrl_c_stops_everything(
    dev: tuple[subprocess.Popen[str], dict[str, str], str],
) -> None:
    process, urls, database_url = dev
    children = psutil.Process(process.pid).children(recursive=True)
    assert len(children) >= 7  # the seven functions, each its own process

    def booked() -> tuple[str, str] | None:  # loaded by the ETL pass dev runs at start
        with psycopg.connect(database_url) as conn:
            row = conn.execute(
                "SELECT a.id, a.location_id FROM appointments a JOIN contact_points c ON c.patient_id = a.patient_id"
                " WHERE a.status = 'booked' ORDER BY a.id LIMIT 1"
            ).fetchone()
        return (str(row[0]), str(row[1])) if row else None

    appointment_id, location_id = _until("a booked appointment from the ETL", booked)
    headers, body = _cancellation(appointment_id, location_id)
    assert httpx.post(urls["broker ingress"], headers=headers, content=body).status_code == 202

    def notice() -> list[dict[str, Any]] | None:
        with psycopg.connect(database_url) as conn:
            recipients = {r for (r,) in conn.execute(
                "SELECT recipient FROM notifications WHERE appointment_id = %s AND kind = 'cancellation'"
                " AND status IN ('sent', 'delivered')", [appointment_id]).fetchall()}  # fmt: skip
        listings = [urls["sent messages"], urls["sent messages"].replace("/sms", "/email")]  # as the banner gives
        sent = [m for url in listings for m in httpx.get(url).json()]
        shown = [m for m in sent if m["to"] in recipients]
        return shown if recipients and len(shown) == len(recipients) else None

    assert _until("the cancellation notice at the stand-ins", notice)

    process.send_signal(signal.SIGINT)
    assert process.wait(60) == 0
    assert [child.pid for child in children if child.is_running() and child.status() != psutil.STATUS_ZOMBIE] == []
