"""The clinic's details in effect: those an admin saved on the admin page (one meta value of
the store, so every backend keeps it and ``run.py store export`` carries it), else the
TOML's [clinic] section, the initial default.

Saved whole: once an admin saves the form, the stored values win over the TOML's until the
store is emptied; a later change of [clinic] in the TOML then no longer shows. The time zone
stays a setting (it is how the server writes times, not something a patient reads).
"""

from __future__ import annotations

import msgspec

from config import ClinicSettings
from signaling.store.base import Store

# The meta value's name (carried by the store export, see run.py).
CLINIC_META = "clinic_details"


class ClinicDetails(msgspec.Struct, frozen=True):
    """What the patient's pages, the error pages and the invitations say of the clinic."""

    name: str
    phone: str
    hours: str
    emergency_fr: str
    emergency_en: str

    def changed_fields(self, before: ClinicDetails) -> list[str]:
        return [f for f in self.__struct_fields__ if getattr(self, f) != getattr(before, f)]

    def emergency(self, language: str) -> str:
        return self.emergency_fr if language == "fr" else self.emergency_en


_decoder = msgspec.json.Decoder(ClinicDetails)


def from_settings(settings: ClinicSettings) -> ClinicDetails:
    # The settings' section holds each field under the same name (and the time zone besides).
    return ClinicDetails(**{f: getattr(settings, f) for f in ClinicDetails.__struct_fields__})


async def clinic_details(store: Store, settings: ClinicSettings) -> ClinicDetails:
    """The details in effect: the admin's saved ones, else the TOML's."""
    raw = await store.get_meta(CLINIC_META)
    return from_settings(settings) if raw is None else _decoder.decode(raw)


async def save_clinic_details(store: Store, details: ClinicDetails) -> None:
    await store.set_meta(CLINIC_META, msgspec.json.encode(details).decode())
