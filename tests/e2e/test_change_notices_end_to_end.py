"""Change notices end to end: signed announcements through the router to the providers, over real HTTP."""

from __future__ import annotations

import asyncio
from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from cloudevents.core.bindings.http import to_binary_event

from patient_notify.catalog import SourceBatch, save_batch
from patient_notify.db import Database
from sandbox.ses import SesStandIn
from tests.builders import make_appointment, make_contact, make_location, make_patient
from tests.e2e.conftest import EVENTS_SECRET, start_system
from tests.integration.change_harness import announced

START = (datetime.now(UTC) + timedelta(days=9)).replace(second=0, microsecond=0)


async def _seed(url: str, count: int) -> None:
    db = Database(url, max_size=1)
    async with db.transaction() as tx:
        await save_batch(tx, SourceBatch(
            [make_location(), make_location(id="loc-2", name="Hilltop Clinic")],
            [make_patient(id=f"p{i}", channel_preference="sms") for i in range(count)],
            [make_contact(patient_id=f"p{i}", value=f"+1202555{i:04d}") for i in range(count)],
            [make_appointment(id=f"a{i}", patient_id=f"p{i}", starts_at=START, source_version=1) for i in range(count)],
        ))  # fmt: skip
    await db.close()


class TestChangeNoticesEndToEnd:
    def test_each_announced_change_reaches_the_patient_once(
        self, migrated_database_url: str, ses: SesStandIn, tmp_path: Path
    ) -> None:
        """30 changes, each posted twice to the ingress: 30 SMS, one per appointment, with the new details."""
        asyncio.run(_seed(migrated_database_url, 30))
        with ExitStack() as stack:
            system = start_system(stack, migrated_database_url, ses, tmp_path)
            with httpx.Client() as client:
                for i in range(30):
                    change = announced(f"a{i}", 2, "relocated", START, "loc-2", secret=EVENTS_SECRET)
                    message = to_binary_event(change)
                    for _ in range(2):  # the appointment system retried
                        client.post(
                            system.router.ingress_url, headers=message.headers, content=message.body
                        ).raise_for_status()
            assert system.router.wait_idle(timeout=300)
            stats = system.router.stats
            assert (stats.dropped, stats.dead_lettered, stats.errors) == ([], [], [])
            per_phone = Counter(m.to for m in system.twilio.messages)
        assert sorted(per_phone) == sorted(f"+1202555{i:04d}" for i in range(30)) and set(per_phone.values()) == {1}
        assert all("is now at Hilltop Clinic" in m.body for m in system.twilio.messages)
