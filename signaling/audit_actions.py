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
    "login.passkey",
    "passkey.enrolled",
    "passkey.removed",
    "passkey.clone_suspected",
    "passkey.policy_changed",
    "mfa.reset",
    "session.end",
    "session.locked",
    "session.unlocked",
    "user.created",
    "user.disabled",
    "user.enabled",
    "user.role_changed",
    "user.password_changed",
    "user.link_issued",
    "user.link_used",
    "user.unlocked",
    "user.assists_changed",
    "consultation.created",
    "consultation.cancelled",
    "consultation.rescheduled",
    "consultation.edited",
    "consultation.ended",
    "consultation.exported",
    "consultation.erased",
    "invite.created",
    "invite.code",
    "invite.used",
    "invite.locked",
    "invite.emailed",
    "invite.reminded",
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
    "waiting.message_sent",
    "call.started",
    "call.ended",
    "recording.requested",
    "consent.given",
    "consent.declined",
    "consent.withdrawn",
    "recording.started",
    "recording.stop_requested",
    "recording.stopped",
    "recording.repaired",
    "recording.listed",
    "recording.viewed",
    "recording.downloaded",
    "recording.exported",
    "recording.deleted",
    "recording.purged",
    "retention.purged",
    "audit.exported",
    "store.exported",
    "audit.incident_report",
    "audit.purged",
    "settings.initial",
    "settings.changed",
    "clinic.updated",
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
    "login.passkey": "a passkey used as the second step of sign-in, or as the whole sign-in "
    "(method passwordless), or refused (the reason: "
    "unknown passkey, challenge unknown or used, wrong origin, bad signature, counter gone back)",
    "passkey.enrolled": "a staff member enrolled a passkey from My account, or was refused it",
    "passkey.removed": "a staff member removed a passkey, or was refused (its last second factor)",
    "passkey.clone_suspected": "a passkey signed with a counter not above the last one seen: "
    "another copy of the key may exist; the sign-in was refused",
    "passkey.policy_changed": "an admin saved the clinic's passkey policy (the fields changed, "
    "with their old and new values: who must use a passkey, the code as fallback, sign-in by "
    "passkey alone)",
    "mfa.reset": "an admin (or `run.py reset-mfa`) reset a user's two-factor setup",
    "session.end": "a staff member signed out",
    "session.locked": "a staff session was locked after `security.session_idle_minutes` "
    "without a request (recorded when the server first meets it locked)",
    "session.unlocked": "a staff member unlocked their session with password and code, or was "
    "refused it (with the reason)",
    "user.created": "an account created by an admin, the setup link or `run.py add-user`",
    "user.disabled": "an account disabled (its sessions end)",
    "user.enabled": "an account enabled again",
    "user.role_changed": "an account's role changed (old and new role; its sessions end)",
    "user.password_changed": "a user changed their own password, or was refused it",
    "user.link_issued": "an enrolment or reset link made for an account (a reset ends its "
    "sessions and voids its password and authenticator)",
    "user.link_used": "an enrolment or reset link used: password chosen and authenticator "
    "confirmed, or refused (with the reason)",
    "user.unlocked": "an admin ended an account's lockout",
    "user.assists_changed": "an admin set which doctors an assistant schedules for (old and "
    "new list of doctor ids)",
    "consultation.created": "a doctor, or its assistant, booked a consultation (an assistant's "
    "actions on a consultation all name the doctor in `for_doctor`)",
    "consultation.cancelled": "a consultation cancelled (its links stop working, its room ends)",
    "consultation.rescheduled": "a consultation moved to another time by its doctor or its "
    "assistant (its links stay valid)",
    "consultation.edited": "a consultation's time, duration, patient name or note changed by "
    "its doctor or its assistant (`fields` names what changed, never the values; its links "
    "stay valid)",
    "consultation.ended": "the doctor ended the consultation from the call",
    "consultation.exported": "an admin exported everything held about a consultation (a "
    "patient's request of access)",
    "consultation.erased": "an admin erased a patient's details on request (erasures by "
    "retention are counted in `retention.purged`)",
    "invite.created": "a patient link issued, first or re-issued (with its generation)",
    "invite.code": "a wrong access code given for a patient link",
    "invite.used": "a patient link and its access code redeemed",
    "invite.locked": "a patient link locked after too many wrong codes",
    "invite.emailed": "the doctor sent (or sent again) the patient link by email: the "
    "language, whether the call changed the address, and, when it failed, the reason "
    "(`mail_refused`, `mail_unreachable`); never the address",
    "invite.reminded": "the sweeper emailed the patient a reminder before the consultation "
    "(the language and, when it failed, the reason; never the address)",
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
    "waiting.message_sent": "the doctor or its assistant wrote to the patient in the "
    "waiting room: which preset (`kind`), or `free_text` and its `length` in characters, "
    "never the text; refused with the reason `not_waiting` when nobody waited",
    "call.started": "the call began (the patient admitted)",
    "call.ended": "the call ended (with the reason)",
    "recording.requested": "the doctor asked to record",
    "consent.given": "a participant consented to the recording",
    "consent.declined": "a participant declined the recording",
    "consent.withdrawn": "a participant withdrew consent (the recording stops)",
    "recording.started": "the service started recording, both consents held",
    "recording.stop_requested": "a participant stopped the recording, consent not withdrawn "
    "(the receipt says `stopped`)",
    "recording.stopped": "a recording stopped (with the reason; a failure if incomplete)",
    "recording.repaired": "an unfinished recording (a crash, a killed recorder) given its "
    "duration and cues at start or by `run.py recording repair` (`empty`: it holds no media, "
    "marked so and not tried again)",
    "recording.listed": "a staff member listed recordings",
    "recording.viewed": "a recording played in the recordings page (once per session and "
    "recording every 10 minutes, however many ranges the player asks)",
    "recording.downloaded": "a recording downloaded, decrypted on the fly (a failure if it "
    "could not be read)",
    "recording.exported": "a recording decrypted into a file by `run.py recording export`",
    "recording.deleted": "a recording deleted by its doctor or an admin",
    "recording.purged": "a recording removed by retention",
    "retention.purged": "the retention sweep's report: what it erased and purged",
    "audit.exported": "audit entries exported (with the format and the count)",
    "store.exported": "the durable records exported by `run.py store export` (to move them "
    "to another store)",
    "audit.incident_report": "an admin produced a breach report on a consultation, recording "
    "or user",
    "audit.purged": "the oldest audit entries removed by retention, behind a checkpoint",
    "settings.initial": "the settings at the first start (key names only)",
    "settings.changed": "the settings keys changed since the previous start (names only)",
    "clinic.updated": "an admin saved the clinic's details (the fields changed, with their old "
    "and new values: public, not health data)",
    "access.refused": "a staff member refused another's record or an admin endpoint (kind, "
    "route, reason)",
    "access.refused_suppressed": "the count of an actor's refusals past the cap of a window",
}
if list(MEANINGS) != list(AUDITED_ACTIONS):
    # An action without its meaning (or out of order) is a bug to catch at import.
    raise RuntimeError(
        f"AuditAction and MEANINGS differ: {sorted(set(AUDITED_ACTIONS) ^ set(MEANINGS))}"
    )
