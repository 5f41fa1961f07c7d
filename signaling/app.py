"""create_app(settings): wires config, store, services, routes and middleware together."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

from aiohttp import web

from config import Settings, load_or_create_key, read_key_file, read_password_file
from signaling.accounts.auth import Accounts
from signaling.accounts.common_passwords import common_passwords
from signaling.api.http_api import ApiRegistry, client_address, json_response
from signaling.api.middleware import (
    add_security_headers,
    body_limit_middleware,
    error_middleware,
    origin_middleware,
)
from signaling.api.openapi import build_openapi
from signaling.api.pages import setup_pages
from signaling.api.routes_account_links import routes as account_link_routes
from signaling.api.routes_assistants import routes as assistant_routes
from signaling.api.routes_audit import routes as audit_routes
from signaling.api.routes_auth import SETUP_NONCE
from signaling.api.routes_auth import routes as auth_routes
from signaling.api.routes_clinic import routes as clinic_routes
from signaling.api.routes_consultations import routes as consultation_routes
from signaling.api.routes_health import routes as health_routes
from signaling.api.routes_invite_mail import routes as invite_mail_routes
from signaling.api.routes_invites import routes as invite_routes
from signaling.api.routes_live import routes as live_routes
from signaling.api.routes_live import setup_waiting_streams
from signaling.api.routes_me import routes as me_routes
from signaling.api.routes_passkey_policy import routes as passkey_policy_routes
from signaling.api.routes_passkeys import routes as passkey_routes
from signaling.api.routes_patient_rights import routes as patient_rights_routes
from signaling.api.routes_recordings import routes as recording_routes
from signaling.api.routes_room_tokens import routes as room_token_routes
from signaling.api.routes_session_lock import routes as session_lock_routes
from signaling.api.routes_users import routes as user_routes
from signaling.api.routes_waiting_messages import routes as waiting_message_routes
from signaling.api.routes_ws import setup_websocket
from signaling.audit.settings_audit import record_settings_change
from signaling.audit.trail import AuditTrail
from signaling.clock import Clock
from signaling.cluster.bus_redis import RedisBus
from signaling.cluster.room_state_redis import RedisRoomStates
from signaling.cluster.room_watch import RoomWatch
from signaling.consultations.booking import Consultations
from signaling.consultations.retention import setup_retention
from signaling.consultations.tokens import InviteTokens, RoomTokens, SetupTokens
from signaling.crypto import SecretBox, derive_key
from signaling.keys import SERVICES, Services
from signaling.live.bus import Bus, LocalBus
from signaling.live.call_summary import with_call_summary
from signaling.live.recording_routing import RoomRecordings
from signaling.live.room import RoomState
from signaling.live.room_registry import RoomRegistry, seat_audit
from signaling.live.signaling_state import SIGNALING, Signaling
from signaling.mail.invitations import InviteMailer
from signaling.mail.smtp import SmtpSender
from signaling.metrics import Metrics, metrics_handler
from signaling.recording.repair import setup_recording_repair
from signaling.store.base import Store
from signaling.store.postgres import PostgresStore
from signaling.store.redis import RedisStore
from signaling.store.short_lived_redis import RedisShortLivedStore
from signaling.store.sqlite import SqliteStore

log = logging.getLogger("teleconsult")
VERSION = "0.1.0"
WEB_ROOT = Path(__file__).resolve().parent.parent / "web"


def make_store(settings: Settings) -> Store:
    st = settings.storage
    if st.backend == "redis":
        return RedisStore(st.redis_url, st.redis_require_aof)
    if st.backend == "postgres":
        # Several instances share a Redis for their bus: short-lived keys live there, with
        # their TTLs; one instance alone keeps them in a PostgreSQL table.
        shared = bus_kind(settings) == "redis"
        return PostgresStore(
            st.postgres_dsn,
            password=read_password_file(Path(st.postgres_password_file))
            if st.postgres_password_file
            else None,
            short_lived=RedisShortLivedStore(st.redis_url) if shared else None,
            pool_size=st.postgres_pool_size,
        )
    return SqliteStore(st.sqlite_path)


def load_secret(settings: Settings) -> bytes:
    # A configured key file must exist; the default one is generated on first run.
    return load_or_create_key(
        settings.secret_key_path, create=not settings.security.secret_key_file
    )


def load_turn_secret(settings: Settings) -> bytes | None:
    if not settings.turn.secret_file:
        return None
    return read_key_file(Path(settings.turn.secret_file))


def make_mail_transport(settings: Settings) -> SmtpSender | None:
    """The SMTP sender when ``mail.host`` is set (its password read now: a missing or
    readable-by-others file refuses start-up, like a key file)."""
    mail = settings.mail
    if not mail.enabled:
        return None
    password = read_password_file(Path(mail.password_file)) if mail.password_file else None
    return SmtpSender(mail, password)


def all_routes() -> ApiRegistry:
    registry = ApiRegistry()
    for part in (
        health_routes,
        auth_routes,
        session_lock_routes,
        user_routes,
        account_link_routes,
        assistant_routes,
        me_routes,
        passkey_routes,
        passkey_policy_routes,
        consultation_routes,
        invite_mail_routes,
        invite_routes,
        clinic_routes,
        room_token_routes,
        patient_rights_routes,
        audit_routes,
        recording_routes,
        live_routes,
        waiting_message_routes,
    ):
        registry.endpoints.extend(part.endpoints)
    return registry


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    store: Store | None = None,
    web_root: Path = WEB_ROOT,
    record_settings: bool = False,
) -> web.Application:
    """``record_settings``: at start, audit which settings changed since the last start
    (``python run.py serve`` sets it; tests that count audit entries leave it off)."""
    clock = clock or Clock()
    store = store or make_store(settings)
    secret = load_secret(settings)
    audit = AuditTrail(store, clock)
    metrics = Metrics()
    accounts = Accounts(
        store,
        clock,
        settings.security,
        SecretBox(derive_key(secret, "totp-secrets")),
        audit,
        metrics,
    )
    consultations = Consultations(
        store,
        clock,
        settings.security,
        InviteTokens(derive_key(secret, "invite-tokens")),
        derive_key(secret, "access-codes"),
        audit,
        accounts,
    )
    services = Services(
        settings=settings,
        clock=clock,
        store=store,
        audit=audit,
        accounts=accounts,
        consultations=consultations,
        room_tokens=RoomTokens(
            derive_key(secret, "room-tokens"),
            store,
            clock,
            settings.security.room_token_ttl_seconds,
        ),
        setup_tokens=SetupTokens(
            derive_key(secret, "setup-tokens"), clock, settings.security.setup_link_minutes
        ),
        turn_secret=load_turn_secret(settings),
        metrics=metrics,
        mailer=InviteMailer(
            settings, clock, store, audit, consultations, make_mail_transport(settings)
        ),
    )
    app = web.Application(
        middlewares=[error_middleware, body_limit_middleware, origin_middleware],
        client_max_size=settings.server.max_body_bytes,
    )
    app[SERVICES] = services
    app.on_response_prepare.append(add_security_headers)

    async def open_store(app: web.Application) -> AsyncIterator[None]:
        await store.open()
        # Read the common-password list now, off the event loop, rather than at the first
        # password check (a few tens of milliseconds of decompression, once per process).
        await asyncio.to_thread(common_passwords)
        yield
        await store.close()

    app.cleanup_ctx.append(open_store)
    # Summaries of rate-limited access refusals; written before the store closes.
    app.cleanup_ctx.append(audit.refusals.running)
    if record_settings:
        digest_key = derive_key(secret, "settings-digests")

        async def audit_settings(app: web.Application) -> AsyncIterator[None]:
            await record_settings_change(store, audit, settings, digest_key)
            yield

        app.cleanup_ctx.append(audit_settings)
    setup_retention(app)  # after the store: cleanup contexts run in order
    setup_recording_repair(app, clustered=bus_kind(settings) == "redis")

    registry = all_routes()
    registry.install(app)
    openapi = build_openapi(registry.endpoints, VERSION)

    async def serve_openapi(request: web.Request) -> web.Response:
        return json_response(openapi)

    app.router.add_get("/api/openapi.json", serve_openapi)
    setup_pages(app, web_root)
    setup_signaling(app)
    setup_metrics(app)
    setup_waiting_streams(app)
    return app


def bus_kind(settings: Settings) -> str:
    """ "local" (one instance) or "redis" (several): by default, what the store is."""
    chosen = settings.signaling.bus
    if chosen:
        return chosen
    return "redis" if settings.storage.backend == "redis" else "local"


def setup_signaling(app: web.Application) -> None:
    """The live rooms and ``/ws``: for one instance, rooms in memory and a LocalBus; for
    several, the rooms' state and the bus in Redis, and the room watch."""
    services = app[SERVICES]
    settings = services.settings
    redis_bus: RedisBus | None = None
    states: RedisRoomStates | None = None
    bus: Bus
    if bus_kind(settings) == "redis":
        bus = redis_bus = RedisBus(settings.storage.redis_url)
        states = RedisRoomStates(redis_bus)
    else:
        bus = LocalBus()
    grace = settings.signaling.resume_grace_seconds
    audit = with_call_summary(seat_audit(services.audit), services.store, services.clock)
    registry = RoomRegistry(bus, services.clock, grace, audit, states)
    recordings = RoomRecordings(services, bus, registry)
    signaling = Signaling(services, bus, registry, recordings)
    bus.on_forward = recordings.forwarded
    if redis_bus is not None:
        redis_bus.on_room_changed = registry.room_changed
    setup_websocket(app, signaling)

    async def rooms_ctx(app: web.Application) -> AsyncIterator[None]:
        watch: RoomWatch | None = None
        if redis_bus is not None and states is not None:
            await redis_bus.start()
            watch = RoomWatch(registry, states)
            watch.start()
        yield
        if watch is not None:
            await watch.close()
        await registry.close()
        if redis_bus is not None:
            await redis_bus.close()

    app.cleanup_ctx.append(rooms_ctx)


def setup_metrics(app: web.Application) -> None:
    services = app[SERVICES]
    signaling = app[SIGNALING]

    def live() -> dict[str, float | dict[str, float]]:
        by_state = {state.value: 0.0 for state in RoomState}
        waiting = 0.0
        for room in list(signaling.rooms.rooms.values()):
            by_state[room.state.value] += 1
            if room.state is RoomState.WAITING and room.connected("patient"):
                waiting += 1
        return {
            "websockets": float(sum(1 for ws in list(signaling.sockets) if not ws.closed)),
            "rooms": by_state,
            "waiting_patients": waiting,
        }

    services.metrics.add_live_gauges(live)
    app.router.add_get("/metrics", metrics_handler(services.metrics, client_address))


async def issue_setup_link(app: web.Application) -> str | None:
    """On a service with no user yet, a fresh one-time link to create the first admin."""
    services = app[SERVICES]
    if await services.store.count_users() > 0:
        return None
    nonce = secrets.token_urlsafe(12)
    await services.store.set_meta(SETUP_NONCE, nonce)
    token = services.setup_tokens.issue(nonce)
    return f"{services.settings.server.origin}/setup/{token}"
