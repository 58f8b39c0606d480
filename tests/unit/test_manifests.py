"""Knative manifests under knative/ and every func.yaml, validated offline.

Schemas (tests/schemas/) catch shape errors; the hand checks in tests/support/manifests.py
catch what a schema cannot say (the RabbitMQ broker's rules, cron, durations, the retry
budget, references between files). TestChecksAreNotVacuous breaks a copy of the project in
one place per row and expects the matching check to fail.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import manifests as m

PROJECT = m.load_project()
TRIGGERS = PROJECT.of_kind("Trigger")
PINGSOURCES = PROJECT.of_kind("PingSource")
FUNCS = {func.name: func for func in PROJECT.funcs}

KNOWN_EVENT_TYPES = m.KNOWN_EVENT_TYPES  # the shared library's event catalogue

# What each function's code reads from the environment (the list).
COMMON_ENV = {"DATABASE_URL", "BROKER_URL", "LOG_LEVEL"}
SMS_ENV = {
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "TWILIO_FROM_NUMBER",
    "TWILIO_MESSAGING_SERVICE_SID",
    "TWILIO_BASE_URL",
}
EMAIL_ENV = {
    "EMAIL_PROVIDER",
    "EMAIL_FROM",
    "SES_REGION",
    "SES_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "SMTP_HOST",
    "SMTP_PORT",
}
SECRET_ENV = {
    "DATABASE_URL",
    "TWILIO_ACCOUNT_SID",
    "TWILIO_AUTH_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "ETL_SOURCE_TOKEN",
    "APPOINTMENT_EVENTS_SECRET",
    "APPOINTMENT_EVENTS_PREVIOUS_SECRET",
}
ETL_ENV = {"ETL_SOURCE", "ETL_SOURCE_URL", "ETL_DEFAULT_ZONE"}
NOTICE_ENV = {"APPOINTMENT_EVENTS_SECRET", "NOTICE_QUIET_START", "NOTICE_QUIET_END", "NOTICE_URGENT_HOURS"}
REQUIRED_ENV = {
    "etl": COMMON_ENV | ETL_ENV,
    "scheduler": COMMON_ENV,
    "dispatcher": COMMON_ENV | NOTICE_ENV,
    "sms-sender": COMMON_ENV | SMS_ENV,
    "email-sender": COMMON_ENV | EMAIL_ENV,
    "patient-notify": COMMON_ENV | SMS_ENV | EMAIL_ENV | ETL_ENV | NOTICE_ENV,
}
# (min, max) scale per function: None = no bound required.
SCALE = {
    "etl": (None, 1),  # one pass at a time (the ledger's lease enforces it too)
    "scheduler": (None, 1),  # one planner at a time
    "dispatcher": (1, None),  # change notices must not wait for a cold start
    "sms-sender": (1, 10),  # change notices must not wait for a cold start
    "email-sender": (1, 10),
    "patient-notify": (
        1,
        None,
    ),  # the all-in-one Service carries the change-notice path
}


def _ids(docs: list[m.Document]) -> list[str]:
    return [f"{doc.source}:{doc.kind}/{doc.name}" for doc in docs]


def _envs(func: m.FuncConfig) -> dict[str, str]:
    return {e["name"]: e["value"] for e in func.body["run"]["envs"] if "name" in e}


class TestLoading:
    def test_there_is_something_to_check(self) -> None:
        """The project has manifests, Triggers, a PingSource and a func.yaml per function."""
        assert TRIGGERS and PINGSOURCES and PROJECT.of_kind("Broker")
        assert set(FUNCS) == set(REQUIRED_ENV)

    def test_duplicate_keys_are_rejected(self, tmp_path: Path) -> None:
        """A YAML mapping with a repeated key fails to load instead of keeping the last value."""
        path = tmp_path / "dup.yaml"
        path.write_text("kind: Trigger\nkind: Broker\n")
        with pytest.raises(m.ManifestError, match="duplicate key"):
            m.load_yaml_documents(path, tmp_path)

    def test_timestamps_stay_strings(self, tmp_path: Path) -> None:
        """An unquoted timestamp loads as a string, as Kubernetes' YAML-to-JSON does."""
        path = tmp_path / "f.yaml"
        path.write_text("created: 2026-11-24T12:00:00Z\n")
        assert m.load_yaml_documents(path, tmp_path)[0].body == {"created": "2026-11-24T12:00:00Z"}


