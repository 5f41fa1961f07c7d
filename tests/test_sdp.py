"""DTLS-SRTP checks on session descriptions (signaling/live/sdp.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from signaling.errors import AppError
from signaling.live.sdp import (
    MAX_MEDIA_SECTIONS,
    MAX_SDP_CANDIDATES,
    validate_candidate,
    validate_sdp,
)
from tests.rtc import FINGERPRINT_256, make_sdp, peers, rtc_config


def refused(sdp: str) -> str:
    with pytest.raises(AppError) as caught:
        validate_sdp(sdp)
    return caught.value.code


def test_a_browser_like_dtls_srtp_offer_is_accepted_and_its_candidates_counted() -> None:
    assert validate_sdp(make_sdp(candidates=3)) == 3


def test_a_data_channel_over_dtls_sctp_is_accepted() -> None:
    assert validate_sdp(make_sdp(data_channel=True)) == 1


def test_a_session_level_fingerprint_and_setup_cover_every_section() -> None:
    sdp = make_sdp(fingerprint=None, setup=None).replace(
        "t=0 0\r\n", f"t=0 0\r\na=fingerprint:sha-256 {FINGERPRINT_256}\r\na=setup:actpass\r\n"
    )
    assert validate_sdp(sdp) == 1


@pytest.mark.parametrize("profile", ["RTP/AVP", "RTP/SAVP", "RTP/AVPF", "UDP/TLS/RTP/SAVP"])
def test_plain_or_non_dtls_profiles_are_refused(profile: str) -> None:
    assert refused(make_sdp(profile=profile)) == "insecure_sdp"


def test_a_missing_fingerprint_is_refused() -> None:
    assert refused(make_sdp(fingerprint=None)) == "insecure_sdp"


def test_a_sha1_fingerprint_is_refused() -> None:
    sha1 = "sha-1 " + ":".join(["AB"] * 20)
    assert refused(make_sdp(fingerprint=sha1)) == "insecure_sdp"


def test_stronger_fingerprints_are_accepted() -> None:
    sha512 = "sha-512 " + ":".join(["CD"] * 64)
    assert validate_sdp(make_sdp(fingerprint=sha512)) == 1


def test_a_missing_setup_attribute_is_refused() -> None:
    assert refused(make_sdp(setup=None)) == "insecure_sdp"


def test_a_bad_setup_role_is_refused() -> None:
    assert refused(make_sdp(setup="holdconn")) == "insecure_sdp"


def test_a_malformed_fingerprint_is_invalid() -> None:
    assert refused(make_sdp(fingerprint="sha-256 not-hex")) == "invalid_sdp"


def test_an_sdp_above_64_kib_is_refused() -> None:
    sdp = make_sdp(padding=66)
    assert len(sdp.encode()) > 64 * 1024
    assert refused(sdp) == "invalid_sdp"


def test_too_many_media_sections_are_refused() -> None:
    assert validate_sdp(make_sdp(media=MAX_MEDIA_SECTIONS)) == 1
    assert refused(make_sdp(media=MAX_MEDIA_SECTIONS + 1)) == "invalid_sdp"


def test_too_many_candidates_are_refused() -> None:
    assert validate_sdp(make_sdp(candidates=MAX_SDP_CANDIDATES)) == MAX_SDP_CANDIDATES
    assert refused(make_sdp(candidates=MAX_SDP_CANDIDATES + 1)) == "too_many_candidates"


@pytest.mark.parametrize(
    "text",
    ["", "hello", "v=1\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n", "v=0\r\ns=-\r\n", "v=0\r\nbad"],
)
def test_text_that_is_not_a_session_description_is_invalid(text: str) -> None:
    assert refused(text) == "invalid_sdp"


def test_trickled_candidates_must_look_like_candidates() -> None:
    validate_candidate("candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host")
    validate_candidate("candidate:2 1 UDP 1686052607 203.0.113.7 3478 typ srflx raddr 0.0.0.0")
    for bad in ("", "candidate:", "typ host", "candidate:1 1 sctp 1 1.2.3.4 5 typ host"):
        with pytest.raises(AppError) as caught:
            validate_candidate(bad)
        assert caught.value.code == "invalid_sdp"


# -- control characters and line structure: what the peer's parser must read as we do --------

FIXTURES = Path(__file__).parent / "fixtures"
# Real descriptions and trickled candidates of Chromium 156 (see the file's "_about").
CHROMIUM = json.loads((FIXTURES / "chromium_sdp.json").read_text())
CHROMIUM_SDPS = [
    CHROMIUM[case][kind]
    for case in ("camera", "no_camera")
    for kind in ("offer", "answer", "complete_offer")
]
CHROMIUM_CANDIDATES = [c for case in ("camera", "no_camera") for c in CHROMIUM[case]["candidates"]]
# Every character that may not appear inside a line: C0 controls (LF only as a line end, CR only
# right before it), DEL, C1 controls, and the Unicode line and paragraph separators.
CONTROL_CHARACTERS = [
    *(chr(c) for c in range(0x20) if chr(c) not in "\r\n"),
    "\x7f",
    *(chr(c) for c in range(0x80, 0xA0)),
    "\u2028",
    "\u2029",
]


def test_real_chromium_descriptions_and_candidates_are_accepted() -> None:
    for sdp in CHROMIUM_SDPS:
        validate_sdp(sdp)
    assert validate_sdp(CHROMIUM["camera"]["complete_offer"]) == 8
    for candidate in CHROMIUM_CANDIDATES:
        validate_candidate(candidate["candidate"], candidate["sdp_mid"])
        validate_candidate("a=" + candidate["candidate"], candidate["sdp_mid"])


@pytest.mark.usefixtures("loopback_only")
async def test_real_aiortc_candidates_are_accepted() -> None:
    async with peers(rtc_config([])) as (peer,):
        sdp = await peer.offer()
    validate_sdp(sdp)
    lines = [line for line in sdp.split("\r\n") if line.startswith("a=candidate:")]
    assert lines
    for line in lines:
        validate_candidate(line, "0")
        validate_candidate(line.removeprefix("a="), "0")


def test_an_sdp_with_lf_line_ends_is_accepted() -> None:
    # RFC 8866 section 5: parsers should accept LF alone; browsers do, and so did this relay.
    assert validate_sdp(make_sdp().replace("\r\n", "\n")) == 1


@pytest.mark.parametrize("character", CONTROL_CHARACTERS, ids=lambda c: f"U+{ord(c):04X}")
def test_a_control_character_inside_an_sdp_line_is_refused(character: str) -> None:
    sdp = make_sdp().replace("a=setup:actpass\r\n", f"a=setup:act{character}pass\r\n", 1)
    assert refused(sdp) == "invalid_sdp"


@pytest.mark.parametrize(
    "mutation",
    [
        # A lone CR starts a line for a parser that splits on CR, not for one that splits on LF:
        # here it would smuggle a second fingerprint past the checks.
        lambda sdp: sdp.replace("a=mid:0\r\n", "a=mid:0\ra=fingerprint:sha-1 AB:CD\r\n", 1),
        lambda sdp: sdp.replace("\r\n", "\r\r\n", 1),
        lambda sdp: sdp + "\x00",
        lambda sdp: "\x00" + sdp,
        lambda sdp: sdp.replace("s=-", "s=\x1b[31m-", 1),
    ],
    ids=["lone-cr-line", "cr-cr-lf", "trailing-nul", "leading-nul", "escape"],
)
def test_stray_control_characters_in_an_sdp_are_refused(mutation: Any) -> None:
    for sdp in (make_sdp(), CHROMIUM["camera"]["offer"]):
        assert refused(mutation(sdp)) == "invalid_sdp"


def candidate_refused(candidate: str, sdp_mid: str | None = "0") -> str:
    with pytest.raises(AppError) as caught:
        validate_candidate(candidate, sdp_mid)
    return caught.value.code


@pytest.mark.parametrize("character", [*CONTROL_CHARACTERS, "\r", "\n", "\r\n"], ids=repr)
def test_a_control_character_or_line_break_in_a_candidate_is_refused(character: str) -> None:
    line = CHROMIUM_CANDIDATES[0]["candidate"]
    for at in (len("candidate:"), line.index(" typ"), len(line)):
        assert candidate_refused(line[:at] + character + line[at:]) == "invalid_sdp"


def test_a_candidate_carrying_a_second_line_is_refused() -> None:
    line = "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host"
    for extra in ("\r\na=candidate:2 1 udp 1 203.0.113.9 9 typ host", "\na=setup:passive"):
        assert candidate_refused(line + extra) == "invalid_sdp"
    assert candidate_refused(f"{line}\r\n") == "invalid_sdp"
    assert candidate_refused(f"a=a={line}") == "invalid_sdp"


@pytest.mark.parametrize(
    "sdp_mid", ["", "0\r\n", "0\x00", "au dio", "0\u2028", "\x7f", "é"], ids=repr
)
def test_a_candidate_sdp_mid_that_is_not_a_media_id_is_refused(sdp_mid: str) -> None:
    line = "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host"
    assert candidate_refused(line, sdp_mid) == "invalid_sdp"


def test_media_ids_browsers_use_are_accepted() -> None:
    line = "candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host"
    for sdp_mid in ("0", "1", "audio", "video", "data", "sdparta_0", "{6d8c}", None):
        validate_candidate(line, sdp_mid)
