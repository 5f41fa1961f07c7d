"""The closed set of audited actions: one ``Literal`` that mypy checks wherever an action is
written (``AuditTrail.record``, the room's audit hook, the API routes), and what each one
records, for docs/architecture.md's table (``python -m signaling.api.audit_docs``).

A module of its own, importing nothing, so that every layer that names an action (the trail,
the access refusals it owns, the live rooms, the chain's purge entry) can take the type
without an import cycle.
"""

from __future__ import annotations

from typing import Literal, get_args

AuditAction = Literal[
    "login.success",
    "login.password",
    "login.totp",
    "account.locked",
    "address.locked",
    "mfa.enrolled",
    "mfa.reset",
    "session.end",
    "user.created",
    "user.disabled",
    "user.enabled",
    "user.role_changed",
    "user.password_changed",
    "consultation.created",
    "consultation.cancelled",
    "consultation.ended",
    "consultation.exported",
    "consultation.erased",
    "invite.created",
    "invite.code",
    "invite.used",
    "invite.locked",
    "patient.sessions_ended",
    "patient.session_refused",
    "token.issued",
    "token.refused",
    "signaling.token_refused",
    "signaling.join",
    "signaling.waiting",
    "signaling.admitted",
    "signaling.denied",
    "signaling.resume",
    "signaling.disconnected",
    "signaling.superseded",
    "call.started",
    "call.ended",
    "recording.requested",
    "consent.given",
    "consent.declined",
    "consent.withdrawn",
    "recording.started",
    "recording.stopped",
    "recording.listed",
    "recording.downloaded",
    "recording.exported",
    "recording.deleted",
    "recording.purged",
    "retention.purged",
    "audit.exported",
    "audit.incident_report",
    "audit.purged",
    "settings.initial",
    "settings.changed",
    # Refused access to another's records or to admin endpoints (signaling/audit/access_audit.py).
    "access.refused",
    "access.refused_suppressed",
]

# Every action the service records, in the order of the audit page's filter and of the docs'
# table; tests/test_audit_actions.py drives each one and checks it is written exactly once.
AUDITED_ACTIONS: tuple[AuditAction, ...] = get_args(AuditAction)

# What each action records, as Markdown for docs/architecture.md's table (generated).
MEANINGS: dict[AuditAction, str] = {
    "login.success": "a staff member completed the sign-in (password, then code): a session starts",
    "login.password": "a password checked at sign-in; failures name the reason (wrong "
    "credentials, disabled account), the actor is empty for an unknown username",
    "login.totp": "an authenticator code refused at sign-in (wrong, expired or reused)",
    "account.locked": "an account reached `security.lockout_threshold` failures and is locked",
    "address.locked": "a source address reached `security.address_failure_threshold` failures "
    "(passwords, codes, access codes) and is locked",
    "mfa.enrolled": "a user's first correct code confirmed their authenticator app",
    "mfa.reset": "an admin (or `run.py reset-mfa`) reset a user's two-factor setup",
    "session.end": "a staff member signed out",
    "user.created": "an account created by an admin, the setup link or `run.py add-user`",
    "user.disabled": "an account disabled (its sessions end)",
    "user.enabled": "an account enabled again",
    "user.role_changed": "an account's role changed (old and new role; its sessions end)",
    "user.password_changed": "a user changed their own password, or was refused it",
    "consultation.created": "a doctor booked a consultation",
    "consultation.cancelled": "a consultation cancelled (its links stop working, its room ends)",
    "consultation.ended": "the doctor ended the consultation from the call",
    "consultation.exported": "an admin exported everything held about a consultation (a "
    "patient's request of access)",
    "consultation.erased": "an admin erased a patient's details on request (erasures by "
    "retention are counted in `retention.purged`)",
    "invite.created": "a patient link issued, first or re-issued (with its generation)",
    "invite.code": "a wrong access code given for a patient link",
    "invite.used": "a patient link and its access code redeemed",
    "invite.locked": "a patient link locked after too many wrong codes",
    "patient.sessions_ended": "a re-issued link or a cancellation ended the patient sessions "
    "of the earlier links",
    "patient.session_refused": "a request of an ended patient session refused (with the "
    "reason and the endpoint)",
    "token.issued": "a room token issued, to the doctor or the patient",
    "token.refused": "a room token asked over HTTP and refused (with the reason)",
    "signaling.token_refused": "a room token or resume secret refused at the WebSocket join",
    "signaling.join": "a participant joined the room",
    "signaling.waiting": "the patient entered the waiting room",
    "signaling.admitted": "the doctor admitted the patient",
    "signaling.denied": "the doctor did not admit the patient",
    "signaling.resume": "a participant came back within the resume grace",
    "signaling.disconnected": "a participant's connection dropped without a hang-up (the seat "
    "is kept for the resume grace)",
    "signaling.superseded": "a patient of a replaced link shown out of the room",
    "call.started": "the call began (the patient admitted)",
    "call.ended": "the call ended (with the reason)",
    "recording.requested": "the doctor asked to record",
    "consent.given": "a participant consented to the recording",
    "consent.declined": "a participant declined the recording",
    "consent.withdrawn": "a participant withdrew consent (the recording stops)",
    "recording.started": "the service started recording, both consents held",
    "recording.stopped": "a recording stopped (with the reason; a failure if incomplete)",
    "recording.listed": "a staff member listed recordings",
    "recording.downloaded": "a recording downloaded, decrypted on the fly (a failure if it "
    "could not be read)",
    "recording.exported": "a recording decrypted into a file by `run.py recording export`",
    "recording.deleted": "a recording deleted by its doctor or an admin",
    "recording.purged": "a recording removed by retention",
    "retention.purged": "the retention sweep's report: what it erased and purged",
    "audit.exported": "audit entries exported (with the format and the count)",
    "audit.incident_report": "an admin produced a breach report on a consultation, recording "
    "or user",
    "audit.purged": "the oldest audit entries removed by retention, behind a checkpoint",
    "settings.initial": "the settings at the first start (key names only)",
    "settings.changed": "the settings keys changed since the previous start (names only)",
    "access.refused": "a staff member refused another's record or an admin endpoint (kind, "
    "route, reason)",
    "access.refused_suppressed": "the count of an actor's refusals past the cap of a window",
}
if list(MEANINGS) != list(AUDITED_ACTIONS):
    # An action without its meaning (or out of order) is a bug to catch at import.
    raise RuntimeError(
        f"AuditAction and MEANINGS differ: {sorted(set(AUDITED_ACTIONS) ^ set(MEANINGS))}"
    )
