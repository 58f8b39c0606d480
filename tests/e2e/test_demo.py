"""``task demo`` as a hospital engineer runs it, on a shorter day, with the machine's PostgreSQL and RabbitMQ.

One 600-appointment day is played once for the module (a run takes about a minute); each test
reads what it left: the report, the outboxes, the function logs and the database.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from patient_notify.catalog import SourceBatch, save_batch
from patient_notify.db import Database
from sandbox.demo.system import FUNCTIONS
from sandbox.patient_population import FAMILY, GIVEN
from sandbox.processes import ROOT
from tests.builders import make_appointment, make_contact, make_location, make_patient
from tests.conftest import ADMIN_URL, database_url

RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


@dataclass(frozen=True)
class Day:
    result: subprocess.CompletedProcess[str]
    data_dir: Path
    database_url: str

    def outbox(self, channel: str) -> list[dict[str, str]]:
        lines = (self.data_dir / "outbox" / f"{channel}.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    def report(self, label: str) -> str:
        [line] = [line for line in self.result.stdout.splitlines() if line.strip().startswith(label)]
        return line.strip().removeprefix(label).strip()

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        with psycopg.connect(self.database_url) as conn:
            return conn.execute(sql.encode()).fetchall()

    def count(self, sql: str) -> int:
        [(n,)] = self.rows(sql)
        return int(str(n))


def _run_demo(database_url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "RABBITMQ_URL": RABBITMQ_URL}
    command = [sys.executable, "-m", "sandbox.demo", "--data-dir", str(data_dir), *args]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=500, check=False)  # noqa: S603 - our interpreter and module


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Day]:
    """600 appointments through RabbitMQ into a fresh database, kept for every test of the module."""
    name = f"pn_demo_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}".encode())  # a uuid4 name
    data_dir = tmp_path_factory.mktemp("demo")
    url = database_url(name)
    result = _run_demo(url, data_dir, "--appointments", "600", "--changes", "15")
    yield Day(result, data_dir, url)
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)".encode())


class TestDemo:
    def test_a_shorter_day_passes_and_its_report_matches_what_the_providers_got(self, day: Day) -> None:
        """Exit 0, a PASS summary last, every message at a provider once, the changes as announced."""
        assert day.result.returncode == 0, day.result.stdout[-3000:] + day.result.stderr[-3000:]
        summary = day.result.stdout.strip().splitlines()[-1]
        assert summary.startswith("PASS: ") and " 0 duplicates" in summary, summary
        sms, email = day.outbox("sms"), day.outbox("email")
        assert len({(m["to"], m["text"]) for m in sms + email}) == len(sms) + len(email)
        assert day.report("duplicates").startswith("0 ")
        assert "delivery_failed" in day.report("alerts")  # the numbers and addresses the providers fail on
        assert day.report("changes") == "5 cancelled, 5 relocated, 5 rescheduled"
        assert any("cancelled" in m["text"].lower() for m in sms + email)

    def test_delivered_is_counted_from_verified_receipts(self, day: Day) -> None:
        """The report's delivered figure is the notifications a verified receipt moved to delivered."""
        by_receipt = day.count("""SELECT count(*) FROM notifications n WHERE n.status = 'delivered'
            AND n.receipt_at IS NOT NULL AND EXISTS (SELECT 1 FROM provider_receipts r
                WHERE r.verified AND r.provider = n.provider AND r.provider_message_id = n.provider_message_id
                  AND r.status IN ('delivered', 'Delivery'))""")
        assert by_receipt == day.count("SELECT count(*) FROM notifications WHERE status = 'delivered'") > 0
        assert day.report("delivered").startswith(f"{by_receipt} of "), day.report("delivered")
        assert day.count("SELECT count(*) FROM notifications WHERE status = 'sent'") == 0  # no receipt missing

    def test_every_receipt_is_verified_and_none_refused(self, day: Day) -> None:
        """Two signed Twilio callbacks per SMS and one signed SNS notification per email, none refused."""
        rows = day.rows("SELECT provider || ' ' || kind, count(*) FROM provider_receipts WHERE verified GROUP BY 1")
        receipts = {str(kind): int(str(n)) for kind, n in rows}
        assert receipts == {"twilio status": 2 * len(day.outbox("sms")), "ses ses-event": len(day.outbox("email"))}
        assert day.count("SELECT count(*) FROM provider_receipts WHERE NOT verified") == 0
        assert "0 refused as unverified" in day.report("receipts")

    def test_unreachable_numbers_end_undelivered_and_alerted(self, day: Day) -> None:
        """An SMS the carrier could not deliver (30003) ends undelivered by its receipt, with an alert."""
        undelivered = day.rows("""SELECT n.id::text, a.kind FROM notifications n
            LEFT JOIN alerts a ON a.dedup_key = 'delivery_failed:' || n.id
            WHERE n.channel = 'sms' AND n.status = 'undelivered' AND n.receipt_at IS NOT NULL
              AND EXISTS (SELECT 1 FROM provider_receipts r WHERE r.verified AND r.provider = 'twilio'
                          AND r.provider_message_id = n.provider_message_id AND r.status = 'undelivered'
                          AND r.payload ->> 'ErrorCode' = '30003')""")
        assert undelivered and {kind for _, kind in undelivered} == {"delivery_failed"}

    def test_a_number_refused_at_send_falls_back_to_email(self, day: Day) -> None:
        """An SMS Twilio refused for good is failed, alerted, and replaced by an email for the same occasion."""
        fallbacks = day.rows("""SELECT s.status, e.channel, e.status FROM notifications e
                                JOIN notifications s ON s.id = e.fallback_of""")
        assert fallbacks and set(fallbacks) <= {("failed", "email", "delivered"), ("undelivered", "email", "delivered")}

    def test_every_sms_that_did_not_arrive_is_emailed_where_an_address_exists(self, day: Day) -> None:
        """Refused at send or undelivered by its receipt: the occasion (appointment, kind, version) reaches the
        patient by a delivered email, unless the patient has no address or the appointment changed since."""
        rows = day.rows("""SELECT s.id::text, s.status,
                EXISTS (SELECT 1 FROM notifications e WHERE e.channel = 'email' AND e.status = 'delivered'
                        AND (e.appointment_id, e.kind, e.appointment_version)
                          = (s.appointment_id, s.kind, s.appointment_version)) AS emailed,
                EXISTS (SELECT 1 FROM contact_points c WHERE c.patient_id = a.patient_id AND c.channel = 'email')
                    AND a.version = s.appointment_version AS could_be
            FROM notifications s JOIN appointments a ON a.id = s.appointment_id
            WHERE s.channel = 'sms' AND s.status IN ('failed', 'undelivered')""")
        assert {status for _, status, _, _ in rows} == {"failed", "undelivered"}, rows
        assert [(nid, status) for nid, status, emailed, could_be in rows if could_be and not emailed] == []

    def test_a_hard_bounce_suppresses_the_address(self, day: Day) -> None:
        """An email that bounced for good is undelivered by its SES event and its address never written to again."""
        bounced = day.rows("""SELECT n.recipient = s.address FROM notifications n
                              JOIN email_suppressions s ON s.address = lower(n.recipient)
                              WHERE n.channel = 'email' AND n.status = 'undelivered'""")
        assert bounced and all(same for (same,) in bounced)

    def test_the_monitor_ran_on_every_tick_of_the_day(self, day: Day) -> None:
        """The monitor answered all 288 of its PingSource ticks, and the report lists what it left open."""
        assert day.report("monitor").startswith("288 ticks answered · open alerts it raised: ")
        ticks = (day.data_dir / "logs" / "monitor.log").read_text().count('"msg": "monitor.tick"')
        assert ticks == 288

    def test_no_patient_contact_or_name_reaches_a_function_log(self, day: Day) -> None:
        """Every recipient the providers saw, and the hospital's names, are absent from all seven logs."""
        recipients = {m["to"] for channel in ("sms", "email") for m in day.outbox(channel)}
        logs = {path.name: path.read_text(errors="replace") for path in (day.data_dir / "logs").glob("*.log")}
        assert set(logs) == {f"{name}.log" for name in FUNCTIONS} and len(logs) == 7 and all(logs.values())
        leaked = {
            (name, secret) for name, text in logs.items() for secret in recipients | set(FAMILY) if secret in text
        }
        assert recipients and leaked == set()
        assert not any(given in text for given in GIVEN if len(given) > 3 for text in logs.values())


