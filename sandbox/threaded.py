"""Serving a local HTTP server from a daemon thread, for the stand-ins and the tests' endpoints."""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer
from typing import Self

__all__ = ["ServedInThread"]


class ServedInThread:
    """A mixin: ``_serve(server)`` in ``__init__``; ``with`` serves it, leaving stops and closes it."""

    _server: ThreadingHTTPServer
    _thread: threading.Thread

    def _serve(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
