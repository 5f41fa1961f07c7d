"""Scan every log record of the whole test run for secrets and health data.

Attached at start to the root logger (level INFO, what a deployment logs), it keeps each
formatted record; at the end of the run it looks for what must never be logged: room, invite
and setup tokens (itsdangerous-shaped), otpauth URIs and TOTP secrets, unredacted invite and
setup paths, the passwords and patient names the tests use. A hit fails the run.
"""

from __future__ import annotations

import logging
import re

import pytest

# Values the tests use as passwords and patient names (tests/conftest.py, test_run.py, the
# browser tests and the signaling helpers).
KNOWN_SECRETS = (
    "correct horse battery staple",
    "a long enough password",
    "my secret guess!",
)
KNOWN_NAMES = ("Camille Durand", "Alice Patient", "Alice Dupont", "Lea Petit")

PATTERNS = {
    "timed token": re.compile(r"[A-Za-z0-9_-]{20,}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{20,}"),
    "signed token": re.compile(r"eyJ[A-Za-z0-9_-]{15,}\.[A-Za-z0-9_-]{20,}"),
    "otpauth URI": re.compile(r"otpauth://"),
    "TOTP secret": re.compile(r"\b[A-Z2-7]{32}\b"),
    "token path": re.compile(r"/(join|setup)/(?!<redacted>)[A-Za-z0-9_-]{8,}"),
}


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a record that cannot format is the logger's bug, not ours
            self.lines.append(f"{record.name} unformattable record {record.msg!r}")


_handler = _Keep()


def find_leaks(lines: list[str]) -> list[str]:
    leaks: list[str] = []
    for line in lines:
        for secret in (*KNOWN_SECRETS, *KNOWN_NAMES):
            if secret in line:
                leaks.append(f"{secret!r} in: {line[:300]}")
        for what, pattern in PATTERNS.items():
            if pattern.search(line):
                leaks.append(f"{what} in: {line[:300]}")
    return leaks


def pytest_configure(config: pytest.Config) -> None:
    root = logging.getLogger()
    root.addHandler(_handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    leaks = find_leaks(_handler.lines)
    session.config.stash[_RESULT] = (len(_handler.lines), leaks)
    if leaks and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    count, leaks = terminalreporter.config.stash.get(_RESULT, (0, []))
    if leaks:
        terminalreporter.section("secrets or health data found in the logs", red=True)
        for leak in leaks[:50]:
            terminalreporter.write_line(leak)
    else:
        terminalreporter.write_line(f"log scan: {count} log records, no secret or patient name")


_RESULT = pytest.StashKey[tuple[int, list[str]]]()
