"""``task demo`` as a hospital engineer runs it, on a shorter day, with the machine's PostgreSQL and RabbitMQ."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import psycopg

from patient_notify.catalog import SourceBatch, save_batch
from patient_notify.db import Database
from sandbox.patient_population import FAMILY, GIVEN
from sandbox.processes import ROOT
from tests.builders import make_appointment, make_contact, make_location, make_patient

RABBITMQ_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def _run_demo(database_url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url, "RABBITMQ_URL": RABBITMQ_URL}
    command = [sys.executable, "-m", "sandbox.demo", "--data-dir", str(data_dir), *args]
    return subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=400, check=False)  # noqa: S603 - our interpreter and module


def _outbox(data_dir: Path, channel: str) -> list[dict[str, str]]:
    lines = (data_dir / "outbox" / f"{channel}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _report_value(stdout: str, label: str) -> str:
    [line] = [line for line in stdout.splitlines() if line.strip().startswith(label)]
    return line.strip().removeprefix(label).strip()


class TestDemo:
    def test_a_shorter_day_passes_and_its_report_matches_what_the_providers_got(
        self, empty_database_url: str, tmp_path: Path
    ) -> None:
        """600 appointments through RabbitMQ: exit 0, a PASS summary last, report figures equal to the outboxes."""
        result = _run_demo(empty_database_url, tmp_path, "--appointments", "600", "--changes", "15")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        summary = result.stdout.strip().splitlines()[-1]
        assert summary.startswith("PASS: ") and " 0 duplicates" in summary, summary
        sms, email = _outbox(tmp_path, "sms"), _outbox(tmp_path, "email")
        delivered = _report_value(result.stdout, "delivered")
        assert delivered.startswith(f"{len(sms) + len(email)} of "), delivered
        assert len({(m["to"], m["text"]) for m in sms + email}) == len(sms) + len(email)
        assert _report_value(result.stdout, "duplicates").startswith("0 ")
        assert "delivery_failed" in _report_value(result.stdout, "alerts")  # the numbers Twilio refuses for good
        changes = _report_value(result.stdout, "changes")
        assert changes == "5 cancelled, 5 relocated, 5 rescheduled"
        assert any("cancelled" in m["text"].lower() for m in sms + email)

    def test_no_patient_contact_or_name_reaches_a_function_log(self, empty_database_url: str, tmp_path: Path) -> None:
        """Every recipient the providers saw, and the hospital's names, are absent from all five logs."""
        result = _run_demo(empty_database_url, tmp_path, "--appointments", "300", "--changes", "6")
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        recipients = {m["to"] for channel in ("sms", "email") for m in _outbox(tmp_path, channel)}
        logs = {path.name: path.read_text(errors="replace") for path in (tmp_path / "logs").glob("*.log")}
        assert len(logs) == 5 and all(logs.values())
        leaked = {
            (name, secret) for name, text in logs.items() for secret in recipients | set(FAMILY) if secret in text
        }
        assert recipients and leaked == set()
        assert not any(given in text for given in GIVEN if len(given) > 3 for text in logs.values())

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


async def _seed_one(url: str) -> None:
    db = Database(url, max_size=1)
    batch = SourceBatch([make_location()], [make_patient()], [make_contact()], [make_appointment(id="a1")])
    async with db.transaction() as tx:
        await save_batch(tx, batch)
    await db.close()
