"""Password hashing with argon2id, run off the event loop (it is deliberately slow)."""

from __future__ import annotations

import asyncio

from argon2 import Parameters, PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import RFC_9106_LOW_MEMORY

# The service's cost: argon2id, RFC 9106 low-memory profile (64 MiB, 3 passes, 4 lanes).
PRODUCTION_PARAMETERS = RFC_9106_LOW_MEMORY


class _Hashing:
    """The hasher in use and a hash it made, verified when the username is unknown so both
    answers cost the same time."""

    __slots__ = ("dummy_hash", "hasher", "parameters")

    def __init__(self, parameters: Parameters) -> None:
        self.parameters = parameters
        self.hasher = PasswordHasher.from_parameters(parameters)
        self.dummy_hash = self.hasher.hash("not a real password, only a timing equaliser")


_hashing = _Hashing(PRODUCTION_PARAMETERS)


def hashing_parameters() -> Parameters:
    """The parameters new hashes are made with."""
    return _hashing.parameters


def use_parameters(parameters: Parameters) -> None:
    """Hash new passwords with ``parameters`` from now on (stored hashes keep their own).

    Only the test suite calls this, with a cheap profile: a suite that signs in hundreds of
    times would otherwise spend minutes in argon2. The service never does.
    """
    global _hashing
    _hashing = _Hashing(parameters)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hashing.hasher.hash, password)


def _verify(stored_hash: str | None, password: str) -> bool:
    hashing = _hashing
    try:
        verified = hashing.hasher.verify(stored_hash or hashing.dummy_hash, password)
        # No hash (unknown user) or an empty one (an account waiting for its enrolment or
        # reset link): the dummy was checked for the timing only, and nothing matches.
        return verified and bool(stored_hash)
    except (VerificationError, InvalidHashError):
        return False


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """Constant-work check: ``None`` (unknown user) or ``""`` (no password yet) still runs a
    full argon2 verification, and answers False."""
    return await asyncio.to_thread(_verify, stored_hash, password)
