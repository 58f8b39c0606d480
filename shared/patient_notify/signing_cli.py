"""Sign an appointment-system event by hand: for operators, tests and the docs.

    APPOINTMENT_EVENTS_SECRET=... python -m patient_notify.signing_cli sign \
        --secret-env APPOINTMENT_EVENTS_SECRET [--binary] < event.json

Reads one structured CloudEvent (JSON) on stdin, sets a fresh ``pnsignedat`` (now) and
``pnsignature`` (``patient_notify.signing``), and prints the signed event as structured JSON or,
with ``--binary``, as curl arguments: one ``-H 'ce-…: …'`` per attribute and ``--data-binary``
with the data, each line ending in `` \\`` so it pastes after ``curl -i URL \\``. The secret is
read from the named environment variable only: a secret on the command line would end up in
shell history and the process list.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TextIO

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.http import to_binary_event
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.formats.json import JSONFormat

from patient_notify.signing import sign_event

__all__ = ["main", "run"]

DESCRIPTION = "Sign an appointment-system CloudEvent (HMAC-SHA256, see patient_notify.signing)."


def run(argv: Sequence[str], *, environ: Mapping[str, str], stdin: TextIO, stdout: TextIO, now: datetime) -> int:
    args = _parser().parse_args(argv)
    secret = environ.get(args.secret_env, "")
    if not secret:  # the name is not echoed: a secret pasted in its place must not reach a log
        raise SystemExit("sign: the variable named by --secret-env is not set or is empty")
    try:
        event = JSONFormat().read(None, stdin.read())
    except (BaseCloudEventException, ValueError, TypeError, KeyError) as exc:
        raise SystemExit(f"sign: stdin is not a structured CloudEvent: {exc}") from exc
    try:
        signed = sign_event(event, secret.encode(), now=now)
    except ValueError as exc:
        raise SystemExit(f"sign: cannot sign this event: {exc}") from exc
    stdout.write(_curl_arguments(signed) if args.binary else _structured(signed))
    return 0


def main() -> int:
    environ = os.environ  # noqa: TID251  this CLI is its own composition root; the secret never travels in argv
    return run(sys.argv[1:], environ=environ, stdin=sys.stdin, stdout=sys.stdout, now=datetime.now(UTC))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m patient_notify.signing_cli", description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True)
    sign = commands.add_parser("sign", help="sign the structured CloudEvent read on stdin")
    sign.add_argument("--secret-env", required=True, metavar="NAME", help="environment variable holding the secret")
    sign.add_argument("--binary", action="store_true", help="print curl arguments for binary mode")
    return parser


def _structured(event: BaseCloudEvent) -> str:
    return json.dumps(json.loads(JSONFormat().write(event)), indent=2, ensure_ascii=False) + "\n"


def _curl_arguments(event: BaseCloudEvent) -> str:
    message = to_binary_event(event)
    lines = [f"-H {shlex.quote(f'{name}: {value}')}" for name, value in message.headers.items()]
    lines.append(f"--data-binary {shlex.quote(message.body.decode())}")
    return " \\\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