class TestRefusal:
    def test_a_database_with_appointments_is_refused_and_left_alone(
        self, migrated_database_url: str, tmp_path: Path
    ) -> None:
        """The demo never writes into a database that already holds appointments: it says why and exits 1."""
        asyncio.run(_seed_one(migrated_database_url))
        result = _run_demo(migrated_database_url, tmp_path)
        assert result.returncode == 1
        assert "DATABASE_URL already holds 1 appointments" in result.stderr
        with psycopg.connect(migrated_database_url) as conn:
            assert conn.execute("SELECT id FROM appointments").fetchall() == [("a1",)]

    def test_a_data_directory_in_use_is_refused(self, empty_database_url: str, tmp_path: Path) -> None:
        """A second run on a data directory another run holds exits 2 at once, touching nothing."""
        with (tmp_path / ".lock").open("wb") as held:
            fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a running demo holds it
            result = _run_demo(empty_database_url, tmp_path)
        assert result.returncode == 2
        assert f"another demo or dev run is using {tmp_path}" in result.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == [".lock"]


async def _seed_one(url: str) -> None:
    db = Database(url, max_size=1)
    batch = SourceBatch([make_location()], [make_patient()], [make_contact()], [make_appointment(id="a1")])
    async with db.transaction() as tx:
        await save_batch(tx, batch)
    await db.close()
