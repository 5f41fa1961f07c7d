"""The shipped deployment works: run.py with the shipped settings behind a real nginx running
the shipped deploy/nginx/teleconsult.conf, TLS on a self-signed certificate, a real call.

The nginx file is used as shipped except for what a test on loopback cannot keep, changed by
``render_site``: the listen ports (loopback, no IPv6), the server name, the certificate, the
log directory and the upstream address. Each substitution must match exactly as often as
expected, so a change to the shipped file that the test no longer covers fails here.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import secrets
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pyotp
import pytest

from config import load_settings
from signaling.accounts.selfsigned import ensure_self_signed
from tests.cli import command_env, run_cli
from tests.conftest import PASSWORD, Staff, deadline, wait_until
from tests.rtc import Booking, SignalClient, connect_media, let_in, peers, rtc_config, sees_knock
from tests.servers import free_port, own_sockets_to, stop_process, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
SHIPPED_SITE = ROOT / "deploy" / "nginx" / "teleconsult.conf"
SHIPPED_SETTINGS = ROOT / "deploy" / "teleconsult.example.toml"


def nginx_binary() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )


def _strip_comments(text: str) -> str:
    # The shipped file has no '#' inside a quoted string, so a '#' after a blank starts a comment.
    return "\n".join(re.sub(r"(^|\s)#.*$", "", line).rstrip() for line in text.splitlines())


def render_site(
    text: str,
    *,
    https_port: int,
    http_port: int,
    app_port: int,
    cert: Path,
    key: Path,
    log_dir: Path,
) -> str:
    """The shipped site file with only loopback ports, name, certificate, logs and upstream
    changed (comments dropped first so that examples in comments are not rewritten)."""
    site = _strip_comments(text)
    substitutions = [
        ("listen 80;", f"listen 127.0.0.1:{http_port};", 1),
        ("listen [::]:80;", "", 1),
        ("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;", 1),
        ("listen [::]:443 ssl http2;", "", 1),
        ("server_name visio.clinic.example;", "server_name localhost;", 2),
        ("/etc/letsencrypt/live/visio.clinic.example/fullchain.pem", str(cert), 1),
        ("/etc/letsencrypt/live/visio.clinic.example/privkey.pem", str(key), 1),
        ("/var/log/nginx/", f"{log_dir}/", 3),
        ("server 127.0.0.1:8080;", f"server 127.0.0.1:{app_port};", 1),
    ]
    for old, new, count in substitutions:
        found = site.count(old)
        assert found == count, f"{old!r} occurs {found} times in {SHIPPED_SITE}, expected {count}"
        site = site.replace(old, new)
    # Nothing of the production host is left for this test to touch.
    for leftover in ("visio.clinic.example", "/etc/", "/var/"):
        assert leftover not in site, f"{leftover!r} left in the rendered nginx config"
    return site


def nginx_main_conf(site: Path, work: Path) -> str:
    """A minimal nginx.conf around the site file (the part a distribution's nginx.conf plays)."""
    # As root, workers would run as 'nobody' and could not write the temporary directories.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(
        f"    {kind}_temp_path {work / 'temp' / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return (
        f"{user}worker_processes 1;\n"
        "events { worker_connections 256; }\n"
        "http {\n"
        f"{temp}\n"
        f"    access_log {work / 'logs' / 'http.access.log'};\n"
        "    default_type application/octet-stream;\n"
        f"    include {site};\n"
        "}\n"
    )


