"""PostgreSQL access: one narrow port over psycopg 3, named SQL, migrations.

Driver errors are translated once, here, into ``patient_notify.errors.Database*``.
"""

from __future__ import annotations

from patient_notify.db.database import Database, Transaction
from patient_notify.db.migrate import migrate
from patient_notify.db.queries import QUERIES

__all__ = ["QUERIES", "Database", "Transaction", "migrate"]
