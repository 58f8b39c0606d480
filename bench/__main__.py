"""``python -m bench`` (``task bench``): every figure of issue 8 in one run, printed as a table and
written to ``bench/results.json``. Real PostgreSQL (``TEST_DATABASE_ADMIN_URL``) and RabbitMQ
(``RABBITMQ_URL``); every database, queue and exchange it creates is removed at the end.

    uv run task bench                                  # the defaults below; about ten minutes
    uv run task bench -- --appointments 2000 --only end-to-end --only ceiling
    uv run --with py-spy task bench -- --profile       # also py-spy profiles of the end-to-end run
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path
from typing import Any

from bench import change_latency
from bench.ceiling import measure_ceiling
from bench.end_to_end import measure_end_to_end
from bench.etl_throughput import measure_etl
from bench.goals import judged
from bench.planning import measure_planning
from bench.profiling import Profiler
from bench.report import render
from sandbox.processes import ROOT

STEPS = ("end-to-end", "ceiling", "planning", "etl", "latency")
RABBITMQ_URL = os.environ.get("RABBITMQ_URL") or "amqp://guest:guest@127.0.0.1:5672/%2F"  # noqa: TID251 - the bench's composition root


def main(argv: list[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto's server logs every SES request
    logs = args.workdir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    profiler = Profiler(args.workdir / "profile") if args.profile else None
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count(), "load_average": {"start": _load()}}}
    steps = args.only or STEPS
    if "end-to-end" in steps:
        results["end_to_end"] = measure_end_to_end(args.appointments, args.rabbitmq_url, args.workdir, profiler)
    if "ceiling" in steps:
        results["ceiling"] = _ceiling(args, results.get("end_to_end"), logs)
    if "planning" in steps:
        results["planning"] = measure_planning(args.planning_appointments)
    if "etl" in steps:
        results["etl"] = measure_etl(args.etl_appointments, args.etl_failure_rate, logs)
    if "latency" in steps:
        results["change_notice_latency"] = change_latency.measure(args.latency_events, logs)
    results["machine"]["load_average"]["end"] = _load()
    results["goals"] = judged(results)
    _write(args.results, results)
    print(render(results), flush=True)  # noqa: T201 - the command's output
    if profiler:
        print(f"profiles: {profiler.folder}/<process>.txt, top costs in {profiler.folder}/summary.txt")  # noqa: T201


def _ceiling(args: argparse.Namespace, e2e: dict[str, Any] | None, logs: Path) -> dict[str, Any]:
    """The same number of messages as the end-to-end run sent, and our throughput as a share of each."""
    messages = e2e["notifications"] if e2e else args.appointments * 4 // 3
    ceiling = measure_ceiling(args.rabbitmq_url, messages, logs)
    if e2e:
        ceiling["share_of_pika"] = round(e2e["notifications_per_s"] / ceiling["pika_per_s"], 3)
        ceiling["share_of_http"] = round(e2e["notifications_per_s"] / ceiling["http_per_s"], 3)
    return ceiling


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _write(path: Path, results: dict[str, Any]) -> None:
    """Merged into what is there, so ``task bench:latency`` and ``--only`` runs keep the other figures."""
    previous = json.loads(path.read_text()) if path.exists() else {}
    path.write_text(json.dumps(previous | results, indent=2, default=str) + "\n")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="task bench --", description=__doc__.splitlines()[0])
    parser.add_argument("--appointments", type=int, default=20_000, help="due at the end-to-end tick")
    parser.add_argument("--planning-appointments", type=int, default=100_000, help="due at the planning tick")
    parser.add_argument("--etl-appointments", type=int, default=100_000, help="at the sandbox hospital API")
    parser.add_argument("--etl-failure-rate", type=float, default=0.1, help="share of API calls that fail")
    parser.add_argument("--latency-events", type=int, default=1000, help="announced changes timed one by one")
    parser.add_argument("--only", action="append", choices=STEPS, help="run only these steps (repeatable)")
    parser.add_argument("--rabbitmq-url", default=RABBITMQ_URL)
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "results.json")
    parser.add_argument("--workdir", type=Path, default=ROOT / ".data" / "bench", help="logs and profiles")
    parser.add_argument("--profile", action="store_true", help="py-spy profiles of the end-to-end run")
    return parser


if __name__ == "__main__":
    main()
