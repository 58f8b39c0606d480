"""The local broker, either backend behind one shape: in-process, or RabbitMQ when a URL is given."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from sandbox.broker_rabbitmq import RabbitRouter
from sandbox.router import LocalRouter, RouterStats
from sandbox.triggers import Trigger

__all__ = ["Broker", "open_broker"]


class Broker(Protocol):
    ingress_url: str
    stats: RouterStats

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def wait_idle(self, timeout: float) -> bool: ...


def open_broker(
    triggers: Sequence[Trigger], endpoints: Mapping[str, str], *,
    rabbitmq_url: str | None = None, backoff_scale: float = 1.0,
) -> Broker:  # fmt: skip
    """RabbitMQ (eventing-rabbitmq's topology) when ``rabbitmq_url`` is set, else the in-process router.

    ``endpoints`` maps a Trigger's subscriber name to its URL; it is read at each delivery, so it
    may be filled in after the broker is built (functions learn the ingress URL first).
    """
    if rabbitmq_url:
        return RabbitRouter(triggers, endpoints, amqp_url=rabbitmq_url, backoff_scale=backoff_scale)
    return LocalRouter(triggers, endpoints, backoff_scale=backoff_scale)
