"""DTLS-SRTP checks on session descriptions (signaling/sdp.py)."""

from __future__ import annotations

import pytest

from signaling.errors import AppError
from signaling.sdp import (
    MAX_MEDIA_SECTIONS,
    MAX_SDP_CANDIDATES,
    validate_candidate,
    validate_sdp,
)
from tests.rtc import FINGERPRINT_256, make_sdp


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
