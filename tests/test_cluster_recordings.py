"""A recording made through one instance is listed, played (HTTP Range) and downloaded on the
other, both instances writing to one shared recordings directory (``recording.directory``);
an instance whose recordings directory is its own answers ``404 recording_file_missing``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from tests.cluster import Cluster, Instance, start_cluster
from tests.conftest import deadline, wait_until
from tests.servers import RedisServer, free_port, wait_for_port
from tests.test_cluster import call_across
from tests.test_signaling_recording import record_then_patient_withdraws

EBML = bytes.fromhex("1a45dfa3")  # a WebM (Matroska) file starts with this EBML magic


@pytest.fixture
def shared_recordings(tmp_path: Path) -> Path:
    """Stands for the NFS/CephFS mount: outside the instances' data directory."""
    directory = tmp_path / "shared-recordings"
    directory.mkdir(mode=0o700)
    return directory


@pytest.fixture
def cluster(tmp_path: Path, shared_recordings: Path) -> Iterator[Cluster]:
    redis = RedisServer(tmp_path / "redis").start()
    started = start_cluster(
        tmp_path, redis, settings={"TELECONSULT_RECORDING_DIRECTORY": str(shared_recordings)}
    )
    yield started
    started.stop()
    redis.stop()


def start_instance_with_own_recordings(cluster: Cluster, tmp: Path) -> Instance:
    """A third instance, same store and keys, whose recordings directory is not shared."""
    own = tmp / "own-recordings"
    own.mkdir(mode=0o700)
    instance = Instance(
        "C",
        free_port(),
        tmp / "instance-C.log",
        env={"TELECONSULT_RECORDING_DIRECTORY": str(own)},
    )
    cluster.instances.append(instance)  # stopped with the others
    cluster.start(instance)
    assert instance.proc is not None
    wait_for_port(instance.port, instance.proc, limit=deadline(60))
    return instance


def only_recording_file(directory: Path) -> bytes:
    [stored] = directory.iterdir()
    assert stored.suffix == ".tcrec", stored
    return stored.read_bytes()


def has_recordings_directory(data_dir: Path) -> bool:
    return (data_dir / "recordings").exists()


async def status_on(http: aiohttp.ClientSession, recording_id: str, wanted: str) -> bool:
    resp = await http.get("/api/recordings")
    assert resp.status == 200, await resp.text()
    listed = {r["id"]: r["status"] for r in (await resp.json())["recordings"]}
    return bool(listed[recording_id] == wanted)


async def error_code(resp: aiohttp.ClientResponse) -> str:
    code = (await resp.json())["error"]["code"]
    assert isinstance(code, str)
    return code


@pytest.mark.slow
@pytest.mark.usefixtures("loopback_only")
async def test_a_recording_made_through_one_instance_plays_from_the_other(
    cluster: Cluster, shared_recordings: Path, tmp_path: Path
) -> None:
    doctor = await cluster.sign_in(cluster.a)
    booking = await cluster.book(doctor, patient_on=cluster.b)
    doctor_ws, _, patient_ws, _ = await call_across(cluster, booking)
    recording_id = await record_then_patient_withdraws(doctor_ws, patient_ws, seconds=2)
    await doctor_ws.close()
    await patient_ws.close()
    await booking.patient.close()
    # The doctor's session is in the shared store: the same cookies reach B (as a proxy would).
    on_b = aiohttp.ClientSession(base_url=cluster.b.base, cookie_jar=doctor.client.cookie_jar)
    try:
        # Listed on B; complete once A's recorder has finished the file (its remux pass).
        await wait_until(lambda: status_on(on_b, recording_id, "complete"), within=30)
        # The recorder ran on A; its file is in the shared directory, not A's data directory.
        assert EBML not in only_recording_file(shared_recordings)  # encrypted at rest
        assert not has_recordings_directory(cluster.data_dir)
        media = f"/api/recordings/{recording_id}/media"

        resp = await on_b.get(media, headers={"Range": "bytes=0-"})
        assert resp.status == 206, await resp.text()
        whole = await resp.read()
        assert whole.startswith(EBML)
        size = len(whole)
        assert resp.headers["Content-Range"] == f"bytes 0-{size - 1}/{size}"
        assert size > 1000

        first, last = size // 3, size // 3 + 4095  # a seek into the middle
        resp = await on_b.get(media, headers={"Range": f"bytes={first}-{last}"})
        assert resp.status == 206, await resp.text()
        assert resp.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert await resp.read() == whole[first : last + 1]

        resp = await on_b.get(f"/api/recordings/{recording_id}/download")
        assert resp.status == 200, await resp.text()
        assert await resp.read() == whole

        # An instance whose recordings directory is its own: a clear 404, not a 500.
        c = start_instance_with_own_recordings(cluster, tmp_path)
        async with aiohttp.ClientSession(
            base_url=c.base, cookie_jar=doctor.client.cookie_jar
        ) as on_c:
            resp = await on_c.get("/api/recordings")
            assert resp.status == 200, await resp.text()
            assert recording_id in {r["id"] for r in (await resp.json())["recordings"]}
            for path in (media, f"/api/recordings/{recording_id}/download"):
                resp = await on_c.get(path, headers={"Range": "bytes=0-"})
                assert resp.status == 404, await resp.text()
                assert await error_code(resp) == "recording_file_missing"
        # The refusal touched nothing: B still plays the whole file.
        resp = await on_b.get(media, headers={"Range": "bytes=0-"})
        assert resp.status == 206 and await resp.read() == whole
    finally:
        await on_b.close()
        await doctor.client.close()
