"""Which step of the all-in-one function takes an event: the split Triggers' routing, as code.

In the split deployment each Trigger delivers one event type (ticks: one PingSource) to one
function; in the all-in-one deployment every Trigger delivers to the one Service, which routes
here. ``task check`` compares this table with the Triggers in knative/ (check_all_in_one_routing),
so the two deployments cannot drift apart.
"""

from __future__ import annotations

from patient_notify.events import (
    PING,
    AppointmentChanged,
    ChangeNoticeDue,
    EmailSendRequested,
    ReminderDue,
    SmsSendRequested,
)

__all__ = ["DEAD_LETTER_STEP", "FALLBACK_STEP", "STEPS", "step_for"]

STEPS = ("etl", "scheduler", "dispatcher", "sms-sender", "email-sender", "monitor")
STEP_FOR_TYPE = {
    ReminderDue.TYPE: "dispatcher",
    ChangeNoticeDue.TYPE: "dispatcher",
    AppointmentChanged.TYPE: "dispatcher",
    SmsSendRequested.TYPE: "sms-sender",
    EmailSendRequested.TYPE: "email-sender",
}
STEP_FOR_PINGSOURCE = {"scheduler-tick": "scheduler", "etl-tick": "etl", "monitor-tick": "monitor"}
# Every Trigger's dead-letter sink is the dispatcher, which records dead letters.
DEAD_LETTER_STEP = "dispatcher"
# What no step takes (a tick from an unknown PingSource, an unknown type, a request that is not
# a CloudEvent) still goes to a step, which keeps it in rejected_events and answers 202.
FALLBACK_STEP = "dispatcher"
_PINGSOURCES = "/pingsources/"


def step_for(event_type: str, source: str, *, dead_letter: bool = False) -> str:
    """The step for an event's type and source; dead letters (``knativeerrordest``) first."""
    if dead_letter:
        return DEAD_LETTER_STEP
    if event_type == PING:
        _, found, name = source.rpartition(_PINGSOURCES)
        return STEP_FOR_PINGSOURCE.get(name, FALLBACK_STEP) if found else FALLBACK_STEP
    return STEP_FOR_TYPE.get(event_type, FALLBACK_STEP)
