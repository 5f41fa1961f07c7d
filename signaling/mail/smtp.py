"""Sending one message through the configured SMTP server.

aiosmtplib rather than smtplib in a thread: the send is a coroutine that the service's
shutdown and a request's end can cancel, its timeout covers each step (connect, TLS, AUTH,
DATA), and no thread pool worker is held by a slow server. STARTTLS is required, not
opportunistic (``start_tls=True``: a server that does not offer it fails the send), so the
password and the patient's address never travel in clear; certificates are verified
(the system's store, plus ``mail.ca_file`` for a private relay).

Failures become :class:`MailFailure` with one of two reasons the doctor can act on; the log
says which step failed and the server's reply code, never the server's text (it often
quotes the recipient's address) nor the message.
"""

from __future__ import annotations

import logging
import ssl
from email.message import EmailMessage
from typing import Literal

import aiosmtplib

from config import ConfigError, MailSettings

log = logging.getLogger("teleconsult.mail")

FailureReason = Literal["refused", "unreachable"]


class MailFailure(Exception):
    def __init__(self, reason: FailureReason) -> None:
        super().__init__(reason)
        self.reason: FailureReason = reason


class SmtpSender:
    def __init__(self, settings: MailSettings, password: str | None) -> None:
        self._settings = settings
        self._password = password
        try:
            self._tls = ssl.create_default_context(cafile=settings.ca_file or None)
        except (OSError, ssl.SSLError):
            # At start-up, like a key file: one line naming the setting, not a traceback.
            raise ConfigError(
                f"mail.ca_file: expected a readable PEM file of certificates ({settings.ca_file})"
            ) from None

    async def send(self, message: EmailMessage) -> None:
        s = self._settings
        try:
            await aiosmtplib.send(
                message,
                hostname=s.host,
                port=s.port,
                username=s.username or None,
                password=self._password if s.username else None,
                use_tls=s.security == "tls",
                start_tls=s.security == "starttls",
                tls_context=self._tls if s.security != "none" else None,
                timeout=s.timeout_seconds,
            )
        except aiosmtplib.SMTPRecipientsRefused as e:
            codes = sorted({r.code for r in e.recipients})
            log.warning("mail refused: recipient refused by the server (codes %s)", codes)
            raise MailFailure("refused") from None
        except aiosmtplib.SMTPResponseException as e:
            # 4xx: the server is there but will not take it now; 5xx: it will not take it.
            log.warning("mail refused: %s, server replied %d", type(e).__name__, e.code)
            raise MailFailure("refused") from None
        except (aiosmtplib.SMTPException, OSError) as e:
            log.warning("mail server %s:%d unreachable: %s", s.host, s.port, type(e).__name__)
            raise MailFailure("unreachable") from None
