"""The operators' command line: ``python -m patient_notify.ops <command>`` against DATABASE_URL.

    delivery-rate   delivery rate by day and channel (``--json`` for machines)
    history         one notification's full story, or every notification of an appointment
    alerts          open alerts (``--all``: resolved ones too)
    redrive         retry failed notifications (as new, linked ones) or re-send dead letters
    opt-out         look up, add or remove an SMS opt-out

Nothing it prints holds a full phone number or email address: recipients are masked
(``patient_notify.ops.masking``), free text is scrubbed, provider payloads are never read.
"""

from __future__ import annotations

from patient_notify.ops.cli import main, run

__all__ = ["main", "run"]
