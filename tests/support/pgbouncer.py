"""A real PgBouncer in transaction pooling mode in front of the test PostgreSQL, as production runs.

Production puts CloudNativePG's ``Pooler`` (PgBouncer, ``poolMode: transaction``) between every
function and PostgreSQL. In that mode a server connection belongs to a client for one
transaction only, so nothing may rely on session state: no session advisory locks, no ``SET``
outside a transaction, no server-side prepared statements (PgBouncer 1.18, Debian 12's, cannot
carry them; ``patient_notify.db`` turns them off). The end-to-end tier runs every function
through this one, so a change that needs a session fails there.

PgBouncer refuses to run as root; as root (CI) it is started as the ``postgres`` user, which
the Debian PostgreSQL packages create.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit, urlunsplit

__all__ = ["PgBouncer", "PgBouncerMissing"]

INSTALL_HINT = "install it: `apt-get install pgbouncer` (Debian), `brew install pgbouncer` (macOS)"


class PgBouncerMissing(RuntimeError):
    pass


class PgBouncer:
    """``pgbouncer`` on 127.0.0.1 and a free port, forwarding every database to ``upstream``."""

    def __init__(self, upstream_url: str, *, pool_size: int = 20, max_client_conn: int = 500) -> None:
        binary = shutil.which("pgbouncer") or next(
            (p for p in ("/usr/sbin/pgbouncer", "/usr/local/sbin/pgbouncer") if Path(p).is_file()), None
        )
        if binary is None:
            raise PgBouncerMissing(f"the end-to-end tests run the functions through PgBouncer; {INSTALL_HINT}")
        self._binary = binary
        parts = urlsplit(upstream_url)
        self._upstream = parts
        self._user = parts.username or "postgres"
        self._pool_size, self._max_client_conn = pool_size, max_client_conn
        self.port = _free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="pn-pgbouncer-"))
        self._process: subprocess.Popen[bytes] | None = None

    def url(self, database_url: str) -> str:
        """``database_url`` with its host and port replaced by this PgBouncer's."""
        parts = urlsplit(database_url)
        credentials = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        return urlunsplit(parts._replace(netloc=f"{credentials}127.0.0.1:{self.port}"))

    @property
    def admin_url(self) -> str:
        """PgBouncer's own console (``SHOW POOLS``, ``SHOW STATS``): the pseudo-database ``pgbouncer``."""
        return f"postgresql://{self._user}@127.0.0.1:{self.port}/pgbouncer"

    def start(self) -> None:
        host, port = self._upstream.hostname or "127.0.0.1", self._upstream.port or 5432
        (self._dir / "users.txt").write_text(f'"{self._user}" ""\n')
        (self._dir / "pgbouncer.ini").write_text(
            "[databases]\n"
            f"* = host={host} port={port}\n"
            "[pgbouncer]\n"
            f"listen_addr = 127.0.0.1\nlisten_port = {self.port}\nunix_socket_dir =\n"
            f"auth_type = trust\nauth_file = {self._dir / 'users.txt'}\nadmin_users = {self._user}\n"
            "pool_mode = transaction\n"
            f"default_pool_size = {self._pool_size}\nmax_client_conn = {self._max_client_conn}\n"
            # psycopg sends no startup options PgBouncer does not know; libpq tools may.
            "ignore_startup_parameters = extra_float_digits,options\n"
            f"logfile = {self._dir / 'pgbouncer.log'}\n"
        )
        command = [self._binary, str(self._dir / "pgbouncer.ini")]
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self._dir, account.pw_uid, account.pw_gid)
            for path in self._dir.iterdir():
                os.chown(path, account.pw_uid, account.pw_gid)
            command = ["runuser", "-u", "postgres", "--", *command]
        self._process = subprocess.Popen(  # noqa: S603 - the system's pgbouncer, our config
            command, stdout=subprocess.DEVNULL, stderr=(self._dir / "stderr.txt").open("wb")
        )
        self._wait_listening()

    def _wait_listening(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"pgbouncer exited: {self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)  # polling for the listening socket, not a synchronisation
        raise TimeoutError(f"pgbouncer not listening on {self.port} after {timeout} s: {self.log_tail()}")

    def log_tail(self, lines: int = 20) -> str:
        texts = [
            p.read_text(errors="replace") for p in (self._dir / "stderr.txt", self._dir / "pgbouncer.log") if p.exists()
        ]
        return "\n".join("\n".join(text.splitlines()[-lines:]) for text in texts)

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self._process = None
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
