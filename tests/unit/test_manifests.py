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

from function.routing import step_for
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
    "RABBITMQ_URL",
    "ALERT_WEBHOOK_URL",
    "ALERT_WEBHOOK_TOKEN",
    "ALERT_SLACK_WEBHOOK_URL",
    "ALERT_PAGERDUTY_ROUTING_KEY",
    "APPOINTMENT_EVENTS_SECRET",
    "APPOINTMENT_EVENTS_PREVIOUS_SECRET",
}
ETL_ENV = {"ETL_SOURCE", "ETL_SOURCE_URL", "ETL_DEFAULT_ZONE"}
NOTICE_ENV = {"APPOINTMENT_EVENTS_SECRET", "NOTICE_QUIET_START", "NOTICE_QUIET_END", "NOTICE_URGENT_HOURS"}
MONITOR_ENV = {"MONITOR_DLQ_QUEUES", "RABBITMQ_URL", "ALERT_SINKS", "ETL_STALE_AFTER_MINUTES"}
REQUIRED_ENV = {
    "etl": COMMON_ENV | ETL_ENV,
    "scheduler": COMMON_ENV,
    "dispatcher": COMMON_ENV | NOTICE_ENV,
    "sms-sender": COMMON_ENV | SMS_ENV,
    "email-sender": COMMON_ENV | EMAIL_ENV,
    "monitor": COMMON_ENV | MONITOR_ENV,
    "webhooks": {"DATABASE_URL", "LOG_LEVEL", "TWILIO_AUTH_TOKEN", "WEBHOOKS_PUBLIC_URL", "SES_EVENTS_TOPIC_ARN"},
    "patient-notify": COMMON_ENV | SMS_ENV | EMAIL_ENV | ETL_ENV | NOTICE_ENV,
}
# (min, max) scale per function: None = no bound required.
SCALE = {
    "etl": (None, 1),  # one pass at a time (the ledger's lease enforces it too)
    "scheduler": (None, 1),  # one planner at a time
    "dispatcher": (1, None),  # change notices must not wait for a cold start
    "sms-sender": (1, 10),  # change notices must not wait for a cold start
    "email-sender": (1, 10),
    "monitor": (None, 1),  # one tick at a time
    "webhooks": (1, None),  # provider callbacks and STOP replies must not wait for a cold start
    "patient-notify": (
        1,
        None,
    ),  # the all-in-one Service carries the change-notice path
}


# containerConcurrency: one request holds at most one pooled connection (DB_POOL_MAX 10); the
# tick-driven singletons (max scale 1) take one request at a time.
CONCURRENCY_PER_FUNCTION = {
    "etl": 1,
    "scheduler": 1,
    "dispatcher": m.DB_POOL_MAX,
    "sms-sender": m.DB_POOL_MAX,
    "email-sender": m.DB_POOL_MAX,
    "monitor": 1,
    "webhooks": m.DB_POOL_MAX,
    "patient-notify": m.DB_POOL_MAX,
}


def _ids(docs: list[m.Document]) -> list[str]:
    return [f"{doc.source}:{doc.kind}/{doc.name}" for doc in docs]


def _envs(func: m.FuncConfig) -> dict[str, str]:
    return {e["name"]: e["value"] for e in func.body["run"]["envs"] if "name" in e}


class TestLoading:
    def test_there_is_something_to_check(self) -> None:
        """The project has manifests, Triggers, a PingSource and a func.yaml per function."""
        assert TRIGGERS and PINGSOURCES and PROJECT.of_kind("Broker")
        assert PROJECT.of_kind("Job") and PROJECT.of_kind("NetworkPolicy")
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

    @pytest.mark.parametrize(("name", "concurrency"), sorted(CONCURRENCY_PER_FUNCTION.items()))
    def test_container_concurrency(self, name: str, concurrency: int) -> None:
        """containerConcurrency: the database pool for request-driven steps, 1 for the singleton ticks."""
        assert FUNCS[name].body["deploy"]["options"]["resources"]["limits"]["concurrency"] == concurrency
        service = m.render_knative_service(FUNCS[name].body)
        assert service["spec"]["template"]["spec"]["containerConcurrency"] == concurrency

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


