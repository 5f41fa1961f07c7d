"""Every typed AppKey and request key of the aiohttp application, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from config import Settings
from signaling.accounts.auth import Accounts
from signaling.api.site import Site
from signaling.audit.trail import AuditTrail
from signaling.clock import Clock
from signaling.consultations.booking import Consultations
from signaling.consultations.tokens import RoomTokens, SetupTokens
from signaling.metrics import Metrics
from signaling.store.base import Store


@dataclass
class Services:
    settings: Settings
    clock: Clock
    store: Store
    audit: AuditTrail
    accounts: Accounts
    consultations: Consultations
    room_tokens: RoomTokens
    setup_tokens: SetupTokens
    # The TURN shared secret, when TURN is configured.
    turn_secret: bytes | None = None
    metrics: Metrics = field(default_factory=Metrics)


SERVICES = web.AppKey("services", Services)
# web/ as served: assembled pages and the assets of one version (signaling/api/pages.py).
SITE = web.AppKey("site", Site)
