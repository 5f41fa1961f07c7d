"""DTLS-SRTP checks on session descriptions before they are relayed.

The server never looks inside media, but it refuses to broker a session that could run
without encryption: every media section must use a DTLS profile (``UDP/TLS/RTP/SAVPF`` for
audio and video, ``UDP/DTLS/SCTP`` for data channels) and carry (itself or at session level)
an ``a=fingerprint`` with SHA-256 or stronger and an ``a=setup`` role.
"""

from __future__ import annotations

import re

from signaling.errors import AppError

MAX_SDP_BYTES = 64 * 1024
MAX_MEDIA_SECTIONS = 16
MAX_SDP_CANDIDATES = 64
# Trickled candidates accepted per description (the SDP's own count as well).
MAX_TRICKLE_CANDIDATES = 64

SECURE_PROFILES = frozenset({"UDP/TLS/RTP/SAVPF", "UDP/DTLS/SCTP"})
STRONG_HASHES = frozenset({"sha-256", "sha-384", "sha-512"})
SETUP_ROLES = frozenset({"actpass", "active", "passive"})

_FINGERPRINT = re.compile(r"^(\S+) ((?:[0-9A-Fa-f]{2}:)+[0-9A-Fa-f]{2})$")
_MEDIA = re.compile(r"^(audio|video|application|text|message) (\d+)(?:/\d+)? (\S+)(?: .*)?$")
_CANDIDATE = re.compile(r"^(?:a=)?candidate:\S+ \d+ (?:udp|tcp|UDP|TCP) \d+ \S+ \d+ typ \S+")


class _Section:
    def __init__(self, profile: str = "") -> None:
        self.profile = profile
        self.fingerprints: list[str] = []
        self.setup: str | None = None


def validate_sdp(sdp: str) -> int:
    """Check that ``sdp`` describes DTLS-SRTP media; return its number of candidates.

    Raises :class:`AppError` ``invalid_sdp``, ``insecure_sdp`` or ``too_many_candidates``.
    """
    if len(sdp.encode()) > MAX_SDP_BYTES:
        raise AppError(
            "invalid_sdp", f"The session description is larger than {MAX_SDP_BYTES} bytes."
        )
    lines = [line for line in sdp.replace("\r\n", "\n").split("\n") if line]
    if not lines or lines[0] != "v=0":
        raise AppError("invalid_sdp", "The session description must start with v=0.")
    session = _Section()
    media: list[_Section] = []
    candidates = 0
    for line in lines:
        if len(line) < 2 or line[1] != "=":
            raise AppError("invalid_sdp", "A session description line is not of the form x=...")
        kind, value = line[0], line[2:]
        if kind == "m":
            match = _MEDIA.match(value)
            if match is None:
                raise AppError("invalid_sdp", "A media line (m=) is not valid.")
            media.append(_Section(match.group(3)))
            if len(media) > MAX_MEDIA_SECTIONS:
                raise AppError(
                    "invalid_sdp", f"More than {MAX_MEDIA_SECTIONS} media sections (m= lines)."
                )
            continue
        if kind != "a":
            continue
        current = media[-1] if media else session
        name, _, attr = value.partition(":")
        if name == "fingerprint":
            fp = _FINGERPRINT.match(attr)
            if fp is None:
                raise AppError("invalid_sdp", "An a=fingerprint attribute is not valid.")
            current.fingerprints.append(fp.group(1).lower())
        elif name == "setup":
            current.setup = attr
        elif name == "candidate":
            candidates += 1
            if candidates > MAX_SDP_CANDIDATES:
                raise AppError(
                    "too_many_candidates",
                    f"More than {MAX_SDP_CANDIDATES} candidates in one description.",
                )
    if not media:
        raise AppError("invalid_sdp", "The session description has no media section.")
    for section in media:
        if section.profile not in SECURE_PROFILES:
            raise AppError(
                "insecure_sdp",
                "Media must use UDP/TLS/RTP/SAVPF (or UDP/DTLS/SCTP for data channels).",
            )
        fingerprints = section.fingerprints or session.fingerprints
        if not fingerprints:
            raise AppError("insecure_sdp", "Every media section needs an a=fingerprint.")
        if not all(algorithm in STRONG_HASHES for algorithm in fingerprints):
            raise AppError("insecure_sdp", "Fingerprints must use SHA-256 or stronger.")
        setup = section.setup or session.setup
        if setup not in SETUP_ROLES:
            raise AppError("insecure_sdp", "Every media section needs a=setup (DTLS role).")
    return candidates


def validate_candidate(candidate: str) -> None:
    if _CANDIDATE.match(candidate) is None:
        raise AppError("invalid_sdp", "The ICE candidate is not valid.")
