"""Another device of the network, run inside the test's namespace (tests/netns.py):
``python -m tests.lan_client setup BASE_URL CA_FILE SETUP_TOKEN FOREIGN_ORIGIN``, then
``python -m tests.lan_client doctor BASE_URL CA_FILE DOCTOR_SECRET``.

It trusts only the service's self-signed certificate and checks host names (an IP SAN must
match BASE_URL). ``setup`` opens the setup page, creates the first administrator with BASE_URL
as the page's Origin (FOREIGN_ORIGIN, which the service must refuse, first) and enrols;
``doctor`` signs in as ``dr.bernard`` (made with run.py add-user, TOTP secret DOCTOR_SECRET)
and creates a consultation. Each prints one JSON object of what it saw. Every request goes to
BASE_URL.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import sys
import time
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pyotp
from cryptography import x509

from tests.conftest import PASSWORD


def served_certificate_names(base: str, ca_file: str) -> list[str]:
    """The subject alternative names of the certificate served at ``base``, read through a
    connection that verified it against ``ca_file`` for that very host."""
    parts = urlsplit(base)
    assert parts.hostname is not None and parts.port is not None
    context = ssl.create_default_context(cafile=ca_file)
    with (
        socket.create_connection((parts.hostname, parts.port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=parts.hostname) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return [str(name.value) for name in san]


async def set_up(base: str, ca_file: str, setup_token: str, foreign: str) -> dict[str, Any]:
    """Open the setup link, create the first administrator and enrol."""
    seen: dict[str, Any] = {"certificate_names": served_certificate_names(base, ca_file)}
    async with session(base, ca_file) as http:
        async with http.get(f"/setup/{setup_token}") as resp:
            seen["setup_page"] = resp.status
        account = {
            "setup_token": setup_token,
            "username": "admin",
            "password": PASSWORD,
            "display_name": "Accueil",
        }
        async with http.post("/api/setup", json=account, headers={"Origin": foreign}) as resp:
            seen["setup_from_foreign_origin"] = [resp.status, await resp.json()]
        async with http.post("/api/setup", json=account, headers={"Origin": base}) as resp:
            seen["setup"] = [resp.status, await resp.json()]
        async with http.post("/api/auth/enrol", headers={"Origin": base}) as resp:
            enrolment = await resp.json()
            seen["enrol"] = resp.status
        if resp.status == 200:
            seen["admin_signed_in"] = (await second_step(http, base, enrolment["secret"]))[0]
    return seen


async def create_consultation(base: str, ca_file: str, doctor_secret: str) -> dict[str, Any]:
    """Sign in as the doctor ``dr.bernard`` and create a consultation."""
    seen: dict[str, Any] = {}
    async with session(base, ca_file) as http:
        doctor = {"username": "dr.bernard", "password": PASSWORD}
        async with http.post("/api/auth/login", json=doctor, headers={"Origin": base}) as resp:
            seen["doctor_password"] = resp.status
        seen["doctor_signed_in"], csrf, secure = await second_step(http, base, doctor_secret)
        seen["session_cookie_secure"] = secure
        consultation = {
            "patient_name": "Lea Petit",
            "scheduled_start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "duration_minutes": 20,
        }
        async with http.post(
            "/api/consultations",
            json=consultation,
            headers={"Origin": base, "X-CSRF-Token": csrf},
        ) as resp:
            seen["consultation"] = [resp.status, await resp.json()]
    return seen


def session(base: str, ca_file: str) -> aiohttp.ClientSession:
    """Trusting only ``ca_file``; cookies kept for an IP address host too."""
    connector = aiohttp.TCPConnector(ssl=ssl.create_default_context(cafile=ca_file))
    return aiohttp.ClientSession(
        base, connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)
    )


async def second_step(http: aiohttp.ClientSession, base: str, secret: str) -> tuple[int, str, bool]:
    """The TOTP step: its status, the CSRF token and whether the session cookie is Secure."""
    code = pyotp.TOTP(secret).now()
    async with http.post("/api/auth/totp", json={"code": code}, headers={"Origin": base}) as r:
        if r.status != 200:
            return r.status, "", False
        cookie = r.cookies["tc_session"]
        return r.status, (await r.json())["csrf_token"], bool(cookie["secure"])


def main() -> None:
    step, *args = sys.argv[1:]
    work = set_up(*args) if step == "setup" else create_consultation(*args)
    print(json.dumps(asyncio.run(work)))


if __name__ == "__main__":
    main()