class TestSchemas:
    @pytest.mark.parametrize("doc", PROJECT.manifests, ids=_ids(PROJECT.manifests))
    def test_manifest_matches_schema_of_its_kind(self, doc: m.Document) -> None:
        """Each document under knative/ validates against the schema for its apiVersion+kind."""
        assert m.check_document_schema(doc) == []

    @pytest.mark.parametrize("doc", PROJECT.examples, ids=_ids(PROJECT.examples))
    def test_template_parses_and_matches_schema(self, doc: m.Document) -> None:
        """Templates (secret.example.yaml) are not applied but still parse and validate."""
        assert m.check_document_schema(doc) == []
        assert m.check_example_secret(doc) == []

    def test_unknown_kind_fails_instead_of_being_skipped(self) -> None:
        """A document of a kind without a schema is a failure, not a silent skip."""
        doc = m.Document("x.yaml", 0, {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}})
        assert "no schema for kind 'Pod'" in m.check_document_schema(doc)[0]
        with pytest.raises(m.UnknownKindError):
            m.schema_for("", "")

    @pytest.mark.parametrize("func", PROJECT.funcs, ids=[f.source for f in PROJECT.funcs])
    def test_func_yaml_matches_func_schema(self, func: m.FuncConfig) -> None:
        """Each func.yaml validates against knative/func's func_yaml-schema.json (draft-04)."""
        assert m.check_func_schema(func) == []

    @pytest.mark.parametrize("func", PROJECT.funcs, ids=[f.source for f in PROJECT.funcs])
    def test_service_func_would_deploy_matches_service_schema(self, func: m.FuncConfig) -> None:
        """The Knative Service func deploy generates is valid and has no Service-level autoscaling."""
        assert m.check_rendered_service(func) == []

    @pytest.mark.parametrize(
        "doc",
        PROJECT.manifests + PROJECT.examples,
        ids=_ids(PROJECT.manifests + PROJECT.examples),
    )
    def test_metadata(self, doc: m.Document) -> None:
        """Named, in the patient-notify namespace (unless cluster-scoped), string labels/annotations."""
        assert m.check_metadata(doc) == []

    def test_no_secret_is_applied(self) -> None:
        """Secrets appear only as *.example.yaml templates, never in applied manifests."""
        assert m.check_no_secrets(PROJECT) == []


class TestCron:
    @pytest.mark.parametrize(
        "expression",
        [
            "*/5 * * * *",  # ours
            "0 9 * * MON-FRI",  # names in day of week
            "30 */2 1,15 JAN-JUN ?",  # lists, steps, month names, '?' in a day field
            "0 0/15 * * * *",  # six fields: seconds first; a/n runs a..max
            "@hourly",  # descriptor
        ],
    )
    def test_valid_expressions_parse(self, expression: str) -> None:
        """Expressions Knative's cron parser accepts are accepted."""
        m.parse_cron(expression)

    @pytest.mark.parametrize(
        "expression",
        [
            "@every 5m",  # interval syntax: PingSource rejects it
            "*/5 * * *",  # four fields
            "0 0 0 * * * *",  # seven fields
            "60 * * * *",  # minute out of range
            "* 24 * * *",  # hour out of range
            "* * 0 * *",  # day of month starts at 1
            "* * * * 7",  # day of week is 0-6
            "*/0 * * * *",  # zero step
            "5-1 * * * *",  # backwards range
            "? * * * *",  # '?' only in day fields
            "1,,2 * * * *",  # empty list item
            "CRON_TZ=Europe/Paris 0 9 * * *",  # zone belongs in spec.timezone
            "@fortnightly",  # unknown descriptor
        ],
    )
    def test_invalid_expressions_are_rejected(self, expression: str) -> None:
        """Anything else raises ValueError."""
        with pytest.raises(ValueError):
            m.parse_cron(expression)

    @pytest.mark.parametrize(
        ("expression", "seconds"),
        [
            ("*/5 * * * *", 300),
            ("0 9,17 * * *", 8 * 3600),  # 09:00 and 17:00: shortest gap 8 h
            ("@daily", 86400),
            ("0 9 * * MON", None),  # not every day alike: unknown
        ],
    )
    def test_min_interval(self, expression: str, seconds: int | None) -> None:
        """The shortest gap between firings is computed when every day fires alike."""
        assert m.parse_cron(expression).min_interval_seconds() == seconds


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("PT0.5S", 0.5),
            ("PT30S", 30),
            ("PT1M30S", 90),
            ("PT1H", 3600),
            ("P1DT1S", 86401),
            ("P1W", 604800),
        ],
    )
    def test_iso8601_durations_parse(self, text: str, seconds: float) -> None:
        """ISO-8601 durations give their length in seconds."""
        assert m.parse_duration(text) == seconds

    @pytest.mark.parametrize(
        "text",
        [
            "500ms",  # Go duration, not ISO-8601
            "30",  # bare number
            "P",  # no component
            "PT",  # T without a time component
            "P1M",  # months vary in length
            "P1Y",  # so do years
            "pt30s",  # lowercase designators
            30,  # not a string
        ],
    )
    def test_other_forms_are_rejected(self, text: Any) -> None:
        """Anything that is not an unambiguous ISO-8601 duration raises ValueError."""
        with pytest.raises(ValueError):
            m.parse_duration(text)


