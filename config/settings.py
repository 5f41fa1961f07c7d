"""One frozen dataclass per section. Field types drive parsing of file and environment values."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from config.errors import ConfigError


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    # The origin browsers see (scheme://host[:port]); empty means derived from host/port/TLS.
    # Behind a reverse proxy this must be the proxy's public origin: it is checked against
    # the WebSocket Origin header and used to build invite links.
    public_url: str = ""
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
        if self.public_url:
            parts = urlsplit(self.public_url)
            return f"{parts.scheme}://{parts.netloc}"
        scheme = "https" if self.tls else "http"
        wildcard = ("127.0.0.1", "0.0.0.0", "::", "")  # noqa: S104 - compared, not bound
        host = "localhost" if self.host in wildcard else self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        return f"{scheme}://{host}:{self.port}"

    @property
    def allowed_origins(self) -> frozenset[str]:
        """The page origins the service answers for: :attr:`origin` and, with no ``public_url``
        on a loopback or wildcard address, every loopback alias of its own port
        (``localhost``, ``127.0.0.1``, ``[::1]``): the service prints ``127.0.0.1`` as where it
        listens, and a newcomer opens that."""
        if self.public_url:
            return frozenset({self.origin})
        loopback = ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::", "")  # noqa: S104
        if self.host not in loopback:
            return frozenset({self.origin})
        scheme = "https" if self.tls else "http"
        aliases = ("localhost", "127.0.0.1", "[::1]")
        return frozenset({self.origin, *(f"{scheme}://{a}:{self.port}" for a in aliases)})

    @property
    def secure_cookies(self) -> bool:
        return self.origin.startswith("https://")


@dataclass(frozen=True)
class StorageSettings:
    backend: str = "sqlite"
    data_dir: str = "data"
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Durable data in Redis is only durable with AOF; refuse to start without it unless told.
    redis_require_aof: bool = True

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


@dataclass(frozen=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    turn: TurnSettings = field(default_factory=TurnSettings)
    signaling: SignalingSettings = field(default_factory=SignalingSettings)
    recording: RecordingSettings = field(default_factory=RecordingSettings)
    retention: RetentionSettings = field(default_factory=RetentionSettings)

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
        require(st.backend in ("sqlite", "redis"), "storage.backend", '"sqlite" or "redis"')
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
        ):
            require(getattr(sec, name) > 0, f"security.{name}", "a positive integer")
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
            sig.bus != "redis" or st.backend == "redis",
            "signaling.bus",
            '"local" unless storage.backend is "redis" (the shared rooms live in that Redis)',
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
        return self
