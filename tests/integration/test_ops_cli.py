"""The ops CLI against a migrated PostgreSQL: reports, redrives and opt-outs, through ``run``.

Rows are written directly by the builders below (the functions that write them in production are
tested elsewhere); every command's output is checked for the test patient's number and address.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from patient_notify.db import QUERIES, Database
from patient_notify.events import AppointmentChanged, ReminderDue, SmsSendRequested
from patient_notify.ops import run
from patient_notify.outbox import Publisher

PHONE = "+12025550112"
NEW_PHONE = "+12025550199"
EMAIL = "zoe.hart@example.org"
SECRETS = (PHONE, NEW_PHONE, EMAIL, "2025550112", "2025550199", "zoe.hart")
FAILED = ("queued", "sending", "failed")
PROVIDER_ERROR = f"ProviderPermanent: twilio error 21211: The 'To' number {PHONE} is not valid"


# --- running the CLI ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def ops(url: str, *argv: str, environ: dict[str, str] | None = None) -> Result:
    out, err = io.StringIO(), io.StringIO()
    env = {"DATABASE_URL": url} if environ is None else environ
    code = run(list(argv), environ=env, stdout=out, stderr=err, now=datetime.now(UTC))
    result = Result(code, out.getvalue(), err.getvalue())
    leaked = [s for s in SECRETS if s in result.out + result.err]
    assert not leaked, f"patient data in the output: {leaked}"
    return result


# --- builders: rows as the functions would have written them --------------------------------------


Conn = psycopg.Connection[dict[str, Any]]


@pytest.fixture
def conn(migrated_database_url: str) -> Iterator[Conn]:
    with psycopg.connect(migrated_database_url, autocommit=True, row_factory=dict_row) as connection:
        yield connection


def add_appointment(conn: Conn, appointment_id: str = "apt-1", **overrides: Any) -> str:
    """A booked appointment three days ahead, its patient with an SMS number and an email address."""
    values: dict[str, Any] = {"starts_at": datetime.now(UTC) + timedelta(days=3), "status": "booked", "version": 1,
                              "contacts": [("sms", PHONE), ("email", EMAIL)], **overrides}  # fmt: skip
    patient = f"pat-{appointment_id}"
    conn.execute("INSERT INTO locations (id, name, phone, timezone) VALUES ('loc-1', 'Riverside', '+12025550100',"
                 " 'America/New_York') ON CONFLICT DO NOTHING")  # fmt: skip
    conn.execute("INSERT INTO patients (id, given_name, channel_preference) VALUES (%s, 'Zoe', 'both')", [patient])
    for channel, value in values["contacts"]:
        conn.execute("INSERT INTO contact_points (patient_id, channel, value) VALUES (%s, %s, %s)",
                     [patient, channel, value])  # fmt: skip
    conn.execute(
        "INSERT INTO appointments (id, patient_id, location_id, starts_at, status, version, reminder_local_date,"
        " reminder_due_at, reminder_window_end) VALUES (%(id)s, %(patient)s, 'loc-1', %(starts_at)s, %(status)s,"
        " %(version)s, %(starts_at)s::date, %(starts_at)s - interval '3 days', %(starts_at)s - interval '3 days')",
        {"id": appointment_id, "patient": patient, **values},
    )
    return appointment_id


def add_notification(conn: Conn, path: Sequence[str] = FAILED, **overrides: Any) -> int:
    """A notification walked along ``path`` through the status machine (each step in its history)."""
    values: dict[str, Any] = {
        "appointment_id": "apt-1", "channel": "sms", "kind": "reminder", "recipient": PHONE,
        "natural_key": f"reminder:apt-1:sms:{uuid.uuid4().hex[:8]}", "created_at": datetime.now(UTC),
        "fallback_of": None, "provider": None, "provider_message_id": None, **overrides,
    }  # fmt: skip
    row = conn.execute(
        "INSERT INTO notifications (natural_key, appointment_id, appointment_version, kind, channel, recipient,"
        " language, body, created_at, fallback_of, provider, provider_message_id) VALUES (%(natural_key)s,"
        " %(appointment_id)s, 1, %(kind)s, %(channel)s, %(recipient)s, 'en', 'Hi Zoe', %(created_at)s,"
        " %(fallback_of)s, %(provider)s, %(provider_message_id)s) RETURNING id",
        values,
    ).fetchone()
    assert row is not None
    for status in path[1:]:
        error = PROVIDER_ERROR if status == "failed" else None
        conn.execute("UPDATE notifications SET status = %s, last_error = coalesce(%s, last_error) WHERE id = %s",
                     [status, error, row["id"]])  # fmt: skip
    return int(row["id"])


def add_receipt(conn: Conn, provider_message_id: str, status: str) -> None:
    payload = {"To": PHONE, "MessageStatus": status, "Body": "Hi Zoe"}
    conn.execute("INSERT INTO provider_receipts (provider, kind, provider_message_id, status, verified, payload)"
                 " VALUES ('twilio', 'status', %s, %s, true, %s)", [provider_message_id, status, Jsonb(payload)])  # fmt: skip


def add_alert(conn: Conn, kind: str, subject: str, *, resolved: bool = False, dedup_key: str | None = None) -> None:
    conn.execute("INSERT INTO alerts (dedup_key, kind, severity, subject, detail, occurrences, resolved_at)"
                 " VALUES (%s, %s, 'critical', %s, '', 3, CASE WHEN %s THEN now() END)",
                 [dedup_key or f"{kind}:{subject}", kind, subject, resolved])  # fmt: skip


def add_dead_letter(conn: Conn, event_type: str = SmsSendRequested.TYPE, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"event_source": "/patient-notify/dispatcher", "event_id": str(uuid.uuid4()),
                              "event_type": event_type, "data": {"notification_id": 1}, **overrides}  # fmt: skip
    data = None if values["data"] is None else Jsonb(values["data"])
    row = conn.execute("INSERT INTO dead_letters (event_source, event_id, event_type, error_dest, error_code, data)"
                       " VALUES (%s, %s, %s, 'http://sms-sender', '503', %s) RETURNING *",
                       [values["event_source"], values["event_id"], event_type, data]).fetchone()  # fmt: skip
    assert row is not None
    return row


def add_published_outbox_row(conn: Conn, letter: dict[str, Any]) -> int:
    row = conn.execute("INSERT INTO outbox (event_id, type, source, subject, data, published_at, attempts)"
                       " VALUES (%s, %s, %s, '1', %s, now(), 1) RETURNING id",
                       [letter["event_id"], letter["event_type"], letter["event_source"], Jsonb(letter["data"])]).fetchone()  # fmt: skip
    assert row is not None
    return int(row["id"])


def one(conn: Conn, sql: str, params: Sequence[Any] = ()) -> dict[str, Any]:
    row = conn.execute(sql.encode(), params).fetchone()
    assert row is not None
    return row


# --- delivery-rate --------------------------------------------------------------------------------


class TestDeliveryRate:
    def test_counts_and_rate_by_day_and_channel(self, migrated_database_url: str, conn: Conn) -> None:
        """Delivered over delivered+undelivered+failed, with awaiting receipt and skipped counted beside it."""
        add_appointment(conn)
        now = datetime.now(UTC)  # once: a run that straddles midnight still files every row on its day
        yesterday = now - timedelta(days=1)
        for path in [(*FAILED[:2], "sent", "delivered")] * 3 + [(*FAILED[:2], "sent", "undelivered"), FAILED,
                                                                (*FAILED[:2], "sent"), ("queued", "skipped")]:  # fmt: skip
            add_notification(conn, path, created_at=now)
        add_notification(conn, (*FAILED[:2], "sent", "delivered"), channel="email", recipient=EMAIL, created_at=now)
        add_notification(conn, FAILED, created_at=yesterday)
        report = json.loads(ops(migrated_database_url, "delivery-rate", "--json").out)
        today = next(r for r in report["rows"] if r["day"] == str(now.date()) and r["channel"] == "sms")
        assert (today["delivered"], today["undelivered"], today["failed"], today["rate"]) == (3, 1, 1, 0.6)
        assert (today["awaiting_receipt"], today["skipped"]) == (1, 1)
        assert [(r["day"], r["channel"]) for r in report["rows"]] == [
            (str(yesterday.date()), "sms"), (str(now.date()), "email"), (str(now.date()), "sms"),
        ]  # fmt: skip
        assert (report["total"]["delivered"], report["total"]["failed"]) == (4, 2)

    def test_the_table_is_aligned(self, migrated_database_url: str, conn: Conn) -> None:
        """Every line of the table lines up under its header, rate as a percentage, a total last."""
        add_appointment(conn)
        add_notification(conn, (*FAILED[:2], "sent", "delivered"))
        add_notification(conn, FAILED)
        lines = ops(migrated_database_url, "delivery-rate").out.splitlines()
        header, rows = lines[1], lines[2:]
        assert header.split() == ["day", "channel", "delivered", "undelivered", "failed", "rate", "awaiting",
                                  "receipt", "skipped", "unknown", "in", "flight"]  # fmt: skip
        assert "50.00%" in rows[0] and rows[-1].startswith("total")
        assert {line.index("50.00%") + len("50.00%") for line in rows} == {header.index("rate") + len("rate")}

    def test_channel_and_days_narrow_the_report(self, migrated_database_url: str, conn: Conn) -> None:
        """--channel keeps one channel; --days 1 keeps today only."""
        add_appointment(conn)
        add_notification(conn, FAILED, created_at=datetime.now(UTC) - timedelta(days=2))
        add_notification(conn, FAILED, channel="email", recipient=EMAIL)
        add_notification(conn, FAILED)
        rows = json.loads(ops(migrated_database_url, "delivery-rate", "--json", "--days", "1", "--channel", "sms").out)
        assert [(r["channel"], r["failed"]) for r in rows["rows"]] == [("sms", 1)]

    def test_an_empty_period_says_so(self, migrated_database_url: str) -> None:
        """No notifications: a sentence, not an empty table."""
        assert "no notifications in this period" in ops(migrated_database_url, "delivery-rate").out


# --- history --------------------------------------------------------------------------------------


def _rows(section: str) -> list[list[str]]:
    """A section's table, header dropped, each row split on whitespace."""
    return [line.split() for line in section.splitlines() if line.strip()][1:]


