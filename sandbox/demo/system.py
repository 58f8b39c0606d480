"""Everything the demo runs, started in order and stopped in reverse through one ExitStack.

The sandbox hospital API (with its faults), the Twilio stand-in (transient refusals, a few
numbers it rejects for good, a few the carrier cannot reach; signed status callbacks), SES (moto)
with its events published through a signed SNS topic, or SMTP, for email; the local broker
(in-process, or RabbitMQ when a URL is given) routing by the Triggers in ``knative/``, the
PingSources in ``knative/``, and the seven functions, each its own func-python process: the five
of the pipeline, the monitor on its ticks, and webhooks, where both providers send receipts.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from sandbox.brokers import Broker, open_broker
from sandbox.demo.database import DemoDatabase
from sandbox.demo.faults import Faults, choose_faults
from sandbox.demo.receipts import EmailReceipts, start_email_receipts
from sandbox.patient_api import PatientApiStandIn
from sandbox.patient_population import Population
from sandbox.pingsources import PingScheduler, load_pingsources
from sandbox.processes import ROOT, FunctionProcess, free_port
from sandbox.ses import ACCESS_KEY_ID, SECRET_ACCESS_KEY, SesStandIn
from sandbox.smtp import SmtpStandIn
from sandbox.triggers import load_triggers
from sandbox.twilio import TwilioStandIn

__all__ = ["FUNCTIONS", "DemoOptions", "DemoSystem", "start_system"]

FUNCTIONS = ("etl", "scheduler", "dispatcher", "sms-sender", "email-sender", "monitor", "webhooks")
ACCOUNT_SID = "AC" + "d" * 32
AUTH_TOKEN = "demo-auth-token"  # noqa: S105 - the local Twilio stand-in's, not a real credential
EVENTS_SECRET = "demo-appointment-events-secret-0123456789"  # noqa: S105 - signs the demo's own events
EMAIL_FROM = "appointments@clinic.example"


@dataclass(frozen=True)
class DemoOptions:
    data_dir: Path
    appointments: int = 3000
    changes: int = 60  # moves, venue changes and cancellations announced during the day
    api_failure_rate: float = 0.1
    sms_failure_rate: float = 0.05  # transient 429/503, retried by the broker
    rejected_share: float = 0.01  # numbers Twilio refuses for good (21211): failed, alerted
    unreachable_share: float = 0.005  # numbers Twilio accepts and cannot deliver to: undelivered receipts
    bounce_share: float = 0.005  # addresses whose mail bounces for good (SES only): undelivered, suppressed
    receipt_delay_s: float = 0.3  # a carrier's status report lags the API's answer
    # "database": the simulated day's ticks run ahead of the rows' wall-clock stamps (task dev: "tick")
    monitor_clock: Literal["tick", "database"] = "database"
    email: Literal["ses", "smtp"] = "ses"
    backoff_scale: float = 0.2  # the Triggers' retry backoff, shortened so a day fits in a minute
    database_url: str | None = None
    rabbitmq_url: str | None = None
    seed: int = 1


@dataclass
class DemoSystem:
    options: DemoOptions
    database: DemoDatabase
    population: Population
    api: PatientApiStandIn
    twilio: TwilioStandIn
    broker: Broker
    functions: dict[str, FunctionProcess]
    logs: Path
    webhooks_url: str = ""  # the public origin providers post receipts to
    ses: SesStandIn | None = None
    smtp: SmtpStandIn | None = None
    email_receipts: EmailReceipts | None = None
    faults: Faults = field(default_factory=Faults)

    def wait_receipts(self, timeout: float) -> bool:
        """True once every receipt the providers owe (Twilio callbacks, SES events) has been answered."""
        deadline = time.monotonic() + timeout
        if not self.twilio.wait_callbacks(timeout):
            return False
        publisher = self.email_receipts.publisher if self.email_receipts else None
        return publisher is None or publisher.wait_published(max(0.0, deadline - time.monotonic()))

    def sent_sms(self) -> list[tuple[str, str]]:
        return [(m.to, m.body) for m in self.twilio.messages]

    def sent_email(self) -> list[tuple[str, str]]:
        if self.ses is not None:
            return [(to, f"{m.subject}\n\n{m.body}") for m in self.ses.sent_messages() for to in m.to]
        assert self.smtp is not None
        return [(to, str(m.message)) for m in self.smtp.messages for to in m.rcpt_tos]

    def pingsources(self, since: datetime) -> PingScheduler:
        return PingScheduler(load_pingsources(ROOT / "knative"), self.broker.ingress_url, since=since)


def start_system(stack: ExitStack, options: DemoOptions, database: DemoDatabase, population: Population) -> DemoSystem:
    logs = options.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    api = stack.enter_context(PatientApiStandIn(
        population, failure_rate=options.api_failure_rate, seed=options.seed, stall_s=1.0, retry_after_s=1
    ))  # fmt: skip
    faults = choose_faults(population, options.seed, rejected=options.rejected_share,
                           unreachable=options.unreachable_share, bounce=options.bounce_share)  # fmt: skip
    twilio = stack.enter_context(TwilioStandIn(
        ACCOUNT_SID, AUTH_TOKEN, failure_rate=options.sms_failure_rate, max_failures_per_message=3,
        seed=options.seed, invalid_numbers=faults.rejected_numbers, undeliverable_numbers=faults.unreachable_numbers,
        callback_delay_s=options.receipt_delay_s, callback_workers=4,
    ))  # fmt: skip
    endpoints: dict[str, str] = {}
    ports = {name: free_port() for name in FUNCTIONS}
    webhooks_url = f"http://127.0.0.1:{ports['webhooks']}"  # http is allowed on this machine only
    broker = open_broker(load_triggers(ROOT / "knative"), endpoints,
                         rabbitmq_url=options.rabbitmq_url, backoff_scale=options.backoff_scale)  # fmt: skip
    env = {
        "DATABASE_URL": database.url, "BROKER_URL": broker.ingress_url, "LOG_LEVEL": "INFO",
        "APPOINTMENT_EVENTS_SECRET": EVENTS_SECRET,
        "ETL_SOURCE": "fhir", "ETL_SOURCE_URL": api.fhir_url, "ETL_DEFAULT_ZONE": "America/Chicago",
        "ETL_TIMEOUT_S": "0.5", "ETL_MAX_BACKOFF_S": "0.2",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": "+12025550100", "TWILIO_BASE_URL": twilio.base_url, "EMAIL_FROM": EMAIL_FROM,
        "WEBHOOKS_PUBLIC_URL": webhooks_url, "MONITOR_CLOCK": options.monitor_clock,
    }  # fmt: skip
    system = DemoSystem(options, database, population, api, twilio, broker, {}, logs, webhooks_url, faults=faults)
    env |= _email(stack, system)
    only = {"webhooks": system.email_receipts.webhooks_env if system.email_receipts else {}}
    for name in FUNCTIONS:
        log = stack.enter_context((logs / f"{name}.log").open("wb"))
        process = FunctionProcess(name, env | only.get(name, {}), log, port=ports[name])
        system.functions[name] = process
        endpoints[name] = process.url
        process.start()
        stack.callback(process.stop)
    with ThreadPoolExecutor(len(FUNCTIONS)) as pool:
        list(pool.map(lambda p: p.wait_ready(120), system.functions.values()))  # compiling on a busy machine
    broker.start()
    stack.callback(broker.stop)
    return system


def _email(stack: ExitStack, system: DemoSystem) -> dict[str, str]:
    if system.options.email == "smtp":
        system.smtp = stack.enter_context(SmtpStandIn())
        return {"EMAIL_PROVIDER": "smtp", "SMTP_HOST": system.smtp.host, "SMTP_PORT": str(system.smtp.port),
                "SMTP_STARTTLS": "false"}  # fmt: skip
    system.ses = stack.enter_context(SesStandIn())
    system.ses.verify_sender(EMAIL_FROM)
    folder = system.options.data_dir / "sns-tls"
    bouncing = system.faults.bouncing_addresses
    system.email_receipts = start_email_receipts(stack, system.ses, system.webhooks_url, folder, bouncing)
    return {
        "EMAIL_PROVIDER": "ses", "SES_REGION": system.ses.region, "SES_ENDPOINT_URL": system.ses.endpoint_url,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    }  # fmt: skip
