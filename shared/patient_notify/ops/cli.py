"""The ops CLI's composition root and the one place errors become exit codes.

    DATABASE_URL=postgresql://... python -m patient_notify.ops <command> [options]

Exit codes: 0 done; 1 an id or appointment the database does not hold, or a database error;
2 a usage error, or DATABASE_URL missing, malformed, unreachable or not migrated.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import NoReturn, TextIO

from patient_notify.errors import ConfigError, DatabaseError, DatabaseUnavailable
from patient_notify.ops import alerts, delivery_rate, history, opt_out, redrive
from patient_notify.ops.errors import BadArgument, NotFound, SchemaBehind
from patient_notify.ops.session import connect
from patient_notify.redact import scrub
from patient_notify.settings import database_url_from

__all__ = ["main", "run"]

PROG = "python -m patient_notify.ops"
DESCRIPTION = "Operate Patient Notify: reports, redrives and opt-outs (DATABASE_URL names the database)."


class _Parser(argparse.ArgumentParser):
    """Usage errors go where every other error goes: to ``run``'s stderr, exit 2."""

    def error(self, message: str) -> NoReturn:
        raise BadArgument(self.prog, f"{message}\n{self.format_usage().rstrip()}")


def run(argv: Sequence[str], *, environ: Mapping[str, str], stdout: TextIO, stderr: TextIO, now: datetime) -> int:
    try:
        args = _parser().parse_args(argv)
        url = database_url_from(environ)
        stdout.write(asyncio.run(_execute(url, args, now)))
    except (ConfigError, SchemaBehind) as exc:
        return _fail(stderr, str(exc), 2)
    except DatabaseUnavailable as exc:  # not scrubbed: host addresses look like phone numbers to scrub()
        return _fail(stderr, f"DATABASE_URL: cannot connect: {exc}", 2)
    # Scrubbed: a usage error or an unknown id can echo a number typed in the wrong place, and a
    # driver's message can quote a row.
    except BadArgument as exc:
        return _fail(stderr, scrub(str(exc)), 2)
    except NotFound as exc:
        return _fail(stderr, scrub(str(exc)), 1)
    except DatabaseError as exc:
        return _fail(stderr, f"database error: {scrub(str(exc))}", 1)
    return 0


def main() -> int:
    environ = os.environ  # noqa: TID251  a command's composition root reads its environment
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(errors="replace")  # a masked "•" must not crash an ASCII terminal
    return run(sys.argv[1:], environ=environ, stdout=sys.stdout, stderr=sys.stderr, now=datetime.now(UTC))


async def _execute(url: str, args: argparse.Namespace, now: datetime) -> str:
    async with connect(url) as session:
        output: str = await args.handler(session, args, now)
    return output


def _fail(stderr: TextIO, message: str, code: int) -> int:
    stderr.write(f"ops: {message}\n")
    return code


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description=DESCRIPTION)
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")  # of the same class
    for module in (delivery_rate, history, alerts, redrive, opt_out):
        module.register(commands)
    return parser


if __name__ == "__main__":
    sys.exit(main())
