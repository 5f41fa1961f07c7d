"""python run.py recording export: the same decryption as the download, from the shell."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from tests.cli import run_cli
from tests.conftest import Staff
from tests.test_recordings_api import decoded_frames, make_recording


async def test_cli_exports_a_recording(
    app: web.Application, doctor: Staff, data_dir: Path, tmp_path: Path
) -> None:
    await make_recording(app, "c1", doctor.user["id"])
    out = tmp_path / "export.webm"
    result = run_cli("recording", "export", "rec1", "--out", str(out), data_dir=data_dir)
    assert result.returncode == 0, result.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    assert decoded_frames(out.read_bytes()) == 10
    again = run_cli("recording", "export", "nope", "--out", str(out), data_dir=data_dir)
    assert again.returncode == 1 and "no recording" in again.stderr