class TestHistory:
    def test_shows_every_status_provider_and_receipt(self, migrated_database_url: str, conn: Conn) -> None:
        """Status changes in order with times, provider and message id, receipts' statuses; recipient masked."""
        add_appointment(conn)
        path = (*FAILED[:2], "sent", "undelivered")
        nid = add_notification(conn, path, provider="twilio", provider_message_id="SM42")
        add_receipt(conn, "SM42", "sent")
        add_receipt(conn, "SM42", "undelivered")
        out = ops(migrated_database_url, "history", str(nid)).out
        assert out.startswith(f"notification {nid} · reminder · sms · undelivered")
        assert "+120••••••12" in out and "twilio · message SM42" in out
        history = _rows(out.split("status history")[1].split("receipts")[0])
        assert [row[2] for row in history] == ["queued", "sending", "sent", "undelivered"]
        assert [row[4] for row in _rows(out.split("receipts for message SM42")[1])] == ["sent", "undelivered"]
        assert "Hi Zoe" not in out and "MessageStatus" not in out  # the payload is never shown

    def test_details_are_scrubbed(self, migrated_database_url: str, conn: Conn) -> None:
        """A provider error quoting the number shows as [phone] in the history."""
        add_appointment(conn)
        out = ops(migrated_database_url, "history", str(add_notification(conn))).out
        assert "The 'To' number [phone] is not valid" in out

    def test_fallback_and_redrive_links_are_shown_both_ways(self, migrated_database_url: str, conn: Conn) -> None:
        """The fallback points at what it replaces, and the original lists its fallback."""
        add_appointment(conn)
        sms = add_notification(conn)
        email = add_notification(conn, ("queued",), channel="email", recipient=EMAIL, fallback_of=sms)
        assert f"fallback #{email}" in ops(migrated_database_url, "history", str(sms)).out
        out = ops(migrated_database_url, "history", str(email)).out
        assert f"fallback of #{sms}" in out and "z•••@example.org" in out

    def test_appointment_lists_each_of_its_notifications(self, migrated_database_url: str, conn: Conn) -> None:
        """--appointment shows every notification of that appointment, and none of another."""
        add_appointment(conn)
        add_appointment(conn, "apt-2")
        ids = [add_notification(conn), add_notification(conn, ("queued",), channel="email", recipient=EMAIL)]
        add_notification(conn, appointment_id="apt-2")
        out = ops(migrated_database_url, "history", "--appointment", "apt-1").out
        listed = [int(line.split()[1]) for line in out.splitlines() if line.startswith("notification")]
        assert listed == ids

    @pytest.mark.parametrize("argv", [
        ["history", "999"],  # no such notification
        ["history", "--appointment", "apt-404"],  # no notifications for this appointment
    ])  # fmt: skip
    def test_an_unknown_id_exits_1(self, migrated_database_url: str, argv: list[str]) -> None:
        """What the database does not hold is reported on stderr with exit code 1."""
        result = ops(migrated_database_url, *argv)
        assert (result.code, result.out) == (1, "") and result.err.startswith("ops: no notification")


