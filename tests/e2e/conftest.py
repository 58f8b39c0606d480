"""The whole pipeline on one machine: four func-python processes, the Triggers in knative/ routing
between them over real HTTP, real PostgreSQL, and the Twilio and SES stand-ins.

Every database URL this tier hands out goes through a real PgBouncer in transaction pooling mode,
as production's CloudNativePG Pooler does (tests/support/pgbouncer.py): the functions, the demo
and the tests' own checks all connect through it; only creating and dropping databases is direct.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandbox.processes import ROOT, FunctionProcess
from sandbox.router import LocalRouter
from sandbox.ses import ACCESS_KEY_ID, SECRET_ACCESS_KEY, SesStandIn
from sandbox.triggers import load_triggers
from sandbox.twilio import TwilioStandIn
from tests.conftest import ADMIN_URL
from tests.support.pgbouncer import PgBouncer
from tests.support.receiver import Receiver

FUNCTIONS = ("scheduler", "dispatcher", "sms-sender", "email-sender")
ACCOUNT_SID = "AC" + "0" * 32
EVENTS_SECRET = "e2e-appointment-events-secret-0123456789"


@dataclass
class System:
    router: LocalRouter
    twilio: TwilioStandIn
    ses: SesStandIn
    email_from: str
    database_url: str
    logs: Path


@pytest.fixture(scope="session")
def pgbouncer() -> Iterator[PgBouncer]:
    with PgBouncer(ADMIN_URL) as bouncer:
        yield bouncer


@pytest.fixture
def migrated_database_url(migrated_database_url: str, pgbouncer: PgBouncer) -> str:
    """The migrated test database, reached through PgBouncer in transaction mode."""
    return pgbouncer.url(migrated_database_url)


@pytest.fixture
def empty_database_url(empty_database_url: str, pgbouncer: PgBouncer) -> str:
    """An empty test database, reached through PgBouncer in transaction mode."""
    return pgbouncer.url(empty_database_url)


@pytest.fixture
def dispatcher(migrated_database_url: str, tmp_path: Path) -> Iterator[FunctionProcess]:
    """The dispatcher alone, its emitted events caught by a receiver that answers 202."""
    with Receiver() as ingress, (tmp_path / "dispatcher.log").open("wb") as log:
        env = {"DATABASE_URL": migrated_database_url, "BROKER_URL": ingress.url, "APPOINTMENT_EVENTS_SECRET": "s" * 32}
        process = FunctionProcess("dispatcher", env, log)
        process.start()
        try:
            process.wait_ready()
            yield process
        finally:
            process.stop()


@pytest.fixture
def ses() -> Iterator[SesStandIn]:
    with SesStandIn() as stand_in:
        yield stand_in


def start_system(
    stack: ExitStack, database_url: str, ses: SesStandIn, logs: Path, *,
    duplicate: bool = False, twilio_failure_rate: float = 0.0,
) -> System:  # fmt: skip
    # At most 3 refusals per message: below the sender Trigger's 5 retries, so no run is flaky.
    twilio = stack.enter_context(
        TwilioStandIn(ACCOUNT_SID, "test-token", failure_rate=twilio_failure_rate, max_failures_per_message=3, seed=7)
    )
    email_from = f"clinic-{uuid.uuid4().hex[:8]}@example.org"
    ses.verify_sender(email_from)
    endpoints: dict[str, str] = {}
    router = LocalRouter(
        load_triggers(ROOT / "knative"), endpoints,
        duplicate=duplicate, shuffle_seed=11 if duplicate else None, backoff_scale=0.05,
    )  # fmt: skip
    env = {
        "DATABASE_URL": database_url, "BROKER_URL": router.ingress_url, "LOG_LEVEL": "INFO",
        "APPOINTMENT_EVENTS_SECRET": EVENTS_SECRET,
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": "test-token",
        "TWILIO_FROM_NUMBER": "+12025550100", "TWILIO_BASE_URL": twilio.base_url,
        "EMAIL_PROVIDER": "ses", "EMAIL_FROM": email_from, "SES_REGION": ses.region,
        "SES_ENDPOINT_URL": ses.endpoint_url, "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID,
        "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    }  # fmt: skip
    processes = []
    for name in FUNCTIONS:
        log = stack.enter_context((logs / f"{name}.log").open("wb"))
        process = FunctionProcess(name, env, log)
        endpoints[name] = process.url
        processes.append(process)
        process.start()
        stack.callback(process.stop)
    with ThreadPoolExecutor(len(processes)) as pool:
        list(pool.map(lambda p: p.wait_ready(), processes))
    router.start()
    stack.callback(router.stop)
    return System(router, twilio, ses, email_from, database_url, logs)
