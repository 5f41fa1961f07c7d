"""A short message from the staff to the patient who waits: the doctor, or the doctor's
secretariat, from the dashboard's waiting list ("I'll be with you in about 10 minutes").

Why HTTP and not the signaling WebSocket: the dashboard holds no socket (a doctor seat taken
there would push the call page out of its room, see routes_live.py) and an assistant never
takes a seat. The room relays the message to the patient's socket on whichever instance it
lives (RoomRegistry.tell_waiting_patient) as a ``staff_message`` (docs/protocol.md).

The text is kept nowhere: not in the store, not in a log line, not in the audit entry,
which records who wrote to which waiting room, the preset or ``free_text``, and the length.
"""

from __future__ import annotations

from aiohttp import web

from signaling.api.api_types import WaitingMessageRequest, WaitingMessageSent
from signaling.api.http_api import USER_KEY, ApiRegistry, audit_request, json_response
from signaling.api.routes_consultations import OPEN_ERRORS, ensure_manages
from signaling.api.views import iso
from signaling.consultations import permissions
from signaling.errors import AppError
from signaling.keys import SERVICES
from signaling.live.protocol import encode
from signaling.live.signaling_state import SIGNALING
from signaling.live.staff_messages import staff_message

routes = ApiRegistry()
# A waiting patient reads every message: a handful a minute is plenty, and a stuck key or a
# script must not flood their screen.
MESSAGES_PER_MINUTE = 6


@routes.route(
    "POST",
    "/api/consultations/{consultation_id}/waiting-message",
    summary="Write to the patient who waits in this consultation's waiting room (its doctor "
    "or the doctor's assistant): a preset, shown in the patient's language, or one line of "
    "free text (at most 280 characters, no control character); relayed, never stored; at "
    "most 6 a minute per consultation",
    auth="staff",
    body=WaitingMessageRequest,
    response=WaitingMessageSent,
    errors=(*OPEN_ERRORS, "invalid_body", "not_waiting", "rate_limited"),
    tag="consultations",
)
async def message_waiting_patient(
    request: web.Request, body: WaitingMessageRequest
) -> web.Response:
    services = request.app[SERVICES]
    user = request[USER_KEY]
    c = await services.consultations.visible_to(user, request.match_info["consultation_id"])
    ensure_manages(user, c, "Only the consultation's doctor or assistant writes to its patient.")
    services.consultations.ensure_open(c)
    sent_at = services.clock.now()
    if await services.store.incr(f"waiting-message:{c.id}", 60, sent_at) > MESSAGES_PER_MINUTE:
        raise AppError(
            "rate_limited",
            f"At most {MESSAGES_PER_MINUTE} messages a minute to a waiting patient: "
            "wait a moment before the next one.",
        )
    message = staff_message(
        body.preset, body.text, "assistant" if user.role == "assistant" else "doctor", sent_at
    )
    signaling = request.app.get(SIGNALING)
    delivered = signaling is not None and await signaling.rooms.tell_waiting_patient(
        c.id, encode(message)
    )
    # Which message, never its words: a preset's id, or that it was typed and how long.
    details = {
        "kind": message.preset or "free_text",
        "length": len(message.text),
        **permissions.acting_for(user, c.doctor_id),
    }
    if not delivered:
        await audit_request(
            request,
            "waiting.message_sent",
            target=c.id,
            outcome="failure",
            reason="not_waiting",
            **details,
        )
        raise AppError("not_waiting")
    await audit_request(request, "waiting.message_sent", target=c.id, **details)
    return json_response(WaitingMessageSent(consultation_id=c.id, sent_at=iso(sent_at)))
