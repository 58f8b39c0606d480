"""A TCP fault proxy for tests: forwards one port to a target, with faults switched at run time.

    with FaultProxy("127.0.0.1", 5432) as proxy:      # proxy.port forwards to PostgreSQL
        proxy.latency_s = 0.005                       # every chunk, each way, 5 ms late
        proxy.reset_next(3)                           # the next 3 connections are reset on accept
        proxy.reset_next(None, on="reply")            # every new one: request forwarded, reply reset
        proxy.reset_rate = 0.01                       # each chunk: reset instead, with p = 1%
        proxy.blackhole = True                        # accept, forward nothing (clients time out)
        proxy.cut_all()                               # reset every current connection now
        proxy.heal()                                  # no faults (current connections stay as they are)

A reset is a real RST (``SO_LINGER`` 0, then close) on both sides, so the client sees
``ECONNRESET`` and the target sees its peer vanish, as when a network path or a host dies.
Two threads per connection pump each direction; ``observers`` are called with every chunk from
the client (``"up"``) or the target (``"down"``) before it is forwarded, to timestamp requests.
Randomness (``reset_rate``) comes from ``seed``, so a run's faults are reproducible for one
interleaving of chunks.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Self

__all__ = ["FaultProxy", "ProxyStats", "ResetPoint"]

ResetPoint = Literal["connect", "reply"]
Observer = Callable[[str, bytes, float], None]  # (direction, chunk, time.monotonic())
_LINGER_RST = struct.pack("ii", 1, 0)
_CHUNK = 65536


@dataclass
class ProxyStats:
    connections: int = 0  # accepted from clients
    resets: int = 0  # connections reset by a fault (cut_all, reset_next, reset_rate)
    reply_resets: int = 0  # of those, reset in place of a chunk from the target: the request had arrived
    blackholed: int = 0  # chunks swallowed
    up_bytes: int = 0  # client -> target
    down_bytes: int = 0  # target -> client
    reset_at: list[float] = field(default_factory=list)  # time.monotonic() of each reset


class _Link:
    """One client connection and its upstream socket (None while blackholed or before connecting)."""

    def __init__(self, client: socket.socket, reset_on_reply: bool) -> None:
        self.client: socket.socket = client
        self.upstream: socket.socket | None = None
        self.reset_on_reply = reset_on_reply
        self.closed = threading.Event()
        self._ended = 0  # directions whose source hung up
        self._lock = threading.Lock()

    def end(self, direction: str) -> bool:
        """One direction's source hung up: pass its FIN on; True once both directions have ended."""
        sink = self.upstream if direction == "up" else self.client
        if sink is not None and not self.closed.is_set():
            with contextlib.suppress(OSError):  # the peer may be gone already
                sink.shutdown(socket.SHUT_WR)
        with self._lock:
            self._ended += 1
            return self._ended >= 2 or self.upstream is None

    def close(self, *, reset: bool, before: Callable[[], None] | None = None) -> bool:
        """Close both sockets (with an RST when ``reset``); False if it was already closed.

        ``before`` runs once the link is ours to close and before either peer can see it closed:
        counters updated there are already true when a client observes the reset.
        """
        with self._lock:
            if self.closed.is_set():
                return False
            self.closed.set()
        if before is not None:
            before()
        for sock in (self.client, self.upstream):
            if sock is None:
                continue
            try:
                if reset:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
                sock.shutdown(socket.SHUT_RD)  # wakes the pump blocked in recv; sends nothing
            except OSError:
                pass
            sock.close()
        return True


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1", port: int = 0,
                 seed: int = 0) -> None:  # fmt: skip
        self.target = (target_host, target_port)
        self.latency_s = 0.0  # added before forwarding each chunk, each direction
        self.connect_latency_s = 0.0  # added once per connection, before connecting to the target
        self.reset_rate = 0.0  # per chunk, either direction: reset the connection instead of forwarding
        self.blackhole = False  # swallow every chunk; new connections never reach the target
        self.observers: list[Observer] = []
        self.stats = ProxyStats()
        self._pending_resets: int | None = 0  # None: every new connection
        self._reset_point: ResetPoint = "connect"
        self._links: set[_Link] = set()
        self._lock = threading.Lock()
        self._rng = random.Random(seed)
        self._listener = socket.create_server((host, port), backlog=256)
        self.host, self.port = self._listener.getsockname()[:2]
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name=f"faultproxy-{self.port}", daemon=True)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):  # wakes accept(); not connected on every platform
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._thread.join(5)
        self.cut_all(count=False)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # faults

    def reset_next(self, count: int | None, *, on: ResetPoint = "connect") -> None:
        """Reset the next ``count`` new connections (None: all until ``heal``): on accept, or when
        the target's first reply arrives (the request reached it; the reply never comes back)."""
        with self._lock:
            self._pending_resets, self._reset_point = count, on

    def cut_all(self, *, count: bool = True) -> int:
        """Reset every current connection; how many there were."""
        with self._lock:
            links = list(self._links)
        return sum(1 for link in links if self._reset(link, count=count))

    def heal(self) -> None:
        """No more faults for new chunks and connections; what was cut stays cut."""
        with self._lock:
            self._pending_resets = 0
        self.latency_s = self.connect_latency_s = self.reset_rate = 0.0
        self.blackhole = False

    @property
    def open_connections(self) -> int:
        with self._lock:
            return len(self._links)

    # forwarding

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), name="faultproxy-link", daemon=True).start()

    def _take_reset(self) -> ResetPoint | None:
        with self._lock:
            self.stats.connections += 1
            if self._pending_resets is None or self._pending_resets > 0:
                if self._pending_resets is not None:
                    self._pending_resets -= 1
                return self._reset_point
        return None

    def _serve(self, client: socket.socket) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        reset = self._take_reset()
        link = _Link(client, reset_on_reply=reset == "reply")
        with self._lock:
            self._links.add(link)
        if reset == "connect":
            self._reset(link)
            return
        if self.connect_latency_s:
            time.sleep(self.connect_latency_s)  # the fault itself: a slow connection set-up
        if not self.blackhole and not link.closed.is_set():
            try:
                link.upstream = socket.create_connection(self.target, timeout=10)
                link.upstream.settimeout(None)
                link.upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                self._reset(link, count=False)  # the target is down: the client sees a reset, as a router would
                return
            threading.Thread(target=self._pump, args=(link, "down"), name="faultproxy-down", daemon=True).start()
        self._pump(link, "up")

    def _pump(self, link: _Link, direction: str) -> None:
        source = link.client if direction == "up" else link.upstream
        assert source is not None
        while not link.closed.is_set():
            try:
                chunk = source.recv(_CHUNK)
            except OSError:
                chunk = b""
            if not chunk:
                break
            if not self._forward(link, direction, chunk):
                return
        self._close(link, direction)

    def _forward(self, link: _Link, direction: str, chunk: bytes) -> bool:
        """Forward one chunk, or apply the fault that replaces it; False once the link is gone."""
        now = time.monotonic()
        for observer in list(self.observers):
            observer(direction, chunk, now)
        if (direction == "down" and link.reset_on_reply) or (self.reset_rate and self._draw() < self.reset_rate):
            self._reset(link, reply=direction == "down")
            return False
        if self.blackhole or link.upstream is None:
            with self._lock:
                self.stats.blackholed += 1
            return True
        if self.latency_s:
            time.sleep(self.latency_s)  # the fault itself: this direction's stream runs late
        target = link.upstream if direction == "up" else link.client
        try:
            target.sendall(chunk)
        except OSError:  # the other side is gone: drop both
            link.close(reset=False)
            with self._lock:
                self._links.discard(link)
            return False
        with self._lock:
            if direction == "up":
                self.stats.up_bytes += len(chunk)
            else:
                self.stats.down_bytes += len(chunk)
        return True

    def _draw(self) -> float:
        with self._lock:
            return self._rng.random()

    def _reset(self, link: _Link, *, count: bool = True, reply: bool = False) -> bool:
        def counted() -> None:
            with self._lock:
                self.stats.resets += 1
                self.stats.reply_resets += reply
                self.stats.reset_at.append(time.monotonic())

        closed = link.close(reset=True, before=counted if count else None)
        with self._lock:
            self._links.discard(link)
        return closed

    def _close(self, link: _Link, direction: str) -> None:
        """``direction``'s source hung up (FIN, not RST): passed on; both sides closed once both have."""
        if link.end(direction):
            link.close(reset=False)
            with self._lock:
                self._links.discard(link)
