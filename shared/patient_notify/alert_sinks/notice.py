"""What a sink is told about an alert: a frozen value built from its row, guarded against contact data.

A *notice* is one alert in one state (open or resolved), or a summary standing for many alerts of
one kind that changed in the same tick (a storm: a provider outage makes hundreds of
``delivery_unknown`` at once, and a person needs one page, not hundreds). The rows stay one per
incident in the database either way.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from itertools import groupby
from typing import Any, Literal

from patient_notify.domain.alerts import AlertState, redact_identifier
from patient_notify.redact import scrub

__all__ = ["AlertNotice", "notice_from_row", "summarise_storms"]

_SUMMARY_SUBJECTS = 5  # example subjects a summary names


@dataclass(frozen=True)
class AlertNotice:
    dedup_key: str
    kind: str
    severity: Literal["warning", "critical"]
    state: AlertState
    subject: str | None
    detail: str
    first_seen: datetime
    last_seen: datetime
    occurrences: int
    resolved_at: datetime | None
    alert_ids: tuple[int, ...]  # the rows this notice stands for: one, or a storm's many

    def __post_init__(self) -> None:
        # Rows written before the guard existed, or by hand, are guarded again on the way out.
        object.__setattr__(self, "dedup_key", redact_identifier(self.dedup_key))
        object.__setattr__(self, "subject", None if self.subject is None else redact_identifier(self.subject))
        object.__setattr__(self, "detail", scrub(self.detail))

    @property
    def summary(self) -> str:
        """One line for a pager or a chat message."""
        about = f" {self.subject}" if self.subject else ""
        return f"[{self.severity}] {self.kind}{about} {self.state}: {self.detail}"


def notice_from_row(row: Mapping[str, Any]) -> AlertNotice:
    resolved_at = row["resolved_at"]
    return AlertNotice(
        row["dedup_key"], row["kind"], row["severity"], "open" if resolved_at is None else "resolved",
        row["subject"], row["detail"], row["created_at"], row["last_seen_at"], int(row["occurrences"]),
        resolved_at, (int(row["id"]),),
    )  # fmt: skip


def summarise_storms(notices: Sequence[AlertNotice], threshold: int) -> list[AlertNotice]:
    """More than ``threshold`` notices of one kind and state become one summary notice."""
    out: list[AlertNotice] = []
    by_group = sorted(notices, key=lambda n: (n.kind, n.state))
    for (kind, state), group in groupby(by_group, key=lambda n: (n.kind, n.state)):
        members = list(group)
        out.extend(members if len(members) <= threshold else [_summary(kind, state, members)])
    return out


def _summary(kind: str, state: AlertState, members: Iterable[AlertNotice]) -> AlertNotice:
    members = list(members)
    subjects = ", ".join(str(m.subject) for m in members[:_SUMMARY_SUBJECTS] if m.subject)
    detail = f"{len(members)} {kind} alerts {'opened' if state == 'open' else 'resolved'}"
    detail += f" (e.g. {subjects})" if subjects else ""
    detail += f"; every one is a row in alerts, kind {kind}"
    first = members[0]
    return replace(
        first, dedup_key=f"{kind}:summary", subject=None, detail=detail,
        severity="critical" if any(m.severity == "critical" for m in members) else "warning",
        first_seen=min(m.first_seen for m in members), last_seen=max(m.last_seen for m in members),
        occurrences=sum(m.occurrences for m in members), alert_ids=tuple(i for m in members for i in m.alert_ids),
        resolved_at=max((m.resolved_at for m in members if m.resolved_at), default=None),
    )  # fmt: skip
