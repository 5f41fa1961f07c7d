"""One Chromium consultation across two instances sharing one Redis: the doctor's pages are
served by instance A, the patient's by instance B; the waiting room, the admission, the
encrypted call and its end all cross from one instance to the other."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from config import SecuritySettings, StorageSettings
from tests.servers import RedisServer

from .conftest import Contexts, LiveServer, assert_no_page_errors, snap
from .test_call import (
    assert_in_call,
    doctor_with_consultation,
    open_the_call,
    patient_to_waiting_room,
)

pytestmark = pytest.mark.browser


def redis_instance(data_dir: Path, redis_url: str) -> LiveServer:
    """A LiveServer on the Redis store (so the Redis bus and the shared rooms)."""
    server = LiveServer(data_dir, SecuritySettings())
    storage = StorageSettings(data_dir=str(data_dir), backend="redis", redis_url=redis_url)
    server.settings = dataclasses.replace(server.settings, storage=storage).validate()
    server.start()
    return server


@pytest.fixture
def two_instances(tmp_path: Path) -> Iterator[tuple[LiveServer, LiveServer]]:
    redis = RedisServer(tmp_path / "redis").start()
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    started: list[LiveServer] = []
    try:
        # A first: it writes the secret key that B, on the same data directory, reads.
        started.append(redis_instance(data_dir, redis.url))
        started.append(redis_instance(data_dir, redis.url))
        yield started[0], started[1]
    finally:
        for server in started:
            server.stop()
        redis.stop()


def test_a_consultation_with_the_doctor_on_one_instance_and_the_patient_on_another(
    browser: Browser, two_instances: tuple[LiveServer, LiveServer]
) -> None:
    a, b = two_instances
    on_a, on_b = Contexts(browser, a.url), Contexts(browser, b.url)
    try:
        doctor, url, code = doctor_with_consultation(a, on_a)
        open_the_call(doctor)

        # The invite link names A; the patient's requests all go to B.
        patient = patient_to_waiting_room(on_b, url, code)
        expect(patient.locator("#connection-state")).to_have_attribute("data-state", "waiting")
        item = doctor.locator("#lobby .waiting-item")
        expect(item).to_contain_text("Alice Dupont")
        item.get_by_role("button", name="Faire entrer").click()
        expect(doctor.locator("#lobby")).to_be_hidden()

        assert_in_call(doctor, patient)
        snap(doctor, "cluster-call-doctor")
        snap(patient, "cluster-call-patient")

        doctor.click("#hang-up")
        doctor.locator("#confirm-ok").click()
        expect(doctor.locator("#greeting")).to_be_visible()
        expect(patient.locator("#connection-state")).to_have_attribute("data-state", "ended")
        snap(patient, "cluster-call-patient-ended")
        assert_no_page_errors(doctor)
        assert_no_page_errors(patient)
    finally:
        on_a.close()
        on_b.close()
