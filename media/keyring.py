"""Master keys of the recordings, by id: the current one seals new recordings, older ones read.

Files (all base64, mode 0600, read through ``config.read_key_file``):

- the current master key: ``Settings.recording_key_path`` (default
  ``<data_dir>/keys/recording-master.key``, generated on first run of the embedded default);
- older master keys: ``<directory of the current key>/recording-keys/<key id in hex>.key``.

A key id is derived from the key itself (HKDF-SHA256, 8 bytes), so a file cannot carry the
wrong id: an archived file whose name disagrees with its content is refused.

Rotation (:func:`rotate_master_key`) copies the current key into the archive first, then
atomically replaces the current file with a new key: at every instant each key is on disk at
least once, so new recordings use the new id and old ones stay readable. Retiring an old key
(deleting its archive file) crypto-shreds every recording sealed with it.
"""

from __future__ import annotations

import base64
import fcntl
import logging
import os
import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from config import ConfigError, Settings, load_or_create_key, read_key_file

log = logging.getLogger(__name__)

KEY_ID_BYTES = 8
MASTER_KEY_BYTES = 32
ARCHIVE_DIR_NAME = "recording-keys"

_KEY_ID_INFO = b"teleconsult recording v1 master key id"
_WRAP_KEY_INFO = b"teleconsult recording v1 data key wrapping"


def _derive(material: bytes, info: bytes, length: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info).derive(material)


class MasterKey:
    """One master key: its id and the AES-256 key that wraps recordings' data keys.

    Only derived values are kept (the file's material may be longer than 32 bytes). The repr
    shows the id, never key material.
    """

    __slots__ = ("_wrap_key", "key_id")

    def __init__(self, key_id: bytes, wrap_key: bytes) -> None:
        if len(key_id) != KEY_ID_BYTES:
            raise ValueError(f"key id must be {KEY_ID_BYTES} bytes")
        if len(wrap_key) != MASTER_KEY_BYTES:
            raise ValueError(f"wrapping key must be {MASTER_KEY_BYTES} bytes")
        self.key_id = key_id
        self._wrap_key = wrap_key

    @classmethod
    def from_material(cls, material: bytes) -> MasterKey:
        if len(material) < MASTER_KEY_BYTES:
            raise ValueError(f"master key material must be at least {MASTER_KEY_BYTES} bytes")
        return cls(
            _derive(material, _KEY_ID_INFO, KEY_ID_BYTES),
            _derive(material, _WRAP_KEY_INFO, MASTER_KEY_BYTES),
        )

    @classmethod
    def generate(cls) -> MasterKey:
        return cls.from_material(secrets.token_bytes(MASTER_KEY_BYTES))

    @property
    def wrap_key(self) -> bytes:
        return self._wrap_key

    @property
    def key_id_hex(self) -> str:
        return self.key_id.hex()

    def __repr__(self) -> str:
        return f"MasterKey(id={self.key_id_hex})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MasterKey):
            return NotImplemented
        return secrets.compare_digest(self._wrap_key, other._wrap_key)

    def __hash__(self) -> int:
        return hash(self.key_id)


class Keyring:
    """An immutable set of master keys by id; ``current`` seals new recordings."""

    def __init__(self, current: MasterKey, older: Iterable[MasterKey] = ()) -> None:
        self._current = current
        self._keys: dict[bytes, MasterKey] = {key.key_id: key for key in older}
        self._keys[current.key_id] = current

    @property
    def current(self) -> MasterKey:
        return self._current

    def get(self, key_id: bytes) -> MasterKey | None:
        return self._keys.get(key_id)

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._keys

    def __iter__(self) -> Iterator[MasterKey]:
        return iter(self._keys.values())

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        older = sorted(k.key_id_hex for k in self._keys.values() if k is not self._current)
        return f"Keyring(current={self._current.key_id_hex}, older={older})"


def archive_dir_for(current_path: Path) -> Path:
    return current_path.parent / ARCHIVE_DIR_NAME


def load_keyring(current_path: Path, *, create: bool, archive_dir: Path | None = None) -> Keyring:
    """Read the current master key (generated when missing and ``create``) and the archive."""
    current = MasterKey.from_material(load_or_create_key(current_path, create=create))
    archive = archive_dir if archive_dir is not None else archive_dir_for(current_path)
    return Keyring(current, _read_archive(archive))


def load_keyring_from_settings(settings: Settings) -> Keyring:
    # A configured key file must exist; the embedded default is generated on first run.
    return load_keyring(settings.recording_key_path, create=not settings.recording.master_key_file)


def _read_archive(archive: Path) -> list[MasterKey]:
    if not archive.is_dir():
        return []
    keys = []
    for path in sorted(archive.glob("*.key")):
        key = MasterKey.from_material(read_key_file(path))
        if path.stem != key.key_id_hex:
            raise ConfigError(
                f"{path}: file name does not match the id of the key it holds ({key.key_id_hex})"
            )
        keys.append(key)
    return keys


def rotate_master_key(current_path: Path, *, archive_dir: Path | None = None) -> Keyring:
    """Archive the current master key under its id, then make a new key current.

    Crash-safe: the old key is durable in the archive before the current file is replaced
    (write to a temporary file, fsync, rename, fsync the directory).
    """
    archive = archive_dir if archive_dir is not None else archive_dir_for(current_path)
    read_key_file(current_path)  # fail before creating anything when there is no key
    archive.mkdir(mode=0o700, parents=True, exist_ok=True)
    lock_fd = os.open(archive / ".rotation.lock", os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock_fd, fcntl.LOCK_EX)  # two rotations at once would lose a key
        return _rotate_locked(current_path, archive)
    finally:
        os.close(lock_fd)


def _rotate_locked(current_path: Path, archive: Path) -> Keyring:
    old_material = read_key_file(current_path)
    old = MasterKey.from_material(old_material)
    archived = archive / f"{old.key_id_hex}.key"
    if archived.exists():
        if MasterKey.from_material(read_key_file(archived)) != old:
            raise ConfigError(f"{archived}: holds a different key than {current_path}")
    else:
        _write_key_file(archived, old_material)
    new_material = secrets.token_bytes(MASTER_KEY_BYTES)
    pending = current_path.with_name(current_path.name + ".new")
    pending.unlink(missing_ok=True)  # left over by a rotation that died before its rename
    _write_key_file(pending, new_material)
    os.replace(pending, current_path)
    _fsync_dir(current_path.parent)
    new = MasterKey.from_material(new_material)
    log.info("recording master key rotated: %s -> %s", old.key_id_hex, new.key_id_hex)
    return Keyring(new, _read_archive(archive))


def rotate_master_key_from_settings(settings: Settings) -> Keyring:
    return rotate_master_key(settings.recording_key_path)


def _write_key_file(path: Path, material: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, base64.b64encode(material) + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