OVERLAYS = {directory: m.render_kustomization(PROJECT, directory) for directory in m.REQUIRED_OVERLAYS}
SPLIT_DIR, ALL_IN_ONE_DIR = m.REQUIRED_OVERLAYS


def _service_refs(docs: list[m.Document]) -> set[str]:
    """Every Knative Service a set of documents refers to (subscribers, dead-letter sinks)."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("kind") == "Service" and value.get("apiVersion") == m.SERVICE_API_VERSION:
                found.add(value["name"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for doc in docs:
        walk(doc.body)
    return found


def _job_image(docs: list[m.Document]) -> str:
    (job,) = [doc for doc in docs if doc.kind == "Job"]
    (container,) = m.pod_containers(job.body)
    return str(container["image"])


class TestOverlays:
    def test_the_overlays_are_what_gets_applied(self) -> None:
        """kubectl apply -k targets the two overlays; base is only ever applied through them."""
        assert m.render_roots(PROJECT) == sorted(m.REQUIRED_OVERLAYS)

    @pytest.mark.parametrize("directory", m.REQUIRED_OVERLAYS)
    def test_overlay_renders_and_passes_every_check(self, directory: str) -> None:
        """Each overlay's resources and patches resolve, and what it applies passes every check."""
        rendered = OVERLAYS[directory]
        assert rendered.problems == []
        applied = m.Project(PROJECT.root, rendered.documents, PROJECT.examples, PROJECT.funcs)
        assert m.check_applied(applied, directory, m.service_names(PROJECT, directory)) == []

    @pytest.mark.parametrize("directory", m.REQUIRED_OVERLAYS)
    def test_overlay_applies_every_base_resource(self, directory: str) -> None:
        """Both overlays apply the same resources as base, namespaced."""
        base = [(d.kind, d.name) for d in PROJECT.manifests if d.source.startswith("knative/base/")]
        rendered = OVERLAYS[directory].documents
        assert sorted((d.kind, d.name) for d in rendered) == sorted(k for k in base if k[0] != "Kustomization")
        assert {d.metadata["namespace"] for d in rendered if d.kind != "Namespace"} == {m.NAMESPACE}

    def test_split_routes_to_one_service_per_function(self) -> None:
        """split: Triggers and dead-letter sinks name the per-function Services, as base does."""
        assert _service_refs(OVERLAYS[SPLIT_DIR].documents) == {
            "scheduler",
            "etl",
            "dispatcher",
            "sms-sender",
            "email-sender",
            "monitor",
        }

    def test_all_in_one_routes_everything_to_one_service(self) -> None:
        """all-in-one: every subscriber and dead-letter sink, the Broker's too, is patient-notify."""
        assert _service_refs(OVERLAYS[ALL_IN_ONE_DIR].documents) == {"patient-notify"}

    @pytest.mark.parametrize(
        ("directory", "image"),
        [
            (SPLIT_DIR, "registry.invalid/patient-notify/dispatcher:latest"),  # the dispatcher's image
            (ALL_IN_ONE_DIR, "registry.invalid/patient-notify/patient-notify:latest"),  # the one image
        ],
    )
    def test_migration_job_runs_an_image_func_deploys(self, directory: str, image: str) -> None:
        """Each overlay replaces the Job's placeholder image with one `func deploy` pushes."""
        assert _job_image(OVERLAYS[directory].documents) == image


def _render(kustomization: dict[str, Any], *documents: dict[str, Any]) -> m.Rendered:
    """Render an in-memory kustomization ``k/`` whose resources are the file ``k/r.yaml``."""
    manifests = [m.Document("k/kustomization.yaml", 0, kustomization)]
    manifests += [m.Document("k/r.yaml", index, body) for index, body in enumerate(documents)]
    return m.render_kustomization(m.Project(PROJECT.root, manifests, [], []), "k")