# --- alerts ---------------------------------------------------------------------------------------


class TestAlerts:
    def test_open_alerts_only_by_default(self, migrated_database_url: str, conn: Conn) -> None:
        """Open and acknowledged alerts are listed with their counts; resolved ones are not."""
        add_alert(conn, "delivery_failed", "41")
        add_alert(conn, "dead_letter", "ev-1", resolved=True)
        lines = ops(migrated_database_url, "alerts").out.splitlines()
        assert lines[0].split() == ["id", "kind", "severity", "subject", "first", "seen", "last", "seen",
                                    "occurrences", "state"]  # fmt: skip
        assert len(lines) == 2 and lines[1].split()[1:4] == ["delivery_failed", "critical", "41"]
        assert lines[1].split()[-2:] == ["3", "open"]

    def test_all_includes_resolved(self, migrated_database_url: str, conn: Conn) -> None:
        """--all lists resolved alerts too, after the open ones, marked resolved."""
        add_alert(conn, "delivery_failed", "41")
        add_alert(conn, "dead_letter", "ev-1", resolved=True)
        alerts = json.loads(ops(migrated_database_url, "alerts", "--all", "--json").out)
        assert [(a["kind"], a["state"]) for a in alerts] == [("delivery_failed", "open"), ("dead_letter", "resolved")]

    def test_none_open_says_so(self, migrated_database_url: str) -> None:
        """No open alerts: a sentence."""
        assert ops(migrated_database_url, "alerts").out == "no open alerts\n"