@dataclasses.dataclass
class Deployment:
    https_port: int
    http_port: int
    app_port: int
    cert: Path
    data_dir: Path
    nginx_logs: Path
    app_log: Path
    doctor_otpauth: str

    @property
    def origin(self) -> str:
        return f"https://localhost:{self.https_port}"

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.cert))
        # A bare self-signed certificate is its own trust anchor (no CA extensions).
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
        return context

    def session(self) -> aiohttp.ClientSession:
        """A browser, in effect: its own cookie jar, speaking https to nginx only."""
        return aiohttp.ClientSession(
            base_url=self.origin,
            connector=aiohttp.TCPConnector(ssl=self.ssl_context()),
            cookie_jar=aiohttp.CookieJar(),
        )

    def app_output(self) -> str:
        return self.app_log.read_text(errors="replace")

    def nginx_log_text(self) -> str:
        return "".join(p.read_text(errors="replace") for p in sorted(self.nginx_logs.iterdir()))

    def all_logs(self) -> str:
        return self.app_output() + self.nginx_log_text()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    nginx = nginx_binary()
    if nginx is None:
        pytest.fail(
            "nginx is not installed: run the tests with scripts/test.sh, which installs nginx-light"
        )
    work = tmp_path_factory.mktemp("deploy")
    for sub in ("logs", "conf", "temp"):
        (work / sub).mkdir()
    cert, key = ensure_self_signed(work / "tls", "localhost")
    https_port, http_port, app_port = free_port(), free_port(), free_port()

    # The service: the shipped settings file, then the environment: the public origin is
    # nginx's, X-Forwarded-For is trusted, the TURN secret is a temporary file.
    turn_key = work / "turn.key"
    turn_key.write_text("dGVzdCB0dXJuIHNlY3JldCBmb3IgdGhlIG5naW54IHRlc3Q=\n")
    turn_key.chmod(0o600)
    env = {
        **command_env(),
        "PYTHONUNBUFFERED": "1",
        "TELECONSULT_SERVER_PUBLIC_URL": f"https://localhost:{https_port}",
        "TELECONSULT_SERVER_TRUST_PROXY_HEADERS": "true",
        "TELECONSULT_TURN_SECRET_FILE": str(turn_key),
    }
    data_dir = work / "data"
    app_log = work / "app.log"
    common = ["--config", str(SHIPPED_SETTINGS), "--data-dir", str(data_dir)]
    with app_log.open("wb") as out:
        app = subprocess.Popen(
            [sys.executable, "run.py", "serve", "--port", str(app_port), *common],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    nginx_proc: subprocess.Popen[bytes] | None = None
    try:
        wait_for_port(app_port, app, limit=deadline(30))
        site = work / "conf" / "teleconsult.conf"
        site.write_text(
            render_site(
                SHIPPED_SITE.read_text(),
                https_port=https_port,
                http_port=http_port,
                app_port=app_port,
                cert=cert,
                key=key,
                log_dir=work / "logs",
            )
        )
        main_conf = work / "conf" / "nginx.conf"
        main_conf.write_text(nginx_main_conf(site, work))
        with (work / "nginx.stderr").open("wb") as err:
            nginx_proc = subprocess.Popen(
                [
                    nginx,
                    "-p",
                    str(work),
                    "-c",
                    str(main_conf),
                    "-g",
                    f"daemon off; pid {work / 'nginx.pid'}; "
                    f"error_log {work / 'logs' / 'main.error.log'} warn;",
                ],
                stdout=subprocess.DEVNULL,
                stderr=err,
            )
        try:
            wait_for_port(https_port, nginx_proc)
        except RuntimeError:
            raise AssertionError((work / "nginx.stderr").read_text()) from None
        # A doctor, made with the command line while the service runs.
        added = run_cli(
            *("add-user", "--username", "dr.nginx", "--role", "doctor", "--credentials-stdin"),
            *("--display-name", "Dr Nginx", "--config", str(SHIPPED_SETTINGS)),
            data_dir=data_dir,
            stdin=PASSWORD + "\n",
            env=env,
        )
        assert added.returncode == 0, added.stdout + added.stderr
        uri = re.search(r"otpauth://\S+", added.stdout)
        assert uri, added.stdout
        yield Deployment(
            https_port, http_port, app_port, cert, data_dir, work / "logs", app_log, uri.group(0)
        )
    finally:
        if nginx_proc is not None:
            stop_process(nginx_proc)
        stop_process(app)


def doctor_totp(deployment: Deployment) -> pyotp.TOTP:
    totp = pyotp.parse_uri(deployment.doctor_otpauth)
    assert isinstance(totp, pyotp.TOTP)
    return totp


# -- TLS, headers, refusals -------------------------------------------------------------------


async def test_healthz_over_https_through_nginx_with_the_apps_single_hsts_header(
    deployment: Deployment,
) -> None:
    async with deployment.session() as http, http.get("/healthz") as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "ok"
        # HSTS comes from the service, once: nginx does not add its own.
        hsts = resp.headers.getall("Strict-Transport-Security")
        assert len(hsts) == 1 and "max-age=" in hsts[0]
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert resp.headers["Server"] == "nginx"  # server_tokens off: no version


def test_nginx_offers_http2_and_modern_tls_only(deployment: Deployment) -> None:
    context = deployment.ssl_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection(("127.0.0.1", deployment.https_port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.selected_alpn_protocol() == "h2"
        assert tls.version() in ("TLSv1.2", "TLSv1.3")
    # TLS 1.2 with a CBC suite (no AEAD) finds no common cipher.
    legacy = deployment.ssl_context()
    legacy.maximum_version = ssl.TLSVersion.TLSv1_2
    legacy.set_ciphers("ECDHE-ECDSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA")
    with (
        socket.create_connection(("127.0.0.1", deployment.https_port), timeout=5) as raw,
        pytest.raises(ssl.SSLError),
    ):
        legacy.wrap_socket(raw, server_hostname="localhost")
    # TLS 1.2 with an AEAD suite is fine.
    aead = deployment.ssl_context()
    aead.maximum_version = ssl.TLSVersion.TLSv1_2
    aead.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    with (
        socket.create_connection(("127.0.0.1", deployment.https_port), timeout=5) as raw,
        aead.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.version() == "TLSv1.2"


async def test_plain_http_redirects_to_https_without_the_path(deployment: Deployment) -> None:
    token = "tok" + secrets.token_urlsafe(16)
    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"http://127.0.0.1:{deployment.http_port}/join/{token}",
            headers={"Host": "localhost"},
            allow_redirects=False,
        ) as resp,
    ):
        assert resp.status == 301
        # The token is never sent back in clear.
        assert resp.headers["Location"] == "https://localhost/"


async def test_metrics_are_refused_through_nginx_but_served_to_local_scrapers(
    deployment: Deployment,
) -> None:
    async with deployment.session() as http, http.get("/metrics") as resp:
        assert resp.status == 403
        assert "teleconsult_" not in await resp.text()
    # The refusal is nginx's: the service itself serves a scraper on the machine.
    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{deployment.app_port}/metrics") as resp,
    ):
        assert resp.status == 200
        assert "teleconsult_" in await resp.text()


async def test_a_body_above_64k_is_refused_by_nginx(deployment: Deployment) -> None:
    async with deployment.session() as http:
        async with http.post("/api/auth/login", data=b"x" * (64 * 1024 + 1)) as resp:
            assert resp.status == 413
            assert resp.headers["Server"] == "nginx"
            assert "application/json" not in resp.headers.get("Content-Type", "")
        # Up to 64 KiB passes nginx and reaches the service (which answers in JSON).
        async with http.post(
            "/api/auth/login", data=b"x" * (64 * 1024), headers={"Content-Type": "application/json"}
        ) as resp:
            assert resp.status == 400
            assert resp.headers["Content-Type"].startswith("application/json")


# -- the logs ---------------------------------------------------------------------------------


async def wait_for_log(deployment: Deployment, pattern: str, within: float = 10.0) -> str:
    async with asyncio.timeout(deadline(within)):
        while not re.search(pattern, text := deployment.app_output()):  # noqa: ASYNC110 - a file
            await asyncio.sleep(0.05)
    return text


async def test_token_paths_stay_out_of_every_log(deployment: Deployment) -> None:
    token = "tok" + secrets.token_urlsafe(24)
    async with deployment.session() as http:
        for path in (f"/join/{token}", f"/setup/{token}"):
            async with http.get(path) as resp:
                assert resp.status == 200
        # An error nginx logs itself (at level "error", with the request line) on a token path.
        async with http.post(f"/join/{token}", data=b"x" * (128 * 1024)) as resp:
            assert resp.status == 413
        # The same error elsewhere is logged: the token locations are what keep it out.
        marker = "marker" + secrets.token_hex(8)
        async with http.post(f"/api/{marker}", data=b"x" * (128 * 1024)) as resp:
            assert resp.status == 413
    # The service logged both pages, redacted.
    await wait_for_log(deployment, r"/setup/<redacted>")
    output = await wait_for_log(deployment, r"/join/<redacted>")
    assert token not in output
    nginx_logs = deployment.nginx_log_text()
    assert marker in nginx_logs and "too large body" in nginx_logs
    assert token not in nginx_logs
    assert "/join/" not in nginx_logs and "/setup/" not in nginx_logs


# -- a call -----------------------------------------------------------------------------------


async def sign_in(deployment: Deployment) -> Staff:
    totp = doctor_totp(deployment)
    http = deployment.session()
    resp = await http.post("/api/auth/login", json={"username": "dr.nginx", "password": PASSWORD})
    assert resp.status == 200, await resp.text()
    resp = await http.post("/api/auth/totp", json={"code": totp.now()})
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert any(c.key == "tc_session" and c["secure"] for c in http.cookie_jar)
    return Staff(http, body["user"], body["csrf_token"], totp, PASSWORD)


async def book_through_nginx(deployment: Deployment, doctor: Staff) -> tuple[Booking, str]:
    """Like tests.rtc.book, over https through nginx with the real clock; also opens the
    patient's link as a browser would. Answers the booking and the invite token."""
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    resp = await doctor.post(
        "/api/consultations",
        json={"patient_name": "Alice Patient", "scheduled_start": start, "duration_minutes": 30},
    )
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    assert created["invite_url"].startswith(f"{deployment.origin}/join/")
    invite = created["invite_url"].rsplit("/join/", 1)[1]
    patient = deployment.session()
    async with patient.get(f"/join/{invite}") as page:
        assert page.status == 200
    resp = await patient.post(
        "/api/invites/redeem", json={"invite": invite, "access_code": created["access_code"]}
    )
    assert resp.status == 200, await resp.text()
    redeemed = await resp.json()
    booking = Booking(
        created["consultation"]["id"],
        doctor,
        patient,
        redeemed["csrf_token"],
        redeemed["room_token"],
    )
    return booking, invite


async def join_over_wss(
    deployment: Deployment, http: aiohttp.ClientSession, token: str, origin: str | None = None
) -> tuple[SignalClient, Any]:
    from signaling.live.protocol import Welcome

    ws = await http.ws_connect(
        f"wss://localhost:{deployment.https_port}/ws",
        origin=origin or deployment.origin,
        autoping=True,
    )
    signal = SignalClient(ws)
    await signal.send({"type": "join", "v": 1, "token": token})
    return signal, await signal.expect(Welcome)


async def test_a_websocket_from_another_origin_is_refused_through_nginx(
    deployment: Deployment,
) -> None:
    async with deployment.session() as http:
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(
                f"wss://localhost:{deployment.https_port}/ws", origin="https://evil.example"
            )
        assert refused.value.status == 403


async def next_waiting_event(stream: aiohttp.ClientResponse) -> list[dict[str, Any]]:
    """The list of the next 'waiting' Server-Sent Event (GET /api/waiting/events)."""
    lines: list[str] = []
    while True:
        line = (await asyncio.wait_for(stream.content.readline(), deadline(20))).decode()
        assert line, "the stream closed"
        if line == "\n" and any(x.startswith("event: waiting") for x in lines):
            data = next(x for x in lines if x.startswith("data: "))
            return list(json.loads(data[len("data: ") :])["waiting"])
        lines = [] if line == "\n" else [*lines, line]


@pytest.mark.usefixtures("loopback_only")
async def test_a_doctor_and_a_patient_call_through_nginx_over_wss(deployment: Deployment) -> None:
    from signaling.live.protocol import Lobby

    doctor = await sign_in(deployment)
    booking, invite = await book_through_nginx(deployment, doctor)
    sockets: list[SignalClient] = []
    # The dashboard's event stream crosses nginx as it is written (no buffering).
    events = await doctor.client.get("/api/waiting/events")
    try:
        assert events.status == 200
        assert events.headers["Content-Type"].startswith("text/event-stream")
        assert await next_waiting_event(events) == []
        doctor_ws, welcome = await join_over_wss(
            deployment, doctor.client, await booking.token("doctor")
        )
        sockets.append(doctor_ws)
        assert (welcome.role, welcome.room) == ("doctor", booking.consultation_id)
        assert (await doctor_ws.expect(Lobby)).waiting is None
        patient_ws, welcome = await join_over_wss(
            deployment, booking.patient, await booking.token("patient")
        )
        sockets.append(patient_ws)
        assert welcome.role == "patient"
        await sees_knock(doctor_ws, patient_ws)
        [arrival] = await next_waiting_event(events)
        assert arrival["consultation_id"] == booking.consultation_id
        events.close()
        await let_in(doctor_ws, patient_ws)

        async with peers(rtc_config([]), rtc_config([])) as (doctor_peer, patient_peer):
            await connect_media(doctor_ws, doctor_peer, patient_ws, patient_peer)
            for peer in (doctor_peer, patient_peer):
                assert peer.srtp_profile().startswith("SRTP_")
    finally:
        events.close()
        for signal in sockets:
            await signal.close()
        await doctor.client.close()
        await booking.patient.close()
        # The stream's TLS connection was cut mid-body: its socket closes only after the TLS
        # shutdown exchange, a few turns of the loop later; without waiting for it the socket
        # outlives the test (and is reported unclosed in a later one).
        await wait_until(lambda: not own_sockets_to(deployment.https_port), within=10)
    # Neither the invite token nor its link reached a log on the way.
    output = await wait_for_log(deployment, r"/join/<redacted>")
    assert invite not in output
    assert invite not in deployment.nginx_log_text()
    assert f"/join/{invite}" not in deployment.all_logs()


def test_the_waiting_stream_location_is_not_buffered() -> None:
    site = _strip_comments(SHIPPED_SITE.read_text())
    block = site.split("location = /api/waiting/events {", 1)[1].split("}", 1)[0]
    assert "proxy_buffering off;" in block
    assert "proxy_pass http://teleconsult_app;" in block


def test_the_shipped_settings_file_is_valid() -> None:
    settings = load_settings(SHIPPED_SETTINGS, environ={})
    assert settings.server.public_url.startswith("https://")
    assert settings.server.trust_proxy_headers
    assert settings.server.host == "127.0.0.1"
    # nginx's client_max_body_size 64k is the service's own limit.
    assert settings.server.max_body_bytes == 64 * 1024
    assert "client_max_body_size 64k;" in _strip_comments(SHIPPED_SITE.read_text())


def unit_settings(text: str) -> dict[str, list[str]]:
    """Key -> values of a systemd unit (continuation lines joined, comments dropped)."""
    joined = re.sub(r"\\\n\s*", " ", text)
    values: dict[str, list[str]] = {}
    for line in joined.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_the_systemd_unit_serves_the_shipped_settings_from_its_state_directory() -> None:
    import run

    unit = unit_settings((ROOT / "deploy" / "systemd" / "teleconsult.service").read_text())
    (exec_start,) = unit["ExecStart"]
    python, script, *argv = shlex.split(exec_start)
    assert python.endswith("/python") and script.endswith("/run.py")
    args = run.build_parser().parse_args(argv)
    assert args.command == "serve"
    (state,) = unit["StateDirectory"]
    assert args.data_dir == f"/var/lib/{state}"
    assert args.config == "/etc/teleconsult/teleconsult.toml"
    settings = load_settings(SHIPPED_SETTINGS, environ={})
    assert settings.storage.data_dir == args.data_dir
    # The TURN secret is in the configuration directory, readable under ProtectSystem=strict.
    (config_dir,) = unit["ConfigurationDirectory"]
    assert settings.turn.secret_file.startswith(f"/etc/{config_dir}/")
    assert args.config.startswith(f"/etc/{config_dir}/")
    # The hardening this deployment promises (docs/deploy.md).
    for key, value in {
        "User": "teleconsult",
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "UMask": "0077",
        "CapabilityBoundingSet": "",
    }.items():
        assert unit[key] == [value], key
    assert "AF_INET" in unit["RestrictAddressFamilies"][0].split()


# -- backups (docs/deploy.md, "Backups and a restore test") -----------------------------------


BACKUP_UNIT = ROOT / "deploy" / "systemd" / "teleconsult-backup.service"


def run_backup_job(data_dir: Path, backup_dir: Path) -> Path:
    """The shipped backup unit's ExecStart lines with its two directories replaced (Python's
    sqlite3 backup API, the documented alternative, where the sqlite3 CLI is missing)."""
    database = data_dir / "teleconsult.sqlite3"
    copy = backup_dir / "teleconsult.sqlite3"
    if shutil.which("sqlite3") is None:
        import sqlite3

        source, target = sqlite3.connect(database), sqlite3.connect(copy)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        return copy
    for line in unit_settings(BACKUP_UNIT.read_text())["ExecStart"]:
        argv = [
            arg.replace("/var/lib/teleconsult-backup", str(backup_dir)).replace(
                "/var/lib/teleconsult", str(data_dir)
            )
            for arg in shlex.split(line)
        ]
        argv[0] = shutil.which(Path(argv[0]).name) or argv[0]
        subprocess.run(argv, check=True, timeout=deadline(30))
    return copy


def restore(deployment: Deployment, into: Path) -> Path:
    """The backup job run while the service runs, plus keys/: a restorable data directory."""
    backups = into.parent / f"{into.name}-backup"
    backups.mkdir(mode=0o700)
    copy = run_backup_job(deployment.data_dir, backups)
    into.mkdir(mode=0o700)
    shutil.copy(copy, into / "teleconsult.sqlite3")
    shutil.copytree(deployment.data_dir / "keys", into / "keys")
    return into


async def totp_secret_of(data_dir: Path, username: str, reset: bool = False) -> str | None:
    """What the service would decrypt as the user's TOTP secret from ``data_dir``."""
    from config import Settings, StorageSettings
    from signaling.app import create_app
    from signaling.keys import SERVICES

    app = create_app(Settings(storage=StorageSettings(data_dir=str(data_dir))).validate())
    services = app[SERVICES]
    await services.store.open()
    try:
        user = await services.store.get_user_by_username(username)
        assert user is not None
        if reset:
            user = await services.accounts.reset_mfa(user)
        return services.accounts.totp_secret(user)
    finally:
        await services.store.close()


async def test_an_online_backup_with_the_keys_restores_accounts_and_audit_trail(
    deployment: Deployment, tmp_path: Path
) -> None:
    restored = restore(deployment, tmp_path / "restored")
    verified = run_cli("audit", "verify", data_dir=restored)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "audit trail intact" in verified.stdout
    # The keys match the database: the doctor's TOTP secret decrypts to what was enrolled.
    assert await totp_secret_of(restored, "dr.nginx") == doctor_totp(deployment).secret


async def test_a_new_app_secret_makes_totp_secrets_unreadable_until_reset_mfa(
    deployment: Deployment, tmp_path: Path
) -> None:
    from signaling.errors import AppError

    restored = restore(deployment, tmp_path / "rotated")
    (restored / "keys" / "secret.key").unlink()  # a fresh one is generated on open
    with pytest.raises(AppError) as info:
        await totp_secret_of(restored, "dr.nginx")
    assert info.value.code == "mfa_unreadable"
    fresh = await totp_secret_of(restored, "dr.nginx", reset=True)
    assert fresh is not None and fresh != doctor_totp(deployment).secret


def _directives(text: str) -> set[str]:
    return {
        " ".join(line.split())
        for line in _strip_comments(text).splitlines()
        if line.strip() and line.strip() != "}"
    }


def test_the_readme_nginx_example_is_taken_from_the_tested_file() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Deployment behind a reverse proxy with TLS", 1)[1]
    example = section.split("```nginx", 1)[1].split("```", 1)[0]
    missing = _directives(example) - _directives(SHIPPED_SITE.read_text())
    assert not missing, f"README lines not in {SHIPPED_SITE.name}: {sorted(missing)}"
