"""``python -m patient_notify.db``: apply pending migrations to DATABASE_URL."""

from __future__ import annotations

import sys

from patient_notify.db.migrate import main

sys.exit(main())
