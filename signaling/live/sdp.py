"""DTLS-SRTP checks on session descriptions before they are relayed.

The server never looks inside media, but it refuses to broker a session that could run
without encryption: every media section must use a DTLS profile (``UDP/TLS/RTP/SAVPF`` for
audio and video, ``UDP/DTLS/SCTP`` for data channels) and carry (itself or at session level)
an ``a=fingerprint`` with SHA-256 or stronger and an ``a=setup`` role.

It also refuses text that the peer's parser could read differently from ours: a description is
lines of the form ``x=...`` ending in CRLF (or LF alone: RFC 8866 section 5 asks parsers to
accept it, and browsers do), with no other control character; a trickled candidate is one
``candidate:`` line of printable ASCII. A lone CR, a NUL or a Unicode line separator could
otherwise start a line of its own in one parser and not in another (line smuggling).
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

# Whole-text scans with a literal "\n" prefix (fast in C) rather than a Python loop over every
# line: offers and answers are checked on the relay's hot path.
_BAD_LINE = re.compile(r"\n(?![a-z]=|\r?\n?\Z)")
_MEDIA = re.compile(r"(?:audio|video|application|text|message) \d+(?:/\d+)? (\S+)")
_FINGERPRINT = re.compile(r"\na=fingerprint:([^\r\n]*)")
_FINGERPRINT_VALUE = re.compile(r"(\S+) (?:[0-9A-Fa-f]{2}:)+[0-9A-Fa-f]{2}")
_SETUP = re.compile(r"\na=setup:([^\r\n]*)")
# Characters no description may hold: C0 controls except the CR LF line end, DEL, C1 controls,
# the Unicode line and paragraph separators (line breaks to JavaScript and to Python's
# splitlines) and lone surrogates; and a CR anywhere but right before an LF.
_CONTROL = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]|\r(?!\n)")
# One candidate line (RFC 8839 section 5.1), printable ASCII only: fields are tokens, addresses
# (IP or mDNS name) and numbers, and what follows ``typ`` (raddr, rport, generation, ufrag,
# network-cost...) is printable ASCII and spaces. Matched whole, so nothing can trail it.
_CANDIDATE = re.compile(
    r"(?:a=)?candidate:[!-~]+ [0-9]+ (?:udp|tcp|UDP|TCP) [0-9]+ [!-~]+ [0-9]+ typ [!-~]+"
    r"(?: [ !-~]*)?"
)
# A media id (a=mid), as a candidate's sdp_mid names it: an RFC 8866 token.
_MID = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")


def _fingerprints(section: str) -> list[str]:
    algorithms = []
    for value in _FINGERPRINT.findall(section):
        match = _FINGERPRINT_VALUE.fullmatch(value.strip())
        if match is None:
            raise AppError("invalid_sdp", "An a=fingerprint attribute is not valid.")
        algorithms.append(match.group(1).lower())
    return algorithms


def _setup(section: str) -> str | None:
    values = _SETUP.findall(section)
    return values[-1].strip() if values else None


def validate_sdp(sdp: str) -> int:
    """Check that ``sdp`` describes DTLS-SRTP media; return its number of candidates.

    Raises :class:`AppError` ``invalid_sdp``, ``insecure_sdp`` or ``too_many_candidates``.
    """
    if len(sdp) > MAX_SDP_BYTES or len(sdp.encode()) > MAX_SDP_BYTES:
        raise AppError(
            "invalid_sdp", f"The session description is larger than {MAX_SDP_BYTES} bytes."
        )
    if _CONTROL.search(sdp) is not None:
        raise AppError(
            "invalid_sdp",
            "The session description holds a control character: only printable text, "
            "with lines ending in CRLF (or LF).",
        )
    if not (sdp.startswith("v=0\r\n") or sdp.startswith("v=0\n")):
        raise AppError("invalid_sdp", "The session description must start with v=0.")
    if _BAD_LINE.search(sdp) is not None:
        raise AppError("invalid_sdp", "A session description line is not of the form x=...")
    session, *media = sdp.split("\nm=")
    if not media:
        raise AppError("invalid_sdp", "The session description has no media section.")
    if len(media) > MAX_MEDIA_SECTIONS:
        raise AppError("invalid_sdp", f"More than {MAX_MEDIA_SECTIONS} media sections (m= lines).")
    candidates = sdp.count("\na=candidate:")
    if candidates > MAX_SDP_CANDIDATES:
        raise AppError(
            "too_many_candidates", f"More than {MAX_SDP_CANDIDATES} candidates in one description."
        )
    session_fingerprints = _fingerprints(session)
    session_setup = _setup(session)
    for section in media:
        match = _MEDIA.match(section)
        if match is None:
            raise AppError("invalid_sdp", "A media line (m=) is not valid.")
        if match.group(1) not in SECURE_PROFILES:
            raise AppError(
                "insecure_sdp",
                "Media must use UDP/TLS/RTP/SAVPF (or UDP/DTLS/SCTP for data channels).",
            )
        fingerprints = _fingerprints(section) or session_fingerprints
        if not fingerprints:
            raise AppError("insecure_sdp", "Every media section needs an a=fingerprint.")
        if not all(algorithm in STRONG_HASHES for algorithm in fingerprints):
            raise AppError("insecure_sdp", "Fingerprints must use SHA-256 or stronger.")
        if (_setup(section) or session_setup) not in SETUP_ROLES:
            raise AppError("insecure_sdp", "Every media section needs a=setup (DTLS role).")
    return candidates


def validate_candidate(candidate: str, sdp_mid: str | None = None) -> None:
    """Check a trickled candidate (one ``candidate:`` line) and the media id it names.

    Raises :class:`AppError` ``invalid_sdp``.
    """
    if _CANDIDATE.fullmatch(candidate) is None:
        raise AppError(
            "invalid_sdp",
            "The ICE candidate is not valid: one candidate: line of printable characters.",
        )
    if sdp_mid is not None and _MID.fullmatch(sdp_mid) is None:
        raise AppError("invalid_sdp", "The candidate's sdp_mid is not a media id (a=mid token).")
