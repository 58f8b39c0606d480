"""The named queries against the real server: each one runs, and the ones that guard exactly-once hold."""

from __future__ import annotations

import asyncio
import contextlib
import re
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from patient_notify.catalog import SourceBatch, save_batch
from patient_notify.db import QUERIES, Database
from patient_notify.errors import DatabaseError
from tests.builders import make_appointment, make_contact, make_location, make_patient


class TestEveryQuery:
    @pytest.mark.parametrize("name", sorted(QUERIES))
    def test_runs_against_the_server(self, migrated_database_url: str, name: str) -> None:
        """Each statement parses, resolves its tables and columns, and runs (NULL parameters)."""
        params = dict.fromkeys(_parameter_names(QUERIES[name]))
        # An IntegrityError means it ran: the server refused the NULLs, not the statement.
        with (
            psycopg.connect(migrated_database_url) as conn,
            conn.transaction(force_rollback=True),
            contextlib.suppress(psycopg.errors.IntegrityError),
        ):
            conn.execute(QUERIES[name], params)


def _parameter_names(sql: str) -> set[str]:
    return set(re.findall(r"%\((\w+)\)s", sql))


async def _seed(db: Database, count: int, due_before: datetime) -> None:
    batch = SourceBatch(
        locations=[make_location()],
        patients=[make_patient(id=f"p{i}") for i in range(count)],
        contacts=[make_contact(patient_id=f"p{i}") for i in range(count)],
        appointments=[
            make_appointment(id=f"a{i}", patient_id=f"p{i}", starts_at=due_before + timedelta(days=3))
            for i in range(count)
        ],
    )
    async with db.transaction() as tx:
        await save_batch(tx, batch)


PLAN = {"cutoff": timedelta(hours=12), "type": "org.patientnotify.reminder.due.v1", "source": "/test"}


class TestPlanDueReminders:
    async def test_overlapping_ticks_claim_each_reminder_once(self, db: Database) -> None:
        """Ten ticks racing over the same due reminders emit each exactly once between them."""
        now = datetime.now(UTC)
        await _seed(db, 300, now)

        async def tick() -> list[str]:
            async with db.transaction() as tx:
                rows = await tx.all("plan_due_reminders", {**PLAN, "now": now + timedelta(days=1), "limit": 100})
            return [row["id"] for row in rows]

        claimed: list[str] = []
        for _ in range(4):
            for batch in await asyncio.gather(*(tick() for _ in range(10))):
                claimed.extend(batch)
        assert sorted(claimed) == sorted(f"a{i}" for i in range(300))

    async def test_nothing_is_due_before_its_instant(self, db: Database) -> None:
        """A reminder whose instant has not come is left for a later tick."""
        now = datetime.now(UTC)
        await _seed(db, 5, now + timedelta(days=2))
        async with db.transaction() as tx:
            rows = await tx.all("plan_due_reminders", {**PLAN, "now": now, "limit": 100})
        assert rows == []

    async def test_too_late_to_remind_is_given_up_once(self, db: Database) -> None:
        """A reminder never sent before the cutoff is handed back once as missed, and never claimed."""
        now = datetime.now(UTC)
        await _seed(db, 3, now - timedelta(days=3) + timedelta(hours=6))  # appointments in 6 hours
        params = {**PLAN, "now": now, "limit": 10}
        async with db.transaction() as tx:
            assert await tx.all("plan_due_reminders", params) == []
            missed = await tx.all("give_up_missed_reminders", params)
            again = await tx.all("give_up_missed_reminders", params)
        assert sorted(r["id"] for r in missed) == ["a0", "a1", "a2"] and all(r["upcoming"] for r in missed)
        assert again == []

    async def test_moving_to_another_day_rearms_the_reminder(self, db: Database) -> None:
        """An appointment moved to another local day gets a new reminder; the same day does not."""
        now = datetime.now(UTC)
        await _seed(db, 1, now)
        params = {**PLAN, "now": now + timedelta(days=1), "limit": 10}
        async with db.transaction() as tx:
            assert len(await tx.all("plan_due_reminders", params)) == 1
        same_day = make_appointment(id="a0", patient_id="p0", starts_at=now + timedelta(days=3), version=2)
        async with db.transaction() as tx:
            await save_batch(tx, SourceBatch(appointments=[same_day]))
            assert await tx.all("plan_due_reminders", params) == []
        moved = make_appointment(id="a0", patient_id="p0", starts_at=now + timedelta(days=4), version=2)
        async with db.transaction() as tx:
            await save_batch(tx, SourceBatch(appointments=[moved]))
        async with db.transaction() as tx:
            assert [
                r["id"] for r in await tx.all("plan_due_reminders", {**params, "now": now + timedelta(days=2)})
            ] == ["a0"]


