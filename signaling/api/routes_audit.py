"""Reading and exporting the audit trail: admins see all of it, a doctor own consultations',
an assistant its own actions only."""

from __future__ import annotations

import csv
import io
import json

import msgspec
from aiohttp import web

from signaling.api.api_types import (
    AccessSummary,
    AuditEntryView,
    AuditExportQuery,
    AuditList,
    AuditQuery,
    AuditVerification,
    IncidentQuery,
    IncidentReport,
)
from signaling.api.http_api import USER_KEY, ApiRegistry, audit_request, json_response
from signaling.api.views import audit_entry_view, iso, parse_period
from signaling.audit.trail import AUDITED_ACTIONS, verify_chain
from signaling.consultations import permissions
from signaling.errors import ErrorCode
from signaling.keys import SERVICES
from signaling.models import AuditEntry
from signaling.store.base import AuditFilter

routes = ApiRegistry()
_ERRORS: tuple[ErrorCode, ...] = ("not_authenticated", "forbidden")
# The export's columns: the view's fields, in its order.
FIELDS = tuple(f.name for f in msgspec.structs.fields(AuditEntryView))


async def _own_targets(request: web.Request) -> frozenset[str] | None:
    """What a doctor may see the trail of: own consultations and their recordings."""
    services = request.app[SERVICES]
    user = request[USER_KEY]
    if user.role == "admin" or permissions.audit_actor_scope(user) is not None:
        return None  # all of it, or (an assistant) its own actions: _entries
    consultations = [c.id for c in await services.store.list_consultations(user.id)]
    recordings = [r.id for r in await services.store.list_recordings(doctor_id=user.id)]
    return frozenset(consultations + recordings)


async def _entries(request: web.Request, query: AuditQuery, extra: int = 0) -> list[AuditEntry]:
    """The entries ``query`` selects that the caller may see (``extra`` more, to page)."""
    since, until = parse_period(query.since, query.until, request.app[SERVICES].clock.now())
    # An assistant reads its own actions whatever actor it asks for.
    only_actor = permissions.audit_actor_scope(request[USER_KEY])
    return await request.app[SERVICES].store.list_audit(
        AuditFilter(
            actor=only_actor if only_actor is not None else query.actor,
            target=query.consultation,
            action=query.action,
            outcome=query.outcome,
            since=since,
            until=until,
            # Enforced in the store query itself, so pages and limits count only these.
            targets=await _own_targets(request),
            newest_first=query.newest_first,
            offset=query.offset,
            limit=query.limit + extra,
        )
    )


@routes.route(
    "GET",
    "/api/audit",
    summary="Audit entries, filtered by actor, consultation, action, outcome and period, a page "
    "at a time (offset, limit, newest_first); admins see all, doctors the entries about their "
    "own consultations and recordings, assistants their own actions. Also gives the chain head "
    "and the known actions",
    auth="staff",
    query=AuditQuery,
    response=AuditList,
    errors=_ERRORS,
    tag="audit",
)
async def list_audit(request: web.Request, query: AuditQuery) -> web.Response:
    entries = await _entries(request, query, extra=1)
    last = await request.app[SERVICES].store.audit_head()
    return json_response(
        AuditList(
            entries=[audit_entry_view(e) for e in entries[: query.limit]],
            head=last.hash if last else "",
            head_seq=last.seq if last else 0,
            more=len(entries) > query.limit,
            actions=list(AUDITED_ACTIONS),
        )
    )


@routes.route(
    "GET",
    "/api/audit/verify",
    summary="Walk the whole hash chain from its retention checkpoint, as `run.py audit verify` "
    "does: intact, or the first entry modified, removed, inserted or reordered; admins only",
    auth="admin",
    response=AuditVerification,
    errors=_ERRORS,
    tag="audit",
)
async def verify_audit(request: web.Request) -> web.Response:
    report = await verify_chain(request.app[SERVICES].store)
    return json_response(
        AuditVerification(
            intact=report.broken is None,
            entries=len(report.entries),
            head_seq=report.head_seq,
            head=report.head_hash,
            checkpoint_seq=report.checkpoint.seq if report.checkpoint else 0,
            broken_at=report.broken[0] if report.broken else None,
            reason=report.broken[1] if report.broken else "",
        )
    )


@routes.route(
    "GET",
    "/api/audit/export",
    summary="Export audit entries as JSON lines or CSV (the export itself is audited)",
    auth="staff",
    query=AuditExportQuery,
    produces="application/x-ndjson",
    errors=_ERRORS,
    tag="audit",
)
async def export_audit(request: web.Request, query: AuditExportQuery) -> web.Response:
    entries = await _entries(request, query)
    await audit_request(
        request,
        "audit.exported",
        target=query.consultation or "",
        entries=len(entries),
        format=query.format,
    )
    rows = [msgspec.structs.asdict(audit_entry_view(e)) for e in entries]
    if query.format == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)
        body, content_type, ext = buffer.getvalue(), "text/csv", "csv"
    else:
        body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
        content_type, ext = "application/x-ndjson", "jsonl"
    return web.Response(
        text=body,
        content_type=content_type,
        charset="utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="audit.{ext}"',
            "Cache-Control": "no-store",
        },
    )


@routes.route(
    "GET",
    "/api/audit/incident",
    summary="Breach response: every recorded access to a consultation, recording or user "
    "(who, when, from where), summarised per actor and address; admins only, audited",
    auth="admin",
    query=IncidentQuery,
    response=IncidentReport,
    errors=("not_authenticated", "forbidden"),
    tag="audit",
)
async def incident_report(request: web.Request, query: IncidentQuery) -> web.Response:
    services = request.app[SERVICES]
    since, until = parse_period(query.since, query.until, services.clock.now())
    found = [
        e
        for e in await services.store.all_audit()
        if (e.target == query.subject or e.actor == query.subject or query.subject in e.details)
        and (since is None or e.at >= since)
        and (until is None or e.at < until)
    ]
    groups: dict[tuple[str, str, str], list[AuditEntry]] = {}
    for e in found:
        groups.setdefault((e.actor, e.actor_role, e.address), []).append(e)
    accesses = []
    for (actor, role, address), entries in sorted(groups.items(), key=lambda g: g[1][0].at):
        actions: dict[str, int] = {}
        for e in entries:
            actions[e.action] = actions.get(e.action, 0) + 1
        accesses.append(
            AccessSummary(
                actor=actor,
                actor_role=role,
                address=address,
                actions=actions,
                first=iso(entries[0].at),
                last=iso(entries[-1].at),
            )
        )
    last = await services.store.audit_head()
    head = last.hash if last else ""
    await audit_request(request, "audit.incident_report", target=query.subject, entries=len(found))
    return json_response(
        IncidentReport(
            subject=query.subject,
            generated_at=iso(services.clock.now()),
            period_start=query.since,
            period_end=query.until,
            accesses=accesses,
            entries=[audit_entry_view(e) for e in found],
            chain_head=head,
        )
    )
