"""run.py's commands as the tests run them: a child ``python run.py ... --data-dir DIR`` from
the repository's root, its output captured as text."""

from __future__ import annotations

import codecs
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import pyotp

from config import Settings
from tests.conftest import PASSWORD, deadline

ROOT = Path(__file__).resolve().parent.parent


def command_env() -> dict[str, str]:
    """This environment for a run.py child, without the tests' own ``TELECONSULT_TEST_*``
    variables (the time factor): run.py would refuse them as unknown settings."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TELECONSULT_TEST_")}


def run_cli(
    *args: str,
    data_dir: Path | str,
    stdin: str = "",
    env: Mapping[str, str] | None = None,
    within: float = 60,
) -> subprocess.CompletedProcess[str]:
    """``python run.py ARGS --data-dir DATA_DIR``; ``stdin`` is all it reads (never the
    terminal); ``within``: seconds on an ordinary machine, scaled by deadline()."""
    return subprocess.run(
        [sys.executable, "run.py", *args, "--data-dir", str(data_dir)],
        cwd=ROOT,
        env=command_env() if env is None else env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=deadline(within),
    )


def start_service(*args: str, data_dir: Path | str) -> subprocess.Popen[str]:
    """``python run.py ARGS --data-dir DATA_DIR`` running (the default command serves), its
    output (stdout and stderr together) readable as text with read_until()."""
    return subprocess.Popen(
        [sys.executable, "-u", "run.py", *args, "--data-dir", str(data_dir)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**command_env(), "PYTHONUNBUFFERED": "1"},
    )


def add_doctor(
    data_dir: Path | str, username: str = "dr.bernard", display_name: str = ""
) -> tuple[subprocess.CompletedProcess[str], pyotp.TOTP]:
    """``run.py add-user`` of a doctor with the tests' password, as the README shows it (the
    password on standard input); what it printed and the authenticator it printed."""
    named = ("--display-name", display_name) if display_name else ()
    added = run_cli(
        "add-user",
        "--username",
        username,
        "--role",
        "doctor",
        *named,
        "--credentials-stdin",
        data_dir=data_dir,
        stdin=PASSWORD + "\n",
    )
    assert added.returncode == 0, added.stderr
    uri = re.search(r"otpauth://\S+", added.stdout)
    assert uri, added.stdout
    totp = pyotp.parse_uri(uri.group(0))
    assert isinstance(totp, pyotp.TOTP)
    return added, totp


def store_env(settings: Settings) -> dict[str, str]:
    """This environment with the store of ``settings`` (a command then opens the test's
    SQLite file, Redis or PostgreSQL database)."""
    return {
        **command_env(),
        "TELECONSULT_STORAGE_BACKEND": settings.storage.backend,
        "TELECONSULT_STORAGE_REDIS_URL": settings.storage.redis_url,
        "TELECONSULT_STORAGE_POSTGRES_DSN": settings.storage.postgres_dsn,
    }


def read_until(proc: subprocess.Popen[str], pattern: str, limit: float = 15) -> str:
    """What a running command printed up to a match of ``pattern`` (``limit``: seconds on
    an ordinary machine, scaled by deadline()). Reads the pipe's bytes as they come, with the
    deadline applied to each wait: a readline() would block past it when the command prints
    nothing more (a changed message then hung the suite instead of failing the test)."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    seen = ""
    end = time.monotonic() + deadline(limit)
    while (remaining := end - time.monotonic()) > 0:
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            break
        chunk = os.read(fd, 65536)
        if not chunk:  # the command ended
            break
        seen += decoder.decode(chunk)
        if re.search(pattern, seen):
            return seen
    raise AssertionError(f"{pattern!r} not printed within {deadline(limit):.0f} s; got: {seen}")
