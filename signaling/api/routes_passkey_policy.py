"""The clinic's passkey policy (signaling/accounts/passkey_policy.py): read by the admin page,
saved by an admin, audited as ``passkey.policy_changed`` with the fields changed and their old
and new values."""

from __future__ import annotations

from aiohttp import web

from signaling.accounts.passkey_policy import PasskeyPolicy, passkey_policy, save_passkey_policy
from signaling.api.api_types import PasskeyPolicyView
from signaling.api.http_api import USER_KEY, ApiRegistry, audit_request, json_response
from signaling.errors import AppError
from signaling.keys import SERVICES

routes = ApiRegistry()

_MEANING = (
    "`required_for`: who must sign in with a passkey (`nobody`, `admins`, `everyone`). An "
    "account it binds that has a passkey signs in with it; with `totp_fallback` the "
    "authenticator code still works, without it the code answers `passkey_required` (at "
    "sign-in, at unlock, for a password change). A bound account without a passkey yet signs "
    "in with its password and code into a session that can only enrol one (every other staff "
    "endpoint answers `passkey_enrolment_required`). `passwordless`: the sign-in page offers "
    "a passkey alone (`POST /api/auth/passwordless`). The settings' `[security]` "
    "`passkeys_required_for`, `passkey_totp_fallback` and `passwordless_sign_in` hold it "
    "until an admin saves it here; the saved one then wins. An admin who has no passkey "
    "cannot save a policy that binds admins (`invalid_body`, `details.field` "
    "`required_for`): enrol one first."
)


def _view(policy: PasskeyPolicy) -> PasskeyPolicyView:
    return PasskeyPolicyView(
        required_for=policy.required_for,
        totp_fallback=policy.totp_fallback,
        passwordless=policy.passwordless,
    )


@routes.route(
    "GET",
    "/api/passkey-policy",
    summary="The clinic's passkey policy (admins only)",
    auth="admin",
    response=PasskeyPolicyView,
    errors=("not_authenticated", "forbidden"),
    tag="users",
    description=_MEANING,
)
async def get_policy(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    return json_response(_view(await passkey_policy(services.store, services.settings.security)))


@routes.route(
    "POST",
    "/api/passkey-policy",
    summary="Save the clinic's passkey policy (admins only); audited as passkey.policy_changed",
    auth="admin",
    body=PasskeyPolicyView,
    response=PasskeyPolicyView,
    errors=("not_authenticated", "forbidden", "csrf_failed", "invalid_body"),
    tag="users",
    description=_MEANING,
)
async def save_policy(request: web.Request, body: PasskeyPolicyView) -> web.Response:
    services = request.app[SERVICES]
    before = await passkey_policy(services.store, services.settings.security)
    wanted = PasskeyPolicy(
        required_for=body.required_for,
        totp_fallback=body.totp_fallback,
        passwordless=body.passwordless,
    )
    admin = request[USER_KEY]
    if wanted.binds(admin.role) and not admin.passkeys:
        # Saved, it would turn this very session into one that can only enrol a passkey.
        raise AppError(
            "invalid_body",
            "Enrol a passkey for your own account (My account) before requiring one.",
            details={"field": "required_for"},
        )
    changed = wanted.changed_fields(before)
    if not changed:
        return json_response(_view(before))  # nothing changes: nothing to record
    await save_passkey_policy(services.store, wanted)
    await audit_request(
        request,
        "passkey.policy_changed",
        target="passkey_policy",
        fields=changed,
        old={name: getattr(before, name) for name in changed},
        new={name: getattr(wanted, name) for name in changed},
    )
    return json_response(_view(wanted))
