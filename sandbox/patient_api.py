"""A hospital appointments API stand-in: FHIR R4 search and a plain JSON API, with injected faults.

    GET {base_url}/fhir/Appointment?date=ge…&date=lt…&_lastUpdated=ge…&_include=Appointment:patient
        &_include=Appointment:location&_count=…&_sort=_lastUpdated     → a searchset Bundle
    GET {base_url}/json/appointments?from=…&to=…&updated_since=…&limit=…  → docs/json-api.schema.json

Both sort by ``(updated_at, id)`` and page by an opaque token in the next link (``_page`` and
``after``); see ``sandbox.patient_wire`` for why that is stable while records change.

Faults, on each request with probability ``failure_rate`` (seeded), in rotation: HTTP 500;
HTTP 503 with ``Retry-After``; a stall of ``stall_s`` before a normal answer (so the client's
timeout fires); a connection closed with no response. ``fail_everything`` answers every request
503; ``bad_page_next = n`` makes the next n pages truncated, invalid JSON. It never logs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import signal
import threading
from collections import Counter
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qsl, urlsplit

from sandbox.patient_population import Population
from sandbox.patient_wire import QueryInvalid, fhir_bundle, fhir_query, json_page, json_query, page_url

__all__ = ["FAULTS", "PatientApiStandIn", "Population"]

FAULTS = ("500", "503", "stall", "drop")


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # an ETL with concurrent page fetches; the default backlog of 5 resets them


class PatientApiStandIn:
    """A local hospital API over ``population``; a context manager. Counters are totals since start."""

    def __init__(
        self, population: Population, *, failure_rate: float = 0.1, seed: int = 0, retry_after_s: int = 1,
        stall_s: float = 2.0, page_size_max: int = 1000, host: str = "127.0.0.1", port: int = 0,
    ) -> None:  # fmt: skip
        self.population, self.failure_rate = population, failure_rate
        self.retry_after_s, self.stall_s, self.page_size_max = retry_after_s, stall_s, page_size_max
        self.fail_everything = False  # toggled by tests: an outage, every request 503
        self.outage_after_pages: int | None = None  # an outage begins once this many pages were served
        self.bad_page_next = 0  # the next n pages are invalid JSON
        self.requests = self.failures_injected = self.pages_served = 0
        self.faults: Counter[str] = Counter()  # injected faults by kind ("500", "503", "stall", "drop", "bad-page")
        self._address, self._rng, self._lock = (host, port), random.Random(seed), threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("PatientApiStandIn is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def fhir_url(self) -> str:
        return f"{self.base_url}/fhir"

    @property
    def json_url(self) -> str:
        return f"{self.base_url}/json"

    def start(self) -> None:
        self._server = _Server(self._address, partial(_Handler, self))
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="patient-api", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # ends stalls at once
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def fault(self) -> str | None:
        """Counts the request; the fault to inject into it, if any."""
        with self._lock:
            self.requests += 1
            if self.outage_after_pages is not None and self.pages_served >= self.outage_after_pages:
                self.fail_everything, self.outage_after_pages = True, None
            if self.fail_everything:
                kind = "503"
            elif self._rng.random() < self.failure_rate:
                kind = FAULTS[self.failures_injected % len(FAULTS)]
            elif self.bad_page_next > 0:
                self.bad_page_next -= 1
                kind = "bad-page"
            else:
                return None
            self.failures_injected += 1
            self.faults[kind] += 1
            return kind

    def stall(self) -> None:
        self._stopping.wait(self.stall_s)

    def page(self, path: str, query: str, *, origin: str, count: bool = True) -> tuple[int, dict[str, Any]]:
        """Status and body for one GET; links start with ``origin`` ("http://host:port", as the client called us)."""
        params = parse_qsl(query, keep_blank_values=True)
        fhir = path == "/fhir/Appointment"
        if not fhir and path != "/json/appointments":
            return 404, _problem(fhir=path.startswith("/fhir"), reason=f"no resource at {path}")
        try:
            search = fhir_query(params, self.page_size_max) if fhir else json_query(params, self.page_size_max)
        except QueryInvalid as exc:
            return 400, _problem(fhir=fhir, reason=exc.reason)
        records, more = self.population.search(
            start_from=search.start_from, start_to=search.start_to, updated_from=search.updated_from,
            after=search.after, limit=search.limit,
        )  # fmt: skip
        base = origin + path
        next_url = page_url(base, params, "_page" if fhir else "after", records[-1]) if more else None
        with self._lock:
            self.pages_served += count
        if fhir:
            self_url = f"{base}?{query}" if query else base
            return 200, fhir_bundle(self.population, records, search, self_url, next_url, f"{origin}/fhir")
        return 200, json_page(self.population, records, next_url)


def _problem(*, fhir: bool, reason: str) -> dict[str, Any]:
    if fhir:
        issue = {"severity": "error", "code": "invalid", "diagnostics": reason}
        return {"resourceType": "OperationOutcome", "issue": [issue]}
    return {"error": reason}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def __init__(self, stand_in: PatientApiStandIn, *args: Any) -> None:
        self.stand_in = stand_in  # set first: the base __init__ serves the request
        super().__init__(*args)

    def do_GET(self) -> None:
        fault = self.stand_in.fault()
        if fault == "drop":
            self.close_connection = True  # nothing written: the client sees the connection close
            return
        if fault in ("500", "503"):
            self._reply(int(fault), _problem(fhir=self.path.startswith("/fhir"), reason="injected fault"))
            return
        if fault == "stall":
            self.stand_in.stall()
        url, host = urlsplit(self.path), self.headers.get("Host")
        origin = f"http://{host}" if host else self.stand_in.base_url
        status, payload = self.stand_in.page(url.path, url.query, origin=origin, count=fault != "bad-page")
        body = json.dumps(payload, ensure_ascii=False).encode()
        self._reply(status, body[: len(body) // 2] if fault == "bad-page" else body)

    def _reply(self, status: int, payload: dict[str, Any] | bytes) -> None:
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        fhir = self.path.startswith("/fhir")
        with contextlib.suppress(OSError):  # a client that timed out during a stall has gone
            self.send_response(status)
            self.send_header("Content-Type", "application/fhir+json" if fhir else "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 503:
                self.send_header("Retry-After", str(self.stand_in.retry_after_s))
            self.end_headers()
            self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a log is no place for the patient data these pages carry."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m sandbox.patient_api", description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="appointments, each with its own patient")
    parser.add_argument("--horizon-days", type=int, default=14)
    parser.add_argument("--failure-rate", type=float, default=0.1)
    parser.add_argument("--stall", type=float, default=2.0, help="seconds a stalled request waits")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    population = Population.generate(args.count, seed=args.seed, start=start, horizon_days=args.horizon_days)
    stand_in = PatientApiStandIn(
        population, failure_rate=args.failure_rate, seed=args.seed, stall_s=args.stall, host=args.host, port=args.port
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())  # `kill` stops it as cleanly as Ctrl-C
    with stand_in, contextlib.suppress(KeyboardInterrupt):
        print(f"Patient API stand-in: {len(population)} appointments from {start.isoformat()}", flush=True)
        print(f"FHIR R4 base  {stand_in.fhir_url}", flush=True)
        print(f"JSON API base {stand_in.json_url}; Ctrl-C to stop", flush=True)
        stopped.wait()


if __name__ == "__main__":
    main()
