"""Key files: read with a permission check, or generated once with mode 0600."""

from __future__ import annotations

import base64
import os
import secrets
import stat
from pathlib import Path

from config.errors import ConfigError

KEY_BYTES = 32


def _read_private(path: Path, what: str) -> str:
    """A file's text; refuse a file that group or others could read."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise ConfigError(f"{path}: {what} does not exist") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path}: {what} is accessible by group or others "
            f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
        )
    return path.read_text(encoding="utf-8")


def read_password_file(path: Path) -> str:
    """A password kept in a file of its own (its first line, without the line end)."""
    password = _read_private(path, "password file").split("\n", 1)[0].rstrip("\r")
    if not password:
        raise ConfigError(f"{path}: the password file is empty")
    return password


def read_key_file(path: Path) -> bytes:
    """Read a base64 key; refuse a file that group or others could read."""
    raw = _read_private(path, "key file").strip()
    if not raw.isascii():
        raise ConfigError(f"{path}: expected a base64-encoded key")
    try:
        key = base64.b64decode(raw, validate=True)
    except ValueError:
        raise ConfigError(f"{path}: expected a base64-encoded key") from None
    if len(key) < KEY_BYTES:
        raise ConfigError(f"{path}: expected a key of at least {KEY_BYTES} bytes")
    return key


def load_or_create_key(path: Path, create: bool) -> bytes:
    """Return the key at ``path``; when missing and ``create``, generate it (0600, dir 0700)."""
    if not path.exists():
        if not create:
            raise ConfigError(f"{path}: key file does not exist")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        encoded = base64.b64encode(secrets.token_bytes(KEY_BYTES)) + b"\n"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, encoded)
        finally:
            os.close(fd)
    return read_key_file(path)
