"""run.py's commands as the tests run them: a child ``python run.py ... --data-dir DIR`` from
the repository's root, its output captured as text."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from config import Settings
from tests.conftest import deadline

ROOT = Path(__file__).resolve().parent.parent


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
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=deadline(within),
    )


def store_env(settings: Settings) -> dict[str, str]:
    """This environment with the store of ``settings`` (a command then opens the test's
    SQLite file or Redis)."""
    return {
        **os.environ,
        "TELECONSULT_STORAGE_BACKEND": settings.storage.backend,
        "TELECONSULT_STORAGE_REDIS_URL": settings.storage.redis_url,
    }
