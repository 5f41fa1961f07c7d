"""/metrics in Prometheus text format, for local scrapers only."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from tests.conftest import Accounts, wait_until

pytestmark = pytest.mark.both_stores


def value(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            if line.split(" ")[0] == name or name.endswith("}"):
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in metrics")


async def test_metrics_count_login_failures_and_lockouts(
    accounts: Accounts, client: TestClient[Any, Any]
) -> None:
    await accounts.create("dr.metrics")
    for _ in range(5):
        await client.post(
            "/api/auth/login", json={"username": "dr.metrics", "password": "wrong password!"}
        )
    text = await (await client.get("/metrics")).text()
    assert value(text, 'teleconsult_login_failures_total{step="password"}') == 5
    assert value(text, 'teleconsult_lockouts_total{kind="account"}') == 1
    assert value(text, "teleconsult_websockets") == 0
    assert 'teleconsult_rooms{state="waiting"} 0.0' in text
    assert "teleconsult_waiting_patients 0.0" in text
    assert "teleconsult_relay_seconds_bucket" in text
    assert "dr.metrics" not in text


async def test_metrics_are_refused_to_remote_addresses(client: TestClient[Any, Any]) -> None:
    import dataclasses

    from signaling.keys import SERVICES

    services = client.app[SERVICES]
    # Behind a proxy the client address comes from X-Forwarded-For: a public one is refused.
    services.settings = dataclasses.replace(
        services.settings,
        server=dataclasses.replace(services.settings.server, trust_proxy_headers=True),
    )
    resp = await client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.7"})
    assert resp.status == 403
    resp = await client.get("/metrics", headers={"X-Forwarded-For": "127.0.0.1"})
    assert resp.status == 200


async def test_metrics_follow_joins_refusals_rooms_and_relays(
    accounts: Accounts, doctor: Any, clock: Any, client: TestClient[Any, Any]
) -> None:
    from signaling.live.protocol import RelayedOffer
    from tests.rtc import book, connect, enter_call, make_sdp

    booking = await book(accounts, doctor, clock)
    doctor_ws, _, patient_ws, _ = await enter_call(client, booking)
    await doctor_ws.send({"type": "offer", "sdp": make_sdp()})
    await patient_ws.expect(RelayedOffer)
    intruder = await connect(client)
    await intruder.send({"type": "join", "v": 1, "token": "not-a-token"})
    assert await intruder.closed_with() == 4401

    async def both_joins_counted() -> str:
        # A join is counted once its handler is done, audit entry written: the patient's may
        # still be writing when the relayed offer arrives.
        text = await (await client.get("/metrics")).text()
        return text if 'teleconsult_joins_total{role="patient"}' in text else ""

    text = await wait_until(both_joins_counted, within=5)
    assert value(text, 'teleconsult_joins_total{role="doctor"}') == 1
    assert value(text, 'teleconsult_joins_total{role="patient"}') == 1
    assert value(text, 'teleconsult_join_refusals_total{reason="token_invalid"}') == 1
    assert value(text, "teleconsult_relay_seconds_count") == 1
    assert 'teleconsult_rooms{state="in_call"} 1.0' in text
    assert "teleconsult_websockets 2.0" in text
    await doctor_ws.close()
    await patient_ws.close()
