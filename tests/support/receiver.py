"""A local HTTP endpoint that records what is POSTed to it (a stand-in for a subscriber or broker ingress).

It answers ``script`` statuses first, then ``status``; a 2xx carries ``reply`` (a binary CloudEvent's
headers and body) when set. ``hold()`` makes requests wait for ``release()`` before answering, after
they are recorded. ``wait_until`` waits on a condition over what arrived, without polling.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Receiver"]


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the publisher opens up to 32 connections at once


@dataclass
class Receiver:
    status: int = 202
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # time.monotonic() at each request's arrival
    script: list[int] = field(default_factory=list)  # statuses for the first requests, then `status`
    reply: tuple[dict[str, str], bytes] | None = None  # headers and body of a 2xx response

    def __enter__(self) -> Receiver:
        self._arrived = threading.Condition()
        self._open = threading.Event()
        self._open.set()
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        serve = partial(self._server.serve_forever, poll_interval=0.02)  # shutdown() waits up to one poll
        threading.Thread(target=serve, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._open.set()
        self._server.shutdown()
        self._server.server_close()

    def record(self, headers: dict[str, str], body: bytes) -> int:
        """Keep the request; the status to answer with."""
        with self._arrived:
            self.requests.append((headers, body))
            self.times.append(time.monotonic())
            self._arrived.notify_all()
            return self.script.pop(0) if self.script else self.status

    def wait_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        with self._arrived:
            return self._arrived.wait_for(condition, timeout)

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def wait_open(self) -> None:
        self._open.wait(60)

    def event_ids(self) -> list[str]:
        return [headers["ce-id"] for headers, _ in list(self.requests)]


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            status = receiver.record({k.lower(): v for k, v in self.headers.items()}, body)
            receiver.wait_open()
            headers, content = receiver.reply if receiver.reply and status < 300 else ({}, b"")
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, *args: object) -> None:
            pass

    return Handler
