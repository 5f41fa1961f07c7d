"""The addresses other devices of the network reach this machine at.

A service listening on every address (``host`` ``0.0.0.0`` or ``::``) with no ``public_url``
is reached through them: they are printed at start, the first one is the base of invite links,
all are accepted as page origins and named in the self-signed certificate. Standard library
only (no new dependency): IPv4 from the kernel's interface list (the ``SIOCGIFCONF`` ioctl),
IPv6 from ``/proc/net/if_inet6``, the default route's interface from ``/proc/net/route`` and
``/proc/net/ipv6_route``. Elsewhere than Linux the lists are simply empty.
"""

from __future__ import annotations

import array
import dataclasses
import fcntl
import ipaddress
import socket
import struct
from pathlib import Path

from config.settings import WILDCARD_HOSTS, ServerSettings

SIOCGIFCONF = 0x8912
SIOCGIFFLAGS = 0x8913
IFF_UP = 0x1
IFNAMSIZ = 16
# struct ifreq: the name, then a union whose largest member is a struct ifmap (24 bytes with
# 64-bit pointers, 16 with 32-bit ones).
IFREQ_SIZE = IFNAMSIZ + (24 if struct.calcsize("P") == 8 else 16)
MAX_INTERFACES = 256
# /proc/net/if_inet6 flags of addresses not to hand out: temporary (privacy addresses
# change every day), deprecated, tentative (duplicate address detection not done).
IPV6_SKIPPED_FLAGS = 0x01 | 0x20 | 0x40
PROC_NET = Path("/proc/net")


@dataclasses.dataclass(frozen=True)
class InterfaceAddress:
    interface: str
    address: ipaddress.IPv4Address | ipaddress.IPv6Address


def _ipv4_addresses() -> list[InterfaceAddress]:
    found: list[InterfaceAddress] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        buffer = array.array("B", bytes(IFREQ_SIZE * MAX_INTERFACES))
        pointer, _ = buffer.buffer_info()
        request = struct.pack("iL", len(buffer), pointer)
        length, _ = struct.unpack("iL", fcntl.ioctl(sock.fileno(), SIOCGIFCONF, request))
        data = buffer.tobytes()[:length]
        for offset in range(0, length, IFREQ_SIZE):
            name = data[offset : offset + IFNAMSIZ].split(b"\0", 1)[0]
            # sockaddr_in after the name: family (2 bytes), port (2), then the address.
            packed = data[offset + IFNAMSIZ + 4 : offset + IFNAMSIZ + 8]
            flags_request = struct.pack(f"{IFNAMSIZ}sH", name, 0)
            flags_answer = fcntl.ioctl(sock.fileno(), SIOCGIFFLAGS, flags_request)
            (flags,) = struct.unpack_from("H", flags_answer, IFNAMSIZ)
            if flags & IFF_UP:
                found.append(
                    InterfaceAddress(name.decode(errors="replace"), ipaddress.IPv4Address(packed))
                )
    return found


def _ipv6_addresses() -> list[InterfaceAddress]:
    found: list[InterfaceAddress] = []
    # Each line: address (32 hex digits), interface index, prefix length, scope, flags, name.
    for line in _read_lines(PROC_NET / "if_inet6"):
        fields = line.split()
        if len(fields) != 6 or int(fields[4], 16) & IPV6_SKIPPED_FLAGS:
            continue
        found.append(InterfaceAddress(fields[5], ipaddress.IPv6Address(bytes.fromhex(fields[0]))))
    return found


def _default_route_interfaces() -> set[str]:
    names: set[str] = set()
    # /proc/net/route: interface, destination, gateway, flags... (a header line first).
    for line in _read_lines(PROC_NET / "route")[1:]:
        fields = line.split()
        if len(fields) >= 8 and fields[1] == "00000000" and fields[7] == "00000000":
            names.add(fields[0])
    # /proc/net/ipv6_route: destination, its prefix length, ..., the interface last.
    for line in _read_lines(PROC_NET / "ipv6_route"):
        fields = line.split()
        if len(fields) == 10 and int(fields[0], 16) == 0 and fields[1] == "00":
            if fields[9] != "lo":
                names.add(fields[9])
    return names


def _read_lines(path: Path) -> list[str]:
    try:
        return path.read_text().splitlines()
    except OSError:
        return []


def _reachable(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Another device can use it: not loopback, link-local (an IPv6 one would need the
    interface in the URL), multicast or unspecified."""
    return not (
        address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
    )


def machine_addresses(ipv6: bool) -> tuple[str, ...]:
    """This machine's addresses other devices can reach, best first: those of the interface
    holding the default route (the network most devices are on, rather than a container
    bridge), IPv4 before IPv6, private before public. ``ipv6``: also IPv6 addresses (a
    service bound on ``::``; one bound on ``0.0.0.0`` answers IPv4 only)."""
    try:
        candidates = _ipv4_addresses()
    except OSError:
        candidates = []
    if ipv6:
        candidates += _ipv6_addresses()
    on_default_route = _default_route_interfaces()
    usable = [c for c in candidates if _reachable(c.address)]
    ranked = sorted(
        usable,
        key=lambda c: (
            c.interface not in on_default_route,
            c.address.version,
            not c.address.is_private,
        ),
    )
    return tuple(dict.fromkeys(str(c.address) for c in ranked))


def with_lan_addresses(server: ServerSettings) -> ServerSettings:
    """``server`` with ``lan_addresses`` found on this machine when it listens on every
    address with no ``public_url`` and none were chosen; otherwise ``server`` unchanged."""
    if server.host not in WILDCARD_HOSTS or server.public_url or server.lan_addresses:
        return server
    found = machine_addresses(ipv6=server.host == "::")
    return dataclasses.replace(server, lan_addresses=found)


def where_to_open(server: ServerSettings, self_signed: bool) -> str:
    """What the service prints at start: the exact URLs to open, on this computer and from
    the network, and what stands in the way (a certificate to accept, no https, no address)."""
    if server.public_url or server.host not in (*WILDCARD_HOSTS, "127.0.0.1", "localhost"):
        return f"Open it in a browser at {server.origin}"
    local = f"{server.origin_of('localhost')} (or {server.origin_of('127.0.0.1')})"
    lines = [f"Open it in a browser on this computer: {local}"]
    if server.host in WILDCARD_HOSTS:
        first = "or from another device of the network: "
        for number, origin in enumerate(server.lan_origins):
            chosen = "  (invite links use this one)" if number == 0 else ""
            lines.append(f"{first if number == 0 else ' ' * len(first)}{origin}{chosen}")
        if not server.lan_origins:
            lines.append(
                "No network address of this machine was found: set server.lan_addresses "
                "(or --lan-address) to the one other devices use."
            )
        elif not server.tls:
            lines.append(
                "Without https, browsers on other devices refuse the camera and microphone: "
                "add --self-signed (or a certificate)."
            )
    if self_signed:
        lines.append(
            "The certificate is self-signed: each browser warns once; check the address, "
            "then accept it."
        )
    return "\n".join(lines)
