"""Every function's build context installs into a fresh venv and serves from a temporary copy.

What `func deploy --path build/<name>` ships, without Docker: ``deploy.build`` writes the
context, ``deploy.trial`` copies it to a temporary directory, installs it (``pip install .``,
through uv) into a new venv, and serves it as func's scaffolding does, with ``python -P`` so no
import can come from the copied sources or the repository. Real PostgreSQL.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

import httpx
import psycopg
import pytest

from deploy import build, func_deploy
from deploy.trial import Installed, install_copy, serving
from sandbox.processes import ROOT, free_port

pytestmark = pytest.mark.timeout(240)

UNREACHABLE = f"http://127.0.0.1:{free_port()}/"  # nothing listens: nothing here may be called
COMMON = {"BROKER_URL": UNREACHABLE, "LOG_LEVEL": "INFO"}
# What each function's Settings requires beyond DATABASE_URL (functions/<name>/function/func.py).
SETTINGS = {
    "etl": {"ETL_SOURCE_URL": f"{UNREACHABLE}fhir", "ETL_DEFAULT_ZONE": "Europe/London"},
    "scheduler": {},
    "dispatcher": {"APPOINTMENT_EVENTS_SECRET": "deploy-test-secret-0123456789abcdef"},
    "sms-sender": {
        "TWILIO_ACCOUNT_SID": "AC" + "0" * 32,
        "TWILIO_AUTH_TOKEN": "t",
        "TWILIO_FROM_NUMBER": "+15005550006",
    },
    "email-sender": {"EMAIL_FROM": "clinic@example.org", "SES_REGION": "eu-west-1"},
    "monitor": {},
    "webhooks": {"TWILIO_AUTH_TOKEN": "t", "WEBHOOKS_PUBLIC_URL": "http://127.0.0.1/"},
}
UNKNOWN_EVENT = {
    "ce-specversion": "1.0", "ce-id": "deploy-test-1", "ce-source": "/deploy-test",
    "ce-type": "org.example.unknown.v1", "content-type": "application/json",
}  # fmt: skip


def base_env() -> dict[str, str]:
    """PATH only (the venv is reached by its interpreter's path): no PYTHONPATH, no VIRTUAL_ENV."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin"}


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Installed]:
    """Every function built and installed, in parallel (one shared uv cache)."""
    out = tmp_path_factory.mktemp("build")
    contexts = {name: build.build_function(name, out=out) for name in build.FUNCTIONS}
    with ThreadPoolExecutor(max_workers=len(contexts)) as pool:
        futures = {
            name: pool.submit(install_copy, context, out / f"{name}-trial") for name, context in contexts.items()
        }
        return {name: future.result() for name, future in futures.items()}


@pytest.fixture
def log(tmp_path: Path) -> Iterator[IO[bytes]]:
    with (tmp_path / "function.log").open("wb") as handle:
        yield handle


class TestBuildContexts:
    @pytest.mark.parametrize("name", build.FUNCTIONS)
    def test_context_holds_the_function_and_the_shared_library(self, name: str, tmp_path: Path) -> None:
        """build/<name>/ has func.yaml, the code, the vendored library, and a pyproject pointing at it."""
        context = build.build_function(name, out=tmp_path)
        assert (context / "func.yaml").read_text() == (ROOT / "functions" / name / "func.yaml").read_text()
        assert (context / "function" / "func.py").is_file()
        assert (context / "vendor/patient-notify-shared/patient_notify/db/sql/queries.sql").is_file()
        assert not list(context.rglob("__pycache__"))
        project = tomllib.loads((context / "pyproject.toml").read_text())
        assert build.SHARED_REQUIREMENT in project["project"]["dependencies"]
        assert project["tool"]["hatch"]["metadata"]["allow-direct-references"] is True

    def test_deploy_without_func_says_what_to_install(self) -> None:
        """`task deploy` without the func CLI exits non-zero and says what to install."""
        result = subprocess.run(
            [sys.executable, "-m", "deploy.func_deploy", "etl"], cwd=ROOT, env=base_env(),
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert result.returncode == 127
        assert "the Knative `func` CLI is not on PATH" in result.stderr
        assert "func deploy --path build/etl" in result.stderr
        assert func_deploy.main(["nope"]) == 2


class TestInstalledFunctions:
    @pytest.mark.parametrize("name", build.FUNCTIONS)
    def test_imports_come_from_the_installed_packages(self, name: str, installed: dict[str, Installed]) -> None:
        """The function and patient_notify are imported from the venv's site-packages, not from sources."""
        trial = installed[name]
        probe = "import function, patient_notify; print(function.__file__); print(patient_notify.__file__)"
        result = subprocess.run(  # noqa: S603 - the venv's interpreter
            [str(trial.python), "-P", "-c", probe], cwd=trial.context, env=base_env(),
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        site_packages = str(trial.environment / "lib")
        assert all(line.startswith(site_packages) for line in result.stdout.split()), result.stdout

    @pytest.mark.parametrize("name", build.STEPS)
    def test_serves_probes_and_answers_a_cloudevent(
        self, name: str, installed: dict[str, Installed], migrated_database_url: str, log: IO[bytes]
    ) -> None:
        """Liveness and readiness answer 200; an unknown CloudEvent is kept and answered 202."""
        env = {**base_env(), **COMMON, **SETTINGS[name], "DATABASE_URL": migrated_database_url}
        with serving(installed[name], env, log) as url:
            assert httpx.get(f"{url}health/liveness").status_code == 200
            assert httpx.get(f"{url}health/readiness").status_code == 200
            response = httpx.post(url, headers=UNKNOWN_EVENT, content=b"{}")
        assert (response.status_code, response.json()) == (202, {"outcome": "rejected and recorded"})
        with psycopg.connect(migrated_database_url) as conn:
            rows = conn.execute("SELECT receiver, event_type FROM rejected_events").fetchall()
        assert rows == [(name, "org.example.unknown.v1")]

    def test_webhooks_serves_probes_and_keeps_an_unsigned_callback(
        self, installed: dict[str, Installed], migrated_database_url: str, log: IO[bytes]
    ) -> None:
        """The public HTTP function: probes answer 200; an unsigned Twilio callback is refused 403 and kept."""
        env = {**base_env(), **COMMON, **SETTINGS["webhooks"], "DATABASE_URL": migrated_database_url}
        with serving(installed["webhooks"], env, log) as url:
            assert httpx.get(f"{url}health/liveness").status_code == 200
            assert httpx.get(f"{url}health/readiness").status_code == 200
            response = httpx.post(f"{url}twilio/status", data={"MessageSid": "SM" + "0" * 32, "MessageStatus": "sent"})
        assert response.status_code == 403
        with psycopg.connect(migrated_database_url) as conn:
            rows = conn.execute("SELECT provider, kind, verified FROM provider_receipts").fetchall()
        assert rows == [("twilio", "status", False)]
