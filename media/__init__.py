"""Media: recording files and their encryption (no HTTP, no sessions here).

- :mod:`media.encrypted_recording`: the encrypted file format (streaming AES-256-GCM), the
  writer PyAV muxes into, the reader, crypto-shredding.
- :mod:`media.keyring`: the recording master keys by id, loading and rotation.
"""

from media.encrypted_recording import (
    RecordingError,
    RecordingIntegrityError,
    RecordingReader,
    RecordingWriteError,
    RecordingWriter,
    decrypt_file,
    iter_plaintext,
    rewrap,
    shred,
)
from media.keyring import (
    Keyring,
    MasterKey,
    load_keyring,
    load_keyring_from_settings,
    rotate_master_key,
)

__all__ = [
    "Keyring",
    "MasterKey",
    "RecordingError",
    "RecordingIntegrityError",
    "RecordingReader",
    "RecordingWriteError",
    "RecordingWriter",
    "decrypt_file",
    "iter_plaintext",
    "load_keyring",
    "load_keyring_from_settings",
    "rewrap",
    "rotate_master_key",
    "shred",
]
