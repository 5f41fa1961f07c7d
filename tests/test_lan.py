"""The README's LAN recipe (``--host 0.0.0.0 --self-signed``) works for another device of the
network: the service prints its LAN URLs, names them in its certificate, accepts them as page
origins and builds invite links on one of them. The other device is a network namespace the
test makes (tests/netns.py): only its veth addresses are targets."""

from __future__ import annotations

import ipaddress
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

import run
from config import ConfigError, ServerSettings, Settings
from config.lan import machine_addresses, where_to_open, with_lan_addresses
from signaling.accounts.selfsigned import certificate_names, ensure_self_signed
from tests.cli import ROOT, add_doctor, read_until, start_service
from tests.conftest import deadline
from tests.netns import Namespace, lan_namespace
from tests.servers import free_port, stop_process

PORT = 8443


def checked(server: ServerSettings) -> ServerSettings:
    return Settings(server=server).validate().server


@pytest.fixture
def lan() -> Iterator[Namespace]:
    with lan_namespace() as namespace:
        yield namespace


def test_lan_addresses_are_origins_and_the_first_makes_the_links() -> None:
    server = checked(
        ServerSettings(
            host="::",
            port=PORT,
            tls_cert_file="c.pem",
            tls_key_file="k.pem",
            lan_addresses=("192.168.1.20", "fd00::5", "cabinet.local"),
        )
    )
    assert server.origin == "https://192.168.1.20:8443"
    assert server.lan_origins == (
        "https://192.168.1.20:8443",
        "https://[fd00::5]:8443",
        "https://cabinet.local:8443",
    )
    assert server.allowed_origins == {
        *server.lan_origins,
        "https://localhost:8443",
        "https://127.0.0.1:8443",
        "https://[::1]:8443",
    }
    assert server.secure_cookies


def test_lan_addresses_only_where_they_are_the_links() -> None:
    for server in (
        ServerSettings(host="127.0.0.1", lan_addresses=("192.168.1.20",)),
        ServerSettings(
            host="0.0.0.0",
            public_url="https://visio.clinic.example",
            lan_addresses=("192.168.1.20",),
        ),
        ServerSettings(host="0.0.0.0", lan_addresses=("not an address!",)),
    ):
        with pytest.raises(ConfigError, match=r"^server\.lan_addresses: expected"):
            checked(server)


def test_addresses_are_found_only_when_listening_everywhere_without_a_public_url() -> None:
    found = with_lan_addresses(ServerSettings(host="0.0.0.0"))
    assert found.lan_addresses == machine_addresses(ipv6=False)
    for kept in (
        ServerSettings(host="127.0.0.1"),
        ServerSettings(host="0.0.0.0", public_url="https://visio.clinic.example"),
        ServerSettings(host="0.0.0.0", lan_addresses=("10.9.9.9",)),
    ):
        assert with_lan_addresses(kept) == kept


def test_lan_address_flag_chooses_the_links_address(tmp_path: Path) -> None:
    args = run.build_parser().parse_args(
        ["serve", "--host", "0.0.0.0", "--lan-address", "10.9.9.9", "--data-dir", str(tmp_path)]
    )
    server = run._settings(args).server
    assert server.lan_addresses == ("10.9.9.9",)
    assert server.origin == "http://10.9.9.9:8080"
    text = where_to_open(server, self_signed=False)
    assert "http://10.9.9.9:8080  (invite links use this one)" in text
    assert "--self-signed" in text  # no https: the camera would be refused on a phone


def test_the_default_start_names_both_loopback_urls() -> None:
    text = where_to_open(ServerSettings(), self_signed=False)
    assert text == (
        "Open it in a browser on this computer: http://localhost:8080 (or http://127.0.0.1:8080)"
    )


def test_self_signed_certificate_names_every_address_and_is_remade_for_a_new_one(
    tmp_path: Path,
) -> None:
    cert_path, key_path = ensure_self_signed(tmp_path, ("0.0.0.0", "192.168.1.20"))
    assert key_path.stat().st_mode & 0o777 == 0o600
    first = cert_path.read_bytes()
    assert names_in(cert_path) == {"localhost", "127.0.0.1", "::1", "192.168.1.20"}
    # The same addresses keep the certificate a browser already accepted.
    ensure_self_signed(tmp_path, ("192.168.1.20",))
    assert cert_path.read_bytes() == first
    # A new LAN address (another network) makes one naming it.
    ensure_self_signed(tmp_path, ("10.1.2.3", "cabinet.local"))
    assert cert_path.read_bytes() != first
    assert {"10.1.2.3", "cabinet.local"} <= names_in(cert_path)


def names_in(cert_path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    return {str(name.value) for name in certificate_names(cert)}


def test_machine_addresses_find_a_lan_address_and_no_loopback(lan: Namespace) -> None:
    found = machine_addresses(ipv6=True)
    assert lan.host_address in found
    assert lan.inner_address not in found  # the other device's, not this machine's
    for address in map(ipaddress.ip_address, found):
        assert not (address.is_loopback or address.is_link_local), address


def test_a_device_of_the_network_sets_up_and_gets_invite_links_on_the_lan_url(
    lan: Namespace, tmp_path: Path
) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    proc = start_service(
        "--host", "0.0.0.0", "--port", str(port), "--self-signed", data_dir=data_dir
    )
    ca_file = str(data_dir / "tls" / "self-signed.crt")
    lan_url = f"https://{lan.host_address}:{port}"
    try:
        out = read_until(proc, r"/setup/\S+", limit=30)
        printed = re.findall(r"https://[^\s/]+:\d+(?=[\s)]|$)", out)
        assert f"https://localhost:{port}" in printed and f"https://127.0.0.1:{port}" in printed
        assert lan_url in printed
        chosen = re.search(r"(https://\S+)  \(invite links use this one\)", out)
        assert chosen, out
        setup = re.search(rf"{re.escape(chosen.group(1))}/setup/(\S+)", out)
        assert setup, out

        foreign = f"https://{lan.inner_address}:{port}"
        set_up = from_the_device(lan, "setup", lan_url, ca_file, setup.group(1), foreign)
        _, doctor = add_doctor(data_dir)
        invited = from_the_device(lan, "doctor", lan_url, ca_file, doctor.secret)
    finally:
        stop_process(proc)  # type: ignore[arg-type]
        assert proc.stdout is not None
        proc.stdout.close()
    # The certificate the device checked for the address it opened names every printed one.
    hosts = {url.removeprefix("https://").rsplit(":", 1)[0].strip("[]") for url in printed}
    assert hosts <= set(set_up["certificate_names"])
    assert set_up["setup_page"] == 200
    refused_status, refused = set_up["setup_from_foreign_origin"]
    assert refused_status == 403 and refused["error"]["code"] == "origin_refused"
    assert set_up["setup"][0] == 201, set_up["setup"]
    assert set_up["enrol"] == 200 and set_up["admin_signed_in"] == 200
    assert invited["doctor_password"] == 200 and invited["doctor_signed_in"] == 200
    assert invited["session_cookie_secure"]
    status, consultation = invited["consultation"]
    assert status == 201, consultation
    assert consultation["invite_url"].startswith(f"{chosen.group(1)}/join/")


def from_the_device(lan: Namespace, *args: str) -> dict[str, Any]:
    """tests/lan_client.py run inside the namespace: what it saw."""
    visit = subprocess.run(
        lan.exec_args(sys.executable, "-m", "tests.lan_client", *args),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=deadline(60),
    )
    assert visit.returncode == 0, visit.stderr
    seen: dict[str, Any] = json.loads(visit.stdout)
    return seen
