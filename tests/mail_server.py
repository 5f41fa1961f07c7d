"""A real SMTP server for the tests (aiosmtpd, in its own thread and event loop), on a free
loopback port: plain, STARTTLS with AUTH required, implicit TLS, or refusing every message."""

from __future__ import annotations

import email
import email.policy
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from signaling.accounts.selfsigned import ensure_self_signed
from tests.conftest import deadline
from tests.servers import free_port

SMTP_USER = "visio@cabinet.example"
SMTP_PASSWORD = "smtp pass phrase 42"

Mode = Literal["plain", "starttls", "tls"]


@dataclass
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage


@dataclass
class MailHandler:
    """Keeps what arrives; ``refuse`` answers every RCPT with it instead (e.g. a 550)."""

    received: list[Received] = field(default_factory=list)
    refuse: str = ""
    authenticated: list[str] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"


class _Authenticator:
    def __init__(self, handler: MailHandler) -> None:
        self.handler = handler

    def __call__(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == SMTP_USER.encode()
            and auth_data.password == SMTP_PASSWORD.encode()
        )
        if ok:
            self.handler.authenticated.append(mechanism)
        return AuthResult(success=ok)


@dataclass
class SmtpServer:
    port: int
    mode: Mode
    handler: MailHandler
    ca_file: Path
    controller: Controller

    @property
    def received(self) -> list[Received]:
        return self.handler.received

    def stop(self) -> None:
        self.controller.stop()


def start_smtp_server(directory: Path, mode: Mode) -> SmtpServer:
    cert, key = ensure_self_signed(directory, "127.0.0.1")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    handler = MailHandler()
    port = free_port()
    kwargs: dict[str, Any] = {}
    if mode == "starttls":
        kwargs.update(
            tls_context=tls,
            require_starttls=True,
            auth_required=True,
            auth_require_tls=True,
            authenticator=_Authenticator(handler),
        )
    elif mode == "tls":
        kwargs.update(
            ssl_context=tls,
            auth_required=True,
            # aiosmtpd counts only STARTTLS as TLS: this connection is TLS from its first byte.
            auth_require_tls=False,
            authenticator=_Authenticator(handler),
        )
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        ready_timeout=deadline(5),
        server_hostname="localhost",
        **kwargs,
    )
    controller.start()
    return SmtpServer(port, mode, handler, cert, controller)