class TestPingSources:
    @pytest.mark.parametrize("doc", PINGSOURCES, ids=_ids(PINGSOURCES))
    def test_pingsource_is_valid(self, doc: m.Document) -> None:
        """Valid cron, IANA zone, JSON data, data/dataBase64 exclusive, sink the Broker."""
        assert m.check_pingsource(doc) == []

    def test_scheduler_tick(self) -> None:
        """scheduler-tick fires every 5 minutes in UTC with the plan-reminders job."""
        (tick,) = [doc for doc in PINGSOURCES if doc.name == "scheduler-tick"]
        assert tick.spec["schedule"] == "*/5 * * * *"
        assert tick.spec["timezone"] == "Etc/UTC"
        assert json.loads(tick.spec["data"]) == {"job": "plan-reminders"}
        assert m.pingsource_event_source(tick) == "/apis/v1/namespaces/patient-notify/pingsources/scheduler-tick"

    def test_every_ping_trigger_names_one_pingsource(self) -> None:
        """Ping Triggers filter on an existing PingSource's source; every PingSource is consumed."""
        assert m.check_ping_triggers(PROJECT) == []


class TestTriggers:
    @pytest.mark.parametrize("doc", TRIGGERS, ids=_ids(TRIGGERS))
    def test_trigger_follows_rabbitmq_broker_rules(self, doc: m.Document) -> None:
        """filter.attributes only, delivery with deadLetterSink, parallelism 1..1000, refs resolve."""
        assert m.check_trigger(doc, PROJECT.function_names, KNOWN_EVENT_TYPES) == []

    @pytest.mark.parametrize("doc", TRIGGERS, ids=_ids(TRIGGERS))
    def test_no_spec_filters(self, doc: m.Document) -> None:
        """No Trigger uses spec.filters, which the RabbitMQ broker ignores."""
        assert "filters" not in doc.spec

    @pytest.mark.parametrize("doc", TRIGGERS, ids=_ids(TRIGGERS))
    def test_delivery_has_dead_letter_sink(self, doc: m.Document) -> None:
        """Every Trigger's delivery has a deadLetterSink, the dispatcher function."""
        assert doc.spec["delivery"]["deadLetterSink"]["ref"]["name"] == "dispatcher"
        assert doc.spec["delivery"]["backoffPolicy"] == "exponential"

    @pytest.mark.parametrize("doc", TRIGGERS, ids=_ids(TRIGGERS))
    def test_filtered_event_type_is_known(self, doc: m.Document) -> None:
        """Each Trigger filters on an event type the project defines."""
        assert doc.spec["filter"]["attributes"]["type"] in KNOWN_EVENT_TYPES

    @pytest.mark.parametrize(
        ("name", "subscriber", "workers"),
        [
            ("scheduler-tick", "scheduler", 1),  # ticks in order
            ("etl-tick", "etl", 1),  # one pass at a time
            ("dispatcher-reminder-due", "dispatcher", 20),
            ("dispatcher-notice-due", "dispatcher", 20),  # versions order the notices
            ("dispatcher-appointment-changed", "dispatcher", 20),
            ("sms-sender", "sms-sender", 25),  # order does not matter
            ("email-sender", "email-sender", 25),
        ],
    )
    def test_routing_and_parallelism(self, name: str, subscriber: str, workers: int) -> None:
        """Each Trigger reaches its function with the intended parallelism."""
        (doc,) = [t for t in TRIGGERS if t.name == name]
        assert doc.spec["subscriber"]["ref"]["name"] == subscriber
        assert m.parallelism(doc) == workers

    @pytest.mark.parametrize("raw", ["0", "1001", "-1", "ten", "2.5", ""])
    def test_parallelism_outside_1_to_1000_is_rejected(self, raw: str) -> None:
        """The parallelism annotation must be an integer 1..1000."""
        doc = m.Document("x", 0, {"metadata": {"annotations": {m.PARALLELISM_ANNOTATION: raw}}})
        with pytest.raises(ValueError):
            m.parallelism(doc)


