"""A LAN address without leaving the machine: a network namespace joined to this one by a veth
pair, ``10.213.N.1/24`` on this side, ``10.213.N.2/24`` inside (``N`` drawn per run, names
unique per run). A test runs its "other device of the network" inside with :meth:`exec_args`;
only these two addresses are ever targets. Needs root (or password-less sudo) and iproute2
(scripts/test.sh installs it); everything made is deleted at the end, even after a failure."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from tests.conftest import deadline


def _as_root(args: Sequence[str]) -> list[str]:
    return list(args) if os.geteuid() == 0 else ["sudo", "-n", *args]


def _ip(*args: str) -> None:
    subprocess.run(_as_root(["ip", *args]), check=True, capture_output=True, timeout=deadline(10))


@dataclass(frozen=True)
class Namespace:
    name: str
    host_link: str
    host_address: str  # this side of the veth pair: where the service is reached
    inner_address: str  # the namespace's own address: the "other device"

    def exec_args(self, *command: str) -> list[str]:
        return _as_root(["ip", "netns", "exec", self.name, *command])


@contextmanager
def lan_namespace() -> Iterator[Namespace]:
    tag = secrets.token_hex(3)
    subnet = f"10.213.{secrets.randbelow(254) + 1}"
    ns = Namespace(f"tc-lan-{tag}", f"tcl{tag}h", f"{subnet}.1", f"{subnet}.2")
    inner_link = f"tcl{tag}n"
    try:
        _ip("netns", "add", ns.name)
        _ip("link", "add", ns.host_link, "type", "veth", "peer", "name", inner_link)
        _ip("link", "set", inner_link, "netns", ns.name)
        _ip("addr", "add", f"{ns.host_address}/24", "dev", ns.host_link)
        _ip("link", "set", ns.host_link, "up")
        _ip("-n", ns.name, "addr", "add", f"{ns.inner_address}/24", "dev", inner_link)
        _ip("-n", ns.name, "link", "set", inner_link, "up")
        _ip("-n", ns.name, "link", "set", "lo", "up")
        yield ns
    finally:
        # Deleting the namespace destroys its end of the pair, and with it this end; the
        # explicit delete covers a failure before the move.
        for args in (("netns", "delete", ns.name), ("link", "delete", ns.host_link)):
            subprocess.run(_as_root(["ip", *args]), capture_output=True, timeout=deadline(10))
