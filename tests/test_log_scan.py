"""The log scanner itself finds what it must (so a clean scan means something)."""

from __future__ import annotations

from tests.log_scan import find_leaks


def test_scanner_finds_tokens_codes_and_names() -> None:
    leaky = [
        "teleconsult.http GET /join/eyJjIjoiMTIzNDU2Nzg5MCIsIm4iOiJhYmMifQ.abcdefghijklmnopqrstuv",
        "x token eyJyIjoicm9vbS0xIn0.awbcmg.aQFIh6zL5XGKyrqyW-_922gFjoM",
        "enrol otpauth://totp/Teleconsultation:dr?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
        "patient Camille Durand joined",
        "password correct horse battery staple",
    ]
    assert len(find_leaks(leaky)) >= len(leaky)


def test_scanner_passes_redacted_and_ordinary_lines() -> None:
    clean = [
        'teleconsult.access 127.0.0.1 "GET /join/<redacted>" 200 1.2ms',
        "teleconsult.audit audit 3 login.success actor=5f2c0e1d target= outcome=success",
        "room 0f3e2a1b: state waiting -> in_call",
    ]
    assert find_leaks(clean) == []
