"""A private RabbitMQ node for tests that kill it: its own name, ports and data directory.

The machine's RabbitMQ (``rabbit@localhost`` on 5672) is shared with CI and other work and must
never be killed; this starts a second node of the same installation beside it::

    with RabbitNode(tmp_path) as node:        # started; node.amqp_url points at it
        node.kill()                           # SIGKILL the Erlang VM: no shutdown, no flush
        node.start()                          # the same data directory: durable queues come back

Everything the node writes (Mnesia, quorum queue logs, its own logs) lives under ``directory``.
No plugins are enabled (an empty enabled-plugins file), so no management port is opened, and the
system's ``rabbitmq-env.conf`` and ``rabbitmq.conf`` are replaced by empty ones of its own. The
Erlang distribution port is chosen free as well; epmd is shared, as it is between any two nodes.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path
from typing import IO, Self

from sandbox.processes import free_port

__all__ = ["RabbitNode", "rabbitmq_server"]

_SEARCH = ("/usr/lib/rabbitmq/bin/rabbitmq-server", "/usr/local/sbin/rabbitmq-server")


def rabbitmq_server() -> str | None:
    """The ``rabbitmq-server`` script itself, not the distribution's wrapper that switches user."""
    for candidate in _SEARCH:
        if Path(candidate).exists():
            return candidate
    return shutil.which("rabbitmq-server")


class RabbitNode:
    def __init__(self, directory: Path, *, start_timeout_s: float = 60.0) -> None:
        self.directory = directory
        self.name = f"pnfault{uuid.uuid4().hex[:6]}@localhost"
        self.port = free_port()
        self.amqp_url = f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"
        self._dist_port = free_port()
        self._timeout = start_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self.starts: list[float] = []  # seconds each start took until AMQP accepted connections

    def _environment(self) -> dict[str, str]:
        d = self.directory
        (d / "enabled_plugins").write_text("[].\n")
        (d / "rabbitmq-env.conf").write_text("")
        # loopback_users = none: guest may log in (over 127.0.0.1 anyway).
        (d / "rabbitmq.conf").write_text(f"listeners.tcp.1 = 127.0.0.1:{self.port}\nloopback_users = none\n")
        inherited = dict(os.environ)  # noqa: TID251 - the node needs PATH, HOME (its Erlang cookie)
        return {
            **inherited,
            "RABBITMQ_NODENAME": self.name, "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(self._dist_port),
            "RABBITMQ_MNESIA_BASE": str(d / "mnesia"), "RABBITMQ_LOG_BASE": str(d / "log"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(d / "plugins-expand"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
            "RABBITMQ_CONF_ENV_FILE": str(d / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(d / "advanced.config"),
            "RABBITMQ_PID_FILE": str(d / "node.pid"), "ERL_EPMD_ADDRESS": "127.0.0.1",
        }  # fmt: skip

    def start(self) -> float:
        """Start the node (on its existing data, if any); the seconds until it accepts AMQP."""
        executable = rabbitmq_server()
        if executable is None:
            raise RuntimeError("rabbitmq-server is not installed")
        self.directory.mkdir(parents=True, exist_ok=True)
        began = time.monotonic()
        (self.directory / "node.pid").unlink(missing_ok=True)
        self._log = (self.directory / "server.out").open("ab")
        self._process = subprocess.Popen(  # noqa: S603 - the installed server script, our environment
            [executable], env=self._environment(), stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,  # our own process group: stop() ends the node and nothing else
        )  # fmt: skip
        self._wait_accepting(began)
        self.starts.append(time.monotonic() - began)
        return self.starts[-1]

    def _wait_accepting(self, began: float) -> None:
        while time.monotonic() - began < self._timeout:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"RabbitMQ node {self.name} exited: see {self.directory / 'server.out'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.1)  # the node boots in seconds; poll its port, as a client reconnects
        raise TimeoutError(f"RabbitMQ node {self.name} not accepting after {self._timeout} s")

    @property
    def beam_pid(self) -> int:
        """The Erlang VM's pid (what the node writes to its pid file once booted)."""
        return int((self.directory / "node.pid").read_text().strip())

    def kill(self) -> None:
        """SIGKILL the Erlang VM: what a crash or an OOM kill does, no graceful shutdown."""
        pid = self.beam_pid
        os.kill(pid, signal.SIGKILL)
        if self._process is not None:
            self._process.wait(30)  # the server script exits with its VM
        self._wait_gone(pid)

    def _wait_gone(self, pid: int) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)  # polling the pid table with a deadline
        raise TimeoutError(f"RabbitMQ VM {pid} still alive after SIGKILL")

    def stop(self) -> None:
        """End the node and whatever it started (erl_child_setup, inet_gethost): its process group."""
        if self._process is None:
            return
        if self._process.poll() is None:
            try:
                os.killpg(self._process.pid, signal.SIGTERM)
                self._process.wait(30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(10)
        self._process = None
        if self._log is not None:
            self._log.close()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
