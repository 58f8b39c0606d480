"""Everything the demo runs, started in order and stopped in reverse through one ExitStack.

The sandbox hospital API (with its faults), the Twilio stand-in (transient refusals and a few
numbers it rejects for good), SES (moto) or SMTP for email, the local broker (in-process, or
RabbitMQ when a URL is given) routing by the Triggers in ``knative/``, the PingSources in
``knative/``, and the five functions, each its own func-python process.
"""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

import phonenumbers

from sandbox.brokers import Broker, open_broker
from sandbox.demo.database import DemoDatabase
from sandbox.patient_api import PatientApiStandIn
from sandbox.patient_population import Population
from sandbox.pingsources import PingScheduler, load_pingsources
from sandbox.processes import ROOT, FunctionProcess
from sandbox.ses import ACCESS_KEY_ID, SECRET_ACCESS_KEY, SesStandIn
from sandbox.smtp import SmtpStandIn
from sandbox.triggers import load_triggers
from sandbox.twilio import TwilioStandIn

__all__ = ["FUNCTIONS", "DemoOptions", "DemoSystem", "start_system"]

FUNCTIONS = ("etl", "scheduler", "dispatcher", "sms-sender", "email-sender")
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
    ses: SesStandIn | None = None
    smtp: SmtpStandIn | None = None
    rejected_numbers: frozenset[str] = field(default_factory=frozenset)

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
    rejected = _rejected_numbers(population, options.rejected_share, options.seed)
    twilio = stack.enter_context(TwilioStandIn(
        ACCOUNT_SID, AUTH_TOKEN, failure_rate=options.sms_failure_rate, max_failures_per_message=3,
        seed=options.seed, invalid_numbers=rejected,
    ))  # fmt: skip
    endpoints: dict[str, str] = {}
    broker = open_broker(load_triggers(ROOT / "knative"), endpoints,
                         rabbitmq_url=options.rabbitmq_url, backoff_scale=options.backoff_scale)  # fmt: skip
    env = {
        "DATABASE_URL": database.url, "BROKER_URL": broker.ingress_url, "LOG_LEVEL": "INFO",
        "APPOINTMENT_EVENTS_SECRET": EVENTS_SECRET,
        "ETL_SOURCE": "fhir", "ETL_SOURCE_URL": api.fhir_url, "ETL_DEFAULT_ZONE": "America/Chicago",
        "ETL_TIMEOUT_S": "0.5", "ETL_MAX_BACKOFF_S": "0.2",
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID, "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_FROM_NUMBER": "+12025550100", "TWILIO_BASE_URL": twilio.base_url, "EMAIL_FROM": EMAIL_FROM,
    }  # fmt: skip
    system = DemoSystem(options, database, population, api, twilio, broker, {}, logs, rejected_numbers=rejected)
    env |= _email(stack, system)
    for name in FUNCTIONS:
        process = FunctionProcess(name, env, stack.enter_context((logs / f"{name}.log").open("wb")))
        system.functions[name] = process
        endpoints[name] = process.url
        process.start()
        stack.callback(process.stop)
    with ThreadPoolExecutor(len(FUNCTIONS)) as pool:
        list(pool.map(lambda p: p.wait_ready(60), system.functions.values()))
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
    return {
        "EMAIL_PROVIDER": "ses", "SES_REGION": system.ses.region, "SES_ENDPOINT_URL": system.ses.endpoint_url,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
    }  # fmt: skip


def _rejected_numbers(population: Population, share: float, seed: int) -> frozenset[str]:
    """A share of the mobile numbers of the patients seen first (their reminders fall due in the day),
    in the E.164 form the ETL stores and Twilio sees."""
    first = sorted(population.ids(), key=lambda i: population.appointment(i).start)[: len(population) // 3]
    phones = sorted(n for i in first for n, _ in population.patients[population.appointment(i).patient_id].phones)
    chosen = random.Random(seed).sample(phones, max(1, round(len(phones) * share)) if phones else 0)
    return frozenset(phonenumbers.format_number(phonenumbers.parse(n, "US"), phonenumbers.PhoneNumberFormat.E164)
                     for n in chosen)  # fmt: skip
