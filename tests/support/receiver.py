"""A local HTTP endpoint that records what is POSTed to it (a stand-in for a broker ingress)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ["Receiver"]


class _Server(ThreadingHTTPServer):
    request_queue_size = 256  # the publisher opens up to 32 connections at once


@dataclass
class Receiver:
    status: int = 202
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    script: list[int] = field(default_factory=list)  # statuses for the first requests, then `status`

    def next_status(self) -> int:
        with self._lock:
            return self.script.pop(0) if self.script else self.status

    def __enter__(self) -> Receiver:
        receiver = self
        self._lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(receiver.next_status())
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def event_ids(self) -> list[str]:
        return [headers["ce-id"] for headers, _ in self.requests]
