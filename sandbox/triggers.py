"""Triggers read from ``knative/``: what the local router needs to route like the RabbitMQ broker."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Delivery", "Trigger", "load_triggers", "manifests"]

_DURATION = re.compile(r"^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$")


@dataclass(frozen=True)
class Delivery:
    retry: int = 0
    exponential: bool = True
    backoff_delay_s: float = 0.05  # eventing-rabbitmq's own default
    timeout_s: float = 30.0
    dead_letter_service: str | None = None


@dataclass(frozen=True)
class Trigger:
    name: str
    filter: Mapping[str, str]
    service: str
    parallelism: int
    delivery: Delivery

    def matches(self, attributes: Mapping[str, Any]) -> bool:
        """Exact match on every filter attribute, as the broker's headers exchange does."""
        return all(str(attributes.get(k, "")) == v for k, v in self.filter.items())


def load_triggers(folder: Path) -> list[Trigger]:
    return [_trigger(doc) for doc in manifests(folder) if doc.get("kind") == "Trigger"]


def manifests(folder: Path) -> Iterator[dict[str, Any]]:
    """Every document of every manifest under ``folder`` (examples and kustomizations left out)."""
    for path in sorted(folder.rglob("*.yaml")):
        if path.name != "kustomization.yaml" and "example" not in path.name:
            yield from (doc for doc in yaml.safe_load_all(path.read_text()) if doc)


def _trigger(doc: dict[str, Any]) -> Trigger:
    spec = doc["spec"]
    annotations = doc["metadata"].get("annotations", {})
    delivery = spec.get("delivery", {})
    dead_letter = delivery.get("deadLetterSink", {}).get("ref", {}).get("name")
    return Trigger(
        name=doc["metadata"]["name"],
        filter=spec.get("filter", {}).get("attributes", {}),
        service=spec["subscriber"]["ref"]["name"],
        parallelism=int(annotations.get("rabbitmq.eventing.knative.dev/parallelism", 1)),
        delivery=Delivery(
            retry=int(delivery.get("retry", 5 if delivery else 0)),
            exponential=delivery.get("backoffPolicy", "exponential") == "exponential",
            backoff_delay_s=_seconds(delivery.get("backoffDelay", "PT0.05S")),
            timeout_s=_seconds(delivery.get("timeout", "PT30S")),
            dead_letter_service=dead_letter,
        ),
    )


def _seconds(duration: str) -> float:
    match = _DURATION.match(duration)
    if not match:
        raise ValueError(f"unsupported ISO-8601 duration {duration!r}")
    hours, minutes, seconds = (float(part or 0) for part in match.groups())
    return hours * 3600 + minutes * 60 + seconds
