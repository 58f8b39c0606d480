"""What an ops command refuses.

    PatientNotifyError
    └── OpsError
        ├── NotFound        an id or appointment the database does not hold (exit 1)
        ├── BadArgument     an argument the parser took but the command cannot use (exit 2)
        └── SchemaBehind    DATABASE_URL's schema is older than this CLI, or not ours (exit 2)

``patient_notify.ops.cli`` maps each to its exit code, in one place.
"""

from __future__ import annotations

from collections.abc import Sequence

from patient_notify.errors import PatientNotifyError

__all__ = ["BadArgument", "NotFound", "OpsError", "SchemaBehind"]


class OpsError(PatientNotifyError):
    """Base of the ops CLI's refusals."""


class NotFound(OpsError):
    def __init__(self, what: str, keys: Sequence[object]) -> None:
        super().__init__(f"no {what} {', '.join(str(k) for k in keys)}")
        self.what = what
        self.keys = tuple(keys)


class BadArgument(OpsError):
    def __init__(self, option: str, reason: str) -> None:
        super().__init__(f"{option}: {reason}")
        self.option = option
        self.reason = reason


class SchemaBehind(OpsError):
    def __init__(self, found: int, needed: int) -> None:
        reason = "holds no Patient Notify schema" if found == 0 else f"is at migration {found}, this CLI needs {needed}"
        super().__init__(f"DATABASE_URL: the database {reason} (apply migrations: task db:migrate)")
        self.found = found
        self.needed = needed
