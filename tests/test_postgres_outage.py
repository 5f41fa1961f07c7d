"""PostgreSQL restarts in the middle of a consultation between two instances (records in
PostgreSQL, rooms and messages in Redis): /healthz stays up, /readyz fails, requests needing
records answer ``unavailable`` (503), the call keeps its media and its signaling, nothing is
half-written, and the service recovers by itself when PostgreSQL is back."""

from __future__ import annotations

import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli import run_cli
from tests.cluster import Cluster, alive_but_not_ready, start_cluster, wait_until_ready
from tests.conftest import Staff, deadline, wait_until
from tests.postgres_cluster import PostgresCluster
from tests.rtc import connect_media, peers, rtc_config
from tests.servers import RedisServer
from tests.test_cluster import call_across, frames_keep_coming, relayed

pytestmark = [pytest.mark.slow]


@pytest.fixture
def own_postgres() -> Iterator[PostgresCluster]:
    """A cluster of this test's own: it is stopped and started again, as after a crash, so
    it keeps PostgreSQL's durable commits (a record acknowledged before the crash is kept)."""
    cluster = PostgresCluster(durable=True).start()
    yield cluster
    cluster.remove()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis").start()
    yield server
    server.stop()


@pytest.fixture
def cluster(
    tmp_path: Path, own_redis: RedisServer, own_postgres: PostgresCluster
) -> Iterator[Cluster]:
    started = start_cluster(tmp_path, own_redis, postgres_dsn=own_postgres.new_database())
    yield started
    started.stop()


@pytest.fixture
async def doctor(cluster: Cluster) -> AsyncIterator[Staff]:
    staff = await cluster.sign_in(cluster.a)
    yield staff
    await staff.client.close()


def audit_verify(cluster: Cluster) -> subprocess.CompletedProcess[str]:
    return run_cli("audit", "verify", data_dir=cluster.data_dir, env=cluster.env)


@pytest.mark.usefixtures("loopback_only")
async def test_a_postgres_restart_mid_consultation_keeps_the_call_and_recovers_by_itself(
    cluster: Cluster, doctor: Staff, own_postgres: PostgresCluster
) -> None:
    booking = await cluster.book(doctor, patient_on=cluster.b)
    doctor_ws, _, patient_ws, _ = await call_across(cluster, booking)
    async with peers(rtc_config([]), rtc_config([])) as (doctor_peer, patient_peer):
        await connect_media(doctor_ws, doctor_peer, patient_ws, patient_peer)
        # The room writes the call's start on the consultation just after the admission:
        # the snapshot is taken once that is stored, so only the outage could change it.
        before = await wait_until(lambda: _listing_with_call_started(doctor), within=10)
        own_postgres.stop(mode="immediate")  # as a crash of the database server
        await alive_but_not_ready(cluster)
        # What needs records answers clearly, and writes nothing.
        resp = await doctor.client.get("/api/consultations")
        assert resp.status == 503
        assert (await resp.json())["error"]["code"] == "unavailable"
        resp = await doctor.post(
            "/api/room-tokens", json={"consultation_id": booking.consultation_id}
        )
        assert resp.status == 503
        # The call's media never needed the database, nor does its signaling.
        await frames_keep_coming(patient_peer)
        await frames_keep_coming(doctor_peer)
        await relayed(doctor_ws, patient_ws)
        own_postgres.start()
        back_at = time.monotonic()
        for instance in cluster.instances:
            await wait_until_ready(instance, within=deadline(20))
        resp = await doctor.client.get("/api/consultations")
        assert resp.status == 200
        assert await resp.json() == before
        assert (await booking.doctor_token()) and time.monotonic() - back_at < deadline(20)
        await relayed(patient_ws, doctor_ws)
        await frames_keep_coming(patient_peer)
    verified = audit_verify(cluster)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    await doctor_ws.close()
    await patient_ws.close()
    await booking.patient.close()


async def _listing_with_call_started(doctor: Staff) -> dict[str, Any] | None:
    """The doctor's consultation list once every consultation in it has its call's start."""
    listing: dict[str, Any] = await (await doctor.client.get("/api/consultations")).json()
    started = all(c["call_started_at"] for c in listing["consultations"])
    return listing if started else None