# --- redrive failed -------------------------------------------------------------------------------


def _notification(conn: Conn, nid: int) -> dict[str, Any]:
    return one(conn, "SELECT * FROM notifications WHERE id = %s", [nid])


class TestRedriveFailed:
    def test_a_failed_notification_is_retried_as_a_new_linked_one(self, migrated_database_url: str, conn: Conn) -> None:
        """The original stays failed; a copy keyed ':redrive:1' is queued with its send event in the outbox."""
        add_appointment(conn)
        nid = add_notification(conn, natural_key="reminder:apt-1:sms:2026-12-03")
        result = ops(migrated_database_url, "redrive", "failed", "--id", str(nid))
        retry = one(conn, "SELECT * FROM notifications WHERE redrive_of = %s", [nid])
        assert (_notification(conn, nid)["status"], retry["status"]) == ("failed", "queued")
        assert (retry["natural_key"], retry["recipient"]) == ("reminder:apt-1:sms:2026-12-03:redrive:1", PHONE)
        event = one(conn, "SELECT type, source, subject, data FROM outbox")
        assert (event["type"], event["source"]) == (SmsSendRequested.TYPE, "/patient-notify/ops")
        assert event["subject"] == str(retry["id"])
        assert event["data"] == {"notification_id": retry["id"], "appointment_id": "apt-1", "channel": "sms"}
        assert f"redriven as notification {retry['id']}" in result.out and "1 redriven, 0 refused" in result.out

    def test_a_dry_run_writes_nothing(self, migrated_database_url: str, conn: Conn) -> None:
        """--dry-run says what it would do and leaves no row behind."""
        add_appointment(conn)
        nid = add_notification(conn)
        out = ops(migrated_database_url, "redrive", "failed", "--id", str(nid), "--dry-run").out
        assert "would be redriven as" in out and out.endswith("dry run: nothing written\n")
        assert one(conn, "SELECT count(*) AS n FROM notifications")["n"] == 1
        assert one(conn, "SELECT count(*) AS n FROM outbox")["n"] == 0

    def test_a_notification_is_redriven_once(self, migrated_database_url: str, conn: Conn) -> None:
        """Asking again is refused with the retry's id; a failed retry is retried as ':redrive:2'."""
        add_appointment(conn)
        nid = add_notification(conn, natural_key="k")
        ops(migrated_database_url, "redrive", "failed", "--id", str(nid))
        retry = one(conn, "SELECT id FROM notifications WHERE redrive_of = %s", [nid])["id"]
        assert f"already redriven as #{retry}" in ops(migrated_database_url, "redrive", "failed", "--id", str(nid)).out
        for status in FAILED[1:]:
            conn.execute("UPDATE notifications SET status = %s WHERE id = %s", [status, retry])
        ops(migrated_database_url, "redrive", "failed", "--id", str(retry))
        second = one(conn, "SELECT natural_key FROM notifications WHERE redrive_of = %s", [retry])
        assert second["natural_key"] == "k:redrive:2"

    def test_operators_racing_create_one_retry(self, migrated_database_url: str, conn: Conn) -> None:
        """Four redrives of the same notification at once: one retry, one send event."""
        add_appointment(conn)
        nid = add_notification(conn)
        with ThreadPoolExecutor(max_workers=4) as pool:
            list(pool.map(lambda _: ops(migrated_database_url, "redrive", "failed", "--id", str(nid)), range(4)))
        assert one(conn, "SELECT count(*) AS n FROM notifications WHERE redrive_of = %s", [nid])["n"] == 1
        assert one(conn, "SELECT count(*) AS n FROM outbox")["n"] == 1

    def test_the_retry_goes_to_the_patients_contact_point_now(self, migrated_database_url: str, conn: Conn) -> None:
        """After the contact data was fixed, the retry goes to the new number, and says it changed."""
        add_appointment(conn, contacts=[("sms", NEW_PHONE)])
        nid = add_notification(conn)
        out = ops(migrated_database_url, "redrive", "failed", "--id", str(nid)).out
        assert one(conn, "SELECT recipient FROM notifications WHERE redrive_of = %s", [nid])["recipient"] == NEW_PHONE
        assert "to +120••••••99 (was +120••••••12)" in out

    @pytest.mark.parametrize(("appointment", "opted_out", "reason"), [
        ({"version": 2}, False, "the appointment changed (v1 → v2)"),  # the newer notice tells the patient
        ({"status": "cancelled"}, False, "the appointment is cancelled"),  # a reminder for a cancelled appointment
        ({"starts_at": datetime.now(UTC) - timedelta(hours=1)}, False, "the appointment has passed"),
        ({}, True, "no usable sms contact point now"),  # the number replied STOP
    ])  # fmt: skip
    def test_a_retry_that_would_be_wrong_is_refused(
        self, migrated_database_url: str, conn: Conn, appointment: dict[str, Any], opted_out: bool, reason: str
    ) -> None:
        """Refused with the reason, and nothing is written."""
        add_appointment(conn, **appointment)
        if opted_out:
            conn.execute("INSERT INTO sms_opt_outs (number, source) VALUES (%s, 'keyword:STOP')", [PHONE])
        nid = add_notification(conn)
        out = ops(migrated_database_url, "redrive", "failed", "--id", str(nid)).out
        assert f"notification {nid} (reminder · sms): refused: {reason}" in out and "0 redriven, 1 refused" in out
        assert one(conn, "SELECT count(*) AS n FROM notifications")["n"] == 1

    def test_a_notification_whose_fallback_was_sent_is_not_retried(
        self, migrated_database_url: str, conn: Conn
    ) -> None:
        """The email sent in the failed SMS's place told the patient: no second message."""
        add_appointment(conn)
        nid = add_notification(conn)
        email = add_notification(conn, (*FAILED[:2], "sent"), channel="email", recipient=EMAIL, fallback_of=nid)
        out = ops(migrated_database_url, "redrive", "failed", "--id", str(nid)).out
        assert f"refused: its fallback #{email} (sent) tells the patient on another channel" in out

    def test_since_selects_failed_notifications_not_yet_redriven(self, migrated_database_url: str, conn: Conn) -> None:
        """--since takes every failed notification since then, and none that is sent or already retried."""
        add_appointment(conn)
        failed = [add_notification(conn), add_notification(conn)]
        add_notification(conn, (*FAILED[:2], "sent"))
        ops(migrated_database_url, "redrive", "failed", "--id", str(failed[0]))
        out = ops(migrated_database_url, "redrive", "failed", "--since", "1h").out
        assert out.splitlines()[0].startswith(f"notification {failed[1]} (reminder · sms): redriven as")
        assert "1 redriven, 0 refused" in out

    def test_an_unknown_id_exits_1_and_writes_nothing(self, migrated_database_url: str, conn: Conn) -> None:
        """One unknown id among known ones: exit 1 naming it, no retry for the others either."""
        add_appointment(conn)
        nid = add_notification(conn)
        result = ops(migrated_database_url, "redrive", "failed", "--id", str(nid), "999")
        assert (result.code, result.err) == (1, "ops: no notification 999\n")
        assert one(conn, "SELECT count(*) AS n FROM notifications")["n"] == 1

    def test_a_selection_is_required(self, migrated_database_url: str) -> None:
        """Without --id or --since nothing is redriven: exit 2."""
        result = ops(migrated_database_url, "redrive", "failed")
        assert result.code == 2 and "--id" in result.err


