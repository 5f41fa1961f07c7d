"""Settings: defaults, TOML file, environment; unknown keys and bad values stop start-up."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config import ConfigError, load_or_create_key, load_settings, read_key_file
from tests.cli import command_env
from tests.conftest import deadline

ROOT = Path(__file__).resolve().parent.parent


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "settings.toml"
    path.write_text(text)
    return path


def test_defaults_serve_localhost_8080_with_data_dir() -> None:
    settings = load_settings(environ={})
    assert settings.server.host == "127.0.0.1"
    assert settings.server.port == 8080
    assert settings.server.origin == "http://localhost:8080"
    assert settings.storage.backend == "sqlite"
    assert settings.storage.data_dir == "data"
    assert settings.security.lockout_threshold == 5
    assert settings.security.room_token_ttl_seconds <= 120


def test_file_then_environment_override(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        '[server]\nport = 9000\nhost = "0.0.0.0"\n[turn]\nstun_urls = ["stun:stun.example:3478"]\n',
    )
    settings = load_settings(path, environ={"TELECONSULT_SERVER_PORT": "9100"})
    assert settings.server.port == 9100
    assert settings.server.host == "0.0.0.0"
    assert settings.turn.stun_urls == ("stun:stun.example:3478",)


def test_environment_lists_and_booleans() -> None:
    settings = load_settings(
        environ={
            "TELECONSULT_TURN_STUN_URLS": "stun:a:3478, stun:b:3478",
            "TELECONSULT_SERVER_TRUST_PROXY_HEADERS": "yes",
        }
    )
    assert settings.turn.stun_urls == ("stun:a:3478", "stun:b:3478")
    assert settings.server.trust_proxy_headers is True


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("[server]\nprot = 1\n", "server.prot"),
        ("[sever]\nport = 1\n", "sever"),
        ('[server]\nport = "eighty"\n', "server.port"),
        ("[server]\nport = 70000\n", "server.port"),
        ('[storage]\nbackend = "mysql"\n', "storage.backend"),
        ("[security]\npassword_min_length = 6\n", "security.password_min_length"),
        ("[security]\nroom_token_ttl_seconds = 3600\n", "security.room_token_ttl_seconds"),
        ('[turn]\nturn_urls = ["turn:x:3478"]\n', "turn.secret_file"),
        ("[turn]\nrelay_only = true\n", "turn.relay_only"),
        ('[turn]\nstun_urls = "stun:x"\n', "turn.stun_urls"),
        ("[server]\ntrust_proxy_headers = 1\n", "server.trust_proxy_headers"),
        ('[server]\npublic_url = "visio.example"\n', "server.public_url"),
    ],
)
def test_unknown_key_or_bad_value_names_the_key(tmp_path: Path, text: str, names: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(tmp_path, text), environ={})
    message = str(info.value)
    assert message.startswith(names)
    assert "\n" not in message
    assert "expected" in message or "unknown" in message


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("TELECONSULT_SERVER_PORT", "x", "server.port"),
        ("TELECONSULT_SERVER_PROT", "1", "server.prot"),
        ("TELECONSULT_NOPE", "1", "TELECONSULT_NOPE"),
        ("TELECONSULT_SIGNALING_JOIN_TIMEOUT_SECONDS", "-1", "signaling.join_timeout_seconds"),
    ],
)
def test_bad_environment_names_the_key(name: str, value: str, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(environ={name: value})
    assert str(info.value).startswith(key)


def test_invalid_toml_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(write(tmp_path, "[server\n"), environ={})


def test_key_file_is_generated_with_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "secret.key"
    key = load_or_create_key(path, create=True)
    assert len(key) == 32
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert load_or_create_key(path, create=True) == key  # generated once


def test_world_readable_key_file_refuses(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    load_or_create_key(path, create=True)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        read_key_file(path)


def test_missing_configured_key_file_refuses(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_or_create_key(tmp_path / "absent.key", create=False)


def test_server_refuses_to_start_with_a_readable_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    load_or_create_key(data / "keys" / "secret.key", create=True)
    (data / "keys" / "secret.key").chmod(0o640)
    result = subprocess.run(
        [sys.executable, "run.py", "serve", "--data-dir", str(data), "--port", "1"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=deadline(60),
        env={**command_env(), "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 2
    assert "accessible by group or others" in result.stderr
    assert result.stderr.count("\n") == 1  # one clear line, no traceback


def test_server_refuses_to_start_with_an_unknown_setting(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "run.py", "--data-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=deadline(60),
        env={**command_env(), "TELECONSULT_SERVER_COLOUR": "blue"},
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "configuration error: server.colour: unknown setting (known: body_timeout_seconds, "
        "header_timeout_seconds, host, keepalive_timeout_seconds, lan_addresses, max_body_bytes, "
        "max_connections, port, public_url, tls_cert_file, tls_key_file, trust_proxy_headers)"
    )


def test_recordings_directory_defaults_under_the_data_dir_or_is_the_shared_mount() -> None:
    assert load_settings(environ={}).recordings_path == Path("data") / "recordings"
    shared = load_settings(environ={"TELECONSULT_RECORDING_DIRECTORY": "/mnt/recordings"})
    assert shared.recordings_path == Path("/mnt/recordings")
