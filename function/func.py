"""patient-notify: every step in one func-python function (the root func.yaml; small sites).

Each request goes to the step the split deployment's Trigger would deliver it to
(``routing.step_for``: by event type, ticks by their PingSource, dead letters to the
dispatcher), and that step handles it exactly as its own Service would: same code, same
settings, same error → status mapping. ``start``/``stop`` reach every step; the function is
alive and ready only when every step is, so a bad setting for any step shows as a crash loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from patient_notify.codec import decode_http
from patient_notify.errors import EventRejected
from patient_notify.function import ASGIReceive, ASGISend, read_body

from .routing import FALLBACK_STEP, STEPS, step_for
from .steps import Step, load_step

__all__ = ["AllInOne", "new"]


class AllInOne:
    def __init__(self, steps: Mapping[str, Step]) -> None:
        self.name = "patient-notify"
        self._steps = dict(steps)

    def start(self, cfg: Mapping[str, str]) -> None:
        for step in self._steps.values():
            step.start(cfg)

    def alive(self) -> tuple[bool, str]:
        return _all_of({name: step.alive() for name, step in self._steps.items()})

    def ready(self) -> tuple[bool, str]:
        return _all_of({name: step.ready() for name, step in self._steps.items()})

    def stop(self) -> None:
        for step in self._steps.values():
            step.stop()

    async def handle(self, scope: Mapping[str, Any], receive: ASGIReceive, send: ASGISend) -> None:
        """Read the request once, pick the step, and let it handle a replay of the request."""
        body = await read_body(receive)
        if body is None:  # the sender hung up mid-request: it will retry; nothing to route
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        step = self._steps[self.route(headers, body) if scope.get("method") == "POST" else FALLBACK_STEP]

        async def replay() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        await step.handle(scope, replay, send)

    @staticmethod
    def route(headers: Mapping[str, str], body: bytes) -> str:
        try:
            event = decode_http(headers, body)
        except EventRejected:
            return FALLBACK_STEP  # not a CloudEvent: the step keeps it in rejected_events
        dead_letter = bool(event.get_extension("knativeerrordest"))
        return step_for(event.get_type(), event.get_source(), dead_letter=dead_letter)


def _all_of(results: Mapping[str, tuple[bool, str]]) -> tuple[bool, str]:
    failing = [f"{name}: {message}" for name, (ok, message) in results.items() if not ok]
    return not failing, "; ".join(failing) or "OK"


def new(steps: Sequence[str] = STEPS) -> AllInOne:
    """func-python's constructor: one instance of every step's own function."""
    return AllInOne({name: load_step(name) for name in steps})
