"""PingSources read from ``knative/``, fired on their cron schedule in their timezone into a broker ingress.

Each firing is the event Knative's ping adapter sends: type ``dev.knative.sources.ping``, source
``/apis/v1/namespaces/<namespace>/pingsources/<name>``, ``time`` the scheduled instant, and the
spec's ``data`` with its ``contentType``. Times come from croniter in the spec's ``timezone``: on
the day clocks go forward a local time that does not exist is skipped; on the day they go back a
local time that happens twice fires twice.

``PingScheduler.catch_up(until)`` fires every instant due up to ``until`` in order, from a given
start: tests and the demo drive a simulated clock with it. ``start()`` does the same on the wall
clock in a thread, for ``task dev``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
from cloudevents.core.bindings.http import to_binary_event
from cloudevents.core.v1.event import CloudEvent
from croniter import croniter

from sandbox.triggers import manifests

__all__ = ["PING_TYPE", "PingScheduler", "PingSource", "load_pingsources"]

PING_TYPE = "dev.knative.sources.ping"


@dataclass(frozen=True)
class PingSource:
    name: str
    namespace: str
    schedule: str
    timezone: str = "Etc/UTC"
    content_type: str = "application/json"
    data: str = ""

    @property
    def source(self) -> str:
        return f"/apis/v1/namespaces/{self.namespace}/pingsources/{self.name}"

    def fire_times(self, after: datetime) -> Iterator[datetime]:
        """Every scheduled instant strictly after ``after``, in UTC, forever."""
        schedule = croniter(self.schedule, after.astimezone(ZoneInfo(self.timezone)))
        while True:
            yield schedule.get_next(datetime).astimezone(UTC)

    def event(self, at: datetime) -> CloudEvent:
        attributes = {
            "id": str(uuid.uuid4()), "source": self.source, "type": PING_TYPE, "specversion": "1.0",
            "time": at, "datacontenttype": self.content_type,
        }  # fmt: skip
        return CloudEvent(attributes=attributes, data=self.data.encode())


def load_pingsources(folder: Path) -> list[PingSource]:
    return [
        PingSource(
            name=doc["metadata"]["name"],
            namespace=doc["metadata"].get("namespace", "default"),
            schedule=doc["spec"]["schedule"],
            timezone=doc["spec"].get("timezone", "Etc/UTC"),
            content_type=doc["spec"].get("contentType", "application/json"),
            data=doc["spec"].get("data", ""),
        )
        for doc in manifests(folder)
        if doc.get("kind") == "PingSource"
    ]


class PingScheduler:
    """Fires ``sources`` into ``ingress_url``; each fires only instants after ``since``."""

    def __init__(
        self, sources: Sequence[PingSource], ingress_url: str, *, since: datetime,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:  # fmt: skip
        self._sources = {source.name: source for source in sources}
        self._ingress_url, self._clock = ingress_url, clock
        self._next = {name: source.fire_times(since) for name, source in self._sources.items()}
        self._due = {name: next(times) for name, times in self._next.items()}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pingsources", daemon=True)
        self.fired: list[tuple[str, datetime]] = []

    def fire(self, name: str, at: datetime) -> None:
        """Send one PingSource event now, as if scheduled at ``at``; a refusal by the ingress raises."""
        message = to_binary_event(self._sources[name].event(at))
        response = httpx.post(self._ingress_url, headers=message.headers, content=message.body, timeout=30)
        if response.status_code != 202:
            raise RuntimeError(f"broker ingress answered {response.status_code} to PingSource {name}")
        self.fired.append((name, at))

    def catch_up(self, until: datetime) -> int:
        """Fire every instant due at or before ``until``, earliest first; how many fired."""
        count = 0
        while (name := min(self._due, key=self._due.__getitem__, default=None)) and self._due[name] <= until:
            self.fire(name, self._due[name])
            self._due[name] = next(self._next[name])
            count += 1
        return count

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while self._due:
            wait = (min(self._due.values()) - self._clock()).total_seconds()
            if self._stop.wait(max(0.0, wait)):
                return
            self.catch_up(self._clock())
