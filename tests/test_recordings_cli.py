"""python run.py recording export: the same decryption as the download, from the shell."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aiohttp import web

from tests.conftest import Staff, deadline
from tests.test_recordings_api import decoded_frames, make_recording

ROOT = Path(__file__).resolve().parent.parent


async def test_cli_exports_a_recording(
    app: web.Application, doctor: Staff, data_dir: Path, tmp_path: Path
) -> None:
    await make_recording(app, "c1", doctor.user["id"])
    out = tmp_path / "export.webm"
    result = subprocess.run(
        [
            sys.executable,
            "run.py",
            "recording",
            "export",
            "rec1",
            "--out",
            str(out),
            "--data-dir",
            str(data_dir),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=deadline(60),
    )
    assert result.returncode == 0, result.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    assert decoded_frames(out.read_bytes()) == 10
    again = subprocess.run(
        [
            sys.executable,
            "run.py",
            "recording",
            "export",
            "nope",
            "--out",
            str(out),
            "--data-dir",
            str(data_dir),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=deadline(60),
    )
    assert again.returncode == 1 and "no recording" in again.stderr
