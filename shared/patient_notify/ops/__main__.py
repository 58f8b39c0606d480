"""``python -m patient_notify.ops``."""

from __future__ import annotations

import sys

from patient_notify.ops.cli import main

sys.exit(main())
