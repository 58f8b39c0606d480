"""docs/events/: a schema generated from each model and a valid hand-written example, for every type."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from patient_notify.codec import decode_http, model_from_event
from patient_notify.events import EVENT_MODELS, AppointmentChanged, EventData, ReminderDue
from patient_notify.signing import SignatureExpired, verify_event
from tests.support.event_docs import (
    DOCS_DIR,
    EXAMPLE_SECRET,
    STRUCTURED,
    check_docs,
    example_path,
    main,
    schema_path,
    schema_text,
)

TYPES = sorted(EVENT_MODELS)
DUE = {
    "appointment_id": "apt-20481",
    "appointment_version": 3,
    "local_date": "2026-12-03",
    "due_at": "2026-12-02T14:30:00Z",
}


@pytest.fixture
def docs_copy(tmp_path: Path) -> Path:
    """A scratch copy of docs/events to break on purpose."""
    return Path(shutil.copytree(DOCS_DIR, tmp_path / "events"))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


class TestEveryTypeIsDocumented:
    @pytest.mark.parametrize("event_type", TYPES)
    def test_schema_and_example_exist(self, event_type: str) -> None:
        """Each type the system accepts or emits has a schema and an example beside it."""
        assert schema_path(DOCS_DIR, event_type).is_file() and example_path(DOCS_DIR, event_type).is_file()

    def test_the_readme_lists_every_type(self) -> None:
        """docs/events/README.md names every type, so a new one cannot go undocumented."""
        readme = (DOCS_DIR / "README.md").read_text(encoding="utf-8")
        assert [t for t in TYPES if f"`{t}`" not in readme] == []

    def test_the_docs_check_passes(self) -> None:
        """``python -m tests.support.event_docs --check`` (task check) finds nothing wrong."""
        assert check_docs() == []


class TestSchemas:
    @pytest.mark.parametrize("event_type", TYPES)
    def test_schema_file_is_what_the_model_generates(self, event_type: str) -> None:
        """A schema file is never edited by hand: it equals the generated text, byte for byte."""
        text = schema_path(DOCS_DIR, event_type).read_text(encoding="utf-8")
        assert text == schema_text(event_type, EVENT_MODELS[event_type])

    def test_schema_identifies_itself(self) -> None:
        """Each schema declares draft 2020-12, a stable $id and the event type as its title."""
        schema = read_json(schema_path(DOCS_DIR, ReminderDue.TYPE))
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"] == f"https://patientnotify.example.org/events/{ReminderDue.TYPE}.schema.json"
        assert schema["title"] == ReminderDue.TYPE
        jsonschema.Draft202012Validator.check_schema(schema)

    def test_a_hand_edited_schema_is_drift(self, docs_copy: Path) -> None:
        """Editing a schema file instead of the model is reported, naming the file."""
        path = schema_path(docs_copy, ReminderDue.TYPE)
        path.write_text(path.read_text(encoding="utf-8").replace('"minimum": 1', '"minimum": 0'), encoding="utf-8")
        assert check_docs(docs_copy) == [
            f"{path.name}: differs from the model (run python -m tests.support.event_docs --write)"
        ]

    def test_a_changed_model_is_drift(self, docs_copy: Path) -> None:
        """Changing a model without regenerating its schema is reported."""

        class ReminderDueWithChannel(ReminderDue):
            channel_hint: str | None = None

        models: dict[str, type[EventData]] = {**EVENT_MODELS, ReminderDue.TYPE: ReminderDueWithChannel}
        assert check_docs(docs_copy, models) == [
            f"{ReminderDue.TYPE}.schema.json: differs from the model (run python -m tests.support.event_docs --write)"
        ]

    @pytest.mark.parametrize(
        ("removed", "problem"),
        [
            (f"{ReminderDue.TYPE}.schema.json", "missing (run python -m tests.support.event_docs --write)"),
            (f"{ReminderDue.TYPE}.example.json", "missing (write one by hand: see README.md)"),
        ],
    )
    def test_a_missing_file_is_reported(self, docs_copy: Path, removed: str, problem: str) -> None:
        """A type without its schema or its example fails the check."""
        (docs_copy / removed).unlink()
        assert check_docs(docs_copy) == [f"{removed}: {problem}"]

    def test_a_file_for_an_unknown_type_is_reported(self, docs_copy: Path) -> None:
        """Docs left behind by a removed type are reported too."""
        (docs_copy / "org.patientnotify.retired.v1.example.json").write_text("{}", encoding="utf-8")
        assert check_docs(docs_copy) == ["org.patientnotify.retired.v1.example.json: not an event type in EVENT_MODELS"]

    def test_write_regenerates_and_check_then_passes(self, docs_copy: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """``--check`` exits 1 naming the drifted file; ``--write`` fixes it; ``--check`` exits 0."""
        schema_path(docs_copy, AppointmentChanged.TYPE).write_text("{}\n", encoding="utf-8")
        assert main(["--check", "--docs-dir", str(docs_copy)]) == 1
        assert f"{AppointmentChanged.TYPE}.schema.json: differs" in capsys.readouterr().err
        assert main(["--write", "--docs-dir", str(docs_copy)]) == 0
        assert main(["--check", "--docs-dir", str(docs_copy)]) == 0


class TestExamples:
    @pytest.mark.parametrize("event_type", TYPES)
    def test_example_decodes_into_its_model(self, event_type: str) -> None:
        """Each example is a structured CloudEvent our codec accepts and its model validates."""
        event = decode_http(STRUCTURED, example_path(DOCS_DIR, event_type).read_bytes())
        assert event.get_type() == event_type
        model_from_event(event, EVENT_MODELS[event_type])

    @pytest.mark.parametrize("event_type", TYPES)
    def test_example_data_validates_against_its_schema_file(self, event_type: str) -> None:
        """A consumer validating with the published schema alone accepts the example's data."""
        schema = read_json(schema_path(DOCS_DIR, event_type))
        validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
        validator.validate(read_json(example_path(DOCS_DIR, event_type))["data"])

    @pytest.mark.parametrize(
        ("change", "problem"),
        [
            (
                {"data": {**DUE, "appointment_version": 0}},
                "data['appointment_version']: 0 is less than the minimum of 1",
            ),  # schema (and model)
            (
                {"data": {**DUE, "late": "no"}},
                "'no' is not of type 'boolean'",
            ),  # lax pydantic accepts it, the schema does not
            ({"type": "org.patientnotify.sms.send.v1"}, "type is 'org.patientnotify.sms.send.v1'"),  # wrong file
            ({"time": None}, "no 'time' attribute"),  # incomplete CloudEvent
            ({"specversion": "0.2"}, "not a structured CloudEvent"),  # not decodable
        ],
    )
    def test_an_invalid_example_is_reported(self, docs_copy: Path, change: dict[str, Any], problem: str) -> None:
        """A broken example is reported with what is wrong, naming the file."""
        path = example_path(docs_copy, ReminderDue.TYPE)
        example = {k: v for k, v in {**read_json(path), **change}.items() if v is not None}
        path.write_text(json.dumps(example), encoding="utf-8")
        assert any(p.startswith(path.name) and problem in p for p in check_docs(docs_copy)), check_docs(docs_copy)

    def test_an_example_that_is_not_an_object_is_reported(self, docs_copy: Path) -> None:
        """Valid JSON that is not an object (an array) is reported, not a crash."""
        path = example_path(docs_copy, ReminderDue.TYPE)
        path.write_text("[]", encoding="utf-8")
        assert check_docs(docs_copy) == [f"{path.name}: not a structured CloudEvent: not a JSON object"]

    def test_the_signed_example_is_a_test_vector(self) -> None:
        """appointment.changed's example verifies with the documented example secret at its own pnsignedat."""
        raw = read_json(example_path(DOCS_DIR, AppointmentChanged.TYPE))
        event = decode_http(STRUCTURED, json.dumps(raw).encode())
        verify_event(event, [EXAMPLE_SECRET], now=datetime.fromisoformat(raw["pnsignedat"]))

    def test_the_signed_example_cannot_be_replayed_today(self) -> None:
        """Sent now, the example is refused as expired, as docs/events/README.md warns."""
        event = decode_http(STRUCTURED, example_path(DOCS_DIR, AppointmentChanged.TYPE).read_bytes())
        with pytest.raises(SignatureExpired):
            verify_event(event, [EXAMPLE_SECRET], now=datetime.now(UTC))

    def test_a_tampered_signed_example_is_reported(self, docs_copy: Path) -> None:
        """Editing the signed example without re-signing it fails the check."""
        path = example_path(docs_copy, AppointmentChanged.TYPE)
        path.write_text(
            path.read_text(encoding="utf-8").replace('"source_version": 7', '"source_version": 8'), encoding="utf-8"
        )
        assert check_docs(docs_copy) == [
            f"{path.name}: signature matches no configured secret: forged, altered or wrong key"
        ]