# --- redrive dead-letters -------------------------------------------------------------------------


class TestRedriveDeadLetters:
    def test_our_event_is_re_armed_in_the_outbox(self, migrated_database_url: str, conn: Conn) -> None:
        """The published outbox row of the dead-lettered event is unpublished again; the letter is marked redriven."""
        letter = add_dead_letter(conn)
        outbox_id = add_published_outbox_row(conn, letter)
        out = ops(migrated_database_url, "redrive", "dead-letters", "--id", str(letter["id"])).out
        row = one(conn, "SELECT id, published_at, subject FROM outbox")
        assert (row["id"], row["published_at"], row["subject"]) == (outbox_id, None, "1")
        marked = one(conn, "SELECT redriven_at, redrives, redrive_outbox_id FROM dead_letters")
        assert marked["redriven_at"] is not None and (marked["redrives"], marked["redrive_outbox_id"]) == (1, outbox_id)
        assert f"re-staged as outbox row {outbox_id}" in out

    def test_an_event_no_longer_in_the_outbox_is_added_as_it_was(self, migrated_database_url: str, conn: Conn) -> None:
        """Same id, source, type and data: its consumer deduplicates it like any redelivery."""
        data = {"appointment_id": "apt-1", "appointment_version": 1, "local_date": "2026-12-03",
                "due_at": "2026-11-30T14:00:00Z", "late": False}  # fmt: skip
        letter = add_dead_letter(conn, ReminderDue.TYPE, event_source="/patient-notify/scheduler", data=data)
        ops(migrated_database_url, "redrive", "dead-letters", "--since", "1h")
        row = one(conn, "SELECT event_id, type, source, data, published_at FROM outbox")
        assert row == {"event_id": letter["event_id"], "type": ReminderDue.TYPE,
                       "source": "/patient-notify/scheduler", "data": data, "published_at": None}  # fmt: skip

    def test_the_publishers_next_drain_sends_it_again(self, migrated_database_url: str, conn: Conn) -> None:
        """After a redrive, Publisher.drain POSTs the same event id to the ingress."""
        letter = add_dead_letter(conn)
        add_published_outbox_row(conn, letter)
        ops(migrated_database_url, "redrive", "dead-letters", "--id", str(letter["id"]))
        posted: list[str] = []

        def ingress(request: httpx.Request) -> httpx.Response:
            posted.append(request.headers["ce-id"])
            return httpx.Response(202)

        async def drain() -> None:
            db = Database(migrated_database_url, max_size=1)
            async with httpx.AsyncClient(transport=httpx.MockTransport(ingress)) as client:
                await Publisher(db, "http://ingress.test/", client).drain(min_age_s=0)
            await db.close()

        asyncio.run(drain())
        assert posted == [letter["event_id"]]

    @pytest.mark.parametrize(("event_type", "data", "reason"), [
        ("dev.knative.sources.ping", {"job": "plan-reminders"}, "a tick: the next tick does its work"),
        (AppointmentChanged.TYPE, {"appointment_id": "apt-1"}, "signed by the appointment system"),
        (SmsSendRequested.TYPE, None, "its data was not JSON and was not kept"),
    ])  # fmt: skip
    def test_what_cannot_be_resent_is_refused(
        self, migrated_database_url: str, conn: Conn, event_type: str, data: dict[str, Any] | None, reason: str
    ) -> None:
        """Refused with the reason; the letter stays open and the outbox untouched."""
        letter = add_dead_letter(conn, event_type, data=data)
        out = ops(migrated_database_url, "redrive", "dead-letters", "--id", str(letter["id"])).out
        assert f"refused: {reason}" in out
        assert one(conn, "SELECT redriven_at FROM dead_letters")["redriven_at"] is None
        assert one(conn, "SELECT count(*) AS n FROM outbox")["n"] == 0

    def test_a_redriven_event_dead_lettered_again_is_seen_again(self, migrated_database_url: str, conn: Conn) -> None:
        """The dead-letter sink's second insert reopens the letter and its alert, however it was left."""
        letter = add_dead_letter(conn)
        key = f"dead-letter:{letter['event_source']}:{letter['event_id']}"
        add_alert(conn, "dead_letter", letter["event_id"], resolved=True, dedup_key=key)
        conn.execute("UPDATE alerts SET acknowledged_at = now()")
        ops(migrated_database_url, "redrive", "dead-letters", "--id", str(letter["id"]))
        params = {**{k: letter[k] for k in ("event_source", "event_id", "event_type", "error_dest")},
                  "error_code": "504", "data": Jsonb(letter["data"])}  # fmt: skip
        conn.execute(QUERIES["record_dead_letter"], params)
        row = one(conn, "SELECT count(*) AS n, bool_and(redriven_at IS NULL) AS open, max(error_code) AS code"
                        " FROM dead_letters")  # fmt: skip
        assert (row["n"], row["open"], row["code"]) == (1, True, "504")
        alert = one(conn, "SELECT resolved_at, acknowledged_at, occurrences FROM alerts")
        assert (alert["resolved_at"], alert["acknowledged_at"], alert["occurrences"]) == (None, None, 4)
        assert "dead letter" in ops(migrated_database_url, "redrive", "dead-letters", "--since", "1h", "--dry-run").out

    def test_a_dry_run_writes_nothing(self, migrated_database_url: str, conn: Conn) -> None:
        """--dry-run leaves the letter open and the outbox empty."""
        letter = add_dead_letter(conn)
        out = ops(migrated_database_url, "redrive", "dead-letters", "--id", str(letter["id"]), "--dry-run").out
        assert "would be re-staged" in out and "1 redriven, 0 refused" in out
        assert one(conn, "SELECT count(*) AS n FROM outbox")["n"] == 0

    def test_an_unknown_id_exits_1(self, migrated_database_url: str) -> None:
        """A dead letter the database does not hold: exit 1 naming it."""
        assert ops(migrated_database_url, "redrive", "dead-letters", "--id", "7").err == "ops: no dead letter 7\n"


