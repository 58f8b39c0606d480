"""SNS's HTTPS host on this machine, for a process that cannot be handed a fake transport.

The webhooks function fetches an SNS message's signing certificate from
``https://sns.<region>.amazonaws.com/…pem`` and accepts no other host. In a test it gets
``SnsStandIn.transport()``; run as its own func-python process, it gets only environment
variables. This serves the stand-in behind that name, without touching the function:

- a demo certificate authority, and a server certificate for ``sns.<region>.amazonaws.com`` it signs;
- an HTTP proxy that answers ``CONNECT sns.<region>.amazonaws.com:443`` itself: it completes TLS
  with that certificate and serves the stand-in inside the tunnel; any other host is refused.

``env()`` is what the process needs: ``HTTPS_PROXY`` (httpx honours it) and ``SSL_CERT_FILE``
(httpx then trusts the demo CA alone), so verification runs exactly as it would against AWS.
"""

from __future__ import annotations

import ssl
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sandbox.sns import SnsHandler, SnsStandIn
from sandbox.threaded import ServedInThread

__all__ = ["SnsHttpsProxy"]


class SnsHttpsProxy(ServedInThread):
    """A context manager; ``folder`` receives the CA certificate and the server's key pair."""

    def __init__(self, sns: SnsStandIn, folder: Path) -> None:
        self.sns, self.host = sns, f"sns.{sns.region}.amazonaws.com"
        folder.mkdir(parents=True, exist_ok=True)
        self.ca_file, chain, key = folder / "demo-ca.pem", folder / "sns.pem", folder / "sns-key.pem"
        _write_certificates(self.host, self.ca_file, chain, key)
        self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.tls.load_cert_chain(chain, key)
        self._serve(ThreadingHTTPServer(("127.0.0.1", 0), partial(_ProxyHandler, self)))
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def env(self) -> dict[str, str]:
        """For the one process that verifies SNS messages (both spellings: lower case wins in urllib)."""
        return {"HTTPS_PROXY": self.url, "https_proxy": self.url, "SSL_CERT_FILE": str(self.ca_file)}


class _ProxyHandler(BaseHTTPRequestHandler):
    def __init__(self, proxy: SnsHttpsProxy, *args: Any) -> None:
        self.proxy = proxy  # set first: the base __init__ serves the request
        super().__init__(*args)

    def do_CONNECT(self) -> None:
        if self.path != f"{self.proxy.host}:443":
            self.send_error(403, "this proxy reaches the SNS stand-in only")
            return
        self.send_response(200, "Connection established")
        self.end_headers()
        self.wfile.flush()
        try:
            tunnel = self.proxy.tls.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):
            self.close_connection = True  # the client gave up on the handshake: nothing to serve
            return
        try:
            SnsHandler(self.proxy.sns, tunnel, self.client_address, self.server)
        finally:
            tunnel.close()
        self.close_connection = True

    def log_message(self, format: str, *args: Any) -> None:
        """Silent, as the stand-in it fronts."""


def _write_certificates(host: str, ca_file: Path, chain_file: Path, key_file: Path) -> None:
    """A CA and a server certificate for ``host`` with the extensions strict X.509 checking wants."""
    now = datetime.now(UTC)
    ca_key, key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Patient Notify demo CA")])
    ca = (
        _builder(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    server = (
        _builder(name, ca_name, key.public_key(), now)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True, key_encipherment=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    ca_file.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    chain_file.write_bytes(server.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))  # fmt: skip


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: rsa.RSAPublicKey, now: datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1)).not_valid_after(now + timedelta(days=30))
    )  # fmt: skip


def _usage(*, digital_signature: bool = False, key_encipherment: bool = False, key_cert_sign: bool = False,
           crl_sign: bool = False) -> x509.KeyUsage:  # fmt: skip
    return x509.KeyUsage(
        digital_signature=digital_signature, content_commitment=False, key_encipherment=key_encipherment,
        data_encipherment=False, key_agreement=False, key_cert_sign=key_cert_sign, crl_sign=crl_sign,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip
