"""Each function's func.yaml passes it every site setting it reads.

A variable the shared ConfigMap defines and a function's Settings accept, but the function's
func.yaml does not set, is silently the code's default on the cluster: the site's choice (say
``EMAIL_FALLBACK=false``) would be ignored by that one function.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.build import FUNCTIONS
from tests.support.functions import load_module

ROOT = Path(__file__).resolve().parents[2]
# Read by a base class, unused by the function: webhooks publishes nothing (HttpSettings makes it optional).
UNUSED = {"webhooks": {"BROKER_URL"}}


def site_config() -> set[str]:
    documents = list(yaml.safe_load_all((ROOT / "knative" / "base" / "config.yaml").read_text()))
    [config] = [d for d in documents if d and d.get("kind") == "ConfigMap"
                and d["metadata"]["name"] == "patient-notify-config"]  # fmt: skip
    return set(config["data"])


def envs(function: str) -> set[str]:
    body: dict[str, Any] = yaml.safe_load((ROOT / "functions" / function / "func.yaml").read_text())
    return {entry["name"] for entry in (body.get("run") or {}).get("envs") or []}


def test_the_site_config_is_found() -> None:
    assert {"EMAIL_FALLBACK", "BROKER_URL", "LOG_LEVEL"} <= site_config()


@pytest.mark.parametrize("name", FUNCTIONS)
def test_every_site_setting_the_function_reads_is_passed_to_it(name: str) -> None:
    settings = load_module(name, "func").new().settings_type
    read = {field.upper() for field in settings.model_fields}
    missing = sorted((read & site_config()) - envs(name) - UNUSED.get(name, set()))
    assert missing == [], f"functions/{name}/func.yaml: add these from the ConfigMap"
