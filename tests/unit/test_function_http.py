"""The function's HTTP edge, driven through ASGI without a server."""

from __future__ import annotations

from typing import Any

from patient_notify.function import EventFunction
from patient_notify.settings import Settings


async def _call(function: EventFunction[Settings], messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop(0)

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [(b"content-type", b"application/json")]}
    await function.handle(scope, receive, send)
    return sent


class TestRequestEdge:
    async def test_a_client_that_hangs_up_mid_body_gets_nothing_recorded(self) -> None:
        """A request abandoned by its sender (its timeout) is not mistaken for a malformed event."""
        function = EventFunction("t", Settings, lambda settings, runtime: {})
        sent = await _call(function, [{"type": "http.request", "body": b'{"par', "more_body": True},
                                      {"type": "http.disconnect"}])  # fmt: skip
        assert sent == []

    async def test_a_get_is_refused_with_405(self) -> None:
        """Only POSTed events are handled; anything else is told so."""
        function = EventFunction("t", Settings, lambda settings, runtime: {})
        sent: list[dict[str, Any]] = []

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b""}

        await function.handle({"type": "http", "method": "GET", "headers": []}, receive, send)
        assert sent[0]["status"] == 405
