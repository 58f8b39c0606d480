"""Change-notice latency: from the event's arrival at the broker ingress to the SMS stand-in
accepting the message, over N announced changes with warm functions (func-python processes,
the local router with the Triggers in knative/, real PostgreSQL).

    uv run task bench:latency          # N=1000; prints p50/p99/max and writes bench/results.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import statistics
import threading
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import httpx
from cloudevents.core.bindings.http import to_binary_event

from bench.databases import fresh_database
from patient_notify.catalog import SourceBatch, save_batch
from patient_notify.db import Database
from patient_notify.domain.models import Appointment, ContactPoint, Location, Patient
from sandbox.processes import ROOT, FunctionProcess
from sandbox.router import LocalRouter
from sandbox.smtp import SmtpStandIn
from sandbox.triggers import load_triggers
from sandbox.twilio import SentSms, TwilioStandIn
from tests.integration.change_harness import SECRET, announced

ACCOUNT_SID = "AC" + "2" * 32


async def _seed(url: str, count: int, start: datetime) -> None:
    db = Database(url, max_size=2)
    async with db.transaction() as tx:
        await save_batch(tx, SourceBatch(
            [Location(id="loc-1", name="Riverside Clinic", phone="+12025550100", timezone="America/New_York")],
            [Patient(id=f"p{i}", given_name="Pat", channel_preference="sms") for i in range(count)],
            [ContactPoint(patient_id=f"p{i}", channel="sms", value=f"+1202555{i:04d}") for i in range(count)],
            [Appointment(id=f"a{i}", patient_id=f"p{i}", location_id="loc-1", starts_at=start, status="booked",
                         source_version=1) for i in range(count)],
        ))  # fmt: skip
    await db.close()


def measure(count: int, logs: Path) -> dict[str, float]:
    """Latency percentiles over ``count`` changes, in a fresh database dropped afterwards."""
    start = (datetime.now(UTC) + timedelta(days=10)).replace(second=0, microsecond=0)
    with ExitStack() as stack:
        url = stack.enter_context(fresh_database())
        asyncio.run(_seed(url, count + 20, start))
        twilio = stack.enter_context(TwilioStandIn(ACCOUNT_SID, "token"))
        smtp = stack.enter_context(SmtpStandIn())
        accepted: dict[str, float] = {}
        arrived = threading.Condition()

        def on_accept(message: SentSms) -> None:
            with arrived:
                accepted[message.to] = time.perf_counter()
                arrived.notify_all()

        twilio.listeners.append(on_accept)
        endpoints: dict[str, str] = {}
        router = LocalRouter(load_triggers(ROOT / "knative"), endpoints)
        env = {
            "DATABASE_URL": url, "BROKER_URL": router.ingress_url, "LOG_LEVEL": "WARNING",
            "APPOINTMENT_EVENTS_SECRET": SECRET, "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "token",
            "TWILIO_FROM_NUMBER": "+12025550100", "TWILIO_BASE_URL": twilio.base_url, "EMAIL_PROVIDER": "smtp",
            "EMAIL_FROM": "clinic@example.org", "SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port),
            "SMTP_STARTTLS": "false",
        }  # fmt: skip
        for name in ("dispatcher", "sms-sender", "email-sender"):
            process = FunctionProcess(name, env, stack.enter_context((logs / f"{name}.log").open("wb")))
            endpoints[name] = process.url
            process.start()
            stack.callback(process.stop)
        for name in ("dispatcher", "sms-sender", "email-sender"):
            FunctionProcess.wait_ready_at(endpoints[name])
        router.start()
        stack.callback(router.stop)
        latencies = []
        with httpx.Client() as client:
            for i in range(count + 20):  # the first 20 warm the pools and connections
                event = announced(f"a{i}", 2, "rescheduled", start + timedelta(hours=1), "loc-1")
                message = to_binary_event(event)
                sent_at = time.perf_counter()
                client.post(router.ingress_url, headers=message.headers, content=message.body).raise_for_status()
                phone = f"+1202555{i:04d}"
                with arrived:
                    if not arrived.wait_for(partial(operator.contains, accepted, phone), timeout=10):
                        raise TimeoutError(f"no SMS for change {i}")
                if i >= 20:
                    latencies.append((accepted[phone] - sent_at) * 1000)
    latencies.sort()
    return {
        "events": len(latencies),
        "p50_ms": round(statistics.median(latencies), 1),
        "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 1),
        "max_ms": round(latencies[-1], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1000)
    args = parser.parse_args()
    logs = ROOT / "bench" / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    result = measure(args.events, logs)
    print(f"change-notice latency over {result['events']} events: p50 {result['p50_ms']} ms, "  # noqa: T201
          f"p99 {result['p99_ms']} ms, max {result['max_ms']} ms (goal: p99 < 250 ms)")  # fmt: skip
    results_file = ROOT / "bench" / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    results["change_notice_latency"] = result
    results_file.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
