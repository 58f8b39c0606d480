"""Each function as its own process, served by func-python, as it runs in its container."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO

import httpx

__all__ = ["FunctionProcess", "free_port"]

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class FunctionProcess:
    def __init__(self, name: str, env: Mapping[str, str], log: IO[bytes], port: int | None = None) -> None:
        self.name = name
        self.port = port or free_port()  # given: its URL had to be known first (a public webhook URL)
        self.url = f"http://127.0.0.1:{self.port}/"
        inherited = dict(os.environ)  # noqa: TID251 - the child inherits PATH and the venv
        self._env = {**inherited, **env, "LISTEN_ADDRESS": f"127.0.0.1:{self.port}"}
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [sys.executable, "-m", "sandbox.serve", str(ROOT / "functions" / self.name)]
        self._process = subprocess.Popen(  # noqa: S603 - our interpreter, our module, our path
            command, env=self._env, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT
        )

    @staticmethod
    def wait_ready_at(url: str, timeout: float = 30.0, check: Callable[[], None] = lambda: None) -> None:
        """Poll a function's readiness probe, as Kubernetes does, until it answers 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            check()
            try:
                if httpx.get(f"{url}health/readiness", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)  # polling interval of a readiness probe, not a synchronisation
        raise TimeoutError(f"{url} not ready after {timeout} s")

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait for readiness; fail at once if the process exits first.

        120 s: several functions importing at once on a loaded 2-core machine take well over 30 s."""

        def still_running() -> None:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self._process.returncode} before it was ready")

        try:
            self.wait_ready_at(self.url, timeout, still_running)
        except TimeoutError as exc:
            raise TimeoutError(f"{self.name} not ready after {timeout} s (its log says why)") from exc

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
