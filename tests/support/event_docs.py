"""Event docs in docs/events/: JSON Schemas generated from the models, hand-written examples.

For every type in ``EVENT_MODELS``: ``<type>.schema.json`` is generated from the pydantic model
(never edited by hand) and ``<type>.example.json`` is a complete structured CloudEvent written
by hand. ``python -m tests.support.event_docs --write`` regenerates the schemas; ``--check``
(``task check``, tests/unit/test_event_docs.py) lists every schema that is missing or differs
from the models (drift), every example that is missing or invalid, and every stray file.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema

from patient_notify.codec import decode_http, model_from_event
from patient_notify.errors import EventRejected
from patient_notify.events import EVENT_MODELS, AppointmentChanged, EventData
from patient_notify.signing import SIGNED_AT, verify_event

__all__ = [
    "DOCS_DIR",
    "EXAMPLE_SECRET",
    "check_docs",
    "example_path",
    "main",
    "schema_path",
    "schema_text",
    "write_schemas",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCS_DIR = REPO_ROOT / "docs" / "events"
SCHEMA_ID = "https://patientnotify.example.org/events/{type}.schema.json"
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
STRUCTURED = {"content-type": "application/cloudevents+json"}
# Documented in docs/events/README.md; the examples of signed types carry a signature made with it.
EXAMPLE_SECRET = b"example-secret-do-not-use-0123456789abcdef"
SIGNED_TYPES = frozenset({AppointmentChanged.TYPE})
REQUIRED_ATTRIBUTES = ("specversion", "id", "source", "type", "time", "datacontenttype", "data")

Models = Mapping[str, type[EventData]]


def schema_path(docs_dir: Path, event_type: str) -> Path:
    return docs_dir / f"{event_type}.schema.json"


def example_path(docs_dir: Path, event_type: str) -> Path:
    return docs_dir / f"{event_type}.example.json"


def schema_for(event_type: str, model: type[EventData]) -> dict[str, Any]:
    schema = model.model_json_schema()
    return {**schema, "$schema": SCHEMA_DIALECT, "$id": SCHEMA_ID.format(type=event_type), "title": event_type}


def schema_text(event_type: str, model: type[EventData]) -> str:
    return json.dumps(schema_for(event_type, model), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_schemas(docs_dir: Path = DOCS_DIR, models: Models = EVENT_MODELS) -> list[Path]:
    """Write every schema that differs from its model; the paths written."""
    docs_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for event_type, model in sorted(models.items()):
        path, text = schema_path(docs_dir, event_type), schema_text(event_type, model)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


def check_docs(docs_dir: Path = DOCS_DIR, models: Models = EVENT_MODELS) -> list[str]:
    """Every problem, one string each naming the file; empty when the docs match the models."""
    problems = [problem for event_type in sorted(models) for problem in _check_type(docs_dir, event_type, models)]
    return problems + _stray_files(docs_dir, models)


def _check_type(docs_dir: Path, event_type: str, models: Models) -> list[str]:
    schema_file, example_file = schema_path(docs_dir, event_type), example_path(docs_dir, event_type)
    problems = []
    if not schema_file.exists():
        problems.append(f"{schema_file.name}: missing (run python -m tests.support.event_docs --write)")
    elif schema_file.read_text(encoding="utf-8") != schema_text(event_type, models[event_type]):
        problems.append(f"{schema_file.name}: differs from the model (run python -m tests.support.event_docs --write)")
    if not example_file.exists():
        return [*problems, f"{example_file.name}: missing (write one by hand: see README.md)"]
    return problems + [f"{example_file.name}: {p}" for p in example_problems(example_file, event_type, models)]


def example_problems(path: Path, event_type: str, models: Models = EVENT_MODELS) -> list[str]:
    """Why the example is not a valid structured CloudEvent of ``event_type``; empty if it is."""
    body = path.read_bytes()
    try:
        raw = json.loads(body)
        if not isinstance(raw, dict):  # decode_http raises AttributeError on a JSON array or string
            return ["not a structured CloudEvent: not a JSON object"]
        event = decode_http(STRUCTURED, body)
    except (ValueError, EventRejected) as exc:
        return [f"not a structured CloudEvent: {exc}"]
    problems = [f"no {name!r} attribute" for name in REQUIRED_ATTRIBUTES if name not in raw]
    if event.get_type() != event_type:
        problems.append(f"type is {event.get_type()!r}, the file name says {event_type!r}")
    problems += _schema_problems(raw.get("data"), schema_for(event_type, models[event_type]))
    try:
        model_from_event(event, models[event_type])
        if event_type in SIGNED_TYPES:
            verify_event(event, [EXAMPLE_SECRET], now=_signed_at(raw))
    except EventRejected as exc:
        problems.append(exc.reason)
    return problems


def _schema_problems(data: object, schema: Mapping[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
    return [f"data{_where(error.absolute_path)}: {error.message}" for error in validator.iter_errors(data)]


def _signed_at(raw: Mapping[str, Any]) -> datetime:
    """The example's own signing time: its signature is checked as if it had just been sent."""
    try:
        signed_at = datetime.fromisoformat(str(raw.get(SIGNED_AT)))
    except ValueError:
        signed_at = None
    # Without a usable pnsignedat, verify_event reports what is wrong with it.
    return signed_at if signed_at and signed_at.tzinfo else datetime.now(UTC)


def _stray_files(docs_dir: Path, models: Models) -> list[str]:
    documented = {path.name for t in models for path in (schema_path(docs_dir, t), example_path(docs_dir, t))}
    found = [*docs_dir.glob("*.schema.json"), *docs_dir.glob("*.example.json")]
    return [f"{path.name}: not an event type in EVENT_MODELS" for path in sorted(found) if path.name not in documented]


def _relative(path: Path) -> str:
    resolved = path.resolve()
    return str(resolved.relative_to(REPO_ROOT) if resolved.is_relative_to(REPO_ROOT) else resolved)


def _where(path: Sequence[object]) -> str:
    return "".join(f"[{part!r}]" for part in path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.support.event_docs", description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help="regenerate the schemas from the models")
    mode.add_argument("--check", action="store_true", help="fail on drift, missing or invalid files")
    parser.add_argument("--docs-dir", type=Path, default=DOCS_DIR, help="default: docs/events")
    args = parser.parse_args(argv)
    if args.write:
        written = write_schemas(args.docs_dir)
        sys.stdout.write("".join(f"wrote {_relative(path)}\n" for path in written) or "schemas up to date\n")
    problems = check_docs(args.docs_dir)
    sys.stderr.write("".join(f"error: {_relative(args.docs_dir)}/{problem}\n" for problem in problems))
    if problems:
        sys.stderr.write(f"{len(problems)} problem(s) in the event docs\n")
        return 1
    sys.stdout.write(f"event docs OK: {len(EVENT_MODELS)} types, schemas match the models, examples valid\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
