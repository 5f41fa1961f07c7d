"""Every typed AppKey and request key of the aiohttp application, in one place."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiohttp import web

from config import Settings
from signaling.accounts.account_links import AccountLinks
from signaling.accounts.auth import Accounts
from signaling.accounts.passkeys import Passkeys
from signaling.api.site import Site
from signaling.audit.trail import AuditTrail
from signaling.clock import Clock
from signaling.consultations.booking import Consultations
from signaling.consultations.tokens import RoomTokens, SetupTokens
from signaling.mail.invitations import InviteMailer
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
    # Invitations and reminders by email (answers mail_not_configured without mail.host).
    mailer: InviteMailer
    # The TURN shared secret, when TURN is configured.
    turn_secret: bytes | None = None
    metrics: Metrics = field(default_factory=Metrics)

    @property
    def account_links(self) -> AccountLinks:
        # Holds no state of its own: made on use from the services it works with.
        return AccountLinks(self.accounts, self.settings.security, self.audit)

    @property
    def passkeys(self) -> Passkeys:
        return Passkeys(self.accounts, self.settings.server, self.audit)


SERVICES = web.AppKey("services", Services)
# web/ as served: assembled pages and the assets of one version (signaling/api/pages.py).
SITE = web.AppKey("site", Site)
