"""Load and check Patient Notify's Knative manifests and func.yaml files, offline.

No cluster, no `func` or `kubectl`: PyYAML + jsonschema with the schemas in tests/schemas/
(see its README for where they come from), plus the checks a schema cannot express (the
RabbitMQ broker's rules, cron, durations, the retry budget, cross-references between files).
Each overlay under knative/overlays/ is rendered as ``kubectl apply -k`` would (the subset of
kustomize it uses: resources, namespace, inline patches, images) and what it would apply is
checked as a whole: every emitted event type routed, NetworkPolicies that admit exactly the
pods they should, the migration Job's image, the all-in-one function routing like the Triggers.

Used by tests/unit/test_manifests.py and, through ``python -m tests.support.manifests``, by
``task check``. Every ``check_*`` function returns a list of problems (strings that name the
file, the document and what is wrong); an empty list means the check passed.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import copy
import itertools
import json
import math
import posixpath
import re
import sys
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from deploy.build import STEPS
from function.routing import step_for
from patient_notify.events import EVENT_MODELS, PING, AppointmentChanged
from patient_notify.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = REPO_ROOT / "tests" / "schemas"
FUNC_SCHEMA_FILE = "func_yaml-schema.json"
KNATIVE_DIR = "knative"
FUNCTIONS_DIR = "functions"
FUNC_YAML = "func.yaml"
KUSTOMIZATION_FILE = "kustomization.yaml"
# Templates such as secret.example.yaml: parsed and validated, never applied.
EXAMPLE_SUFFIX = ".example.yaml"

NAMESPACE = "patient-notify"
BROKER_NAME = "default"
BROKER_CLASS_ANNOTATION = "eventing.knative.dev/broker.class"
RABBITMQ_BROKER_CLASS = "RabbitMQBroker"
PARALLELISM_ANNOTATION = "rabbitmq.eventing.knative.dev/parallelism"
PARALLELISM_RANGE = (1, 1000)
SERVICE_API_VERSION = "serving.knative.dev/v1"
HEALTH_ENDPOINTS = {"liveness": "/health/liveness", "readiness": "/health/readiness"}
AUTOSCALING_PREFIX = "autoscaling.knative.dev/"

# RabbitMQ closes a consumer's channel when a delivery stays unacked longer than this
# (consumer_timeout, default 30 min); eventing-rabbitmq retries with the message unacked.
CONSUMER_TIMEOUT_S = 30 * 60
# eventing-rabbitmq's per-Trigger dispatcher sets basic.qos prefetch 100, whatever the
# parallelism: the last prefetched message waits for ceil(100 / parallelism) rounds.
PREFETCH = 100

PING_EVENT_TYPE = PING
# Every type a Trigger may filter on is declared once, beside its schema, in the shared library.
KNOWN_EVENT_TYPES = frozenset(EVENT_MODELS)
# CloudEvents attribute names: lowercase letters and digits, at most 20 characters.
CE_ATTRIBUTE_NAME = re.compile(r"^[a-z0-9]{1,20}$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")

CLUSTER_SCOPED_KINDS = {("v1", "Namespace")}
KUSTOMIZATION_KIND = ("kustomize.config.k8s.io/v1beta1", "Kustomization")

JsonObject = dict[str, Any]


class ManifestError(Exception):
    """A file that cannot be read as YAML documents (syntax, duplicate key, not a mapping)."""


class UnknownKindError(LookupError):
    """No schema for a document's apiVersion and kind."""


# --------------------------------------------------------------------------- loading


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys and keeps timestamps as strings.

    Kubernetes converts YAML to JSON, where a repeated key is an error and an unquoted
    timestamp (func.yaml's ``created``) is a string; PyYAML would keep the last key silently
    and build a datetime.
    """


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                "while constructing a mapping",
                node.start_mark,
                f"found duplicate key {key!r}",
                key_node.start_mark,
            )
        seen.add(key)
    mapping: dict[Any, Any] = loader.construct_mapping(node, deep=True)
    return mapping


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


@dataclass(frozen=True)
class Document:
    """One YAML document: where it came from and its body."""

    source: str  # path relative to the repository root
    index: int  # position in a multi-document file, from 0 (labels count from 1)
    body: JsonObject

    @property
    def api_version(self) -> str:
        return str(self.body.get("apiVersion", ""))

    @property
    def kind(self) -> str:
        return str(self.body.get("kind", ""))

    @property
    def metadata(self) -> JsonObject:
        meta = self.body.get("metadata")
        return meta if isinstance(meta, dict) else {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def spec(self) -> JsonObject:
        spec = self.body.get("spec")
        return spec if isinstance(spec, dict) else {}

    @property
    def label(self) -> str:
        return f"{self.source} (document {self.index + 1}: {self.kind or '?'}/{self.name or '?'})"


@dataclass(frozen=True)
class FuncConfig:
    """One func.yaml: the repository's root one or functions/<name>/func.yaml."""

    source: str  # path relative to the repository root
    body: JsonObject

    @property
    def directory(self) -> str:
        """Directory name under functions/, or "" for the root func.yaml."""
        parts = Path(self.source).parts
        return parts[1] if len(parts) == 3 and parts[0] == FUNCTIONS_DIR else ""

    @property
    def name(self) -> str:
        return str(self.body.get("name", ""))

    @property
    def label(self) -> str:
        return self.source


@dataclass
class Project:
    """Everything the checks look at, loaded once."""

    root: Path
    manifests: list[Document]  # every document under knative/ except templates
    examples: list[Document]  # documents of *.example.yaml templates
    funcs: list[FuncConfig]

    def of_kind(self, kind: str) -> list[Document]:
        return [doc for doc in self.manifests if doc.kind == kind]

    @property
    def function_names(self) -> set[str]:
        """Names a subscriber may use: function directories with a func.yaml, the root func."""
        names = {func.directory for func in self.funcs if func.directory}
        names.update(func.name for func in self.funcs if not func.directory and func.name)
        return names


def load_yaml_documents(path: Path, root: Path = REPO_ROOT) -> list[Document]:
    """Every non-empty YAML document in ``path``; raises ManifestError on bad YAML."""
    source = _relative(path, root)
    try:
        raw = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=_Loader))
    except (OSError, yaml.YAMLError) as error:
        raise ManifestError(f"{source}: cannot load YAML: {error}") from error
    docs = []
    for index, body in enumerate(raw):
        if body is None:
            continue
        if not isinstance(body, dict):
            raise ManifestError(f"{source} (document {index + 1}): a {type(body).__name__}, not a mapping")
        docs.append(Document(source, index, body))
    return docs


def manifest_files(root: Path = REPO_ROOT) -> list[Path]:
    """Every YAML file under knative/, templates included, sorted."""
    base = root / KNATIVE_DIR
    return sorted(p for p in base.rglob("*") if p.is_file() and p.suffix in {".yaml", ".yml"})


def is_example(path: Path) -> bool:
    return path.name.endswith(EXAMPLE_SUFFIX)


def func_yaml_files(root: Path = REPO_ROOT) -> list[Path]:
    """The root func.yaml (when present) and every functions/<name>/func.yaml."""
    files = [root / FUNC_YAML] if (root / FUNC_YAML).is_file() else []
    return files + sorted((root / FUNCTIONS_DIR).glob(f"*/{FUNC_YAML}"))


def load_project(root: Path = REPO_ROOT) -> Project:
    manifests: list[Document] = []
    examples: list[Document] = []
    for path in manifest_files(root):
        (examples if is_example(path) else manifests).extend(load_yaml_documents(path, root))
    funcs = []
    for path in func_yaml_files(root):
        docs = load_yaml_documents(path, root)
        if len(docs) != 1:
            raise ManifestError(f"{_relative(path, root)}: expected one document, found {len(docs)}")
        funcs.append(FuncConfig(docs[0].source, docs[0].body))
    return Project(root, manifests, examples, funcs)


def _relative(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return path.as_posix()


# --------------------------------------------------------------------------- schemas


def schema_relpath(api_version: str, kind: str) -> str:
    """``eventing.knative.dev/v1`` + ``Trigger`` -> ``eventing.knative.dev/trigger_v1.json``."""
    group, _, version = api_version.rpartition("/")
    return f"{group or 'core'}/{kind.lower()}_{version}.json"


def schema_for(api_version: str, kind: str, schema_dir: Path = SCHEMA_DIR) -> JsonObject:
    """The JSON Schema for a kind; raises UnknownKindError rather than skipping it."""
    if not api_version or not kind:
        raise UnknownKindError("document has no apiVersion or no kind")
    path = schema_dir / schema_relpath(api_version, kind)
    if not path.is_file():
        raise UnknownKindError(
            f"no schema for kind {kind!r} of apiVersion {api_version!r} "
            f"(expected {_relative(path, REPO_ROOT)}); add one to tests/schemas/"
        )
    return load_schema(path)


@cache
def load_schema(path: Path) -> JsonObject:
    schema = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(schema, dict):
        raise TypeError(f"{path}: not a JSON Schema object")
    return schema


def schema_errors(instance: Any, schema: Mapping[str, Any]) -> list[str]:
    """Every violation of ``schema`` (its own draft, formats checked), as 'path: message'."""
    return _errors(_make_validator(schema), instance)


@cache
def _validator_for_file(path: Path) -> Any:
    return _make_validator(load_schema(path))


def _make_validator(schema: Mapping[str, Any]) -> Any:
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(dict(schema))
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def _errors(validator: Any, instance: Any) -> list[str]:
    errors = sorted(validator.iter_errors(instance), key=lambda e: [str(p) for p in e.absolute_path])
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '<root>'}: {e.message}" for e in errors]


def file_schema_errors(instance: Any, path: Path) -> list[str]:
    """Like schema_errors, for the schema file at ``path`` (validator built once per file)."""
    return _errors(_validator_for_file(path), instance)


