"""Settings of the service: defaults, then a TOML file, then ``TELECONSULT_*`` environment.

This package imports nothing else of the project, so every other package can depend on it.
"""

from config.errors import ConfigError
from config.loader import load_settings
from config.secrets import load_or_create_key, read_key_file, read_password_file
from config.settings import (
    ClinicSettings,
    MailSettings,
    RecordingSettings,
    RetentionSettings,
    SecuritySettings,
    ServerSettings,
    Settings,
    SignalingSettings,
    StorageSettings,
    TurnSettings,
)

__all__ = [
    "ClinicSettings",
    "ConfigError",
    "MailSettings",
    "RecordingSettings",
    "RetentionSettings",
    "SecuritySettings",
    "ServerSettings",
    "Settings",
    "SignalingSettings",
    "StorageSettings",
    "TurnSettings",
    "load_or_create_key",
    "load_settings",
    "read_key_file",
    "read_password_file",
]
