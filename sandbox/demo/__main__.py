"""``python -m sandbox.demo`` (``task demo``): a scripted day; ``python -m sandbox.demo dev`` (``task dev``).

The demo exits 0 only if at least 99% of what could be delivered was delivered and no message
went out twice. ``DATABASE_URL`` (an empty database) replaces the embedded PostgreSQL under
``.data/``; ``RABBITMQ_URL`` replaces the in-process broker with RabbitMQ.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import sys
import warnings
from contextlib import ExitStack
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

from sandbox.demo.database import open_database
from sandbox.demo.dev import serve_forever
from sandbox.demo.progress import Progress
from sandbox.demo.render import render
from sandbox.demo.report import gather
from sandbox.demo.script import DayLog, population_for, run_day
from sandbox.demo.system import FUNCTIONS, DemoOptions, DemoSystem, start_system
from sandbox.processes import ROOT

__all__ = ["main"]


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every SES request
    environ = os.environ  # noqa: TID251 - this CLI is its own composition root
    options = DemoOptions(
        data_dir=args.data_dir, appointments=args.appointments, changes=args.changes, email=args.email,
        database_url=environ.get("DATABASE_URL") or None, rabbitmq_url=environ.get("RABBITMQ_URL") or None,
    )  # fmt: skip
    lock = _lock(args.data_dir)  # held until exit: two runs on one data directory would share its database
    if lock is None:
        print(f"another demo or dev run is using {args.data_dir}; wait for it or pass --data-dir", file=sys.stderr)
        return 2
    if args.command == "dev":
        # On the wall clock the ticks' times are the rows' clock too: the monitor takes the tick's, as deployed.
        return serve_forever(replace(options, backoff_scale=1.0, receipt_delay_s=1.0, monitor_clock="tick"))
    return demo(options)


def demo(options: DemoOptions) -> int:
    day = (datetime.now(UTC) + timedelta(days=1)).date()
    with ExitStack() as stack:
        print(f"Starting: database, stand-ins, broker ({'RabbitMQ' if options.rabbitmq_url else 'in-process'}), "
              f"{len(FUNCTIONS)} functions ...", flush=True)  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns that XDG_RUNTIME_DIR is unset
            database = open_database(options.data_dir, options.database_url)
        stack.callback(database.close)
        system = start_system(stack, options, database, population_for(options.appointments, day, options.seed))
        log = DayLog(day)
        with Progress(system, lambda: _stage(log)) as progress:
            run_day(system, log, options.changes)
            report = gather(system, log)
            peak, wall = progress.peak_memory, progress.elapsed()
        outbox = _write_outbox(system)
    print(render(report, log, outbox, system.logs, wall, peak), flush=True)
    return 0 if report.passed else 1


def _stage(log: DayLog) -> str:
    return "waiting for receipts" if log.hours_done == 24 else f"simulated {log.hours_done:02d}:00 UTC"


def _write_outbox(system: DemoSystem) -> Path:
    """Every message the stand-ins accepted, as JSON lines: synthetic patients, safe to read."""
    outbox = system.options.data_dir / "outbox"
    outbox.mkdir(parents=True, exist_ok=True)
    for name, messages in (("sms", system.sent_sms()), ("email", system.sent_email())):
        lines = (json.dumps({"to": to, "text": text}, ensure_ascii=False) for to, text in messages)
        (outbox / f"{name}.jsonl").write_text("".join(f"{line}\n" for line in lines))
    return outbox


def _lock(data_dir: Path) -> IO[bytes] | None:
    """An exclusive lock on ``data_dir`` for this process's lifetime; None if another run holds it."""
    data_dir.mkdir(parents=True, exist_ok=True)
    handle = (data_dir / ".lock").open("wb")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    return handle


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sandbox.demo", description=__doc__.splitlines()[0])
    parser.add_argument("command", nargs="?", choices=("demo", "dev"), default="demo")
    parser.add_argument("--appointments", type=int, default=3000, help="appointments at the sandbox hospital")
    parser.add_argument("--changes", type=int, default=60, help="changes the appointment system announces at noon")
    parser.add_argument("--email", choices=("ses", "smtp"), default="ses", help="the email provider stand-in")
    parser.add_argument("--data-dir", type=Path, default=ROOT / ".data" / "demo", help="database, logs, outbox")
    return parser


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
