"""One frozen dataclass per section. Field types drive parsing of file and environment values."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from psycopg.conninfo import conninfo_to_dict

from config.clinic_rules import (
    DEFAULT_EMERGENCY_EN,
    DEFAULT_EMERGENCY_FR,
    MAX_LENGTHS,
    clinic_field_problem,
)
from config.errors import ConfigError

# A service bound on one of these listens on every address of the machine.
WILDCARD_HOSTS = ("0.0.0.0", "::")  # noqa: S104 - compared, not bound
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
HOST_NAME = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*")


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    # The origin browsers see (scheme://host[:port]); empty means derived from host/port/TLS.
    # Behind a reverse proxy this must be the proxy's public origin: it is checked against
    # the WebSocket Origin header and used to build invite links.
    public_url: str = ""
    # Listening on every address (host 0.0.0.0 or ::) with no public_url: the addresses (or
    # names) of this machine that other devices of the network open. The first is the base of
    # invite links; all are accepted as page origins and named in the --self-signed
    # certificate. Empty: found at start (config/lan.py), the default route's address first.
    lan_addresses: tuple[str, ...] = ()
    tls_cert_file: str = ""
    tls_key_file: str = ""
    # Trust X-Forwarded-For / X-Forwarded-Proto from the reverse proxy (only behind one).
    trust_proxy_headers: bool = False
    # A body announced larger is refused with 413 before a byte of it is read.
    max_body_bytes: int = 64 * 1024
    # The HTTP edge (signaling/edge.py) faces browsers directly when no proxy is in front.
    # A request head must be complete this long after the connection opens or after its
    # first byte (and a TLS handshake must finish within it), or the connection is closed.
    header_timeout_seconds: float = 10.0
    # A request body must be complete this long after its head. WebSockets and event
    # streams send no body: they are not limited.
    body_timeout_seconds: float = 30.0
    # A connection idle between requests is closed after this. Behind a proxy keeping
    # upstream connections alive, keep it longer than the proxy's own idle limit (nginx's
    # upstream keepalive_timeout is 60 s), or a request may meet a closing connection.
    keepalive_timeout_seconds: float = 75.0
    # Open connections (WebSockets and event streams included) this process accepts; a new
    # one beyond is closed at once.
    max_connections: int = 1024

    @property
    def tls(self) -> bool:
        return bool(self.tls_cert_file)

    @property
    def origin(self) -> str:
        """The origin links are built on: ``public_url``'s, else the first LAN address's when
        listening on every address, else ``localhost`` or the host itself."""
        if self.public_url:
            parts = urlsplit(self.public_url)
            return f"{parts.scheme}://{parts.netloc}"
        if self.lan_origins:
            return self.lan_origins[0]
        wildcard = (*WILDCARD_HOSTS, "127.0.0.1", "")
        return self.origin_of("localhost" if self.host in wildcard else self.host)

    @property
    def lan_origins(self) -> tuple[str, ...]:
        """The origins other devices of the network open: one per ``lan_addresses``, when
        listening on every address with no ``public_url``."""
        if self.public_url or self.host not in WILDCARD_HOSTS:
            return ()
        return tuple(self.origin_of(address) for address in self.lan_addresses)

    @property
    def allowed_origins(self) -> frozenset[str]:
        """The page origins the service answers for: :attr:`origin` and, with no ``public_url``
        on a loopback or wildcard address, every loopback alias of its own port
        (``localhost``, ``127.0.0.1``, ``[::1]``: the service prints ``127.0.0.1`` as where it
        listens, and a newcomer opens that) and every LAN origin."""
        if self.public_url:
            return frozenset({self.origin})
        if self.host not in (*LOOPBACK_HOSTS, *WILDCARD_HOSTS, ""):
            return frozenset({self.origin})
        aliases = ("localhost", "127.0.0.1", "::1")
        return frozenset({self.origin, *(self.origin_of(a) for a in aliases), *self.lan_origins})

    def origin_of(self, host: str) -> str:
        """The origin of this service when opened at ``host`` (a name or an address)."""
        scheme = "https" if self.tls else "http"
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}"

    @property
    def secure_cookies(self) -> bool:
        return self.origin.startswith("https://")


def dsn_without_password(dsn: str) -> bool:
    """A non-empty, well-formed libpq connection string that holds no password: settings
    are printed and audited, a secret in them would leak."""
    if not dsn.strip():
        return False
    try:
        parsed = conninfo_to_dict(dsn)
    except Exception:  # psycopg's message may quote the string: say nothing of it
        return False
    return "password" not in parsed


@dataclass(frozen=True)
class StorageSettings:
    backend: str = "sqlite"
    data_dir: str = "data"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Durable data in Redis is only durable with AOF; refuse to start without it unless told.
    redis_require_aof: bool = True
    # "postgres": a libpq connection string WITHOUT the password, e.g. "host=db.example
    # dbname=teleconsult user=teleconsult sslmode=verify-full" or a postgresql:// URL.
    postgres_dsn: str = ""
    # A file holding the password (mode 0600); empty: libpq's own (PGPASSFILE, ~/.pgpass).
    postgres_password_file: str = ""
    postgres_pool_size: int = 10

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir)

    @property
    def sqlite_path(self) -> Path:
        return self.data_path / "teleconsult.sqlite3"


@dataclass(frozen=True)
class SecuritySettings:
    # Empty: <data_dir>/keys/secret.key, generated on first run.
    secret_key_file: str = ""
    password_min_length: int = 12
    login_pending_minutes: int = 5
    session_idle_minutes: int = 30
    session_absolute_hours: int = 12
    lockout_threshold: int = 5
    lockout_minutes: int = 15
    # Failures from one address (over all accounts) before that address is locked out.
    address_failure_threshold: int = 20
    room_token_ttl_seconds: int = 120
    invite_grace_minutes: int = 60
    invite_max_code_attempts: int = 5
    setup_link_minutes: int = 30
    # How long an enrolment or reset link (made by an admin or run.py add-user) stays usable.
    account_link_hours: int = 72
    # Passkeys (signaling/accounts/passkey_policy.py), the initial policy until an admin saves
    # one on the admin page: who must sign in with one ("nobody", "admins", "everyone"),
    # whether the authenticator code still signs in an account bound to use a passkey, and
    # whether a passkey alone (with user verification) may be the whole sign-in.
    passkeys_required_for: str = "nobody"
    passkey_totp_fallback: bool = True
    passwordless_sign_in: bool = False


@dataclass(frozen=True)
class TurnSettings:
    stun_urls: tuple[str, ...] = ()
    turn_urls: tuple[str, ...] = ()
    # Shared secret of coturn's use-auth-secret (TURN REST credentials); empty: no TURN.
    secret_file: str = ""
    # Credentials never outlive this, even for a long consultation.
    max_credential_hours: int = 12
    # Pages send media through the TURN relay only (RTCPeerConnection iceTransportPolicy
    # "relay"): neither participant learns the other's IP address. Needs turn_urls.
    relay_only: bool = False


@dataclass(frozen=True)
class SignalingSettings:
    max_message_bytes: int = 64 * 1024
    messages_per_second: int = 40
    message_burst: int = 80
    connections_per_address: int = 20
    join_timeout_seconds: float = 5.0
    resume_grace_seconds: float = 30.0
    heartbeat_seconds: float = 15.0
    send_queue_size: int = 256
    # "local": rooms and messages in this process (one instance); "redis": shared through
    # storage.redis_url (several instances). Empty: "redis" with the Redis store, else "local".
    bus: str = ""


@dataclass(frozen=True)
class RecordingSettings:
    enabled: bool = True
    # Empty: <data_dir>/keys/recording-master.key, generated on first run.
    master_key_file: str = ""
    # Where the encrypted recording files go. Empty: <data_dir>/recordings. Several instances
    # point it at one shared mount (NFS, CephFS...) so any of them plays any recording.
    directory: str = ""
    retention_days: int = 30
    # Host candidates of the recording peer: "include" adds 127.0.0.1 to the machine's
    # addresses (browser and server on one machine, the embedded default), "off" leaves the
    # machine's addresses alone (production), "only" offers loopback alone (tests).
    worker_loopback: str = "include"


@dataclass(frozen=True)
class RetentionSettings:
    # Patient details (name, note) of a consultation are erased this long after it ends;
    # the consultation id, times and audit entries stay (pseudonymous).
    consultation_days: int = 90
    # Consent receipts (who agreed to a recording, when) are proof of consent: kept a year,
    # never less than the recordings they authorised (recording.retention_days).
    consent_receipt_days: int = 365
    # Audit entries: the CNIL's recommendation on logging (deliberation 2021-122) finds six
    # months to one year proportionate; the trail holds ids only, so one year. Old entries
    # are purged behind a checkpoint, so the kept trail still verifies.
    audit_days: int = 365
    # How often the sweeper runs.
    sweep_interval_minutes: int = 60


MAIL_SECURITY = ("starttls", "tls", "none")


@dataclass(frozen=True)
class MailSettings:
    """Invitations and reminders by email (signaling/mail/). No host: no email is sent."""

    host: str = ""
    port: int = 587
    # "starttls": plain connection upgraded before anything else is said (submission, 587);
    # "tls": TLS from the first byte (submissions, 465); "none": only for a relay on the same
    # machine or network (refused with a username: a password never goes in clear).
    security: str = "starttls"
    username: str = ""
    # The SMTP password, first line of this file (mode 0600 like the key files).
    password_file: str = ""
    # Certificates to trust for the SMTP server besides the system's (a private relay).
    ca_file: str = ""
    # The sender, e.g. "Cabinet Dupont <visio@cabinet-dupont.fr>".
    from_address: str = ""
    timeout_seconds: float = 15.0
    # A reminder goes this long before the start to a patient invited by email (0: none);
    # the retention sweeper sends it, so it is late by up to retention.sweep_interval_minutes.
    reminder_lead_minutes: int = 120

    @property
    def enabled(self) -> bool:
        return bool(self.host)


@dataclass(frozen=True)
class ClinicSettings:
    """Who the patient deals with: named in invitations and on the patient's pages so they
    can be recognised. The initial values: an admin's edit on the admin page (kept in the
    store, signaling/clinic/details.py) wins over them once saved."""

    name: str = ""
    phone: str = ""
    # Short free text, e.g. "Lun–ven 8h–19h"; empty: not given.
    hours: str = ""
    # Shown on every patient step, the error pages and the invitations, in each language.
    emergency_fr: str = DEFAULT_EMERGENCY_FR
    emergency_en: str = DEFAULT_EMERGENCY_EN
    # Times in emails are written in this zone (the .ics carries UTC; calendars convert).
    timezone: str = "Europe/Paris"


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    turn: TurnSettings = field(default_factory=TurnSettings)
    signaling: SignalingSettings = field(default_factory=SignalingSettings)
    recording: RecordingSettings = field(default_factory=RecordingSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)
    mail: MailSettings = field(default_factory=MailSettings)
    clinic: ClinicSettings = field(default_factory=ClinicSettings)

    @property
    def secret_key_path(self) -> Path:
        if self.security.secret_key_file:
            return Path(self.security.secret_key_file)
        return self.storage.data_path / "keys" / "secret.key"

    @property
    def recording_key_path(self) -> Path:
        if self.recording.master_key_file:
            return Path(self.recording.master_key_file)
        return self.storage.data_path / "keys" / "recording-master.key"

    @property
    def recordings_path(self) -> Path:
        if self.recording.directory:
            return Path(self.recording.directory)
        return self.storage.data_path / "recordings"

    def replace(self, **sections: object) -> Settings:
        return dataclasses.replace(self, **sections)  # type: ignore[arg-type]

    def validate(self) -> Settings:
        """Check values that types alone cannot; raise ConfigError naming the key."""

        def require(ok: bool, key: str, expected: str) -> None:
            if not ok:
                raise ConfigError(f"{key}: expected {expected}")

        s = self.server
        require(1 <= s.port <= 65535, "server.port", "a port number between 1 and 65535")
        require(bool(s.host), "server.host", "a host name or address")
        if s.public_url:
            parts = urlsplit(s.public_url)
            require(
                parts.scheme in ("http", "https") and bool(parts.netloc),
                "server.public_url",
                "an http:// or https:// URL such as https://visio.clinic.example",
            )
        for address in s.lan_addresses:
            require(
                _is_address_or_host_name(address),
                "server.lan_addresses",
                "IP addresses or host names of this machine, such as 192.168.1.20",
            )
        require(
            not s.lan_addresses or (s.host in WILDCARD_HOSTS and not s.public_url),
            "server.lan_addresses",
            'to be empty unless host is "0.0.0.0" or "::" with no public_url '
            "(invite links then use public_url or the host)",
        )
        require(
            bool(s.tls_cert_file) == bool(s.tls_key_file),
            "server.tls_key_file",
            "tls_cert_file and tls_key_file to be set together",
        )
        require(s.max_body_bytes >= 1024, "server.max_body_bytes", "at least 1024")
        for name, most in (
            ("header_timeout_seconds", 300),
            ("body_timeout_seconds", 3600),
            ("keepalive_timeout_seconds", 3600),
        ):
            require(
                0 < getattr(s, name) <= most,
                f"server.{name}",
                f"a number of seconds above 0 and at most {most}",
            )
        require(
            1 <= s.max_connections <= 1_000_000,
            "server.max_connections",
            "between 1 and 1000000",
        )
        st = self.storage
        require(
            st.backend in ("sqlite", "redis", "postgres"),
            "storage.backend",
            '"sqlite", "redis" or "postgres"',
        )
        if st.backend == "postgres":
            require(
                dsn_without_password(st.postgres_dsn),
                "storage.postgres_dsn",
                "a libpq connection string or postgresql:// URL without a password "
                "(the password goes in storage.postgres_password_file)",
            )
            require(st.postgres_pool_size > 0, "storage.postgres_pool_size", "a positive integer")
        require(bool(st.data_dir), "storage.data_dir", "a directory path")
        if st.backend == "redis":
            require(
                st.redis_url.startswith(("redis://", "rediss://", "unix://")),
                "storage.redis_url",
                "a redis://, rediss:// or unix:// URL",
            )
        sec = self.security
        require(sec.password_min_length >= 12, "security.password_min_length", "at least 12")
        for name in (
            "login_pending_minutes",
            "session_idle_minutes",
            "session_absolute_hours",
            "lockout_threshold",
            "lockout_minutes",
            "address_failure_threshold",
            "invite_grace_minutes",
            "invite_max_code_attempts",
            "setup_link_minutes",
            "account_link_hours",
        ):
            require(getattr(sec, name) > 0, f"security.{name}", "a positive integer")
        require(
            sec.passkeys_required_for in ("nobody", "admins", "everyone"),
            "security.passkeys_required_for",
            '"nobody", "admins" or "everyone"',
        )
        require(
            5 <= sec.room_token_ttl_seconds <= 120,
            "security.room_token_ttl_seconds",
            "between 5 and 120 seconds",
        )
        t = self.turn
        for url in t.stun_urls:
            require(url.startswith(("stun:", "stuns:")), "turn.stun_urls", "stun: or stuns: URIs")
        for url in t.turn_urls:
            require(url.startswith(("turn:", "turns:")), "turn.turn_urls", "turn: or turns: URIs")
        require(
            not t.turn_urls or bool(t.secret_file),
            "turn.secret_file",
            "the file holding coturn's static-auth-secret when turn.turn_urls is set",
        )
        require(t.max_credential_hours > 0, "turn.max_credential_hours", "a positive integer")
        require(
            not t.relay_only or bool(t.turn_urls),
            "turn.relay_only",
            "turn.turn_urls to be set (relay-only calls need a TURN server)",
        )
        sig = self.signaling
        require(
            1024 <= sig.max_message_bytes <= 1024 * 1024,
            "signaling.max_message_bytes",
            "between 1024 and 1048576",
        )
        for name in (
            "messages_per_second",
            "message_burst",
            "connections_per_address",
            "send_queue_size",
        ):
            require(getattr(sig, name) > 0, f"signaling.{name}", "a positive integer")
        for name in ("join_timeout_seconds", "resume_grace_seconds", "heartbeat_seconds"):
            require(getattr(sig, name) > 0, f"signaling.{name}", "a positive number of seconds")
        require(sig.bus in ("", "local", "redis"), "signaling.bus", '"local" or "redis"')
        require(
            sig.bus != "redis" or st.backend in ("redis", "postgres"),
            "signaling.bus",
            '"local" unless storage.backend is "redis" or "postgres" (the shared rooms live in '
            "storage.redis_url)",
        )
        require(self.recording.retention_days > 0, "recording.retention_days", "a positive integer")
        require(
            self.recording.worker_loopback in ("off", "include", "only"),
            "recording.worker_loopback",
            '"off", "include" or "only"',
        )
        for name in (
            "consultation_days",
            "consent_receipt_days",
            "audit_days",
            "sweep_interval_minutes",
        ):
            require(getattr(self.retention, name) > 0, f"retention.{name}", "a positive integer")
        require(
            self.retention.consent_receipt_days >= self.recording.retention_days,
            "retention.consent_receipt_days",
            "at least recording.retention_days (a receipt outlives its recording)",
        )
        self._validate_mail(require)
        return self

    def _validate_mail(self, require: Callable[[bool, str, str], None]) -> None:
        m, clinic = self.mail, self.clinic
        require(m.security in MAIL_SECURITY, "mail.security", '"starttls", "tls" or "none"')
        require(1 <= m.port <= 65535, "mail.port", "a port number between 1 and 65535")
        require(0 < m.timeout_seconds <= 120, "mail.timeout_seconds", "between 0 and 120")
        require(
            0 <= m.reminder_lead_minutes <= 7 * 24 * 60,
            "mail.reminder_lead_minutes",
            "between 0 (no reminder) and 10080 (a week)",
        )
        require(
            bool(m.username) == bool(m.password_file),
            "mail.password_file",
            "username and password_file to be set together",
        )
        require(
            not (m.username and m.security == "none"),
            "mail.security",
            '"starttls" or "tls" with a username (a password never travels in clear)',
        )
        if m.enabled:
            require(
                "@" in m.from_address and "\n" not in m.from_address,
                "mail.from_address",
                'the sender, e.g. "Cabinet Dupont <visio@cabinet-dupont.fr>", with mail.host',
            )
            require(
                bool(clinic.name),
                "clinic.name",
                "the clinic's name when mail.host is set (invitations name who sends them)",
            )
            require(
                m.reminder_lead_minutes == 0
                or self.retention.sweep_interval_minutes < m.reminder_lead_minutes,
                "mail.reminder_lead_minutes",
                "0 (no reminder) or more than retention.sweep_interval_minutes (the sweeper "
                "sends reminders: a shorter lead could pass between two sweeps)",
            )
        try:
            ZoneInfo(clinic.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            require(False, "clinic.timezone", 'an IANA time zone such as "Europe/Paris"')
        for name in MAX_LENGTHS:
            value = getattr(clinic, name)
            # An empty name is refused above when mail needs it; the rest is the admin's rule.
            problem = clinic_field_problem(name, value) if value or name != "name" else None
            require(problem is None, f"clinic.{name}", problem or "")


def _is_address_or_host_name(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return HOST_NAME.fullmatch(value) is not None
    return True
