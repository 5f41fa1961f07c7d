"""Password hashing: the service's cost is argon2id with the RFC 9106 low-memory profile; the
test suite switches to a cheap profile (tests/conftest.py), which the service never does."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from argon2 import PasswordHasher, extract_parameters
from argon2.profiles import CHEAPEST, RFC_9106_LOW_MEMORY

from signaling.accounts import passwords
from signaling.accounts.passwords import PRODUCTION_PARAMETERS, hash_password, verify_password
from tests.conftest import deadline

ROOT = Path(__file__).resolve().parent.parent

# A fresh interpreter that imports only the service's module: what run.py gets.
PRODUCTION_PROBE = """
import asyncio, json
from argon2 import extract_parameters
from signaling.accounts import passwords

stored = asyncio.run(passwords.hash_password("a long enough password"))
print(json.dumps({
    "in_use": repr(passwords.hashing_parameters()),
    "stored": repr(extract_parameters(stored)),
    "dummy": repr(extract_parameters(passwords._hashing.dummy_hash)),
    "verified": asyncio.run(passwords.verify_password(stored, "a long enough password")),
}))
"""


def test_the_service_hashes_with_the_rfc_9106_low_memory_profile() -> None:
    assert PRODUCTION_PARAMETERS == RFC_9106_LOW_MEMORY
    assert (RFC_9106_LOW_MEMORY.memory_cost, RFC_9106_LOW_MEMORY.time_cost) == (65536, 3)
    done = subprocess.run(
        [sys.executable, "-c", PRODUCTION_PROBE],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=deadline(60),
    )
    assert done.returncode == 0, done.stderr
    probe = json.loads(done.stdout)
    expected = repr(RFC_9106_LOW_MEMORY)
    # New hashes, the timing equaliser for unknown users: all at the production cost.
    assert (probe["in_use"], probe["stored"], probe["dummy"]) == (expected,) * 3
    assert probe["verified"] is True


async def test_the_suite_hashes_cheaply_and_still_verifies_costly_hashes() -> None:
    assert passwords.hashing_parameters() == CHEAPEST
    cheap = await hash_password("a long enough password")
    assert extract_parameters(cheap) == CHEAPEST
    assert await verify_password(cheap, "a long enough password")
    assert not await verify_password(cheap, "another password")
    # A stored hash keeps the cost it was made with: one made by the service verifies here.
    costly = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY).hash("pass phrase")
    assert await verify_password(costly, "pass phrase")
    assert not await verify_password(None, "pass phrase")


async def test_no_hash_and_an_empty_hash_match_no_password_not_even_the_dummys() -> None:
    dummy = "not a real password, only a timing equaliser"
    assert not await verify_password(None, dummy)
    assert not await verify_password("", dummy)  # an account waiting for its link
