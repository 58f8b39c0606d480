"""The patient API failing 10% of calls (500, 503, stalls, dropped connections) through a full day.

The ETL loads the hospital's appointments on its PingSource (every 15 minutes) from the sandbox
FHIR API while it fails one call in ten; the scheduler's PingSource plans reminders through the
same simulated day, an hour at a time. Nothing may be missing from the cache, and every
appointment whose reminder fell due in the day must be reminded once on each channel it can be:
one notification, sent, and one message at the provider.
"""

from __future__ import annotations

from collections import Counter
from contextlib import ExitStack
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

from sandbox.patient_api import PatientApiStandIn
from sandbox.patient_population import Population
from sandbox.pingsources import PingScheduler, load_pingsources
from sandbox.processes import ROOT
from sandbox.ses import SesStandIn
from tests.faults.conftest import Figures
from tests.faults.harness import PIPELINE, start_system

APPOINTMENTS = 900
FAILURE_RATE = 0.1
ETL = {"ETL_SOURCE": "fhir", "ETL_DEFAULT_ZONE": "America/Chicago", "ETL_TIMEOUT_S": "0.5",
       "ETL_MAX_BACKOFF_S": "0.2"}  # fmt: skip


class TestFlakyPatientApi:
    def test_a_day_at_ten_percent_failures_reminds_every_appointment_once(
        self, migrated_database_url: str, ses: SesStandIn, tmp_path: Path, figures: Figures
    ) -> None:
        """Every appointment cached despite the faults; every reminder due in the day sent exactly once."""
        day = (datetime.now(UTC) + timedelta(days=1)).date()
        midnight = datetime.combine(day, time(0), UTC)
        # Over the three days from noon three days on: about a third fall due during the day.
        population = Population.generate(APPOINTMENTS, seed=5, start=midnight + timedelta(days=3, hours=12),
                                         horizon_days=3)  # fmt: skip
        with ExitStack() as stack:
            api = stack.enter_context(PatientApiStandIn(population, failure_rate=FAILURE_RATE, seed=5, stall_s=1.0,
                                                        retry_after_s=1))  # fmt: skip
            system = start_system(stack, migrated_database_url, ses, tmp_path, functions=("etl", *PIPELINE),
                                  settings={"etl": {**ETL, "ETL_SOURCE_URL": api.fhir_url}})  # fmt: skip
            sources = [s for s in load_pingsources(ROOT / "knative") if s.name in ("etl-tick", "scheduler-tick")]
            pings = PingScheduler(sources, system.broker.ingress_url, since=midnight - timedelta(seconds=1))
            for hour in range(24):
                pings.catch_up(midnight + timedelta(hours=hour, minutes=59, seconds=59))
                assert system.broker.wait_idle(300), f"the system did not settle in hour {hour}"

            cached = {row[0] for row in system.rows("SELECT id FROM appointments")}
            due = {row[0] for row in system.rows(
                "SELECT id FROM appointments WHERE status = 'booked' AND reminder_due_at < %s", midnight + timedelta(days=1)
            )}  # fmt: skip
            handled = {
                row[0] for row in system.rows("SELECT id FROM appointments WHERE reminder_handled_at IS NOT NULL")
            }
            reminders = Counter(
                (a, c) for a, c, s in system.rows("SELECT appointment_id, channel, status FROM notifications") if s == "sent"
            )  # fmt: skip
            statuses = system.table("SELECT status, count(*) FROM notifications GROUP BY 1")
            unreachable = {row[0] for row in system.rows("SELECT subject FROM alerts WHERE kind = 'no_usable_contact'")}
            sent = system.sent()
            figures(appointments=APPOINTMENTS, api_requests=api.requests, api_faults=dict(api.faults),
                    due=len(due), reminders=len(reminders), statuses=statuses, at_providers=sum(sent.values()),
                    etl_ticks=sum(1 for name, _ in pings.fired if name == "etl-tick"),
                    broker_retries=dict(system.broker.stats.retried))  # fmt: skip
            assert api.failures_injected >= 0.05 * api.requests, "the API did not fail as configured"
            assert cached == set(population.ids()), (
                f"missing from the cache: {sorted(set(population.ids()) - cached)[:5]}"
            )
            assert due and due <= handled, f"due, never planned: {sorted(due - handled)[:5]}"
            reminded = {a for a, _ in reminders}
            assert due <= reminded | unreachable, f"due, not reminded: {sorted(due - reminded - unreachable)[:5]}"
            assert reminded <= due, "a reminder for an appointment not due today"
            assert statuses == {"sent": len(reminders)} and max(reminders.values()) == 1
            assert sum(sent.values()) == len(reminders) and max(sent.values()) == 1, "a reminder went out twice"
            assert (system.broker.stats.dropped, system.broker.stats.dead_lettered) == ([], [])