def check_document_schema(doc: Document, schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """The document validates against the schema chosen by its apiVersion and kind."""
    try:
        schema_for(doc.api_version, doc.kind, schema_dir)
    except UnknownKindError as error:
        return [f"{doc.label}: {error}"]
    path = schema_dir / schema_relpath(doc.api_version, doc.kind)
    return [f"{doc.label}: {message}" for message in file_schema_errors(doc.body, path)]


def check_func_schema(func: FuncConfig, schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """A func.yaml validates against knative/func's func_yaml-schema.json (draft-04)."""
    path = schema_dir / FUNC_SCHEMA_FILE
    return [f"{func.label}: {message}" for message in file_schema_errors(func.body, path)]


# --------------------------------------------------------------------------- cron


_MONTH_NAMES = (
    "JAN",
    "FEB",
    "MAR",
    "APR",
    "MAY",
    "JUN",
    "JUL",
    "AUG",
    "SEP",
    "OCT",
    "NOV",
    "DEC",
)
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, start=1)}
_DAYS = {name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
# name, low, high, names, '?' allowed -- the fields of robfig/cron (Knative's parser), in order.
_CRON_FIELDS: tuple[tuple[str, int, int, Mapping[str, int], bool], ...] = (
    ("second", 0, 59, {}, False),
    ("minute", 0, 59, {}, False),
    ("hour", 0, 23, {}, False),
    ("day of month", 1, 31, {}, True),
    ("month", 1, 12, _MONTHS, False),
    ("day of week", 0, 6, _DAYS, True),
)
_CRON_DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}


@dataclass(frozen=True)
class CronSchedule:
    """The values each field of a cron expression selects (seconds 0 when omitted)."""

    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days_of_month: frozenset[int]
    months: frozenset[int]
    days_of_week: frozenset[int]

    def min_interval_seconds(self) -> int | None:
        """Shortest gap between two firings, when every day fires alike (else None)."""
        every_day = (
            self.days_of_month == frozenset(range(1, 32))
            and self.months == frozenset(range(1, 13))
            and self.days_of_week == frozenset(range(7))
        )
        if not every_day:
            return None
        times = sorted(h * 3600 + m * 60 + s for h in self.hours for m in self.minutes for s in self.seconds)
        gaps = [b - a for a, b in itertools.pairwise(times)] + [times[0] + 86400 - times[-1]]
        return min(gaps)


def parse_cron(expression: str) -> CronSchedule:
    """Parse a PingSource schedule as Knative does; raise ValueError when it is not valid.

    Five fields (minute hour day-of-month month day-of-week) or six with seconds first;
    ``*``, ``?`` (day fields), lists, ranges, steps, month and weekday names, and the
    ``@hourly``-style descriptors. ``@every`` and ``TZ=``/``CRON_TZ=`` prefixes are rejected:
    intervals are not cron, and the zone belongs in ``spec.timezone``.
    """
    text = expression.strip()
    if text.startswith("@every"):
        raise ValueError("@every is not accepted by PingSource; write a cron expression")
    if text.startswith(("TZ=", "CRON_TZ=")):
        raise ValueError("time zone prefix in schedule; put the zone in spec.timezone")
    if text.startswith("@"):
        if text not in _CRON_DESCRIPTORS:
            raise ValueError(f"unknown descriptor {text!r}")
        text = _CRON_DESCRIPTORS[text]
    fields = text.split()
    if len(fields) == 5:
        fields = ["0", *fields]
    elif len(fields) != 6:
        raise ValueError(f"expected 5 or 6 fields, found {len(fields)}")
    values = [_parse_cron_field(value, *spec) for value, spec in zip(fields, _CRON_FIELDS, strict=True)]
    return CronSchedule(*values)


def _parse_cron_field(
    text: str, name: str, low: int, high: int, names: Mapping[str, int], question: bool
) -> frozenset[int]:
    selected: set[int] = set()
    for part in text.split(","):
        if not part:
            raise ValueError(f"{name}: empty list item in {text!r}")
        range_part, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"{name}: step must be a positive integer in {part!r}")
            step = int(step_text)
        if range_part == "*" or (question and range_part == "?"):
            start, end = low, high
        elif "-" in range_part:
            first, _, last = range_part.partition("-")
            start, end = (
                _cron_value(first, name, low, high, names),
                _cron_value(last, name, low, high, names),
            )
            if start > end:
                raise ValueError(f"{name}: range {range_part!r} runs backwards")
        else:
            start = _cron_value(range_part, name, low, high, names)
            end = high if slash else start
        selected.update(range(start, end + 1, step))
    return frozenset(selected)


def _cron_value(text: str, name: str, low: int, high: int, names: Mapping[str, int]) -> int:
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise ValueError(f"{name}: {text!r} is not a number")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{name}: {value} is outside {low}-{high}")
    return value


# --------------------------------------------------------------------------- durations


