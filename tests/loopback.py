"""Loopback-only ICE for the tests and the benchmarks: aioice leaves 127.0.0.1 out of its host
candidates, and nothing here may talk to anything but this machine. Tests take the
``loopback_only`` fixture (tests/conftest.py); a benchmark process calls ``use_loopback_only``."""

from __future__ import annotations

import aioice.ice


def loopback_host_addresses(use_ipv4: bool, use_ipv6: bool) -> list[str]:
    """``aioice.ice.get_host_addresses`` with 127.0.0.1 put back, and only it."""
    return ["127.0.0.1"]


def use_loopback_only() -> None:
    """For the rest of this process, every aiortc peer gathers 127.0.0.1 only."""
    aioice.ice.get_host_addresses = loopback_host_addresses
