"""The system for fault scenarios: functions as func-python processes behind either broker backend,
the Twilio and SES stand-ins, and helpers that read outcomes from the database and the stand-ins.

Like ``tests/e2e/conftest.py``'s system, with what fault scenarios need on top: the RabbitMQ
backend (any node), the monitor, per-function settings (a database URL through a fault proxy,
pacing, failover), and waiting on conditions with deadlines instead of sleeping.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg
from cloudevents.core.bindings.http import to_binary_event
from cloudevents.core.v1.event import CloudEvent

from patient_notify.catalog import SourceBatch, save_batch
from patient_notify.db import Database
from sandbox.brokers import Broker, open_broker
from sandbox.processes import ROOT, FunctionProcess
from sandbox.ses import ACCESS_KEY_ID, SECRET_ACCESS_KEY, SesStandIn
from sandbox.triggers import load_triggers
from sandbox.twilio import TwilioStandIn

__all__ = ["PIPELINE", "System", "load_batch", "ping", "start_system", "wait_until"]

PIPELINE = ("scheduler", "dispatcher", "sms-sender", "email-sender")
ACCOUNT_SID = "AC" + "f" * 32
AUTH_TOKEN = "faults-auth-token"
EVENTS_SECRET = "faults-appointment-events-secret-0123456789"
MONITOR_TICK_SOURCE = "/apis/v1/namespaces/patient-notify/pingsources/monitor-tick"
SCHEDULER_TICK_SOURCE = "/apis/v1/namespaces/patient-notify/pingsources/scheduler-tick"
READY_S = 180.0  # process start to readiness; generous, as a 2-core machine shared with other runs can be slow


@dataclass
class System:
    broker: Broker
    twilio: TwilioStandIn
    ses: SesStandIn
    email_from: str
    database_url: str
    functions: dict[str, FunctionProcess]
    logs: Path
    client: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=60))

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            return list(conn.execute(sql.encode(), params).fetchall())

    def table(self, sql: str) -> dict[str, int]:
        """A two-column query as a dict: ``SELECT key, count(*) ... GROUP BY key``."""
        return {str(key): int(value) for key, value in self.rows(sql)}

    def sent(self) -> Counter[tuple[str, str]]:
        """(recipient, channel) of every message the providers accepted, with how often."""
        sms = Counter((m.to, "sms") for m in self.twilio.messages)
        email = Counter((to, "email") for m in self.ses.sent_messages() if m.source == self.email_from for to in m.to)
        return sms + email

    def post(self, url: str, event: CloudEvent) -> int:
        message = to_binary_event(event)
        return self.client.post(url, headers=dict(message.headers), content=message.body).status_code

    def tick_monitor(self, at: datetime) -> int:
        """A monitor-tick delivered as its Trigger does; ``at`` is the monitor's clock (the tick's time)."""
        return self.post(self.functions["monitor"].url, ping(MONITOR_TICK_SOURCE, at, "monitor"))

    def unpublished(self) -> int:
        return int(self.rows("SELECT count(*) FROM outbox WHERE published_at IS NULL")[0][0])


def ping(source: str, at: datetime, job: str) -> CloudEvent:
    return CloudEvent(attributes={
        "id": f"{job}-{at:%Y%m%d%H%M%S%f}-{uuid.uuid4().hex[:6]}", "source": source,
        "type": "dev.knative.sources.ping", "specversion": "1.0", "time": at,
        "datacontenttype": "application/json",
    }, data={"job": job})  # fmt: skip


def start_system(
    stack: ExitStack, database_url: str, ses: SesStandIn, logs: Path, *,
    functions: Iterable[str] = PIPELINE, rabbitmq_url: str | None = None,
    twilio: TwilioStandIn | None = None, settings: Mapping[str, Mapping[str, str]] | None = None,
    backoff_scale: float = 0.05,
) -> System:  # fmt: skip
    """Start the stand-ins, ``functions`` (each with ``settings[name]`` over the common settings)
    and a broker routing by the Triggers in ``knative/``; everything stops with ``stack``."""
    if twilio is None:
        twilio = stack.enter_context(TwilioStandIn(ACCOUNT_SID, AUTH_TOKEN, seed=7))
    email_from = f"clinic-{uuid.uuid4().hex[:8]}@example.org"
    ses.verify_sender(email_from)
    endpoints: dict[str, str] = {}
    broker = open_broker(load_triggers(ROOT / "knative"), endpoints, rabbitmq_url=rabbitmq_url,
                         backoff_scale=backoff_scale)  # fmt: skip
    common = {
        "DATABASE_URL": database_url, "BROKER_URL": broker.ingress_url, "LOG_LEVEL": "INFO",
        "APPOINTMENT_EVENTS_SECRET": EVENTS_SECRET,
        "TWILIO_ACCOUNT_SID": twilio.account_sid, "TWILIO_AUTH_TOKEN": twilio.auth_token,
        "TWILIO_FROM_NUMBER": "+12025550100", "TWILIO_BASE_URL": twilio.base_url,
        "EMAIL_PROVIDER": "ses", "EMAIL_FROM": email_from, "SES_REGION": ses.region,
        "SES_ENDPOINT_URL": ses.endpoint_url, "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    }  # fmt: skip
    processes: dict[str, FunctionProcess] = {}
    for name in functions:
        log = stack.enter_context((logs / f"{name}.log").open("wb"))
        process = FunctionProcess(name, {**common, **(settings or {}).get(name, {})}, log)
        endpoints[name] = process.url
        processes[name] = process
        process.start()
        stack.callback(process.stop)
    with ThreadPoolExecutor(len(processes)) as pool:
        list(pool.map(lambda p: p.wait_ready(READY_S), processes.values()))
    broker.start()
    stack.callback(broker.stop)
    system = System(broker, twilio, ses, email_from, database_url, processes, logs)
    stack.callback(system.client.close)
    return system


def load_batch(database_url: str, batch: SourceBatch) -> None:
    """Save hospital records as the ETL would (its own transaction)."""

    async def load() -> None:
        db = Database(database_url, max_size=2)
        try:
            async with db.transaction() as tx:
                await save_batch(tx, batch)
        finally:
            await db.close()

    asyncio.run(load())


def wait_until(condition: Callable[[], bool], timeout: float, *, every: float = 0.05) -> bool:
    """Poll ``condition`` (a database count, a stand-in's list) until true or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)  # the polling interval of a condition with a deadline, not a synchronisation