class TestBroker:
    @pytest.mark.parametrize("doc", PROJECT.of_kind("Broker"), ids=_ids(PROJECT.of_kind("Broker")))
    def test_broker_is_rabbitmq_with_default_delivery(self, doc: m.Document) -> None:
        """RabbitMQBroker class, config defined here, delivery defaults with a dead-letter sink."""
        assert m.check_broker(doc, PROJECT) == []

    def test_rabbitmq_config_uses_quorum_queues(self) -> None:
        """The broker config asks for quorum queues on the rabbitmq cluster."""
        (config,) = PROJECT.of_kind("RabbitmqBrokerConfig")
        assert config.spec["queueType"] == "quorum"
        assert config.spec["rabbitmqClusterReference"] == {
            "name": "rabbitmq",
            "namespace": "patient-notify",
        }


class TestRetryBudget:
    def test_worst_cases_fit_consumer_timeout(self) -> None:
        """No message can stay unacked past RabbitMQ's 30-minute consumer timeout."""
        assert m.check_retry_budget(PROJECT) == []

    @pytest.mark.parametrize(
        ("delivery", "seconds"),
        [
            # 6 attempts x 30 s + 0.5 s x (2+4+8+16+32) = 180 + 31
            (
                {
                    "retry": 5,
                    "backoffPolicy": "exponential",
                    "backoffDelay": "PT0.5S",
                    "timeout": "PT30S",
                },
                211,
            ),
            # 3 x 60 s + 1 s x (2+4)
            (
                {
                    "retry": 2,
                    "backoffPolicy": "exponential",
                    "backoffDelay": "PT1S",
                    "timeout": "PT60S",
                },
                186,
            ),
            # linear: 4 x 10 s + 2 s x (1+2+3)
            (
                {
                    "retry": 3,
                    "backoffPolicy": "linear",
                    "backoffDelay": "PT2S",
                    "timeout": "PT10S",
                },
                52,
            ),
        ],
    )
    def test_arithmetic(self, delivery: dict[str, Any], seconds: float) -> None:
        """Per-message worst case is (retry + 1) x timeout + the backoff waits."""
        assert m.retry_budget(delivery).per_message_s == seconds

    def test_prefetch_backlog(self) -> None:
        """The last of 100 prefetched messages waits ceil(100 / parallelism) rounds."""
        budget = m.retry_budget({"retry": 5, "backoffDelay": "PT0.5S", "timeout": "PT30S"})
        assert budget.backlog_s(20) == 5 * 211
        assert budget.backlog_s(1) == 100 * 211


