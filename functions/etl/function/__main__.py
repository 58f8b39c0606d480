"""One ETL pass from the command line, for operators and tests.

    DATABASE_URL=… python -m function --source fhir --base-url https://ehr.example.org/fhir

Prints a one-line summary; exits 0 when the pass succeeded, 1 when it failed (its checkpoint is
kept: the next pass resumes there), 2 on bad arguments or settings. Change events go to
BROKER_URL when it is set; otherwise they wait in the outbox for the next drain.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import httpx
from pydantic import AnyHttpUrl

from patient_notify.db import Database, migrate
from patient_notify.errors import ConfigError
from patient_notify.logging import configure_logging
from patient_notify.outbox import Publisher

from .func import EtlSettings, build_pass, source_http
from .resilience import CircuitBreaker


class EtlCommandSettings(EtlSettings):
    broker_url: AnyHttpUrl | None = None  # type: ignore[assignment]  # optional for a one-off pass


def _arguments(argv: list[str]) -> dict[str, str]:
    parser = argparse.ArgumentParser(prog="task etl --", description="Run one ETL pass.")
    parser.add_argument("--source", choices=["fhir", "json"], required=True)
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--default-zone", help="the clinic's IANA zone (else ETL_DEFAULT_ZONE)")
    args = parser.parse_args(argv)
    given = {"ETL_SOURCE": args.source, "ETL_SOURCE_URL": args.base_url, "ETL_DEFAULT_ZONE": args.default_zone}
    return {k: v for k, v in given.items() if v}


async def _run(settings: EtlCommandSettings) -> int:
    db = Database(str(settings.database_url), max_size=2)
    async with httpx.AsyncClient(timeout=10.0) as broker_http, source_http(settings) as http:
        publisher = Publisher(db, str(settings.broker_url), broker_http) if settings.broker_url else None
        report = await build_pass(settings, db, publisher, CircuitBreaker(), http).run()
    await db.close()
    print(report.summary())  # noqa: T201 - the command's output
    return 0 if report.status == "succeeded" else 1


def main(argv: list[str]) -> int:
    configure_logging("WARNING")
    cfg = {**os.environ, **_arguments(argv)}  # noqa: TID251 - a command's composition root
    try:
        settings = EtlCommandSettings.from_cfg(cfg)
    except ConfigError as exc:
        print(f"invalid configuration: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    migrate(str(settings.database_url))
    return asyncio.run(_run(settings))


sys.exit(main(sys.argv[1:]))
