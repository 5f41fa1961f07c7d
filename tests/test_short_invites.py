"""Short patient links: a code a person can read over the phone, looked up server-side; the
signed links of the earlier form keep working until their consultation's invite expires."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from signaling.clock import ManualClock
from signaling.consultations.short_invites import ALPHABET, grouped, read_code
from signaling.keys import SERVICES
from tests.conftest import Staff
from tests.test_consultations import create, invite_token

pytestmark = pytest.mark.both_stores


async def inspect(client: TestClient[Any, Any], invite: str) -> tuple[int, dict[str, Any]]:
    resp = await client.post("/api/invites/inspect", json={"invite": invite})
    return resp.status, await resp.json()


def test_codes_are_read_as_people_say_them() -> None:
    assert read_code("7kqm-2xrt-9hpw") == "7KQM2XRT9HPW"
    assert read_code("7KQM 2XRT 9HPW") == "7KQM2XRT9HPW"
    # O is read as zero, I and L as one (Crockford's base32 has none of them).
    assert read_code("OIL0-0000-0000") == "011000000000"
    assert read_code("7KQM-2XRT-9HP") is None  # one short
    assert read_code("7KQM-2XRT-9HPU") is None  # U is not in the alphabet
    assert read_code("x" * 100) is None
    assert grouped("7KQM2XRT9HPW") == "7KQM-2XRT-9HPW"
    assert len(set(ALPHABET)) == 32 and not set("ILOU") & set(ALPHABET)


async def test_a_new_link_is_short_and_opens_in_any_case(
    doctor: Staff, clock: ManualClock, client: TestClient[Any, Any]
) -> None:
    created = await create(doctor, clock)
    token = invite_token(created)
    assert re.fullmatch(r"[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", token)
    # A link a person can read out: origin + /join/ + 14 characters.
    assert len(created["invite_url"]) == len("http://localhost:8080/join/") + 14
    for spelling in (token, token.lower(), token.replace("-", "")):
        status, info = await inspect(client, spelling)
        assert status == 200, info
        assert info["consultation_id"] == created["consultation"]["id"]
    resp = await client.post(
        "/api/invites/redeem",
        json={"invite": token.lower(), "access_code": created["access_code"]},
    )
    assert resp.status == 200, await resp.text()


async def test_the_store_keeps_only_the_codes_hash(
    doctor: Staff, clock: ManualClock, app: web.Application
) -> None:
    created = await create(doctor, clock)
    code = invite_token(created).replace("-", "")
    store = app[SERVICES].store
    consultation = await store.get_consultation(created["consultation"]["id"])
    assert consultation is not None
    assert code not in repr(consultation)
    assert await store.get_meta(f"invite-short:{code}") is None


async def test_a_reissued_or_cancelled_link_stops_opening(
    doctor: Staff, clock: ManualClock, client: TestClient[Any, Any]
) -> None:
    created = await create(doctor, clock)
    cid = created["consultation"]["id"]
    first = invite_token(created)
    resp = await doctor.post(f"/api/consultations/{cid}/invite")
    second = invite_token(await resp.json())
    assert second != first
    assert (await inspect(client, first))[1]["error"]["code"] == "invite_invalid"
    assert (await inspect(client, second))[0] == 200
    await doctor.post(f"/api/consultations/{cid}/cancel")
    assert (await inspect(client, second))[1]["error"]["code"] == "consultation_cancelled"


async def test_an_unknown_code_is_invalid(client: TestClient[Any, Any]) -> None:
    status, answer = await inspect(client, "0000-0000-0000")
    assert status == 404 and answer["error"]["code"] == "invite_invalid"


async def test_a_signed_link_of_the_earlier_form_still_opens(
    doctor: Staff, clock: ManualClock, client: TestClient[Any, Any], app: web.Application
) -> None:
    created = await create(doctor, clock)
    services = app[SERVICES]
    consultation = await services.store.get_consultation(created["consultation"]["id"])
    assert consultation is not None
    long_token = services.consultations.invites.issue(consultation.id, consultation.invite_nonce)
    assert len(long_token) > 60
    status, info = await inspect(client, long_token)
    assert status == 200, info
    # ... and dies with the short one at a re-issue.
    await doctor.post(f"/api/consultations/{consultation.id}/invite")
    assert (await inspect(client, long_token))[1]["error"]["code"] == "invite_invalid"