# --- opt-out --------------------------------------------------------------------------------------


class TestOptOut:
    def test_lookup_shows_since_and_source_with_the_number_masked(self, migrated_database_url: str, conn: Conn) -> None:
        """An opted-out number: since when and why, shown masked and hashed, never in full."""
        conn.execute("INSERT INTO sms_opt_outs (number, source) VALUES (%s, 'keyword:STOP')", [PHONE])
        out = ops(migrated_database_url, "opt-out", PHONE).out
        assert out.startswith("+120••••••12 (sha256:") and "opted out since" in out and "(source keyword:STOP)" in out

    def test_add_then_remove(self, migrated_database_url: str, conn: Conn) -> None:
        """--add opts the number out by hand; --remove opts it back in; written as people write numbers."""
        added = ops(migrated_database_url, "opt-out", "+1 (202) 555-0112", "--add").out
        assert "opted out now (source manual:ops)" in added
        assert one(conn, "SELECT number FROM sms_opt_outs")["number"] == PHONE
        assert "opted back in" in ops(migrated_database_url, "opt-out", PHONE, "--remove").out
        assert ops(migrated_database_url, "opt-out", PHONE).out.endswith(": not opted out\n")

    def test_a_number_that_is_not_e164_exits_2(self, migrated_database_url: str) -> None:
        """Refused without echoing it."""
        result = ops(migrated_database_url, "opt-out", "202-555-0112")
        assert result.code == 2 and "E.164" in result.err


