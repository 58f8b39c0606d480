"""Install a build context into a fresh virtual environment and serve it, as func's image does.

    python -m deploy.trial build/dispatcher        # prints the venv and the command to serve it

No Docker here: the context is copied to a temporary directory (so nothing outside it can be
reached), installed with ``pip install .`` semantics into a new venv (uv when it is on PATH: the
same resolution, seconds instead of a minute), and served by func's scaffolding line
``from function import new; serve(new)`` with ``python -P`` from that directory, so every import
comes from what was installed, not from the copied sources or the repository.
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import venv
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from sandbox.processes import FunctionProcess, free_port

__all__ = ["SERVE", "Installed", "install_copy", "serve_command", "serving"]

# What func's Python scaffolding (service/main.py) does, minus its ulimit tweak.
SERVE = "from function import new; from func_python.http import serve; serve(new)"


class Installed:
    """A copy of a build context and the venv it was installed into."""

    def __init__(self, context: Path, environment: Path) -> None:
        self.context = context
        self.environment = environment

    @property
    def python(self) -> Path:
        return self.environment / "bin" / "python"

    def popen(self, env: Mapping[str, str], log: IO[bytes]) -> subprocess.Popen[bytes]:
        """Serve the function; ``env`` is the whole environment (add PATH yourself if needed)."""
        return subprocess.Popen(  # noqa: S603 - our venv's interpreter and a fixed command
            serve_command(self.python), cwd=self.context, env=dict(env), stdout=log, stderr=subprocess.STDOUT
        )


@contextmanager
def serving(installed: Installed, env: Mapping[str, str], log: IO[bytes], timeout: float = 30.0) -> Iterator[str]:
    """Serve on a free local port until readiness answers 200; yield its URL; stop it after."""
    port = free_port()
    process = installed.popen({**env, "LISTEN_ADDRESS": f"127.0.0.1:{port}"}, log)
    url = f"http://127.0.0.1:{port}/"

    def still_running() -> None:
        if process.poll() is not None:
            raise RuntimeError(f"{installed.context} exited with {process.returncode} before it was ready")

    try:
        FunctionProcess.wait_ready_at(url, timeout, still_running)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def serve_command(python: Path) -> list[str]:
    return [str(python), "-P", "-c", SERVE]


def install_copy(context: Path, workdir: Path, *, uv: str | None = None) -> Installed:
    """Copy ``context`` into ``workdir``, make a fresh venv and ``pip install .`` the copy."""
    copy = workdir / "context"
    shutil.copytree(context, copy)
    environment = workdir / "venv"
    uv = uv if uv is not None else (shutil.which("uv") or "")
    venv.EnvBuilder(with_pip=not uv, symlinks=True).create(environment)
    installed = Installed(copy, environment)
    if uv:
        command = [uv, "pip", "install", "--quiet", "--python", str(installed.python), "."]
    else:
        command = [str(installed.python), "-m", "pip", "install", "--quiet", "."]
    subprocess.run(command, cwd=copy, check=True, capture_output=True, env=_installer_env())  # noqa: S603
    return installed


def _installer_env() -> dict[str, str]:
    """The caller's environment without the project's own virtualenv, which uv would target."""
    inherited = dict(os.environ)  # noqa: TID251 - a command's composition root: PATH, caches, proxies
    for name in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH", "PYTHONHOME"):
        inherited.pop(name, None)
    return inherited


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m deploy.trial", description=__doc__.splitlines()[0])
    parser.add_argument("context", type=Path, help="a build context, e.g. build/dispatcher")
    args = parser.parse_args(argv)
    installed = install_copy(args.context, Path(tempfile.mkdtemp(prefix="patient-notify-trial-")))
    print(f"installed {args.context} into {installed.environment}")  # noqa: T201 - a command's output
    serve = shlex.join(serve_command(installed.python))
    print(f"serve it:  cd {installed.context} && LISTEN_ADDRESS=127.0.0.1:8080 {serve}")  # noqa: T201 - a command's output
    return 0


if __name__ == "__main__":
    sys.exit(main())
