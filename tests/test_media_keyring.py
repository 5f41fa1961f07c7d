"""Recording master keys: loading from the settings' key file, ids, rotation, retirement."""

from __future__ import annotations

import base64
import io
import stat
from pathlib import Path

import pytest

from config import ConfigError, RecordingSettings, Settings, StorageSettings
from media.encrypted_recording import (
    HEADER_SIZE,
    RecordingIntegrityError,
    RecordingWriter,
    decrypt_file,
    parse_header,
    rewrap,
)
from media.keyring import (
    Keyring,
    MasterKey,
    archive_dir_for,
    load_keyring,
    load_keyring_from_settings,
    rotate_master_key,
)


def record(path: Path, keyring: Keyring, data: bytes) -> Path:
    with RecordingWriter.create(path, keyring.current) as writer:
        writer.write(data)
    return path


def play(path: Path, keyring: Keyring) -> bytes:
    out = io.BytesIO()
    decrypt_file(path, keyring, out)
    return out.getvalue()


@pytest.fixture
def key_path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "keys" / "recording-master.key"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_default_key_is_generated_once_under_the_data_dir(tmp_path: Path) -> None:
    settings = Settings(storage=StorageSettings(data_dir=str(tmp_path / "data"))).validate()
    first = load_keyring_from_settings(settings)
    assert settings.recording_key_path.exists()
    assert mode(settings.recording_key_path) == 0o600
    again = load_keyring_from_settings(settings)
    assert again.current.key_id == first.current.key_id
    assert again.current == first.current
    assert len(again) == 1


def test_a_configured_key_file_must_exist(tmp_path: Path) -> None:
    settings = Settings(
        storage=StorageSettings(data_dir=str(tmp_path / "data")),
        recording=RecordingSettings(master_key_file=str(tmp_path / "absent.key")),
    ).validate()
    with pytest.raises(ConfigError, match="does not exist"):
        load_keyring_from_settings(settings)


def test_a_key_file_readable_by_others_is_refused(key_path: Path) -> None:
    load_keyring(key_path, create=True)
    key_path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_keyring(key_path, create=False)


def test_the_key_id_is_derived_from_the_key_and_shows_no_material(key_path: Path) -> None:
    keyring = load_keyring(key_path, create=True)
    material = base64.b64decode(key_path.read_text())
    assert MasterKey.from_material(material).key_id == keyring.current.key_id
    assert MasterKey.generate().key_id != keyring.current.key_id
    shown = repr(keyring) + repr(keyring.current)
    assert keyring.current.key_id_hex in shown
    assert material.hex() not in shown
    assert keyring.current.wrap_key.hex() not in shown
    assert keyring.current.wrap_key != material[:32]  # keys are derived, not used raw


def test_rotation_seals_new_recordings_with_a_new_key_and_keeps_old_ones_readable(
    tmp_path: Path, key_path: Path
) -> None:
    before = load_keyring(key_path, create=True)
    old_recording = record(tmp_path / "old.enc", before, b"before rotation")

    rotated = rotate_master_key(key_path)

    assert rotated.current.key_id != before.current.key_id
    assert load_keyring(key_path, create=False).current == rotated.current
    archived = archive_dir_for(key_path) / f"{before.current.key_id_hex}.key"
    assert mode(archived) == 0o600
    assert mode(key_path) == 0o600
    after = load_keyring(key_path, create=False)
    assert before.current.key_id in after
    new_recording = record(tmp_path / "new.enc", after, b"after rotation")
    assert parse_header(new_recording.read_bytes()).key_id == rotated.current.key_id
    assert parse_header(old_recording.read_bytes()).key_id == before.current.key_id
    assert play(old_recording, after) == b"before rotation"
    assert play(new_recording, after) == b"after rotation"
    with pytest.raises(RecordingIntegrityError, match="not in the key ring"):
        play(new_recording, before)


def test_every_older_key_survives_successive_rotations(tmp_path: Path, key_path: Path) -> None:
    recordings = []
    for round_ in range(3):
        keyring = load_keyring(key_path, create=True)
        recordings.append(record(tmp_path / f"{round_}.enc", keyring, f"round {round_}".encode()))
        rotate_master_key(key_path)
    keyring = load_keyring(key_path, create=False)
    assert len(keyring) == 4
    assert [play(path, keyring) for path in recordings] == [b"round 0", b"round 1", b"round 2"]
    assert not key_path.with_name(key_path.name + ".new").exists()


def test_retiring_an_old_key_shreds_its_recordings(tmp_path: Path, key_path: Path) -> None:
    before = load_keyring(key_path, create=True)
    recording = record(tmp_path / "old.enc", before, b"retained too long")
    rotate_master_key(key_path)
    (archive_dir_for(key_path) / f"{before.current.key_id_hex}.key").unlink()
    with pytest.raises(RecordingIntegrityError, match="not in the key ring"):
        play(recording, load_keyring(key_path, create=False))


def test_an_archived_key_under_the_wrong_name_is_refused(key_path: Path) -> None:
    load_keyring(key_path, create=True)
    rotate_master_key(key_path)
    (archived,) = archive_dir_for(key_path).glob("*.key")
    archived.rename(archived.with_name("0000000000000000.key"))
    with pytest.raises(ConfigError, match="does not match the id"):
        load_keyring(key_path, create=False)


def test_rotation_without_a_current_key_fails_cleanly(key_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        rotate_master_key(key_path)
    assert not archive_dir_for(key_path).exists()


def test_rewrap_moves_a_recording_to_the_current_key_so_the_old_one_can_retire(
    tmp_path: Path, key_path: Path
) -> None:
    before = load_keyring(key_path, create=True)
    data = bytes(range(256)) * 1000
    recording = record(tmp_path / "old.enc", before, data)
    segments_before = recording.read_bytes()[HEADER_SIZE:]
    after = rotate_master_key(key_path)

    with pytest.raises(RecordingIntegrityError, match="context"):
        rewrap(recording, after, context=b"another recording")
    assert rewrap(recording, after)
    assert not rewrap(recording, after)  # already under the current key

    assert parse_header(recording.read_bytes()).key_id == after.current.key_id
    assert recording.read_bytes()[HEADER_SIZE:] == segments_before  # no re-encryption
    (archive_dir_for(key_path) / f"{before.current.key_id_hex}.key").unlink()
    assert play(recording, load_keyring(key_path, create=False)) == data


def test_rewrap_refuses_a_recording_it_cannot_authenticate(tmp_path: Path, key_path: Path) -> None:
    keyring = load_keyring(key_path, create=True)
    recording = record(tmp_path / "rec.enc", Keyring(MasterKey.generate()), b"foreign")
    original = recording.read_bytes()
    with pytest.raises(RecordingIntegrityError, match="not in the key ring"):
        rewrap(recording, keyring)
    assert recording.read_bytes() == original