_DURATION = re.compile(
    r"^P(?!$)(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


def parse_duration(text: Any) -> float:
    """Seconds in an ISO-8601 duration such as ``PT0.5S`` or ``PT1M30S``; ValueError if not one.

    Years and months are refused (their length varies), as are Go-style ``500ms``.
    """
    match = _DURATION.match(text) if isinstance(text, str) else None
    if match is None:
        raise ValueError(f"{text!r} is not an ISO-8601 duration (e.g. PT0.5S, PT30S, PT1M)")
    scale = {"weeks": 604800, "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
    return sum(float(value) * scale[unit] for unit, value in match.groupdict().items() if value)


# --------------------------------------------------------------------------- retry budget


@dataclass(frozen=True)
class RetryBudget:
    """How long one message can stay unacked in eventing-rabbitmq's dispatcher."""

    retry: int
    timeout_s: float
    backoff_s: float  # sum of the waits between attempts

    @property
    def per_message_s(self) -> float:
        return (self.retry + 1) * self.timeout_s + self.backoff_s

    def backlog_s(self, parallelism: int) -> float:
        """Until the last of PREFETCH prefetched messages is acked, ``parallelism`` at a time."""
        return math.ceil(PREFETCH / parallelism) * self.per_message_s


def retry_budget(delivery: Mapping[str, Any]) -> RetryBudget:
    """Worst case of a delivery spec; ValueError when retry, backoffDelay or timeout is unusable.

    Conservative: every attempt (retry + 1) runs to the timeout, and the wait before retry n
    is backoffDelay x 2^n (exponential, as the CloudEvents SDK counts) or backoffDelay x n
    (linear) for n = 1..retry. The exponential sum is twice sum(backoffDelay x 2^i, i < retry).
    """
    retry = delivery.get("retry")
    if not isinstance(retry, int) or isinstance(retry, bool) or retry < 0:
        raise ValueError(f"retry must be a non-negative integer, got {retry!r}")
    delay = parse_duration(delivery.get("backoffDelay"))
    timeout = parse_duration(delivery.get("timeout"))
    policy = delivery.get("backoffPolicy", "exponential")
    if policy == "exponential":
        backoff = sum(delay * 2**n for n in range(1, retry + 1))
    elif policy == "linear":
        backoff = sum(delay * n for n in range(1, retry + 1))
    else:
        raise ValueError(f"backoffPolicy must be exponential or linear, got {policy!r}")
    return RetryBudget(retry, timeout, backoff)


def parallelism(doc: Document) -> int:
    """A Trigger's ``rabbitmq.eventing.knative.dev/parallelism`` (default 1); ValueError if bad."""
    annotations = doc.metadata.get("annotations") or {}
    raw = annotations.get(PARALLELISM_ANNOTATION, "1")
    low, high = PARALLELISM_RANGE
    if not isinstance(raw, str) or not raw.isdigit() or not low <= int(raw) <= high:
        raise ValueError(f"{PARALLELISM_ANNOTATION} must be an integer {low}..{high} as a string, got {raw!r}")
    return int(raw)


# --------------------------------------------------------------------------- checks: Kubernetes


def check_metadata(doc: Document) -> list[str]:
    """A name; the project's namespace on namespaced kinds; string labels and annotations."""
    if (doc.api_version, doc.kind) == KUSTOMIZATION_KIND:
        return []
    problems = []
    if not doc.name:
        problems.append(f"{doc.label}: metadata.name is missing")
    namespaced = (doc.api_version, doc.kind) not in CLUSTER_SCOPED_KINDS
    if namespaced and doc.metadata.get("namespace") != NAMESPACE:
        problems.append(f"{doc.label}: metadata.namespace is {doc.metadata.get('namespace')!r}, expected {NAMESPACE!r}")
    for field in ("labels", "annotations"):
        values = doc.metadata.get(field) or {}
        if not isinstance(values, dict):
            problems.append(f"{doc.label}: metadata.{field} is not a mapping")
            continue
        for key, value in values.items():
            if not isinstance(value, str):
                problems.append(f"{doc.label}: metadata.{field}.{key} must be a string, got {value!r}")
    return problems


def check_no_secrets(project: Project) -> list[str]:
    """No Secret outside *.example.yaml templates: secret values never live in the repository."""
    return [
        f"{doc.label}: a Secret in an applied manifest; keep secrets out of the repo "
        f"(only *{EXAMPLE_SUFFIX} templates may show their shape)"
        for doc in project.of_kind("Secret")
    ]


def check_example_secret(doc: Document) -> list[str]:
    """Every value in a Secret template is a placeholder containing CHANGE-ME."""
    if doc.kind != "Secret":
        return []
    values = {**(doc.body.get("stringData") or {}), **(doc.body.get("data") or {})}
    return [
        f"{doc.label}: {key} does not look like a placeholder (must contain CHANGE-ME)"
        for key, value in values.items()
        if "CHANGE-ME" not in str(value)
    ]


def check_kustomizations(root: Path = REPO_ROOT) -> list[str]:
    """Each kustomization.yaml lists every YAML file beside it, except templates, and no more."""
    problems = []
    for path in sorted((root / KNATIVE_DIR).rglob(KUSTOMIZATION_FILE)):
        label = _relative(path, root)
        try:
            docs = load_yaml_documents(path, root)
        except ManifestError as error:
            problems.append(str(error))
            continue
        body = docs[0].body if docs else {}
        listed = [str(entry) for entry in body.get("resources") or []]
        if body.get("namespace") != NAMESPACE:
            problems.append(f"{label}: namespace is {body.get('namespace')!r}, expected {NAMESPACE!r}")
        here = {
            p.name
            for p in path.parent.iterdir()
            if p.is_file() and p.suffix in {".yaml", ".yml"} and p.name != KUSTOMIZATION_FILE
        }
        for name in sorted(here - set(listed)):
            if not is_example(path.parent / name):
                problems.append(f"{label}: {name} is in the directory but not listed in resources")
        for entry in listed:
            if is_example(Path(entry)):
                problems.append(f"{label}: lists the template {entry}; templates are never applied")
            elif not (path.parent / entry).exists():
                problems.append(f"{label}: lists {entry}, which does not exist")
        if len(set(listed)) != len(listed):
            problems.append(f"{label}: resources lists a file twice")
    return problems


# --------------------------------------------------------------------------- checks: eventing


def check_pingsource(doc: Document) -> list[str]:
    """Cron schedule, IANA zone, data/dataBase64 exclusive, JSON data, sink the project's Broker."""
    spec, label = doc.spec, doc.label
    problems = []
    schedule = spec.get("schedule")
    if not isinstance(schedule, str):
        problems.append(f"{label}: spec.schedule is missing (Knative's default fires every minute)")
    else:
        try:
            parse_cron(schedule)
        except ValueError as error:
            problems.append(f"{label}: spec.schedule {schedule!r} is not a valid cron expression: {error}")
    timezone = spec.get("timezone")
    if timezone is not None and not _is_iana_zone(timezone):
        problems.append(f"{label}: spec.timezone {timezone!r} is not an IANA time zone name")
    if "data" in spec and "dataBase64" in spec:
        problems.append(f"{label}: spec.data and spec.dataBase64 are mutually exclusive")
    content_type = str(spec.get("contentType", "")).split(";")[0].strip().lower()
    if content_type == "application/json":
        payload: Any = spec.get("data")
        if "dataBase64" in spec:
            try:
                payload = base64.b64decode(str(spec["dataBase64"]), validate=True)
            except binascii.Error:
                problems.append(f"{label}: spec.dataBase64 is not valid base64")
                payload = None
        if payload is not None:
            try:
                json.loads(payload)
            except (TypeError, ValueError) as error:
                problems.append(f"{label}: contentType is application/json but data is not JSON: {error}")
    ref = (spec.get("sink") or {}).get("ref") or {}
    if (ref.get("kind"), ref.get("name")) != ("Broker", BROKER_NAME):
        problems.append(f"{label}: spec.sink should be the Broker {BROKER_NAME!r}, not {ref or spec.get('sink')!r}")
    return problems


def _is_iana_zone(name: Any) -> bool:
    if not isinstance(name, str) or not name or name.startswith(("/", ".")):
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def pingsource_event_source(doc: Document) -> str:
    """The CloudEvents ``source`` of a PingSource's events."""
    return f"/apis/v1/namespaces/{doc.metadata.get('namespace', NAMESPACE)}/pingsources/{doc.name}"


def check_delivery(
    delivery: Any,
    where: str,
    function_names: set[str],
    *,
    need_dead_letter: bool = True,
) -> list[str]:
    """retry, backoffPolicy, backoffDelay, timeout valid; a dead-letter sink that is a function."""
    if not isinstance(delivery, dict):
        return [f"{where}: spec.delivery is missing (retry, backoff, timeout and deadLetterSink)"]
    problems = []
    for field in ("retry", "backoffPolicy", "backoffDelay", "timeout"):
        if field not in delivery:
            problems.append(f"{where}: spec.delivery.{field} is missing")
    if delivery.get("backoffPolicy", "exponential") not in {"exponential", "linear"}:
        problems.append(f"{where}: spec.delivery.backoffPolicy must be exponential or linear")
    for field in ("backoffDelay", "timeout", "retryAfterMax"):
        if field in delivery:
            try:
                parse_duration(delivery[field])
            except ValueError as error:
                problems.append(f"{where}: spec.delivery.{field}: {error}")
    retry = delivery.get("retry")
    if "retry" in delivery and (not isinstance(retry, int) or isinstance(retry, bool) or retry < 0):
        problems.append(f"{where}: spec.delivery.retry must be a non-negative integer")
    sink = delivery.get("deadLetterSink")
    if not sink:
        if need_dead_letter:
            problems.append(
                f"{where}: spec.delivery has no deadLetterSink; events that exhaust their retries would be dropped"
            )
    else:
        problems.extend(_check_function_ref(sink, f"{where}: spec.delivery.deadLetterSink", function_names))
    return problems


def _check_function_ref(destination: Any, where: str, function_names: set[str]) -> list[str]:
    ref = destination.get("ref") if isinstance(destination, dict) else None
    if not isinstance(ref, dict):
        return [f"{where} must be a ref to a function's Knative Service"]
    problems = []
    if (ref.get("apiVersion"), ref.get("kind")) != (SERVICE_API_VERSION, "Service"):
        problems.append(f"{where}.ref must be a {SERVICE_API_VERSION} Service, got {ref.get('kind')!r}")
    if ref.get("name") not in function_names:
        problems.append(
            f"{where}.ref names {ref.get('name')!r}, but there is no function by that name "
            f"(known: {', '.join(sorted(function_names)) or 'none'})"
        )
    return problems


def check_trigger(
    doc: Document,
    function_names: set[str],
    known_event_types: frozenset[str] = KNOWN_EVENT_TYPES,
) -> list[str]:
    """The RabbitMQ broker's rules for one Trigger (filters, delivery, parallelism, refs)."""
    spec, label = doc.spec, doc.label
    problems = []
    if spec.get("broker") != BROKER_NAME:
        problems.append(f"{label}: spec.broker is {spec.get('broker')!r}, expected {BROKER_NAME!r}")
    if "filters" in spec:
        problems.append(
            f"{label}: uses spec.filters, which the RabbitMQ broker ignores (the Trigger would "
            "receive every event); use spec.filter.attributes"
        )
    attributes = (spec.get("filter") or {}).get("attributes")
    if not isinstance(attributes, dict) or not attributes:
        problems.append(f"{label}: spec.filter.attributes is empty; the Trigger would receive every event")
        attributes = {}
    for key, value in attributes.items():
        if not CE_ATTRIBUTE_NAME.match(str(key)):
            problems.append(f"{label}: filter attribute {key!r} is not a CloudEvents attribute name (a-z0-9, 1-20)")
        if not isinstance(value, str) or not value:
            problems.append(f"{label}: filter attribute {key!r} must be a non-empty string (exact match)")
    event_type = attributes.get("type")
    if event_type is None:
        problems.append(f"{label}: spec.filter.attributes has no type")
    elif event_type not in known_event_types:
        problems.append(
            f"{label}: filters on unknown event type {event_type!r} (known: {', '.join(sorted(known_event_types))})"
        )
    problems.extend(_check_function_ref(spec.get("subscriber"), f"{label}: spec.subscriber", function_names))
    problems.extend(check_delivery(spec.get("delivery"), label, function_names))
    try:
        parallelism(doc)
    except ValueError as error:
        problems.append(f"{label}: {error}")
    return problems


def check_ping_triggers(project: Project) -> list[str]:
    """A Trigger on ping events filters on one existing PingSource; each PingSource is consumed."""
    sources = {pingsource_event_source(doc): doc for doc in project.of_kind("PingSource")}
    consumed: set[str] = set()
    problems = []
    for trigger in project.of_kind("Trigger"):
        attributes = (trigger.spec.get("filter") or {}).get("attributes") or {}
        if attributes.get("type") != PING_EVENT_TYPE:
            continue
        source = attributes.get("source")
        if source not in sources:
            problems.append(
                f"{trigger.label}: a Trigger on {PING_EVENT_TYPE} must also filter on the source of "
                f"one PingSource (one of {sorted(sources)}), got {source!r}; otherwise it receives "
                "every PingSource's ticks"
            )
        else:
            consumed.add(source)
    for source, doc in sources.items():
        if source not in consumed:
            problems.append(f"{doc.label}: no Trigger filters on its source {source!r}; its ticks go nowhere")
    return problems


def check_broker(doc: Document, project: Project, names: set[str] | None = None) -> list[str]:
    """RabbitMQ class, config refers to a RabbitmqBrokerConfig defined here, default delivery."""
    problems = []
    annotations = doc.metadata.get("annotations") or {}
    if annotations.get(BROKER_CLASS_ANNOTATION) != RABBITMQ_BROKER_CLASS:
        problems.append(f"{doc.label}: annotation {BROKER_CLASS_ANNOTATION} must be {RABBITMQ_BROKER_CLASS!r}")
    config = doc.spec.get("config") or {}
    configs = {c.name for c in project.of_kind("RabbitmqBrokerConfig")}
    if config.get("kind") != "RabbitmqBrokerConfig" or config.get("name") not in configs:
        problems.append(
            f"{doc.label}: spec.config must refer to a RabbitmqBrokerConfig defined under knative/ "
            f"(defined: {sorted(configs)}), got {config!r}"
        )
    names = project.function_names if names is None else names
    problems.extend(check_delivery(doc.spec.get("delivery"), doc.label, names))
    return problems


def check_retry_budget(project: Project) -> list[str]:
    """No message stays unacked past RabbitMQ's 30-minute consumer timeout, in the worst case.

    Per message: (retry + 1) x timeout + backoff waits. Triggers with parallelism > 1: the
    last of 100 prefetched messages, ceil(100 / parallelism) x per message. FIFO Triggers on a
    PingSource: per message shorter than the tick interval, so ticks never queue behind a retry.
    """
    problems = []
    ticks: dict[str, int | None] = {}
    unparsable: set[str] = set()  # schedule reported by check_pingsource
    for ping in project.of_kind("PingSource"):
        try:
            schedule = parse_cron(str(ping.spec.get("schedule")))
        except ValueError:
            unparsable.add(pingsource_event_source(ping))
            continue
        ticks[pingsource_event_source(ping)] = schedule.min_interval_seconds()
    for doc in project.of_kind("Broker") + project.of_kind("Trigger"):
        delivery = doc.spec.get("delivery")
        if not isinstance(delivery, dict):
            continue  # reported by check_delivery
        try:
            budget = retry_budget(delivery)
        except ValueError as error:
            problems.append(f"{doc.label}: cannot compute the retry budget: {error}")
            continue
        if budget.per_message_s >= CONSUMER_TIMEOUT_S:
            problems.append(
                f"{doc.label}: worst case per message {budget.per_message_s:.0f} s is not under "
                f"RabbitMQ's consumer timeout {CONSUMER_TIMEOUT_S} s"
            )
        if doc.kind != "Trigger":
            continue
        try:
            workers = parallelism(doc)
        except ValueError:
            continue  # reported by check_trigger
        source = ((doc.spec.get("filter") or {}).get("attributes") or {}).get("source")
        if workers == 1 and source in unparsable:
            continue
        if workers == 1 and source in ticks:
            interval = ticks[source]
            if interval is None:
                problems.append(f"{doc.label}: cannot work out its PingSource's tick interval")
            elif budget.per_message_s >= interval:
                problems.append(
                    f"{doc.label}: FIFO and worst case per message {budget.per_message_s:.0f} s is "
                    f"not under the tick interval {interval} s: ticks would queue behind a retry"
                )
        elif budget.backlog_s(workers) >= CONSUMER_TIMEOUT_S:
            problems.append(
                f"{doc.label}: worst case for the last of {PREFETCH} prefetched messages "
                f"(ceil({PREFETCH}/{workers}) x {budget.per_message_s:.0f} s = "
                f"{budget.backlog_s(workers):.0f} s) is not under RabbitMQ's consumer timeout "
                f"{CONSUMER_TIMEOUT_S} s"
            )
    return problems


# --------------------------------------------------------------------------- checks: func.yaml

_ENV_REFERENCE = re.compile(r"^\{\{\s*(?P<source>\w+)\s*:\s*(?P<name>[^:{}\s]+)\s*(?::\s*(?P<key>[^:{}\s]+)\s*)?\}\}$")


@dataclass(frozen=True)
class EnvReference:
    """``{{ secret:NAME:KEY }}``, ``{{ configMap:NAME }}``, ``{{ env:VAR }}`` in func.yaml envs."""

    source: str  # secret | configMap | env
    name: str
    key: str | None


def parse_env_reference(value: Any) -> EnvReference | None:
    """None for a literal value; ValueError for a ``{{ ... }}`` that func would refuse."""
    if not isinstance(value, str) or not value.lstrip().startswith("{{"):
        return None
    match = _ENV_REFERENCE.match(value.strip())
    if match is None or match["source"] not in {"secret", "configMap", "env"}:
        raise ValueError(
            f"{value!r} is not one of {{{{ secret:NAME:KEY }}}}, {{{{ configMap:NAME:KEY }}}}, "
            "{{ secret:NAME }}, {{ configMap:NAME }}, {{ env:VAR }}"
        )
    if match["source"] == "env" and match["key"] is not None:
        raise ValueError(f"{value!r}: {{{{ env:VAR }}}} takes no key")
    return EnvReference(match["source"], match["name"], match["key"])


def render_knative_service(func: Mapping[str, Any]) -> JsonObject:
    """The Knative Service `func deploy` would create from a func.yaml (knative/func's deployer).

    deploy.annotations go on the Service AND its revision template; deploy.options.scale
    becomes autoscaling annotations on the template only; envs become env / envFrom.
    Raises ValueError for an env entry func would refuse.
    """
    name = str(func.get("name", ""))
    deploy = func.get("deploy") or {}
    options = deploy.get("options") or {}
    annotations = {str(k): v for k, v in (deploy.get("annotations") or {}).items()}
    labels = {str(item.get("key")): item.get("value", "") for item in deploy.get("labels") or []}
    template_annotations = dict(annotations)
    scale = options.get("scale") or {}
    for field, key in (
        ("min", "min-scale"),
        ("max", "max-scale"),
        ("metric", "metric"),
        ("target", "target"),
    ):
        if field in scale:
            template_annotations[AUTOSCALING_PREFIX + key] = str(scale[field])
    if "utilization" in scale:
        template_annotations[AUTOSCALING_PREFIX + "target-utilization-percentage"] = str(scale["utilization"])
    env: list[JsonObject] = [{"name": "ADDRESS", "value": "0.0.0.0"}]  # noqa: S104 - what func sets in the pod
    env_from: list[JsonObject] = []
    for entry in (func.get("run") or {}).get("envs") or []:
        reference = parse_env_reference(entry.get("value"))
        env_name = entry.get("name")
        if reference is None:
            env.append({"name": env_name, "value": str(entry.get("value", ""))})
        elif reference.source == "env":
            env.append({"name": env_name, "value": f"<local ${reference.name}>"})
        elif env_name is None or reference.key is None:
            if env_name is not None or reference.key is not None:
                raise ValueError(f"env {env_name!r}: a whole {reference.source} needs no name and no key")
            ref_field = "secretRef" if reference.source == "secret" else "configMapRef"
            env_from.append({ref_field: {"name": reference.name}})
        else:
            ref_field = "secretKeyRef" if reference.source == "secret" else "configMapKeyRef"
            env.append(
                {
                    "name": env_name,
                    "valueFrom": {ref_field: {"name": reference.name, "key": reference.key}},
                }
            )
    health = {**HEALTH_ENDPOINTS, **(deploy.get("healthEndpoints") or {})}
    container: JsonObject = {
        "image": str(func.get("image") or f"registry.invalid/{name}:latest"),
        "env": env,
        "livenessProbe": {"httpGet": {"path": health["liveness"]}},
        "readinessProbe": {"httpGet": {"path": health["readiness"]}},
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if env_from:
        container["envFrom"] = env_from
    resources = options.get("resources") or {}
    rendered_resources = {
        part: {k: v for k, v in (resources.get(part) or {}).items() if k in {"cpu", "memory"}}
        for part in ("requests", "limits")
        if resources.get(part)
    }
    if rendered_resources:
        container["resources"] = rendered_resources
    template_spec: JsonObject = {"containers": [container]}
    concurrency = (resources.get("limits") or {}).get("concurrency")
    if concurrency is not None:
        template_spec["containerConcurrency"] = concurrency
    if deploy.get("serviceAccountName"):
        template_spec["serviceAccountName"] = deploy["serviceAccountName"]
    return {
        "apiVersion": SERVICE_API_VERSION,
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": func.get("namespace") or NAMESPACE,
            "labels": labels,
            "annotations": annotations,
        },
        "spec": {
            "template": {
                "metadata": {"labels": labels, "annotations": template_annotations},
                "spec": template_spec,
            }
        },
    }


def check_rendered_service(func: FuncConfig, schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """The Service func would deploy validates, and carries no autoscaling annotation itself.

    Knative's webhook rejects autoscaling.knative.dev/* on a Service's own metadata; func
    copies deploy.annotations there, so scaling belongs in deploy.options.scale.
    """
    try:
        service = render_knative_service(func.body)
    except ValueError as error:
        return [f"{func.label}: {error}"]
    path = schema_dir / schema_relpath(SERVICE_API_VERSION, "Service")
    problems = [f"{func.label}: rendered Service: {message}" for message in file_schema_errors(service, path)]
    for key in service["metadata"]["annotations"]:
        if key.startswith(AUTOSCALING_PREFIX):
            problems.append(
                f"{func.label}: deploy.annotations has {key}; func also puts it on the Service's "
                "metadata, which Knative rejects: use deploy.options.scale (min/max)"
            )
    return problems


def check_func_config(func: FuncConfig, project: Project) -> list[str]:
    """Project conventions for a func.yaml, and env references that resolve."""
    body, label = func.body, func.label
    problems = []
    expected = {"runtime": "python", "invoke": "http", "namespace": NAMESPACE}
    for field, value in expected.items():
        if body.get(field) != value:
            problems.append(f"{label}: {field} is {body.get(field)!r}, expected {value!r}")
    if body.get("invoke") == "cloudevent":
        problems.append(
            f"{label}: invoke cloudevent builds func-python's CloudEvent middleware, which answers "
            "400 to a non-CloudEvent request and the RabbitMQ broker then drops it silently"
        )
    if (body.get("build") or {}).get("builder") != "pack":
        problems.append(f"{label}: build.builder should be 'pack'")
    if func.directory and func.name != func.directory:
        problems.append(f"{label}: name {func.name!r} differs from its directory {func.directory!r}")
    if not func.directory and func.name in {f.directory for f in project.funcs}:
        problems.append(f"{label}: the root function's name {func.name!r} clashes with a function directory")
    health = (body.get("deploy") or {}).get("healthEndpoints") or {}
    if health != HEALTH_ENDPOINTS:
        problems.append(f"{label}: deploy.healthEndpoints should be {HEALTH_ENDPOINTS}, got {health}")
    problems.extend(check_env_references(func, project))
    problems.extend(check_concurrency(func))
    return problems


def check_env_references(func: FuncConfig, project: Project) -> list[str]:
    """Every Secret / ConfigMap key a func.yaml names exists (template / knative/); no {{ env }}."""
    config_maps = {doc.name: doc.body.get("data") or {} for doc in project.of_kind("ConfigMap")}
    secrets = {
        doc.name: {**(doc.body.get("data") or {}), **(doc.body.get("stringData") or {})}
        for doc in project.examples
        if doc.kind == "Secret"
    }
    problems = []
    seen: set[str] = set()
    for entry in (func.body.get("run") or {}).get("envs") or []:
        env_name = entry.get("name")
        where = f"{func.label}: env {env_name or '(all keys)'}"
        if env_name in seen:
            problems.append(f"{where} is set twice")
        if env_name:
            seen.add(env_name)
        try:
            reference = parse_env_reference(entry.get("value"))
        except ValueError as error:
            problems.append(f"{where}: {error}")
            continue
        if reference is None:
            continue
        if reference.source == "env":
            problems.append(
                f"{where}: {{{{ env:{reference.name} }}}} copies the deployer's local environment "
                "into the Service spec at deploy time; read it from a Secret or ConfigMap"
            )
            continue
        if not DNS_LABEL.match(reference.name):
            problems.append(f"{where}: {reference.source} name {reference.name!r} is not a valid name")
        kind, known = ("ConfigMap", config_maps) if reference.source == "configMap" else ("Secret", secrets)
        origin = "under knative/" if kind == "ConfigMap" else f"in a *{EXAMPLE_SUFFIX} template"
        if reference.name not in known:
            problems.append(f"{where}: {kind} {reference.name!r} is not defined {origin}")
        elif reference.key is not None and reference.key not in known[reference.name]:
            problems.append(
                f"{where}: {kind} {reference.name!r} has no key {reference.key!r} "
                f"(the pod would fail with CreateContainerConfigError)"
            )
    return problems


# --------------------------------------------------------------------------- kustomize (the subset used)

OVERLAYS_DIR = f"{KNATIVE_DIR}/overlays"
ALL_IN_ONE_OVERLAY = f"{OVERLAYS_DIR}/all-in-one"
REQUIRED_OVERLAYS = (f"{OVERLAYS_DIR}/split", ALL_IN_ONE_OVERLAY)
# The fields the offline renderer implements; any other field is reported, never ignored.
KUSTOMIZE_FIELDS = frozenset({"apiVersion", "kind", "metadata", "namespace", "resources", "patches", "images"})
PATCH_TARGET_FIELDS = frozenset({"group", "version", "kind", "name", "namespace"})
_POD_SPEC_PATHS: dict[str, tuple[str, ...]] = {
    "Pod": ("spec",),
    "Job": ("spec", "template", "spec"),
    "Deployment": ("spec", "template", "spec"),
    "StatefulSet": ("spec", "template", "spec"),
    "DaemonSet": ("spec", "template", "spec"),
    "CronJob": ("spec", "jobTemplate", "spec", "template", "spec"),
}


@dataclass(frozen=True)
class Rendered:
    """What ``kubectl apply -k <directory>`` would send, and what stopped it rendering cleanly."""

    directory: str
    documents: list[Document]
    problems: list[str]


def kustomization_directories(project: Project) -> list[str]:
    """Directories (relative to the root) holding a kustomization.yaml, sorted."""
    return sorted(
        posixpath.dirname(doc.source)
        for doc in project.manifests
        if (doc.api_version, doc.kind) == KUSTOMIZATION_KIND and posixpath.basename(doc.source) == KUSTOMIZATION_FILE
    )


def render_roots(project: Project) -> list[str]:
    """Kustomizations that no other one lists: what ``kubectl apply -k`` is pointed at."""
    directories = kustomization_directories(project)
    listed: set[str] = set()
    for directory in directories:
        kustomization = _kustomization(project, directory)
        entries = kustomization.body.get("resources") if kustomization else None
        listed.update(_join(directory, str(entry)) for entry in entries or [])
    return [directory for directory in directories if directory not in listed]


def render_kustomization(project: Project, directory: str, _stack: tuple[str, ...] = ()) -> Rendered:
    """Resources, namespace, inline patches (JSON 6902 or merge) and images, as kustomize does.

    Rendered documents keep their file as ``source``; one an overlay changed gets
    `` via <overlay>`` appended, so a problem names both. Nothing is read from disk: the
    documents come from ``project`` (so a test can break a copy in memory).
    """
    label = f"{directory}/{KUSTOMIZATION_FILE}"
    kustomization = _kustomization(project, directory)
    if directory in _stack:
        return Rendered(directory, [], [f"{label}: resources form a cycle ({' -> '.join((*_stack, directory))})"])
    if kustomization is None:
        return Rendered(directory, [], [f"{directory}: has no {KUSTOMIZATION_FILE}"])
    body = kustomization.body
    problems = [
        f"{label}: {field} is not implemented by the offline renderer (tests/support/manifests.py)"
        for field in body
        if field not in KUSTOMIZE_FIELDS
    ]
    documents, found = _render_resources(project, directory, body.get("resources") or [], (*_stack, directory))
    problems += found
    namespace = body.get("namespace")
    if isinstance(namespace, str):
        documents = [_with_namespace(doc, namespace, directory) for doc in documents]
    for index, patch in enumerate(body.get("patches") or []):
        documents, found = _apply_patch(documents, patch, directory)
        problems += [f"{label}: patches[{index}]: {problem}" for problem in found]
    for entry in body.get("images") or []:
        documents, found = _set_image(documents, entry, directory)
        problems += [f"{label}: images: {problem}" for problem in found]
    return Rendered(directory, documents, problems)


def _render_resources(
    project: Project, directory: str, entries: Sequence[Any], stack: tuple[str, ...]
) -> tuple[list[Document], list[str]]:
    label = f"{directory}/{KUSTOMIZATION_FILE}"
    documents: list[Document] = []
    problems: list[str] = []
    templates = {doc.source for doc in project.examples}
    for entry in entries:
        path = _join(directory, str(entry))
        files = [copy.deepcopy(doc) for doc in project.manifests if doc.source == path]
        if _kustomization(project, path) is not None:
            nested = render_kustomization(project, path, stack)
            documents += nested.documents
            problems += nested.problems
        elif files:
            documents += files
        elif path not in templates:  # a listed template is reported by check_kustomizations
            problems.append(f"{label}: resource {entry!r} does not exist (no YAML file or kustomization at {path})")
    return documents, problems


def _kustomization(project: Project, directory: str) -> Document | None:
    source = f"{directory}/{KUSTOMIZATION_FILE}"
    found = [
        doc for doc in project.manifests if doc.source == source and (doc.api_version, doc.kind) == KUSTOMIZATION_KIND
    ]
    return found[0] if found else None


def _join(directory: str, entry: str) -> str:
    return posixpath.normpath(posixpath.join(directory, entry))


def _changed(doc: Document, body: JsonObject, directory: str) -> Document:
    marker = f" via {directory}"
    return Document(doc.source if doc.source.endswith(marker) else doc.source + marker, doc.index, body)


def _with_namespace(doc: Document, namespace: str, directory: str) -> Document:
    if (doc.api_version, doc.kind) in CLUSTER_SCOPED_KINDS or doc.metadata.get("namespace") == namespace:
        return doc
    body = copy.deepcopy(doc.body)
    body.setdefault("metadata", {})["namespace"] = namespace
    return _changed(doc, body, directory)


def _apply_patch(documents: list[Document], patch: Any, directory: str) -> tuple[list[Document], list[str]]:
    if not isinstance(patch, dict):
        return documents, ["not a mapping"]
    if "path" in patch:
        return documents, [
            "write the patch inline (patch: |-): a patch file under knative/ would be read as a manifest"
        ]
    try:
        content = yaml.load(str(patch.get("patch", "")), Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        return documents, [f"the patch is not YAML: {error}"]
    target = patch.get("target")
    if target is None and isinstance(content, dict):  # a merge patch names its own target
        group, _, version = str(content.get("apiVersion", "")).rpartition("/")
        name = (content.get("metadata") or {}).get("name")
        target = {"group": group, "version": version, "kind": content.get("kind"), "name": name}
    if not isinstance(target, dict) or not target:
        return documents, ["no target: set target (kind, name) for a JSON 6902 patch"]
    if unknown := sorted(set(target) - PATCH_TARGET_FIELDS):
        return documents, [f"target fields {unknown} are not implemented by the offline renderer"]
    if not isinstance(content, list | dict):
        return documents, ["the patch is neither a list of JSON 6902 operations nor a merge patch"]
    matched = [index for index, doc in enumerate(documents) if _targets(target, doc)]
    if not matched:
        return documents, [f"target {target} matches no resource"]
    patched, problems = list(documents), []
    for index in matched:
        body = copy.deepcopy(documents[index].body)
        try:
            body = apply_json_patch(body, content) if isinstance(content, list) else apply_merge_patch(body, content)
        except ValueError as error:
            problems.append(f"cannot apply to {documents[index].label}: {error}")
            continue
        patched[index] = _changed(documents[index], body, directory)
    return patched, problems


def _targets(target: Mapping[str, Any], doc: Document) -> bool:
    """Kustomize matches each target field as an anchored regular expression."""
    group, _, version = doc.api_version.rpartition("/")
    fields = {"group": group, "version": version, "kind": doc.kind, "name": doc.name}
    fields["namespace"] = str(doc.metadata.get("namespace", ""))
    return all(re.fullmatch(str(pattern), fields[key]) for key, pattern in target.items() if pattern is not None)


def apply_json_patch(body: Any, operations: Sequence[Any]) -> Any:
    """RFC 6902 (add, remove, replace, move, copy, test); ValueError names the failing operation."""
    for number, operation in enumerate(operations):
        if not isinstance(operation, dict) or "op" not in operation or "path" not in operation:
            raise ValueError(f"operation {number} needs op and path")
        op, path = operation["op"], _pointer(operation["path"])
        where = f"operation {number} ({op} {operation['path']})"
        try:
            if op == "test" and _get(body, path) != operation.get("value"):
                raise ValueError("the value differs")
            if op in {"remove", "move"}:
                value = _remove(body, _pointer(operation["from"]) if op == "move" else path)
            elif op == "copy":
                value = copy.deepcopy(_get(body, _pointer(operation["from"])))
            else:
                value = copy.deepcopy(operation.get("value"))
            if op in {"add", "replace", "move", "copy"}:
                _put(body, path, value, replace=op == "replace")
            elif op not in {"test", "remove"}:
                raise ValueError("unknown op")
        except KeyError as error:
            raise ValueError(f"{where}: {error} does not exist") from error
        except (IndexError, TypeError, ValueError) as error:
            raise ValueError(f"{where}: {error}") from error
    return body


def apply_merge_patch(body: JsonObject, patch: Mapping[str, Any]) -> JsonObject:
    """A JSON merge patch (RFC 7386); lists are refused rather than merged the wrong way."""
    for key, value in patch.items():
        if value is None:
            body.pop(key, None)
        elif isinstance(value, dict) and isinstance(body.get(key), dict):
            apply_merge_patch(body[key], value)
        elif isinstance(value, list) and isinstance(body.get(key), list) and value != body[key]:
            raise ValueError(f"{key}: kustomize merges some lists by key, which is not modelled; use a JSON 6902 patch")
        else:
            body[key] = copy.deepcopy(value)
    return body


def _pointer(text: Any) -> list[str]:
    if not isinstance(text, str) or not text.startswith("/"):
        raise ValueError(f"{text!r} is not a JSON pointer below the document's root")
    return [token.replace("~1", "/").replace("~0", "~") for token in text[1:].split("/")]


def _get(body: Any, path: Sequence[str]) -> Any:
    for token in path:
        body = body[_index(body, token)] if isinstance(body, list) else body[token]
    return body


def _put(body: Any, path: Sequence[str], value: Any, *, replace: bool) -> None:
    parent, token = _get(body, path[:-1]), path[-1]
    if isinstance(parent, list):
        if token == "-" and not replace:
            parent.append(value)
        elif replace:
            parent[_index(parent, token)] = value
        else:
            parent.insert(_index(parent, token, end=True), value)
    elif isinstance(parent, dict):
        if replace and token not in parent:
            raise KeyError(f"{token!r} does not exist")
        parent[token] = value
    else:
        raise TypeError(f"cannot set {token!r} inside a {type(parent).__name__}")


def _remove(body: Any, path: Sequence[str]) -> Any:
    parent, token = _get(body, path[:-1]), path[-1]
    return parent.pop(_index(parent, token)) if isinstance(parent, list) else parent.pop(token)


def _index(items: list[Any], token: str, *, end: bool = False) -> int:
    if not token.isdigit() or int(token) > len(items) - (0 if end else 1):
        raise IndexError(f"{token!r} is not an index of a list of {len(items)}")
    return int(token)


def _set_image(documents: list[Document], entry: Any, directory: str) -> tuple[list[Document], list[str]]:
    if not isinstance(entry, dict) or not entry.get("name"):
        return documents, ["an entry needs a name"]
    result, matched = [], False
    for doc in documents:
        body = copy.deepcopy(doc.body)
        containers = [c for c in pod_containers(body) if image_name(str(c.get("image", ""))) == entry["name"]]
        for container in containers:
            container["image"] = _new_image(str(container["image"]), entry)
        result.append(_changed(doc, body, directory) if containers else doc)
        matched = matched or bool(containers)
    return result, [] if matched else [f"{entry['name']!r} matches no container image, so nothing would change"]


def pod_containers(body: Mapping[str, Any]) -> list[JsonObject]:
    """The containers and init containers of a workload's pod template (none for other kinds)."""
    spec: Any = body
    for key in _POD_SPEC_PATHS.get(str(body.get("kind")), ("<no pod spec>",)):
        spec = spec.get(key) if isinstance(spec, dict) else None
    if not isinstance(spec, dict):
        return []
    found = [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]
    return [container for container in found if isinstance(container, dict)]


def image_name(image: str) -> str:
    """``ghcr.io/acme/dispatcher:latest`` -> ``ghcr.io/acme/dispatcher`` (tag and digest dropped)."""
    reference = image.split("@", 1)[0]
    colon = reference.rfind(":")
    return reference[:colon] if colon > reference.rfind("/") else reference


def _new_image(image: str, entry: Mapping[str, Any]) -> str:
    name = str(entry.get("newName") or image_name(image))
    if entry.get("digest"):
        return f"{name}@{entry['digest']}"
    if entry.get("newTag"):
        return f"{name}:{entry['newTag']}"
    return name + image[len(image_name(image)) :]


# --------------------------------------------------------------------------- checks: what gets applied

# Types the code emits: every event model but those sent from outside the functions (the
# PingSources' ticks and the appointment system's signed announcements).
EXTERNAL_EVENT_TYPES = frozenset({PING, AppointmentChanged.TYPE})
EMITTED_EVENT_TYPES = KNOWN_EVENT_TYPES - EXTERNAL_EVENT_TYPES

MIGRATION_JOB = "patient-notify-migrate"
MIGRATION_COMMAND = ("python", "-m", "patient_notify.db")
PLACEHOLDER_IMAGE = "patient-notify-function"
# Each request holds at most one pooled connection at a time: more in flight than the pool
# would wait inside the pod instead of making the autoscaler add one.
DB_POOL_MAX = int(Settings.model_fields["db_pool_max"].default)

# Labels on the pods that reach (or must not reach) the stores, as their controllers set them.
SERVICE_LABEL = "serving.knative.dev/service"  # Knative Serving, on every pod of a Service
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"  # the API server, on every namespace
DATABASE_PORT, AMQP_PORT = 5432, 5672
ALL_IN_ONE_STEPS = frozenset(STEPS)  # the functions the root func.yaml runs as steps (not webhooks)
AMQP_FUNCTIONS = frozenset(
    {"monitor", "patient-notify"}
)  # the monitor reads dead-letter queue depths (the all-in-one carries it)
CNPG_CLUSTER_LABEL, CNPG_POOLER_LABEL = "cnpg.io/cluster", "cnpg.io/poolerName"  # CloudNativePG, on its pods
BROKER_ROLES = ("ingress", "dispatcher", "dispatcher-dlq")  # eventing-rabbitmq's brokerRole values
UNRELATED_PODS = {"an unlabelled pod": {}, "another application's pod": {"app.kubernetes.io/name": "unrelated"}}


def service_names(project: Project, directory: str) -> set[str]:
    """The Knative Services a render may route to: the all-in-one one, or one per function."""
    if directory == ALL_IN_ONE_OVERLAY:
        return {func.name for func in project.funcs if not func.directory and func.name}
    return {func.directory for func in project.funcs if func.directory}


def check_renders(project: Project) -> list[str]:
    """Each overlay renders cleanly, and what it would apply passes every check."""
    directories = kustomization_directories(project)
    problems = [
        f"{required}: missing (the overlays are how the system is applied: split and all-in-one)"
        for required in REQUIRED_OVERLAYS
        if required not in directories
    ]
    for directory in render_roots(project):
        rendered = render_kustomization(project, directory)
        problems += rendered.problems
        applied = Project(project.root, rendered.documents, project.examples, project.funcs)
        problems += check_applied(applied, directory, service_names(project, directory))
    return problems


def check_applied(project: Project, directory: str, names: set[str]) -> list[str]:
    """Every check on the documents one ``kubectl apply -k <directory>`` would create."""
    problems: list[str] = []
    for doc in project.manifests:
        problems += check_document_schema(doc)
        problems += _run(doc.label, check_metadata, doc)
    problems += check_no_secrets(project)
    for doc in project.of_kind("PingSource"):
        problems += _run(doc.label, check_pingsource, doc)
    for doc in project.of_kind("Trigger"):
        problems += _run(doc.label, check_trigger, doc, names)
    for doc in project.of_kind("Broker"):
        problems += _run(doc.label, check_broker, doc, project, names)
    problems += _run(directory, check_ping_triggers, project)
    problems += _run(directory, check_retry_budget, project)
    problems += _run(directory, check_event_flow, project, directory)
    problems += _run(directory, check_network_policies, project, directory)
    problems += _run(directory, check_migration_job, project, directory, names)
    problems += _run(directory, check_connection_budget, project, directory)
    if directory != ALL_IN_ONE_OVERLAY:
        problems += _run(directory, check_all_in_one_routing, project)
    return problems


# --------------------------------------------------------------------------- connection budget

# Connections that are not the functions' pools: the migration Job (1) and the ops CLI (a few,
# through the pooler); and on PostgreSQL itself, beyond superuser_reserved_connections, what the
# operator and a person at psql need directly (CloudNativePG's instance manager, backups, exporters).
OPS_CLIENTS = 5
DIRECT_RESERVE = 10
PGBOUNCER_DEFAULTS = {"max_client_conn": 100, "default_pool_size": 20, "reserve_pool_size": 0}
POSTGRES_DEFAULTS = {"max_connections": 100, "superuser_reserved_connections": 3}


@dataclass(frozen=True)
class ConnectionBudget:
    """One overlay's arithmetic: client connections the pods may open, and what each tier accepts."""

    clients: dict[str, int]  # per deployed Service: pools per pod x DB_POOL_MAX x max-scale
    pooler_instances: int
    max_client_conn: int
    server_per_instance: int  # default_pool_size + reserve_pool_size
    max_connections: int
    superuser_reserved: int

    @property
    def demand(self) -> int:
        return sum(self.clients.values()) + OPS_CLIENTS

    @property
    def client_capacity(self) -> int:
        """What the poolers accept with one of them lost (all of it when there is only one)."""
        return self.max_client_conn * max(self.pooler_instances - 1, 1)

    @property
    def server_demand(self) -> int:
        return self.server_per_instance * self.pooler_instances

    @property
    def server_capacity(self) -> int:
        return self.max_connections - self.superuser_reserved - DIRECT_RESERVE

    def summary(self) -> str:
        return (
            f"clients {self.demand}/{self.client_capacity} (poolers x{self.pooler_instances}, one lost), "
            f"server connections {self.server_demand}/{self.server_capacity}"
        )


def deployed_funcs(project: Project, directory: str) -> list[FuncConfig]:
    """The func.yaml files one overlay runs: the all-in-one and what it does not carry, or every function."""
    if directory == ALL_IN_ONE_OVERLAY:
        return [f for f in project.funcs if not f.directory or f.directory not in ALL_IN_ONE_STEPS]
    return [f for f in project.funcs if f.directory]


def _db_pool_max(func: FuncConfig, project: Project) -> int:
    config = {doc.name: doc.body.get("data") or {} for doc in project.of_kind("ConfigMap")}
    for entry in (func.body.get("run") or {}).get("envs") or []:
        if entry.get("name") == "DB_POOL_MAX":
            reference = parse_env_reference(entry.get("value"))
            value = entry.get("value") if reference is None else config.get(reference.name, {}).get(reference.key or "")
            if value not in (None, ""):
                return int(str(value))
    return DB_POOL_MAX


def _int_parameter(parameters: Mapping[str, Any], name: str, defaults: Mapping[str, int]) -> int:
    value = parameters.get(name)
    return defaults[name] if value in (None, "") else int(str(value))


def connection_budget(project: Project, directory: str) -> ConnectionBudget:
    """The budget of what ``directory`` applies; ValueError when there is no Cluster and rw Pooler."""
    clusters = project.of_kind("Cluster")
    if len(clusters) != 1:
        raise ValueError(f"expected one CloudNativePG Cluster, found {len(clusters)}")
    cluster = clusters[0]
    poolers = [
        p for p in project.of_kind("Pooler")
        if (p.spec.get("cluster") or {}).get("name") == cluster.name and p.spec.get("type", "rw") == "rw"
    ]  # fmt: skip
    if len(poolers) != 1:
        raise ValueError(f"expected one rw Pooler in front of Cluster {cluster.name!r}, found {len(poolers)}")
    pooler = poolers[0]
    bouncer = (pooler.spec.get("pgbouncer") or {}).get("parameters") or {}
    postgres = ((cluster.spec.get("postgresql") or {}).get("parameters")) or {}
    clients = {}
    for func in deployed_funcs(project, directory):
        pools = len(ALL_IN_ONE_STEPS) if not func.directory else 1
        scale = int((((func.body.get("deploy") or {}).get("options") or {}).get("scale") or {}).get("max") or 0)
        if scale < 1:
            raise ValueError(f"{func.label}: deploy.options.scale.max is not set: its connections are unbounded")
        clients[func.name] = pools * _db_pool_max(func, project) * scale
    return ConnectionBudget(
        clients=clients,
        pooler_instances=int(pooler.spec.get("instances", 1)),
        max_client_conn=_int_parameter(bouncer, "max_client_conn", PGBOUNCER_DEFAULTS),
        server_per_instance=_int_parameter(bouncer, "default_pool_size", PGBOUNCER_DEFAULTS)
        + _int_parameter(bouncer, "reserve_pool_size", PGBOUNCER_DEFAULTS),
        max_connections=_int_parameter(postgres, "max_connections", POSTGRES_DEFAULTS),
        superuser_reserved=_int_parameter(postgres, "superuser_reserved_connections", POSTGRES_DEFAULTS),
    )


def check_connection_budget(project: Project, directory: str) -> list[str]:
    """Pools x max-scale fit the poolers (one lost); the poolers' server pools fit max_connections."""
    try:
        budget = connection_budget(project, directory)
    except ValueError as error:
        return [f"{directory}: connection budget: {error}"]
    problems = []
    if budget.pooler_instances < 2:
        problems.append(
            f"{directory}: connection budget: a single pooler pod: losing it stops every function; set the Pooler's instances to 2 or more"
        )
    if budget.demand > budget.client_capacity:
        largest = ", ".join(f"{name} {n}" for name, n in sorted(budget.clients.items(), key=lambda kv: -kv[1])[:3])
        problems.append(
            f"{directory}: connection budget: the functions may open {budget.demand} connections "
            f"(largest: {largest}; + {OPS_CLIENTS} for the Job and ops) but the poolers accept "
            f"{budget.client_capacity} with one of {budget.pooler_instances} lost "
            "(max_client_conn x (instances - 1)): lower a func.yaml's scale.max or DB_POOL_MAX, or raise max_client_conn"
        )
    if budget.server_demand > budget.server_capacity:
        problems.append(
            f"{directory}: connection budget: {budget.pooler_instances} poolers x "
            f"{budget.server_per_instance} server connections (default_pool_size + reserve_pool_size) = "
            f"{budget.server_demand} > max_connections {budget.max_connections} - "
            f"{budget.superuser_reserved} superuser reserved - {DIRECT_RESERVE} direct reserve "
            f"= {budget.server_capacity}"
        )
    return problems


def check_event_flow(
    project: Project,
    directory: str,
    emitted: frozenset[str] = EMITTED_EVENT_TYPES,
    external: frozenset[str] = EXTERNAL_EVENT_TYPES,
) -> list[str]:
    """Triggers filter only on types the code emits or the outside sends; each such type is routed."""
    routed: set[str] = set()
    problems = []
    for trigger in project.of_kind("Trigger"):
        event_type = ((trigger.spec.get("filter") or {}).get("attributes") or {}).get("type")
        if not isinstance(event_type, str):
            continue  # reported by check_trigger
        routed.add(event_type)
        if event_type not in emitted | external:
            problems.append(
                f"{trigger.label}: filters on {event_type!r}, which no function emits and nothing outside sends"
            )
    problems += [
        f"{directory}: {event_type} is emitted by a function but no Trigger filters on it: the broker "
        "would accept every such event and drop it"
        for event_type in sorted(emitted - routed)
    ]
    problems += [
        f"{directory}: {event_type} comes from outside but no Trigger filters on it: every one would be dropped"
        for event_type in sorted(external - routed)
    ]
    return problems


def check_all_in_one_routing(project: Project) -> list[str]:
    """The all-in-one function sends each event to the step its split Trigger subscribes."""
    problems = []
    for trigger in project.of_kind("Trigger"):
        attributes = (trigger.spec.get("filter") or {}).get("attributes") or {}
        event_type, source = attributes.get("type"), str(attributes.get("source", ""))
        subscriber = ((trigger.spec.get("subscriber") or {}).get("ref") or {}).get("name")
        sink = (((trigger.spec.get("delivery") or {}).get("deadLetterSink") or {}).get("ref") or {}).get("name")
        if not isinstance(event_type, str):
            continue  # reported by check_trigger
        what = f"{event_type} from {source}" if source else event_type
        if subscriber is not None and step_for(event_type, source) != subscriber:
            problems.append(
                f"{trigger.label}: delivers {what} to {subscriber!r}, but the all-in-one function routes it "
                f"to {step_for(event_type, source)!r} (function/routing.py)"
            )
        if sink is not None and step_for(event_type, source, dead_letter=True) != sink:
            problems.append(
                f"{trigger.label}: dead letters go to {sink!r}, but the all-in-one function routes them "
                f"to {step_for(event_type, source, dead_letter=True)!r} (function/routing.py)"
            )
    return problems


def check_migration_job(project: Project, directory: str, names: set[str]) -> list[str]:
    """The migration Job runs an image func deploys, the migration command, DATABASE_URL from the Secret."""
    jobs = [job for job in project.of_kind("Job") if job.name == MIGRATION_JOB]
    if not jobs:
        return [f"{directory}: no Job {MIGRATION_JOB!r} applies the database migrations"]
    secrets = _secret_keys(project)
    problems = []
    for job in jobs:
        for container in pod_containers(job.body):
            image = image_name(str(container.get("image", "")))
            if image == PLACEHOLDER_IMAGE:
                problems.append(
                    f"{job.label}: image is still the placeholder {PLACEHOLDER_IMAGE!r}; the overlay must "
                    "set it (images:) to the image `func deploy` pushes"
                )
            elif image.rsplit("/", 1)[-1] not in names:
                problems.append(
                    f"{job.label}: image {image!r} is none that `func deploy` pushes here "
                    f"(<registry>/<one of {', '.join(sorted(names))}>), the only ones holding patient_notify"
                )
            if tuple((container.get("command") or [])[-3:]) != MIGRATION_COMMAND:
                problems.append(
                    f"{job.label}: container {container.get('name')!r} does not run {' '.join(MIGRATION_COMMAND)}"
                )
            problems += _check_database_url(container, secrets, job.label)
    return problems


def _secret_keys(project: Project) -> dict[str, set[str]]:
    return {
        doc.name: {*(doc.body.get("data") or {}), *(doc.body.get("stringData") or {})}
        for doc in project.examples
        if doc.kind == "Secret"
    }


def _check_database_url(container: Mapping[str, Any], secrets: Mapping[str, set[str]], label: str) -> list[str]:
    env = {entry.get("name"): entry for entry in container.get("env") or [] if isinstance(entry, dict)}
    ref = ((env.get("DATABASE_URL") or {}).get("valueFrom") or {}).get("secretKeyRef") or {}
    if ref.get("key") not in secrets.get(str(ref.get("name")), set()):
        return [
            f"{label}: DATABASE_URL must come from a key of a Secret templated in a *{EXAMPLE_SUFFIX} "
            f"(secretKeyRef), got {env.get('DATABASE_URL')!r}"
        ]
    return []


def selector_matches(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against a pod's labels."""
    if any(labels.get(key) != value for key, value in (selector.get("matchLabels") or {}).items()):
        return False
    for expression in selector.get("matchExpressions") or []:
        key, operator, values = expression.get("key"), expression.get("operator"), expression.get("values") or []
        present = key in labels
        outcome = {
            "In": present and labels.get(key) in values,
            "NotIn": not (present and labels.get(key) in values),
            "Exists": present,
            "DoesNotExist": not present,
        }
        if operator not in outcome:
            raise ValueError(f"unknown selector operator {operator!r}")
        if not outcome[operator]:
            return False
    return True


def admits(policies: Sequence[Document], labels: Mapping[str, str], port: int) -> bool:
    """Whether any ingress rule of ``policies`` lets a pod of this namespace with ``labels`` in on ``port``."""
    for policy in policies:
        for rule in policy.spec.get("ingress") or []:
            if _port_allowed(rule.get("ports"), port):
                peers = rule.get("from")
                if not peers or any(_peer_admits(peer, labels) for peer in peers):
                    return True
    return False


def _port_allowed(ports: Any, port: int) -> bool:
    for allowed in ports or [{}]:
        number = allowed.get("port")
        if number is None or isinstance(number, str):  # every port, or a named one that may be this one
            return True
        if number <= port <= allowed.get("endPort", number):
            return True
    return False


def _peer_admits(peer: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    if "ipBlock" in peer:
        return False  # reported by _open_ingress: an address range cannot be checked against pods
    namespaces = peer.get("namespaceSelector")
    if namespaces is not None and not selector_matches(namespaces, {NAMESPACE_NAME_LABEL: NAMESPACE}):
        return False
    pods = peer.get("podSelector")
    return pods is None or selector_matches(pods, labels)


def _open_ingress(policy: Document) -> list[str]:
    """Rules that let in more than label selectors can show: no ``from``, every namespace, IP ranges."""
    problems = []
    for number, rule in enumerate(policy.spec.get("ingress") or []):
        where = f"{policy.label}: spec.ingress[{number}]"
        if not rule.get("from"):
            problems.append(f"{where} has no `from`: it lets in every pod and address")
        for peer in rule.get("from") or []:
            if "ipBlock" in peer:
                problems.append(f"{where}: an ipBlock cannot be checked against pods; select pods by label")
            if peer.get("namespaceSelector") == {} and "podSelector" not in peer:
                problems.append(f"{where}: `namespaceSelector: {{}}` lets in every pod of every namespace")
    return problems


def database_pods(project: Project) -> tuple[dict[str, str], dict[str, str]]:
    """The labels CloudNativePG puts on the Cluster's instances and on its rw Pooler's pods."""
    clusters = project.of_kind("Cluster")
    cluster = clusters[0].name if clusters else "patient-notify-db"
    poolers = [p.name for p in project.of_kind("Pooler") if (p.spec.get("cluster") or {}).get("name") == cluster]
    pooler = poolers[0] if poolers else f"{cluster}-pooler-rw"
    return (
        {CNPG_CLUSTER_LABEL: cluster, "cnpg.io/podRole": "instance"},
        {CNPG_POOLER_LABEL: pooler, "cnpg.io/podRole": "pooler"},
    )


def check_network_policies(project: Project, directory: str) -> list[str]:
    """The pooler admits only the functions and the migration Job, the database only the pooler; RabbitMQ
    the broker's pods and the monitor."""
    policies = project.of_kind("NetworkPolicy")
    problems = [problem for policy in policies for problem in _open_ingress(policy)]
    functions = {f"the pods of function {name!r}": {SERVICE_LABEL: name} for name in sorted(project.function_names)}
    amqp = {who: labels for who, labels in functions.items() if labels[SERVICE_LABEL] in AMQP_FUNCTIONS}
    jobs = {
        f"the pods of Job {job.name!r}": dict(
            ((job.spec.get("template") or {}).get("metadata") or {}).get("labels") or {}
        )
        for job in project.of_kind("Job")
    }
    broker = {
        f"the broker's {role} pods": {
            "eventing.knative.dev/broker": BROKER_NAME,
            "eventing.knative.dev/brokerRole": role,
        }
        for role in BROKER_ROLES
    }
    configs = project.of_kind("RabbitmqBrokerConfig")
    cluster = str(((configs[0].spec.get("rabbitmqClusterReference") or {}) if configs else {}).get("name", "rabbitmq"))
    rabbitmq = {
        "app.kubernetes.io/name": cluster,
        "app.kubernetes.io/component": "rabbitmq",
        "app.kubernetes.io/part-of": "rabbitmq",
    }
    database, pooler = database_pods(project)
    strangers = {**UNRELATED_PODS, **broker}
    stores = [
        ("the pooler", pooler, DATABASE_PORT, {**functions, **jobs}, {**strangers, "RabbitMQ": rabbitmq}),
        ("the database", database, DATABASE_PORT, {"the pooler": pooler}, {**functions, **jobs, **strangers}),
        (
            "RabbitMQ",
            rabbitmq,
            AMQP_PORT,
            {**broker, **amqp},
            {
                **{k: v for k, v in functions.items() if k not in amqp},
                **jobs,
                **UNRELATED_PODS,
                "the database": database,
            },
        ),
    ]
    allowed = {
        "the pooler": "the functions and the migration Job",
        "the database": "the pooler (the functions go through it)",
        "RabbitMQ": "the broker's own pods and the monitor",
    }
    for store, pod, port, clients, strangers in stores:
        guards = [p for p in policies if selector_matches(p.spec.get("podSelector") or {}, pod) and _guards_ingress(p)]
        if not guards:
            problems.append(f"{directory}: no NetworkPolicy selects {store}'s pods ({pod}): every pod could reach it")
            continue
        problems += [
            f"{directory}: {who} ({labels}) cannot reach {store} on port {port}"
            for who, labels in clients.items()
            if not admits(guards, labels, port)
        ]
        problems += [
            f"{directory}: {who} ({labels}) can reach {store} on port {port}; only {allowed[store]} may"
            for who, labels in strangers.items()
            if admits(guards, labels, port)
        ]
    return problems


def _guards_ingress(policy: Document) -> bool:
    return "Ingress" in (policy.spec.get("policyTypes") or ["Ingress"])


def check_concurrency(func: FuncConfig) -> list[str]:
    """containerConcurrency is set, within the database pool, and 1 for a single-instance function."""
    options = (func.body.get("deploy") or {}).get("options") or {}
    concurrency = ((options.get("resources") or {}).get("limits") or {}).get("concurrency")
    where = f"{func.label}: deploy.options.resources.limits.concurrency (containerConcurrency)"
    if not isinstance(concurrency, int) or concurrency < 1:
        return [
            f"{where} is not set: Knative would send one pod any number of requests, past its {DB_POOL_MAX} database connections"
        ]
    if concurrency > DB_POOL_MAX:
        return [
            f"{where} {concurrency} is above the database pool (DB_POOL_MAX, {DB_POOL_MAX}): requests would "
            "wait inside the pod for a connection instead of the autoscaler adding pods"
        ]
    if (options.get("scale") or {}).get("max") == 1 and concurrency != 1:
        return [
            f"{where} is {concurrency} with max scale 1: one at a time, so a redelivered tick waits for the one in flight"
        ]
    return []


# --------------------------------------------------------------------------- all checks


def check_project(project: Project) -> list[str]:
    """Every check: each file as written, each func.yaml, and what each overlay would apply.

    Semantic checks run on the rendered overlays (``check_renders``), so a problem in a base
    file is reported once per overlay that applies it; identical reports are kept once.
    """
    problems: list[str] = []
    for doc in project.manifests + project.examples:
        problems += check_document_schema(doc)
        problems += _run(doc.label, check_metadata, doc)
    for doc in project.examples:
        problems += _run(doc.label, check_example_secret, doc)
    problems += check_no_secrets(project)
    for func in project.funcs:
        problems += check_func_schema(func)
        problems += _run(func.label, check_rendered_service, func)
        problems += _run(func.label, check_func_config, func, project)
    problems += _run(FUNC_YAML, check_root_env, project)
    problems += check_kustomizations(project.root)
    problems += check_renders(project)
    return list(dict.fromkeys(problems))


def check_root_env(project: Project) -> list[str]:
    """The all-in-one func.yaml sets every variable its steps' func.yaml files set, from the same source."""
    roots = [func for func in project.funcs if not func.directory]
    if not roots:
        return []
    root = roots[0]
    have = {entry.get("name"): entry.get("value") for entry in (root.body.get("run") or {}).get("envs") or []}
    problems = []
    for func in project.funcs:
        if func.directory not in ALL_IN_ONE_STEPS:
            continue
        for entry in (func.body.get("run") or {}).get("envs") or []:
            name, value = entry.get("name"), entry.get("value")
            if name not in have:
                problems.append(
                    f"{root.label}: env {name} is missing; the {func.directory} step reads it ({func.label})"
                )
            elif have[name] != value:
                problems.append(f"{root.label}: env {name} is {have[name]!r}; {func.label} sets {value!r}")
    return problems


def _run(label: str, check: Callable[..., list[str]], *args: Any) -> list[str]:
    """Run a hand check; a document too malformed for it is a problem, not a traceback."""
    try:
        return check(*args)
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        reason = f"{type(error).__name__}: {error}"
        return [f"{label}: {check.__name__} cannot run on this malformed content ({reason})"]


def iter_problems(root: Path = REPO_ROOT) -> Iterator[str]:
    """Load the project at ``root`` and yield every problem; a load failure is one problem."""
    try:
        project = load_project(root)
    except ManifestError as error:
        yield str(error)
        return
    yield from check_project(project)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.support.manifests",
        description="Validate knative/ manifests and func.yaml files offline (schemas + hand checks).",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=REPO_ROOT,
        help="repository root (default: this repo)",
    )
    args = parser.parse_args(argv)
    problems = list(iter_problems(args.root))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if problems:
        print(f"{len(problems)} problem(s) in manifests", file=sys.stderr)
        return 1
    project = load_project(args.root)
    print(
        f"manifests OK: {len(project.manifests)} documents under {KNATIVE_DIR}/, "
        f"{len(project.examples)} template(s), {len(project.funcs)} func.yaml file(s); "
        f"rendered {', '.join(render_roots(project))}"
    )
    for directory in render_roots(project):
        applied = Project(
            project.root, render_kustomization(project, directory).documents, project.examples, project.funcs
        )
        print(f"connection budget, {directory}: {connection_budget(applied, directory).summary()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
