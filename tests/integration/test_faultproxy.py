"""The fault proxy against a real TCP echo server: it forwards, and each fault does what it says."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from sandbox.faultproxy import FaultProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server = self.server
        assert isinstance(server, EchoServer)
        while data := self.request.recv(65536):
            with server.lock:
                server.received += data
                server.arrived.notify_all()
            self.request.sendall(data)


class EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Echo)
        self.received = b""
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)

    def wait_received(self, data: bytes, timeout: float) -> bool:
        with self.arrived:
            return self.arrived.wait_for(lambda: data in self.received, timeout)


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[FaultProxy]:
    host, port = echo.server_address[:2]
    with FaultProxy(str(host), int(port), seed=3) as running:
        yield running


def connect(proxy: FaultProxy, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection((proxy.host, proxy.port), timeout=timeout)


def round_trip(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    received = b""
    while len(received) < len(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        received += chunk
    return received


def exchange_twice(sock: socket.socket) -> None:
    """Two round trips: a reset may arrive only after the first send was buffered."""
    round_trip(sock, b"x")
    round_trip(sock, b"x")


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)  # polling a counter another thread moves, with a deadline
    return False


class TestForwarding:
    def test_bytes_go_both_ways_unchanged(self, proxy: FaultProxy) -> None:
        """Without faults, what the client sends reaches the target and the echo comes back whole."""
        payload = bytes(range(256)) * 1000
        with connect(proxy) as sock:
            assert round_trip(sock, payload) == payload
        # The proxy counts a chunk once sendall returns: the client may hold the bytes a moment before.
        assert wait_for(lambda: proxy.stats.up_bytes == proxy.stats.down_bytes == len(payload))

    def test_a_client_close_is_passed_on_and_the_connection_forgotten(self, proxy: FaultProxy) -> None:
        """A clean close (FIN) reaches the target; the proxy then holds no connection."""
        with connect(proxy) as sock:
            assert round_trip(sock, b"bye") == b"bye"
        assert wait_for(lambda: proxy.open_connections == 0)
        assert proxy.stats.resets == 0

    def test_observers_see_each_chunk_with_its_direction(self, proxy: FaultProxy) -> None:
        """Observers get the client's bytes as "up" and the target's as "down"."""
        seen: list[tuple[str, bytes]] = []
        proxy.observers.append(lambda direction, chunk, _: seen.append((direction, chunk)))
        with connect(proxy) as sock:
            round_trip(sock, b"ping")
        assert ("up", b"ping") in seen and ("down", b"ping") in seen


class TestFaults:
    def test_latency_delays_every_chunk_each_way(self, proxy: FaultProxy) -> None:
        """50 ms per chunk each way: a round trip takes at least 100 ms."""
        proxy.latency_s = 0.05
        with connect(proxy) as sock:
            began = time.monotonic()
            round_trip(sock, b"slow")
            assert time.monotonic() - began >= 0.1

    def test_connect_latency_delays_only_the_first_exchange(self, proxy: FaultProxy) -> None:
        """A slow set-up costs once per connection, not per chunk."""
        proxy.connect_latency_s = 1.0  # far above a local round trip, even on a loaded machine
        with connect(proxy) as sock:
            began = time.monotonic()
            round_trip(sock, b"a")
            first = time.monotonic() - began
            began = time.monotonic()
            round_trip(sock, b"b")
            second = time.monotonic() - began
        assert first >= 0.99 and second < 0.5

    def test_reset_next_resets_that_many_new_connections_then_forwards(self, proxy: FaultProxy) -> None:
        """reset_next(2): the next two clients see ECONNRESET; the third is forwarded."""
        proxy.reset_next(2)
        for _ in range(2):
            with pytest.raises(ConnectionResetError), connect(proxy) as sock:  # at connect or at the exchange
                exchange_twice(sock)
        with connect(proxy) as sock:
            assert round_trip(sock, b"ok") == b"ok"
        assert proxy.stats.resets == 2

    def test_reset_on_reply_delivers_the_request_and_loses_the_answer(
        self, proxy: FaultProxy, echo: EchoServer
    ) -> None:
        """on="reply": the target gets the request; the client gets a reset instead of the answer."""
        proxy.reset_next(1, on="reply")
        with connect(proxy) as sock, pytest.raises(ConnectionResetError):
            round_trip(sock, b"request-1")
        assert echo.wait_received(b"request-1", 5)
        assert (proxy.stats.resets, proxy.stats.reply_resets) == (1, 1)

    def test_cut_all_resets_every_current_connection(self, proxy: FaultProxy) -> None:
        """cut_all(): open connections are reset at once; new ones are forwarded."""
        sockets = [connect(proxy) for _ in range(3)]
        for sock in sockets:
            assert round_trip(sock, b"up") == b"up"
        assert proxy.cut_all() == 3
        for sock in sockets:
            with sock, pytest.raises(ConnectionResetError):
                round_trip(sock, b"after")
        with connect(proxy) as sock:
            assert round_trip(sock, b"new") == b"new"

    def test_blackhole_accepts_and_forwards_nothing(self, proxy: FaultProxy, echo: EchoServer) -> None:
        """A blackholed connection is accepted, its bytes vanish, the client waits in vain."""
        proxy.blackhole = True
        with connect(proxy, timeout=0.3) as sock:
            sock.sendall(b"into the void")
            with pytest.raises(TimeoutError):
                sock.recv(10)
        assert not echo.wait_received(b"into the void", 0.1)
        assert wait_for(lambda: proxy.stats.blackholed >= 1)

    def test_reset_rate_resets_about_that_share_of_chunks(self, proxy: FaultProxy) -> None:
        """reset_rate 0.2 per chunk over 100 one-exchange connections (two chunks each): about 36 are reset."""
        proxy.reset_rate = 0.2
        resets = 0
        for _ in range(100):
            with connect(proxy) as sock:
                try:
                    if round_trip(sock, b"p") != b"p":
                        resets += 1
                except ConnectionResetError:
                    resets += 1
        assert 20 <= proxy.stats.resets <= 60 and resets == proxy.stats.resets

    def test_heal_ends_every_fault(self, proxy: FaultProxy) -> None:
        """After heal(), new connections are forwarded at once and whole."""
        proxy.reset_next(None)
        proxy.latency_s, proxy.blackhole = 5.0, True
        proxy.heal()
        with connect(proxy) as sock:
            began = time.monotonic()
            assert round_trip(sock, b"fine") == b"fine"
            assert time.monotonic() - began < 2.5  # the latency left behind would take 10 s

    def test_a_dead_target_looks_like_a_reset(self, echo: EchoServer) -> None:
        """When the target refuses, the client's connection is reset rather than left hanging."""
        with socket.socket() as spare:
            spare.bind(("127.0.0.1", 0))
            dead_port = spare.getsockname()[1]
        with (
            FaultProxy("127.0.0.1", dead_port) as proxy,
            pytest.raises((ConnectionResetError, BrokenPipeError)),
            connect(proxy) as sock,  # the reset may already meet the connect
        ):
            exchange_twice(sock)