# --- errors ---------------------------------------------------------------------------------------


class TestDatabaseUrl:
    @pytest.mark.parametrize("environ", [
        {},  # unset
        {"DATABASE_URL": "mysql://db/x"},  # not PostgreSQL
        {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/none"},  # nothing listening
    ])  # fmt: skip
    def test_a_bad_url_exits_2_naming_the_variable(self, environ: dict[str, str]) -> None:
        """The message names DATABASE_URL; nothing on stdout."""
        result = ops("", "alerts", environ=environ)
        assert (result.code, result.out) == (2, "") and result.err.startswith("ops: DATABASE_URL: ")

    def test_a_database_without_our_schema_exits_2(self, empty_database_url: str) -> None:
        """An unmigrated database is named as such, with the fix."""
        result = ops(empty_database_url, "alerts")
        assert result.code == 2 and "holds no Patient Notify schema" in result.err and "task db:migrate" in result.err

    def test_a_database_behind_this_cli_exits_2(self, migrated_database_url: str, conn: Conn) -> None:
        """A schema older than the CLI's migrations is refused before any command runs."""
        conn.execute("DELETE FROM schema_migrations WHERE version = (SELECT max(version) FROM schema_migrations)")
        result = ops(migrated_database_url, "alerts")
        assert result.code == 2 and "is at migration" in result.err


class TestCommandLine:
    def test_python_dash_m_runs_it(self, migrated_database_url: str) -> None:
        """`python -m patient_notify.ops` reads DATABASE_URL from its environment and exits 0."""
        env = {**os.environ, "DATABASE_URL": migrated_database_url}
        command = [sys.executable, "-m", "patient_notify.ops", "alerts"]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)  # noqa: S603 - a fixed command
        assert (done.returncode, done.stdout) == (0, "no open alerts\n")

    @pytest.mark.parametrize(("argv", "code", "message"), [
        (["history", f"tel:{PHONE}"], 2, "invalid int value: 'tel:[phone]'"),  # a usage error, with the usage line
        (["history", PHONE], 1, "no notification [phone]"),  # int() takes "+1202...": an unknown id
    ])  # fmt: skip
    def test_errors_echo_what_was_typed_scrubbed(
        self, migrated_database_url: str, argv: list[str], code: int, message: str
    ) -> None:
        """A number typed in the wrong place is not echoed back in full."""
        result = ops(migrated_database_url, *argv)
        assert result.code == code and message in result.err
