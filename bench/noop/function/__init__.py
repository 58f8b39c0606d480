"""A func-python function that does nothing: the HTTP ceiling for the bench (``bench/ceiling.py``).

It has the shape of ours (``new()``, ``start``, ``stop``, ``alive``, ``ready``, ``handle`` reading
the whole body) and answers 200 with a small JSON body, as our functions do, without decoding the
event, touching a database or logging.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

__all__ = ["new"]

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
_BODY = b'{"outcome": "handled"}'


class NoOp:
    def start(self, cfg: Mapping[str, str]) -> None:
        pass

    def stop(self) -> None:
        pass

    def alive(self) -> tuple[bool, str]:
        return True, "OK"

    def ready(self) -> tuple[bool, str]:
        return True, "OK"

    async def handle(self, scope: Mapping[str, Any], receive: Receive, send: Send) -> None:
        while (await receive()).get("more_body"):
            pass
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(_BODY)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": _BODY})


def new() -> NoOp:
    return NoOp()