ONE_SMS = {
    "natural_keys": ["k1"], "appointment_ids": ["a0"], "appointment_versions": [1],
    "kinds": ["reminder"], "channels": ["sms"], "recipients": ["+12025550123"],
    "languages": ["en"], "subjects": [""], "bodies": ["hello"], "hold_until": [None],
}  # fmt: skip


class TestNotificationStatus:
    async def _notification(self, db: Database) -> int:
        await _seed(db, 1, datetime.now(UTC))
        async with db.transaction() as tx:
            rows = await tx.all("claim_notifications", ONE_SMS)
        return int(rows[0]["id"])

    async def _move(self, db: Database, nid: int, from_status: str, to_status: str) -> bool:
        async with db.transaction() as tx:
            row = await tx.one("move_notification", {
                "id": nid, "from_status": from_status, "to_status": to_status, "attempt": 0,
                "provider": None, "provider_message_id": None, "error": None, "skip_reason": None,
            })  # fmt: skip
        return row is not None

    async def test_a_late_sent_never_overwrites_delivered(self, db: Database) -> None:
        """Once delivered, a stale writer expecting 'sending' changes nothing."""
        nid = await self._notification(db)
        for step in [("queued", "sending"), ("sending", "sent"), ("sent", "delivered")]:
            assert await self._move(db, nid, *step)
        assert not await self._move(db, nid, "sending", "sent")

    async def test_the_database_refuses_a_backward_move(self, db: Database) -> None:
        """Even a direct UPDATE cannot move a notification backwards: the trigger refuses it."""
        nid = await self._notification(db)
        for step in [("queued", "sending"), ("sending", "sent")]:
            await self._move(db, nid, *step)
        with pytest.raises(DatabaseError, match="may not move from sent to queued"):
            await self._move(db, nid, "sent", "queued")

    async def test_every_change_is_kept_in_the_history(self, db: Database) -> None:
        """The status history lists every status the notification went through, in order."""
        nid = await self._notification(db)
        for step in [("queued", "sending"), ("sending", "queued"), ("queued", "sending"), ("sending", "sent")]:
            await self._move(db, nid, *step)
        with psycopg.connect(db.url) as conn:
            rows = conn.execute(
                "SELECT status FROM notification_status_history WHERE notification_id = %s ORDER BY id", (nid,)
            )
            assert [r[0] for r in rows] == ["queued", "sending", "queued", "sending", "sent"]

    async def test_the_natural_key_claims_once(self, db: Database) -> None:
        """Claiming the same natural key again inserts nothing and returns nothing."""
        await self._notification(db)
        async with db.transaction() as tx:
            again = await tx.all("claim_notifications", ONE_SMS)
        assert again == []


class TestChangeDetection:
    async def test_a_change_bumps_the_version_and_reports_the_old_facts(self, db: Database) -> None:
        """Cancelling returns version 2 beside the old version 1 and the old status."""
        now = datetime.now(UTC)
        await _seed(db, 1, now)
        cancelled = make_appointment(id="a0", patient_id="p0", starts_at=now + timedelta(days=3), status="cancelled")
        async with db.transaction() as tx:
            [row] = await save_batch(tx, SourceBatch(appointments=[cancelled]))
        assert (row["version"], row["old_version"], row["status"], row["old_status"]) == (2, 1, "cancelled", "booked")

    async def test_an_unchanged_write_keeps_the_version(self, db: Database) -> None:
        """Writing the same facts again reports the same version before and after."""
        now = datetime.now(UTC)
        await _seed(db, 1, now)
        same = make_appointment(id="a0", patient_id="p0", starts_at=now + timedelta(days=3))
        async with db.transaction() as tx:
            [row] = await save_batch(tx, SourceBatch(appointments=[same]))
        assert (row["version"], row["old_version"]) == (1, 1)