class TestFuncYaml:
    @pytest.mark.parametrize("func", PROJECT.funcs, ids=[f.source for f in PROJECT.funcs])
    def test_conventions_and_references(self, func: m.FuncConfig) -> None:
        """python, invoke http, pack, namespace, health endpoints, env refs that resolve."""
        assert m.check_func_config(func, PROJECT) == []

    @pytest.mark.parametrize("name", sorted(REQUIRED_ENV))
    def test_function_gets_the_environment_it_reads(self, name: str) -> None:
        """Every variable the code reads is set; secrets come from the Secret, the rest from the ConfigMap."""
        envs = _envs(FUNCS[name])
        assert REQUIRED_ENV[name] <= set(envs)
        for env_name, value in envs.items():
            reference = m.parse_env_reference(value)
            assert reference is not None, f"{env_name} is a literal"
            expected = (
                ("secret", "patient-notify") if env_name in SECRET_ENV else ("configMap", "patient-notify-config")
            )
            assert (reference.source, reference.name, reference.key) == (
                *expected,
                env_name,
            )

    @pytest.mark.parametrize("name", sorted(SCALE))
    def test_scale_bounds(self, name: str) -> None:
        """min/max scale per function, with requests and a memory limit."""
        options = FUNCS[name].body["deploy"]["options"]
        low, high = SCALE[name]
        if low is not None:
            assert options["scale"]["min"] >= low
        if high is not None:
            assert options["scale"]["max"] <= high
        assert {"cpu", "memory"} <= set(options["resources"]["requests"])
        assert "memory" in options["resources"]["limits"]

    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (
                "{{ secret:patient-notify:DATABASE_URL }}",
                m.EnvReference("secret", "patient-notify", "DATABASE_URL"),
            ),
            (
                "{{configMap:cfg:KEY}}",
                m.EnvReference("configMap", "cfg", "KEY"),
            ),  # spaces optional
            (
                "{{ secret:whole }}",
                m.EnvReference("secret", "whole", None),
            ),  # all keys (envFrom)
            ("{{ env:HOME }}", m.EnvReference("env", "HOME", None)),
            ("plain", None),  # literal
        ],
    )
    def test_env_reference_syntax(self, value: str, expected: m.EnvReference | None) -> None:
        """func's {{ source:name[:key] }} references parse; literals are None."""
        assert m.parse_env_reference(value) == expected

    @pytest.mark.parametrize(
        "value",
        ["{{ vault:x:y }}", "{{ secret:a:b:c }}", "{{ secret.a.b }}", "{{ env:A:B }}"],
    )
    def test_bad_env_reference_is_rejected(self, value: str) -> None:
        """References func would refuse raise ValueError."""
        with pytest.raises(ValueError):
            m.parse_env_reference(value)


class TestKustomization:
    def test_lists_every_yaml_file_except_templates(self) -> None:
        """Each kustomization.yaml lists every YAML file beside it but the *.example.yaml ones."""
        assert m.check_kustomizations(PROJECT.root) == []

    def test_unlisted_file_is_reported(self, tmp_path: Path) -> None:
        """A YAML file missing from resources is reported."""
        root = _copy_project(tmp_path)
        (root / "knative/base/extra.yaml").write_text("apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n")
        assert any("extra.yaml is in the directory but not listed" in p for p in m.check_kustomizations(root))

    def test_listed_missing_file_is_reported(self, tmp_path: Path) -> None:
        """A resource entry naming no file is reported."""
        root = _copy_project(tmp_path)
        (root / "knative/base/pingsources.yaml").unlink()
        assert any("lists pingsources.yaml, which does not exist" in p for p in m.check_kustomizations(root))

    def test_listed_template_is_reported(self, tmp_path: Path) -> None:
        """Listing secret.example.yaml (so applying it) is reported."""
        root = _copy_project(tmp_path)
        path = root / "knative/base/kustomization.yaml"
        path.write_text(path.read_text() + "  - secret.example.yaml\n")
        assert any("lists the template secret.example.yaml" in p for p in m.check_kustomizations(root))


class TestCommandLine:
    def test_repository_passes(self, capsys: pytest.CaptureFixture[str]) -> None:
        """python -m tests.support.manifests exits 0 on the repository."""
        assert m.main([]) == 0
        assert "manifests OK" in capsys.readouterr().out

    def test_broken_copy_fails_with_a_clear_message(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """It exits 1 and names the file, document and problem."""
        root = _copy_project(tmp_path)
        path = root / "knative/base/triggers.yaml"
        path.write_text(
            path.read_text().replace(
                "filter:\n    attributes:\n      type: org.patientnotify.sms",
                "filters:\n  - exact:\n      type: org.patientnotify.sms",
                1,
            )
        )
        assert m.main(["--root", str(root)]) == 1
        err = capsys.readouterr().err
        assert "knative/base/triggers.yaml (document 3: Trigger/sms-sender)" in err
        assert "spec.filters" in err

    def test_malformed_content_is_reported_not_raised(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Content of the wrong shape gives messages, not a traceback."""
        root = _copy_project(tmp_path)
        path = root / "functions/scheduler/func.yaml"
        path.write_text(path.read_text().replace("  envs:\n", "  envs:\n  - oops\n", 1))
        assert m.main(["--root", str(root)]) == 1
        err = capsys.readouterr().err
        assert "functions/scheduler/func.yaml: run.envs.0: 'oops' is not of type 'object'" in err
        assert "cannot run on this malformed content" in err

    def test_unparsable_yaml_fails(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A YAML syntax error is reported, not raised."""
        root = _copy_project(tmp_path)
        (root / "knative/base/broker.yaml").write_text("spec: [unclosed\n")
        assert m.main(["--root", str(root)]) == 1
        assert "cannot load YAML" in capsys.readouterr().err


def _copy_project(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    shutil.copytree(PROJECT.root / "knative", root / "knative")
    for func in PROJECT.funcs:
        (root / func.source).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(PROJECT.root / func.source, root / func.source)
    return root


def _doc(project: m.Project, kind: str, name: str) -> dict[str, Any]:
    (doc,) = [d for d in project.manifests + project.examples if d.kind == kind and d.name == name]
    return doc.body


def _func(project: m.Project, name: str) -> dict[str, Any]:
    (func,) = [f for f in project.funcs if f.name == name]
    return func.body


def _keys(path: str | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(path.split(".")) if isinstance(path, str) else path


def _set(path: str | tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    """Mutator setting a dotted path, or a tuple of keys (creating mappings on the way)."""

    def mutate(body: dict[str, Any]) -> None:
        *parents, last = _keys(path)
        for part in parents:
            body = body.setdefault(part, {})
        body[last] = value

    return mutate


def _delete(path: str | tuple[str, ...]) -> Callable[[dict[str, Any]], None]:
    """Mutator deleting a dotted path, or a tuple of keys."""

    def mutate(body: dict[str, Any]) -> None:
        *parents, last = _keys(path)
        for part in parents:
            body = body[part]
        del body[last]

    return mutate


PARALLELISM = ("metadata", "annotations", m.PARALLELISM_ANNOTATION)
SMS, TICK = "Trigger/sms-sender", "Trigger/scheduler-tick"
ENV_SET = "run.envs"
CM = "patient-notify-config"

# One row per rule: (what to break, how, text the resulting problem must contain).
# fmt: off
BREAKAGES = [
    # Triggers: the RabbitMQ broker's rules
    pytest.param(SMS, _set("spec.filters", [{"prefix": {"type": "org."}}]), "spec.filters", id="filters-used"),
    pytest.param(SMS, _set("spec.filter.attributes", {}), "receive every event", id="filter-empty"),
    pytest.param(SMS, _set("spec.filtr", {}), "Additional properties", id="schema-typo"),
    pytest.param(SMS, _delete("spec.delivery"), "spec.delivery is missing", id="no-delivery"),
    pytest.param(SMS, _delete("spec.delivery.deadLetterSink"), "no deadLetterSink", id="no-dls"),
    pytest.param(SMS, _delete("spec.delivery.timeout"), "timeout is missing", id="no-timeout"),
    pytest.param(SMS, _set(PARALLELISM, "0"), "integer 1..1000", id="parallelism-0"),
    pytest.param(SMS, _set(PARALLELISM, 20), "must be a string", id="parallelism-yaml-int"),
    pytest.param(SMS, _set("spec.delivery.backoffDelay", "500ms"), "ISO-8601", id="go-duration"),
    pytest.param(SMS, _set("spec.delivery.timeout", "30s"), "ISO-8601", id="timeout-30s"),
    pytest.param(SMS, _set("spec.delivery.backoffPolicy", "fibonacci"), "exponential or linear", id="policy"),
    pytest.param(SMS, _set("spec.subscriber.ref.name", "sms"), "no function by that name", id="subscriber"),
    pytest.param(SMS, _set("spec.delivery.deadLetterSink.ref.name", "dlq"), "no function by", id="dls-ref"),
    pytest.param(SMS, _set("spec.filter.attributes.type", "org.x.fax.v1"), "unknown event type", id="type"),
    pytest.param(SMS, _set("spec.filter.attributes.appt_id", "1"), "CloudEvents attribute", id="attr-name"),
    pytest.param(SMS, _set("metadata.namespace", "default"), "metadata.namespace", id="namespace"),
    # retry budget: 13 x 30 s + 0.5 s x (2 + ... + 4096) = 4485 s per message
    pytest.param(SMS, _set("spec.delivery.retry", 12), "consumer timeout", id="budget-per-message"),
    # retry budget: ceil(100 / 4) x 211 s = 5275 s for the last prefetched message
    pytest.param(SMS, _set(PARALLELISM, "4"), "prefetched", id="budget-prefetch"),
    # retry budget: FIFO tick, 3 x 120 s + 6 s = 366 s > 300 s between ticks
    pytest.param(TICK, _set("spec.delivery.timeout", "PT120S"), "tick interval", id="budget-fifo"),
    pytest.param(TICK, _delete("spec.filter.attributes.source"), "every PingSource", id="ping-source"),
    # Broker and its config
    pytest.param("Broker/default", _set(("metadata", "annotations", m.BROKER_CLASS_ANNOTATION), "MTChannelBasedBroker"), "RabbitMQBroker", id="broker-class"),
    pytest.param("Broker/default", _set("spec.config.name", "other"), "RabbitmqBrokerConfig defined", id="broker-config"),
    pytest.param("Broker/default", _delete("spec.delivery.deadLetterSink"), "no deadLetterSink", id="broker-dls"),
    pytest.param("RabbitmqBrokerConfig/patient-notify-rabbitmq", _set("spec.queueType", "stream"), "is not one of", id="queue-type"),
    # PingSource
    pytest.param("PingSource/scheduler-tick", _set("spec.schedule", "@every 5m"), "not a valid cron", id="every"),
    pytest.param("PingSource/scheduler-tick", _set("spec.schedule", "*/5 * * *"), "not a valid cron", id="4-fields"),
    pytest.param("PingSource/scheduler-tick", _set("spec.timezone", "Mars/Olympus_Mons"), "IANA", id="zone"),
    pytest.param("PingSource/scheduler-tick", _set("spec.data", "job=plan"), "not JSON", id="data-json"),
    pytest.param("PingSource/scheduler-tick", _set("spec.dataBase64", "e30="), "mutually exclusive", id="data-b64"),
    pytest.param("PingSource/scheduler-tick", _set("spec.sink.ref.kind", "Service"), "Broker", id="sink"),
    # ConfigMap (a YAML number where Kubernetes wants a string), unknown kinds, the template
    pytest.param(f"ConfigMap/{CM}", _set("data.SMTP_PORT", 587), "is not of type 'string'", id="cm-int"),
    pytest.param("Namespace/patient-notify", _set("apiVersion", "v2"), "no schema", id="unknown-kind"),
    pytest.param("Secret/patient-notify", _set("stringData.TWILIO_AUTH_TOKEN", "0123abcd"), "placeholder", id="real-secret"),
    # func.yaml
    pytest.param("func/sms-sender", _set("invoke", "cloudevent"), "answers 400", id="invoke"),
    pytest.param("func/sms-sender", _delete("created"), "'created' is a required", id="func-schema"),
    pytest.param("func/sms-sender", _set("deploy.annotations", {"autoscaling.knative.dev/max-scale": "10"}), "deploy.options.scale", id="scale-annotation"),
    pytest.param("func/sms-sender", _set(ENV_SET, [{"name": "A", "value": f"{{{{ configMap:{CM}:NOPE }}}}"}]), "has no key 'NOPE'", id="cm-key"),
    pytest.param("func/sms-sender", _set(ENV_SET, [{"name": "A", "value": "{{ secret:missing:A }}"}]), "Secret 'missing' is not defined", id="secret"),
    pytest.param("func/sms-sender", _set(ENV_SET, [{"name": "A", "value": "{{ env:A }}"}]), "local environment", id="env-local"),
    pytest.param("func/sms-sender", _set("name", "sms"), "differs from its directory", id="func-name"),
    pytest.param("func/sms-sender", _set("deploy.healthEndpoints.liveness", "/healthz"), "healthEndpoints", id="health"),
    pytest.param("func/sms-sender", _set("deploy.options.resources.requests.memory", "lots"), "does not match", id="quantity"),
    pytest.param("func/patient-notify", _set("namespace", "default"), "namespace is 'default'", id="func-ns"),
]
# fmt: on


class TestChecksAreNotVacuous:
    @pytest.mark.parametrize(("target", "mutate", "expected"), BREAKAGES)
    def test_breaking_a_copy_fails_the_matching_check(
        self, target: str, mutate: Callable[[dict[str, Any]], None], expected: str
    ) -> None:
        """Each check reports a problem when its rule is broken in a copy of the project."""
        project = copy.deepcopy(PROJECT)
        assert m.check_project(project) == []
        kind, name = target.split("/")
        mutate(_func(project, name) if kind == "func" else _doc(project, kind, name))
        problems = m.check_project(project)
        assert any(expected in p for p in problems), "\n".join(problems) or "no problem reported"

    def test_secret_in_applied_manifests_is_reported(self) -> None:
        """Moving the Secret template into the applied set is reported."""
        project = copy.deepcopy(PROJECT)
        project.manifests += project.examples
        assert any("a Secret in an applied manifest" in p for p in m.check_project(project))
