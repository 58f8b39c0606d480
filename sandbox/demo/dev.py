"""``task dev``: the demo's system left running on the wall clock, with its URLs, for events sent by hand.

The PingSources fire on their real schedules (scheduler and monitor every 5 minutes, ETL every
15); one ETL pass runs at start. Twilio posts a status callback a second after each step of a
message, and SES's events reach the webhooks function through the signed SNS stand-in. The
hospital's appointments begin three days from now, so reminders fall due in the coming hours as
each zone reaches 09:00. A small HTTP server lists what the stand-ins accepted: ``GET /sms`` and
``GET /email`` (JSON).
"""

from __future__ import annotations

import json
import signal
import threading
import warnings
from contextlib import ExitStack
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from sandbox.demo.database import open_database
from sandbox.demo.script import population_for
from sandbox.demo.system import EVENTS_SECRET, DemoOptions, DemoSystem, start_system

__all__ = ["serve_forever"]


def serve_forever(options: DemoOptions) -> int:
    with ExitStack() as stack:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # platformdirs warns that XDG_RUNTIME_DIR is unset
            database = open_database(options.data_dir, options.database_url)
        stack.callback(database.close)
        now = datetime.now(UTC)
        system = start_system(stack, options, database, population_for(options.appointments, now.date(), options.seed))
        pings = system.pingsources(since=now)
        pings.fire("etl-tick", now)
        pings.start()
        stack.callback(pings.stop)
        outbox = _outbox_server(system)
        stack.callback(outbox.shutdown)
        print(_banner(system, f"http://127.0.0.1:{outbox.server_address[1]}"), flush=True)
        stopped = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stopped.set())
        signal.signal(signal.SIGINT, lambda *_: stopped.set())
        stopped.wait()
        print("Stopping ...", flush=True)
    return 0


def _banner(system: DemoSystem, outbox: str) -> str:
    functions = "\n".join(f"    {name:<13} {process.url}" for name, process in system.functions.items())
    return f"""
Patient Notify is running (Ctrl-C to stop). Database: {system.database.url}

  broker ingress    {system.broker.ingress_url}
  patient API       {system.api.fhir_url} (FHIR R4) · {system.api.json_url} (JSON)
  Twilio stand-in   {system.twilio.base_url}
  webhooks (public) {system.webhooks_url}/twilio/status · /twilio/inbound · /ses/events
  sent messages     {outbox}/sms · {outbox}/email
  function logs     {system.logs}/
  functions
{functions}

Move an appointment (the change is signed with the demo's secret, then posted to the ingress):
  echo '{{"specversion":"1.0","id":"my-1","source":"/hospital/appointments",
    "type":"org.patientnotify.appointment.changed.v1","subject":"appt-1","datacontenttype":"application/json",
    "data":{{"appointment_id":"appt-1","source_version":9,"reason":"cancelled",
             "starts_at":"2030-01-01T09:00:00Z","location_id":"loc-1","status":"cancelled"}}}}' \\
  | APPOINTMENT_EVENTS_SECRET={EVENTS_SECRET} uv run python -m patient_notify.signing_cli sign \\
      --secret-env APPOINTMENT_EVENTS_SECRET \\
  | curl -sS -i {system.broker.ingress_url} -H 'content-type: application/cloudevents+json' --data-binary @-
"""


def _outbox_server(system: DemoSystem) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            sent = {"/sms": system.sent_sms, "/email": system.sent_email}.get(self.path)
            listing = [{"to": to, "text": text} for to, text in sent()] if sent else {"routes": ["/sms", "/email"]}
            body = json.dumps(listing, ensure_ascii=False, indent=1).encode()
            self.send_response(200 if sent else 404)
            self.send_header("content-type", "application/json; charset=utf-8")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass  # the lists hold (synthetic) patient contacts: not for a log

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, name="demo-outbox", daemon=True).start()
    return server
