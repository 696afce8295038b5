"""A real SMTP server on loopback (aiosmtpd) that requires STARTTLS and records what it receives.

Mail is tested against a real socket and a real TLS handshake, so the client's STARTTLS, certificate
check, envelope and message are exercised exactly as a mail server sees them.
"""

from __future__ import annotations

import email
import email.policy
import shutil
import socket
import ssl
import subprocess
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller


@dataclass(frozen=True)
class Received:
    """One accepted message: the envelope and the parsed message; ``tls`` whether the session was encrypted."""

    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage
    tls: bool


class _Handler:
    def __init__(self, server: MailServer) -> None:
        self._server = server

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 - aiosmtpd's hook name
        with self._server.lock:
            if self._server.fail_next:
                self._server.fail_next -= 1
                return "451 4.3.0 try again later"
            parsed = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
            assert isinstance(parsed, EmailMessage)
            self._server.received.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), parsed, tls=session.ssl is not None)
            )
        return "250 2.0.0 accepted"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class MailServer:
    """Accepts mail on 127.0.0.1 only after STARTTLS with ``tls``; ``fail_next`` answers 451 that many times."""

    def __init__(self, tls: ssl.SSLContext) -> None:
        self.received: list[Received] = []
        self.fail_next = 0
        self.lock = threading.Lock()
        self.port = free_port()
        self._controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, tls_context=tls, require_starttls=True
        )

    def start(self) -> None:
        self._controller.start()

    def stop(self) -> None:
        self._controller.stop()


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway self-signed certificate (and key) for 127.0.0.1, made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl CLI not available to make a test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(  # noqa: S603 - fixed arguments, test-only
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context