KUSTOMIZATION = {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization", "resources": ["r.yaml"]}
JOB_BODY = {
    "kind": "Job",
    "metadata": {"name": "j"},
    "spec": {"template": {"spec": {"containers": [{"image": "app:1"}]}}},
}


class TestKustomizeSubset:
    @pytest.mark.parametrize(
        ("operations", "expected"),
        [
            ([{"op": "add", "path": "/a/c", "value": 3}], {"a": {"b": 1, "c": 3}, "l": [1, 2]}),
            ([{"op": "add", "path": "/l/0", "value": 0}], {"a": {"b": 1}, "l": [0, 1, 2]}),  # insert
            ([{"op": "add", "path": "/l/-", "value": 3}], {"a": {"b": 1}, "l": [1, 2, 3]}),  # append
            ([{"op": "replace", "path": "/a/b", "value": 2}], {"a": {"b": 2}, "l": [1, 2]}),
            ([{"op": "remove", "path": "/l/1"}], {"a": {"b": 1}, "l": [1]}),
            ([{"op": "move", "from": "/a/b", "path": "/b"}], {"a": {}, "l": [1, 2], "b": 1}),
            ([{"op": "copy", "from": "/l", "path": "/a/l"}], {"a": {"b": 1, "l": [1, 2]}, "l": [1, 2]}),
            ([{"op": "test", "path": "/a/b", "value": 1}], {"a": {"b": 1}, "l": [1, 2]}),
            ([{"op": "add", "path": "/a~1b", "value": 0}], {"a": {"b": 1}, "l": [1, 2], "a/b": 0}),  # ~1 is '/'
        ],
    )
    def test_json_patch_operations(self, operations: list[dict[str, Any]], expected: dict[str, Any]) -> None:
        """RFC 6902 operations apply as kustomize applies them."""
        assert m.apply_json_patch({"a": {"b": 1}, "l": [1, 2]}, operations) == expected

    @pytest.mark.parametrize(
        "operation",
        [
            {"op": "replace", "path": "/a/x", "value": 1},  # replace needs an existing key
            {"op": "remove", "path": "/l/5"},  # index out of range
            {"op": "test", "path": "/a/b", "value": 2},  # test fails
            {"op": "add", "path": "/x/y", "value": 1},  # parent missing
            {"op": "frobnicate", "path": "/a"},  # unknown op
            {"op": "add", "path": "a", "value": 1},  # not a JSON pointer
            {"path": "/a"},  # no op
        ],
    )
    def test_json_patch_failures_are_errors(self, operation: dict[str, Any]) -> None:
        """An operation kustomize would refuse raises ValueError naming it."""
        with pytest.raises(ValueError, match=r"operation 0|JSON pointer"):
            m.apply_json_patch({"a": {"b": 1}, "l": [1, 2]}, [operation])

    def test_merge_patch_merges_mappings_and_deletes_nulls(self) -> None:
        """A merge patch merges mappings, replaces scalars and deletes keys set to null."""
        body = {"a": {"b": 1, "c": 2}, "d": 3}
        assert m.apply_merge_patch(body, {"a": {"b": 5, "c": None}, "e": 6}) == {"a": {"b": 5}, "d": 3, "e": 6}

    def test_merge_patch_refuses_to_merge_lists(self) -> None:
        """Lists kustomize would merge by key are refused rather than replaced silently."""
        with pytest.raises(ValueError, match="JSON 6902"):
            m.apply_merge_patch({"l": [1]}, {"l": [2]})

    def test_a_merge_patch_targets_the_resource_it_names(self) -> None:
        """A merge patch without target applies to the kind and name it carries; the document is marked."""
        patch = "kind: Job\nmetadata: {name: j}\nspec: {backoffLimit: 1}\n"
        rendered = _render({**KUSTOMIZATION, "patches": [{"patch": patch}]}, JOB_BODY)
        assert rendered.problems == []
        (job,) = rendered.documents
        assert job.spec["backoffLimit"] == 1 and job.source == "k/r.yaml via k"

    @pytest.mark.parametrize(
        ("entry", "image"),
        [
            ({"name": "app", "newName": "ghcr.io/acme/app", "newTag": "2"}, "ghcr.io/acme/app:2"),
            ({"name": "app", "newName": "ghcr.io/acme/app"}, "ghcr.io/acme/app:1"),  # tag kept
            ({"name": "app", "digest": "sha256:ab"}, "app@sha256:ab"),
        ],
    )
    def test_images_rewrite_matching_containers(self, entry: dict[str, str], image: str) -> None:
        """images: replaces the name, the tag or the digest of containers whose image name matches."""
        rendered = _render({**KUSTOMIZATION, "images": [entry]}, JOB_BODY)
        assert rendered.problems == [] and _job_image(rendered.documents) == image

    @pytest.mark.parametrize(
        ("image", "name"),
        [("app", "app"), ("app:1", "app"), ("ghcr.io:443/acme/app:1", "ghcr.io:443/acme/app"), ("a/b@sha256:0", "a/b")],
    )
    def test_image_name(self, image: str, name: str) -> None:
        """An image's name is what precedes its tag or digest (a registry port is not a tag)."""
        assert m.image_name(image) == name

    def test_resources_that_form_a_cycle_are_reported(self) -> None:
        """A kustomization that lists itself is reported, not followed for ever."""
        rendered = _render({**KUSTOMIZATION, "resources": ["."]})
        assert any("cycle" in problem for problem in rendered.problems)


class TestNetworkPolicies:
    @pytest.mark.parametrize(
        ("selector", "labels", "matches"),
        [
            ({}, {"a": "1"}, True),  # empty selector: every pod
            ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
            ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
            ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1", "2"]}]}, {"a": "2"}, True),
            ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
            ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
            ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
            ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": "1"}, False),
        ],
    )
    def test_label_selectors(self, selector: dict[str, Any], labels: dict[str, str], matches: bool) -> None:
        """matchLabels and matchExpressions select pods as Kubernetes does."""
        assert m.selector_matches(selector, labels) is matches

    def test_pooler_policy_names_every_function(self) -> None:
        """The pooler admits the pods of every function Service: split and all-in-one."""
        (policy,) = [d for d in PROJECT.of_kind("NetworkPolicy") if d.name == "patient-notify-database-pooler"]
        (expression,) = policy.spec["ingress"][0]["from"][0]["podSelector"]["matchExpressions"]
        assert set(expression["values"]) == PROJECT.function_names

    @pytest.mark.parametrize(
        ("labels", "admitted"),
        [
            ({"eventing.knative.dev/broker": "default", "eventing.knative.dev/brokerRole": "ingress"}, True),
            ({"eventing.knative.dev/broker": "default", "eventing.knative.dev/brokerRole": "dispatcher"}, True),
            ({"serving.knative.dev/service": "dispatcher"}, False),  # functions POST to the ingress over HTTP
            ({"serving.knative.dev/service": "webhooks"}, False),  # the public function least of all
            ({"serving.knative.dev/service": "monitor"}, True),  # dead-letter queue depth
            ({"serving.knative.dev/service": "patient-notify"}, True),  # the all-in-one carries the monitor
            ({}, False),
        ],
    )
    def test_rabbitmq_admits_only_the_broker_and_the_monitor(self, labels: dict[str, str], admitted: bool) -> None:
        """AMQP is open to the broker's ingress and dispatchers, and to the monitor (queue depths) only."""
        policies = [d for d in PROJECT.of_kind("NetworkPolicy") if d.name == "patient-notify-rabbitmq"]
        assert m.admits(policies, labels, m.AMQP_PORT) is admitted


class TestEventFlow:
    def test_emitted_types_are_the_models_not_sent_from_outside(self) -> None:
        """Emitted types: every event model except ticks and the appointment system's announcements."""
        emitted = {
            "org.patientnotify.reminder.due.v1",
            "org.patientnotify.sms.send.v1",
            "org.patientnotify.email.send.v1",
            "org.patientnotify.notice.due.v1",
        }
        assert emitted == m.EMITTED_EVENT_TYPES

    def test_every_emitted_and_external_type_is_routed(self) -> None:
        """Every type the code emits or the outside sends has a Trigger, and no Trigger waits on another."""
        assert m.check_event_flow(PROJECT, "knative") == []


class TestAllInOneRouting:
    @pytest.mark.parametrize("doc", TRIGGERS, ids=_ids(TRIGGERS))
    def test_the_function_routes_like_the_trigger(self, doc: m.Document) -> None:
        """The all-in-one function hands each Trigger's events to the step that Trigger subscribes."""
        attributes = doc.spec["filter"]["attributes"]
        assert step_for(attributes["type"], attributes.get("source", "")) == doc.spec["subscriber"]["ref"]["name"]
        assert (
            step_for(attributes["type"], "", dead_letter=True) == doc.spec["delivery"]["deadLetterSink"]["ref"]["name"]
        )

    @pytest.mark.parametrize(
        ("event_type", "source"),
        [
            ("dev.knative.sources.ping", "/apis/v1/namespaces/patient-notify/pingsources/other"),  # unknown tick
            ("dev.knative.sources.ping", "/somewhere"),  # not a PingSource at all
            ("org.example.unknown.v1", "/x"),  # unknown type
        ],
    )
    def test_what_no_step_takes_is_recorded_by_the_dispatcher(self, event_type: str, source: str) -> None:
        """Anything no step takes goes to the dispatcher, which keeps it in rejected_events."""
        assert step_for(event_type, source) == "dispatcher"


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


def _overlay(project: m.Project, name: str) -> dict[str, Any]:
    (doc,) = [d for d in project.manifests if d.source == f"{m.OVERLAYS_DIR}/{name}/{m.KUSTOMIZATION_FILE}"]
    return doc.body


def _keys(path: str | tuple[str, ...]) -> tuple[str, ...]:
    return tuple(path.split(".")) if isinstance(path, str) else path


def _step(body: Any, part: str) -> Any:
    """One step down a path: a list index (digits) or a mapping key (created when missing)."""
    return body[int(part)] if isinstance(body, list) else body.setdefault(part, {})


def _set(path: str | tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    """Mutator setting a dotted path, or a tuple of keys (creating mappings on the way)."""

    def mutate(body: dict[str, Any]) -> None:
        *parents, last = _keys(path)
        for part in parents:
            body = _step(body, part)
        body[last] = value

    return mutate


def _delete(path: str | tuple[str, ...]) -> Callable[[dict[str, Any]], None]:
    """Mutator deleting a dotted path, or a tuple of keys."""

    def mutate(body: dict[str, Any]) -> None:
        *parents, last = _keys(path)
        for part in parents:
            body = _step(body, part)
        del body[last]

    return mutate


def _append(path: str | tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    """Mutator appending to the list at a dotted path."""

    def mutate(body: dict[str, Any]) -> None:
        for part in _keys(path):
            body = _step(body, part)
        body.append(value)  # type: ignore[attr-defined]

    return mutate


def _remove(path: str | tuple[str, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    """Mutator removing one value from the list at a dotted path."""

    def mutate(body: dict[str, Any]) -> None:
        for part in _keys(path):
            body = _step(body, part)
        body.remove(value)  # type: ignore[attr-defined]

    return mutate


PARALLELISM = ("metadata", "annotations", m.PARALLELISM_ANNOTATION)
SMS, TICK = "Trigger/sms-sender", "Trigger/scheduler-tick"
ENV_SET = "run.envs"
CM = "patient-notify-config"
DB, MQ = "NetworkPolicy/patient-notify-database-pooler", "NetworkPolicy/patient-notify-rabbitmq"
PG = "NetworkPolicy/patient-notify-database"
JOB, POD = "Job/patient-notify-migrate", "spec.template.spec"
SPLIT, AIO = "overlay/split", "overlay/all-in-one"
CONCURRENCY = "deploy.options.resources.limits.concurrency"
TYPE = "spec.filter.attributes.type"
BAD_PATH = "- op: replace\n  path: /spec/subscribr/ref/name\n  value: patient-notify"

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
    # retry budget: FIFO tick, 2 x 150 s + 2 s = 302 s > 300 s between ticks
    pytest.param(TICK, _set("spec.delivery.timeout", "PT150S"), "tick interval", id="budget-fifo"),
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
    # the all-in-one func.yaml sets what each step's func.yaml sets, from the same source
    pytest.param("func/monitor", _append(ENV_SET, {"name": "MONITOR_DLQ_TIMEOUT_S", "value": f"{{{{ configMap:{CM}:LOG_LEVEL }}}}"}), "env MONITOR_DLQ_TIMEOUT_S is missing; the monitor step reads it", id="aio-env-missing"),
    pytest.param("func/patient-notify", _set(("run", "envs", "0", "value"), "{{ secret:patient-notify:TWILIO_AUTH_TOKEN }}"), "env DATABASE_URL is", id="aio-env-source"),
    # func.yaml: containerConcurrency sized to the database pool, 1 for single-instance functions
    pytest.param("func/dispatcher", _delete(CONCURRENCY), "is not set", id="concurrency-unset"),
    pytest.param("func/dispatcher", _set(CONCURRENCY, 50), "above the database pool", id="concurrency-pool"),
    pytest.param("func/scheduler", _set(CONCURRENCY, 5), "max scale 1", id="concurrency-singleton"),
    # event flow: what the code emits or the outside sends is routed, and nothing else
    pytest.param("Trigger/email-sender", _set(TYPE, "org.patientnotify.sms.send.v1"), "emitted by a function but no Trigger", id="emitted-unrouted"),
    pytest.param("Trigger/dispatcher-appointment-changed", _set(TYPE, "org.patientnotify.notice.due.v1"), "comes from outside but no Trigger", id="external-unrouted"),
    # the all-in-one function routes like the split Triggers
    pytest.param(SMS, _set("spec.subscriber.ref.name", "email-sender"), "all-in-one function routes it", id="aio-routing"),
    # overlays: resources, patches and images that resolve; what each applies passes every check
    pytest.param(SPLIT, _append("resources", "../../nope"), "'../../nope' does not exist", id="overlay-resource"),
    pytest.param(SPLIT, _set("namePrefix", "pn-"), "not implemented by the offline renderer", id="overlay-field"),
    pytest.param(SPLIT, _delete("images"), "still the placeholder", id="job-image-placeholder"),
    pytest.param(SPLIT, _set("images.0.newName", "ghcr.io/acme/dispatch"), "none that `func deploy` pushes", id="job-image-unknown"),
    pytest.param(SPLIT, _set("images.0.name", "patient-notify-fn"), "matches no container image", id="image-unmatched"),
    pytest.param(AIO, _delete("patches"), "(known: patient-notify)", id="aio-unpatched"),
    pytest.param(AIO, _set("patches.1.target.name", "defualt"), "matches no resource", id="patch-target"),
    pytest.param(AIO, _set("patches.0.patch", BAD_PATH), "'subscribr' does not exist", id="patch-path"),
    pytest.param(AIO, _set("patches.0.path", "subscribers.yaml"), "write the patch inline", id="patch-file"),
    pytest.param(AIO, _set("images.0.newName", "ghcr.io/acme/dispatcher"), "none that `func deploy` pushes", id="aio-job-image"),
    # the migration Job
    pytest.param(JOB, _set(f"{POD}.restartPolicy", "Always"), "is not one of ['Never', 'OnFailure']", id="job-schema"),
    pytest.param(JOB, _set(f"{POD}.containers.0.command", ["python", "-m", "patient_notify"]), "does not run python -m patient_notify.db", id="job-command"),
    pytest.param(JOB, _set(f"{POD}.containers.0.env", [{"name": "DATABASE_URL", "value": "postgresql://x"}]), "DATABASE_URL must come from", id="job-secret"),
    pytest.param(JOB, _set(("spec", "template", "metadata", "labels", "app.kubernetes.io/component"), "batch"), "Job 'patient-notify-migrate'", id="job-labels"),
    # the connection budget: pools x scale.max fit the poolers with one lost; their server pools fit PostgreSQL
    pytest.param("func/sms-sender", _set("deploy.options.scale.max", 80), "the functions may open 1085 connections", id="budget-clients"),
    pytest.param("func/patient-notify", _set("deploy.options.scale.max", 20), "the functions may open 1255 connections", id="budget-clients-all-in-one"),
    pytest.param("Pooler/patient-notify-db-pooler-rw", _set("spec.pgbouncer.parameters.default_pool_size", "100"), "= 210 > max_connections 200", id="budget-server"),
    pytest.param("Pooler/patient-notify-db-pooler-rw", _set("spec.instances", 1), "a single pooler pod", id="budget-single-pooler"),
    # NetworkPolicies: the database admits the functions and the Job, RabbitMQ the broker and the monitor
    pytest.param(DB, _remove("spec.ingress.0.from.0.podSelector.matchExpressions.0.values", "dispatcher"), "function 'dispatcher' ({'serving.knative.dev/service': 'dispatcher'}) cannot reach the pooler", id="db-function"),
    pytest.param(DB, _append("spec.ingress.0.from", {"podSelector": {}}), "an unlabelled pod ({}) can reach the pooler", id="db-open"),
    pytest.param(DB, _set("spec.podSelector.matchLabels", {"app": "pg"}), "no NetworkPolicy selects the pooler", id="db-unguarded"),
    pytest.param(PG, _append("spec.ingress.0.from", {"podSelector": {"matchLabels": {"serving.knative.dev/service": "etl"}}}), "function 'etl' ({'serving.knative.dev/service': 'etl'}) can reach the database", id="pg-function-bypasses-pooler"),
    pytest.param(PG, _set("spec.ingress.0.from.0.podSelector.matchLabels", {"cnpg.io/poolerName": "other"}), "the pooler ({'cnpg.io/poolerName': 'patient-notify-db-pooler-rw', 'cnpg.io/podRole': 'pooler'}) cannot reach the database", id="pg-pooler-fenced"),
    pytest.param(DB, _set("spec.podSelectr", {}), "Additional properties", id="netpol-schema"),
    pytest.param(MQ, _set(("spec", "ingress", "0", "from", "0", "podSelector", "matchLabels", "eventing.knative.dev/broker"), "other"), "ingress pods", id="mq-broker"),
    pytest.param(MQ, _append("spec.ingress", {"ports": [{"port": 5672}]}), "has no `from`", id="mq-no-from"),
    pytest.param(MQ, _append("spec.ingress.0.from", {"namespaceSelector": {}}), "every pod of every namespace", id="mq-all-namespaces"),
    pytest.param(MQ, _append("spec.ingress.0.from", {"podSelector": {"matchLabels": {"serving.knative.dev/service": "etl"}}}), "function 'etl' ({'serving.knative.dev/service': 'etl'}) can reach RabbitMQ", id="mq-function"),
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
        bodies = {"func": _func, "overlay": _overlay}
        mutate(bodies[kind](project, name) if kind in bodies else _doc(project, kind, name))
        problems = m.check_project(project)
        assert any(expected in p for p in problems), "\n".join(problems) or "no problem reported"

    def test_secret_in_applied_manifests_is_reported(self) -> None:
        """Moving the Secret template into the applied set is reported."""
        project = copy.deepcopy(PROJECT)
        project.manifests += project.examples
        assert any("a Secret in an applied manifest" in p for p in m.check_project(project))
