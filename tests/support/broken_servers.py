"""Local servers that fail on purpose, for the provider adapters' error translation.

``CannedAnswer`` answers every POST with one status, headers and body (a provider's error as it
arrives on the wire). ``RefusingSmtpRelay`` speaks plain SMTP and refuses one command.

``BrokenHttpsServer`` and ``BrokenSmtpRelay`` break TLS: in the handshake, or once the request
(or message) arrived whole, which ``received`` counts: that is what makes a later failure
ambiguous. Each takes one connection and holds it open until the ``with`` block ends, so the
client meets the fault itself, never a close racing it.

``self_signed(folder)`` writes a certificate for 127.0.0.1 and its key. A client trusts it the way
production configures trust, through its environment: ``REQUESTS_CA_BUNDLE`` (requests, so
twilio), ``AWS_CA_BUNDLE`` (botocore), ``SSL_CERT_FILE`` (``ssl.create_default_context``).
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import ssl
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, Self

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sandbox.threaded import ServedInThread

__all__ = [
    "BrokenHttpsServer", "BrokenSmtpRelay", "CannedAnswer", "Certificate", "HttpsFault", "RefusingSmtpRelay",
    "SmtpFault", "self_signed",
]  # fmt: skip

HttpsFault = Literal["untrusted", "hang-up", "plaintext", "silent", "corrupt-after-request", "corrupt-mid-answer"]
SmtpFault = Literal["untrusted", "corrupt-at-rcpt", "corrupt-after-data"]
# A TLS application-data record no key decrypts: the client fails its MAC check (BAD_RECORD_MAC).
CORRUPT_RECORD = b"\x17\x03\x03\x00\x40" + bytes(range(64))


class CannedAnswer(ServedInThread):
    """Answers every POST with ``status``, ``headers`` and ``body``; ``requests`` counts them."""

    def __init__(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.status, self.body, self.headers = status, body, headers or {}
        self.requests = 0
        self._serve(ThreadingHTTPServer(("127.0.0.1", 0), partial(_CannedHandler, self)))
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"


class _CannedHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def __init__(self, canned: CannedAnswer, *args: Any) -> None:
        self.canned = canned  # set first: the base __init__ serves the request
        super().__init__(*args)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.canned.requests += 1
        self.send_response(self.canned.status)
        for name, value in {**self.canned.headers, "Content-Length": str(len(self.canned.body))}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(self.canned.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent."""


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def self_signed(folder: Path) -> Certificate:
    """A certificate for IP 127.0.0.1 that is its own CA, and its private key, under ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    paths = Certificate(folder / "cert.pem", folder / "key.pem")
    paths.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths.key.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))  # fmt: skip
    return paths


class _OneConnection:
    """Accepts one connection and runs ``_serve`` on it in a thread; closes it when the block ends."""

    def __init__(self) -> None:
        self.received = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._done = threading.Event()
        self._open: list[socket.socket] = []  # a TLS socket wrapping the connection, held to the end
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._listener.close()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        try:
            connection, _ = self._listener.accept()
        except OSError:  # closed before any client came
            return
        self._open.append(connection)
        with contextlib.suppress(OSError):  # the client gave up first: its side is what the test checks
            self._serve(connection)
        self._done.wait(timeout=30)
        for held in reversed(self._open):
            held.close()

    def _serve(self, connection: socket.socket) -> None:
        raise NotImplementedError


class _BrokenTls(_OneConnection):
    def __init__(self, fault: str, trusted: Certificate, untrusted: Certificate) -> None:
        super().__init__()
        self.fault, self._trusted, self._untrusted = fault, trusted, untrusted

    def _handshake(self, connection: socket.socket) -> ssl.SSLSocket:
        certificate = self._untrusted if self.fault == "untrusted" else self._trusted
        tls = certificate.server_context().wrap_socket(connection, server_side=True)
        self._open.append(tls)
        return tls


class BrokenHttpsServer(_BrokenTls):
    def __init__(self, fault: HttpsFault, trusted: Certificate, untrusted: Certificate) -> None:
        super().__init__(fault, trusted, untrusted)
        self.url = f"https://127.0.0.1:{self.port}"

    def _serve(self, connection: socket.socket) -> None:
        if self.fault in ("hang-up", "plaintext", "silent"):
            connection.recv(65536)  # the ClientHello
            if self.fault == "hang-up":
                connection.shutdown(socket.SHUT_RDWR)
            elif self.fault == "plaintext":
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return
        tls = self._handshake(connection)
        _read_http_request(tls)
        self.received += 1
        if self.fault == "corrupt-mid-answer":
            tls.sendall(b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n{")
        os.write(tls.fileno(), CORRUPT_RECORD)  # under TLS, straight onto the TCP stream


class BrokenSmtpRelay(_BrokenTls):
    """Greets, offers STARTTLS, then breaks the TLS session at the point ``fault`` names."""

    def __init__(self, fault: SmtpFault, trusted: Certificate, untrusted: Certificate) -> None:
        super().__init__(fault, trusted, untrusted)

    def _serve(self, connection: socket.socket) -> None:
        chat = _Chat(connection)
        chat.say("220 relay.test ESMTP")
        chat.expect("EHLO", "250-relay.test", "250 STARTTLS")
        chat.expect("STARTTLS", "220 2.0.0 ready")
        chat = _Chat(self._handshake(connection))
        chat.expect("EHLO", "250 relay.test")
        chat.expect("MAIL", "250 2.1.0 ok")
        if self.fault == "corrupt-at-rcpt":
            chat.expect("RCPT")
            os.write(chat.fileno, CORRUPT_RECORD)
            return
        chat.expect("RCPT", "250 2.1.5 ok")
        chat.expect("DATA", "354 go ahead")
        chat.read_until(b"\r\n.\r\n")
        self.received += 1
        os.write(chat.fileno, CORRUPT_RECORD)


class RefusingSmtpRelay(_OneConnection):
    """Plain SMTP offering AUTH PLAIN; answers ``reply`` to the first command starting with ``verb``."""

    def __init__(self, verb: str, reply: str) -> None:
        super().__init__()
        self.verb, self.reply = verb, reply

    def _serve(self, connection: socket.socket) -> None:
        chat = _Chat(connection)
        chat.say("220 relay.test ESMTP")
        chat.expect("EHLO", "250-relay.test", "250 AUTH PLAIN")
        ok = {"AUTH": "235 2.7.0 accepted", "MAIL": "250 2.1.0 ok", "RCPT": "250 2.1.5 ok", "DATA": "354 go ahead"}
        while True:
            line = chat.read_until(b"\r\n").decode()
            verb = line.split(" ", 1)[0].upper()
            if verb == self.verb:
                chat.say(self.reply)
                return
            chat.say(ok.get(verb, "502 5.5.2 not here"))


class _Chat:
    def __init__(self, connection: socket.socket) -> None:
        self._connection, self._buffer = connection, b""
        self.fileno = connection.fileno()

    def say(self, *lines: str) -> None:
        self._connection.sendall("".join(f"{line}\r\n" for line in lines).encode())

    def expect(self, verb: str, *reply: str) -> None:
        line = self.read_until(b"\r\n")
        assert line.upper().startswith(verb.encode()), line
        if reply:
            self.say(*reply)

    def read_until(self, end: bytes) -> bytes:
        while end not in self._buffer:
            self._receive()
        head, _, self._buffer = self._buffer.partition(end)
        return head

    def read_exactly(self, length: int) -> bytes:
        while len(self._buffer) < length:
            self._receive()
        data, self._buffer = self._buffer[:length], self._buffer[length:]
        return data

    def _receive(self) -> None:
        chunk = self._connection.recv(65536)
        if not chunk:
            raise ConnectionResetError("the client hung up")
        self._buffer += chunk


def _read_http_request(tls: ssl.SSLSocket) -> None:
    chat = _Chat(tls)
    head = chat.read_until(b"\r\n\r\n").decode("latin-1")
    lengths = [line.split(":", 1)[1] for line in head.split("\r\n") if line.lower().startswith("content-length:")]
    chat.read_exactly(int(lengths[0]) if lengths else 0)
