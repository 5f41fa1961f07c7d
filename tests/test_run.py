"""The README's first command really works: run.py serves, prints a setup link, add-user."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pyotp
import pytest

from tests.cli import add_doctor, read_until, run_cli, start_service
from tests.conftest import PASSWORD, deadline
from tests.servers import free_port

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, Path, subprocess.Popen[str]]]:
    port = free_port()
    data_dir = tmp_path / "data"
    proc = start_service("--port", str(port), data_dir=data_dir)
    base = f"http://127.0.0.1:{port}"
    limit = time.monotonic() + deadline(30)
    while time.monotonic() < limit:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None:
                raise AssertionError(f"server exited: {proc.stdout.read()}")  # type: ignore[union-attr]
            time.sleep(0.1)
    else:
        proc.kill()
        raise AssertionError("server did not start within 30 s")
    yield base, data_dir, proc
    proc.terminate()
    try:
        proc.communicate(timeout=deadline(10))
    except (subprocess.TimeoutExpired, ValueError):
        proc.kill()


async def test_run_py_serves_and_add_user_signs_in_with_totp(
    server: tuple[str, Path, subprocess.Popen[str]],
) -> None:
    base, data_dir, proc = server
    out = read_until(proc, r"/setup/\S+")
    assert "create the first" in out
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/healthz") as resp:
            assert resp.status == 200
        async with http.get(f"{base}/readyz") as resp:
            assert resp.status == 200
    # Key files and database were made on first run, private to the service's user.
    assert (data_dir / "keys" / "secret.key").stat().st_mode & 0o777 == 0o600
    assert (data_dir / "teleconsult.sqlite3").exists()

    added, totp = add_doctor(data_dir, display_name="Dr Bernard")
    assert PASSWORD not in added.stdout + added.stderr
    assert "█" in added.stdout or "▀" in added.stdout  # the terminal QR code

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        async with http.post(
            f"{base}/api/auth/login", json={"username": "dr.bernard", "password": PASSWORD}
        ) as resp:
            assert resp.status == 200
            assert (await resp.json())["next"] == "enrol"
        async with http.post(f"{base}/api/auth/totp", json={"code": totp.now()}) as resp:
            assert resp.status == 200, await resp.text()
            me = await resp.json()
        assert me["user"]["display_name"] == "Dr Bernard"
        async with http.post(
            f"{base}/api/consultations",
            headers={"X-CSRF-Token": me["csrf_token"]},
            json={
                "patient_name": "Lea Petit",
                "scheduled_start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "duration_minutes": 20,
            },
        ) as resp:
            assert resp.status == 201
            assert "/join/" in (await resp.json())["invite_url"]

    # The account commands act on the same data while the service runs.
    assert run_cli("disable-user", "--username", "dr.bernard", data_dir=data_dir).returncode == 0
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{base}/api/auth/login", json={"username": "dr.bernard", "password": PASSWORD}
        ) as resp:
            assert resp.status == 401
    missing = run_cli("reset-mfa", "--username", "nobody", data_dir=data_dir)
    assert missing.returncode == 1 and "no user named nobody" in missing.stderr
    # Nothing secret was logged by the server.
    proc.terminate()
    rest = proc.communicate(timeout=deadline(10))[0]
    assert PASSWORD not in out + rest
    assert "/setup/" not in rest


def test_add_user_refuses_a_short_password(tmp_path: Path) -> None:
    result = run_cli(
        *("add-user", "--username", "dr.x", "--role", "doctor", "--credentials-stdin"),
        data_dir=tmp_path,
        stdin="short\n",
    )
    assert result.returncode == 1
    assert "at least 12 characters" in result.stderr


def test_add_user_prints_a_one_time_enrolment_link_and_takes_no_password(tmp_path: Path) -> None:
    result = run_cli(
        "add-user", "--username", "dr.link", "--role", "doctor", data_dir=tmp_path, stdin=""
    )
    assert result.returncode == 0, result.stderr
    link = re.search(r"(\S+)/enrol#(\S+)", result.stdout)
    assert link, result.stdout
    again = run_cli("reset-link", "--username", "dr.link", data_dir=tmp_path)
    assert again.returncode == 0, again.stderr
    second = re.search(r"/enrol#(\S+)", again.stdout)
    assert second and second.group(1) != link.group(2)


def test_automation_brings_its_own_password_and_totp_secret_on_stdin(tmp_path: Path) -> None:
    secret = pyotp.random_base32(32)
    result = run_cli(
        *("add-user", "--username", "dr.bot", "--role", "doctor", "--credentials-stdin"),
        data_dir=tmp_path,
        stdin=f"{PASSWORD}\n{secret}\n",
    )
    assert result.returncode == 0, result.stderr
    assert f"key: {secret}" in result.stdout and PASSWORD not in result.stdout
    bad = run_cli(
        *("add-user", "--username", "dr.bot2", "--role", "doctor", "--credentials-stdin"),
        data_dir=tmp_path,
        stdin=f"{PASSWORD}\nnot base32!\n",
    )
    assert bad.returncode == 1 and "128 bits" in bad.stderr


def test_every_command_has_help() -> None:
    for command in (
        [],
        ["serve"],
        ["add-user"],
        ["reset-link"],
        ["reset-mfa"],
        ["disable-user"],
        ["enable-user"],
    ):
        result = subprocess.run(
            [sys.executable, "run.py", *command, "--help"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=deadline(30),
        )
        assert result.returncode == 0
        assert "usage: run.py" in result.stdout


async def test_self_signed_serves_https_with_hsts(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "run.py",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "d"),
            "--self-signed",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        read_until(proc, r"Open it in a browser on this computer: https://localhost:" + str(port))
        async with aiohttp.ClientSession() as http:
            async with http.get(f"https://127.0.0.1:{port}/healthz", ssl=False) as resp:
                assert resp.status == 200
                assert "max-age" in resp.headers["Strict-Transport-Security"]
        key = tmp_path / "d" / "tls" / "self-signed.key"
        assert key.stat().st_mode & 0o777 == 0o600
    finally:
        proc.terminate()
        proc.communicate(timeout=deadline(10))
