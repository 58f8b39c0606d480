"""Live counts while the demo runs, and the peak memory of every process it started."""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterable

import psutil
import psycopg

from sandbox.demo.system import DemoSystem

__all__ = ["Progress"]


class Progress:
    """Prints a status line every ``period_s`` (rewritten in place on a terminal); samples memory.

    Memory is the sum of each process's proportional set size (PSS): PostgreSQL's shared buffers,
    mapped by every backend, count once rather than once per process as RSS would count them.
    """

    def __init__(self, system: DemoSystem, stage: Callable[[], str], period_s: float = 0.5) -> None:
        self._system, self._stage, self._period_s = system, stage, period_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-progress", daemon=True)
        self._tty = sys.stdout.isatty()
        self._started = time.monotonic()
        self.peak_memory = 0

    def __enter__(self) -> Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        if self._tty:
            print(flush=True)

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def _run(self) -> None:
        try:
            self._show()
        except psycopg.Error:
            if not self._stop.is_set():
                raise
            # stopping: the database may already be shut down under a last, slow line

    def _show(self) -> None:
        last_line = 0.0
        with psycopg.connect(self._system.database.url, autocommit=True) as conn:
            while not self._stop.wait(self._period_s):
                self.peak_memory = max(self.peak_memory, _memory(self._pids()))
                if self._tty or time.monotonic() - last_line >= 5:  # a log gets a line every 5 s, not 10 a second
                    print(("\r" if self._tty else "") + self._line(conn), end="" if self._tty else "\n", flush=True)
                    last_line = time.monotonic()

    def _line(self, conn: psycopg.Connection[tuple[object, ...]]) -> str:
        rows = conn.execute("SELECT status, count(*) FROM notifications GROUP BY 1").fetchall()
        counts = {str(status): int(str(n)) for status, n in rows}
        [(alerts,)] = conn.execute("SELECT count(*) FROM alerts").fetchall()
        system, failed = self._system, counts.get("failed", 0) + counts.get("undelivered", 0)
        return (
            f"[{self.elapsed():5.1f}s] {self._stage():<24} sms {len(system.twilio.messages):>5} · "
            f"email {self._emails():>5} · delivered {counts.get('delivered', 0):>5} · "
            f"queued {counts.get('queued', 0):>4} · failed {failed:>3} · alerts {alerts:>4} · "
            f"{self.peak_memory / 2**20:4.0f} MB"
        )

    def _emails(self) -> int:
        system = self._system
        return system.ses.sent_count() if system.ses is not None else len(system.sent_email())

    def _pids(self) -> set[int]:
        pids = {psutil.Process().pid} | {p.pid for p in psutil.Process().children(recursive=True)}
        for pid in self._system.database.server_pids:
            with contextlib.suppress(psutil.Error):  # the embedded server is stopping
                pids |= {pid} | {p.pid for p in psutil.Process(pid).children(recursive=True)}
        return pids


def _memory(pids: Iterable[int]) -> int:
    total = 0
    for pid in set(pids):
        with contextlib.suppress(psutil.Error):  # exited between listing and reading
            total += psutil.Process(pid).memory_full_info().pss
    return total
