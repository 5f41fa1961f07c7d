"""What the clinic's details may hold, checked alike in the TOML ([clinic], at start) and on
the admin page (POST /api/clinic): one short line each, no control or format character (a
line feed would break an email header, a bidirectional override would make a phone number
read backwards), and a phone that looks like one.

Here, in ``config/``, because the settings import nothing of the project and the API may
import the settings.
"""

from __future__ import annotations

import re
import unicodedata

# The longest each field may be, in characters; the emergency lines are a sentence.
MAX_LENGTHS: dict[str, int] = {
    "name": 120,
    "phone": 40,
    "hours": 120,
    "emergency_fr": 200,
    "emergency_en": 200,
}
# Fields that may be empty: no phone, no hours given. A name and the emergency lines may not.
OPTIONAL = frozenset({"phone", "hours"})
# Digits with the usual separators, an optional leading + (e.g. "01 23 45 67 89",
# "+33 (0)1 23 45 67 89", "01.23.45.67.89"), and 2 to 20 digits (the 15 is a phone number).
_PHONE = re.compile(r"\+?[0-9 .\-()/]+")
_PHONE_DIGITS = (2, 20)

DEFAULT_EMERGENCY_FR = "En cas d'urgence, appelez le 15 ou le 112."
DEFAULT_EMERGENCY_EN = "In an emergency, call 15 or 112."


def clinic_field_problem(name: str, value: str) -> str | None:
    """What ``value`` should be to be the clinic's ``name`` field (read after "expected"), or
    None when it is fine."""
    most = MAX_LENGTHS[name]
    if not value.strip():
        return None if name in OPTIONAL else "some text (it may not be empty)"
    if len(value) > most:
        return f"at most {most} characters"
    if any(unicodedata.category(c).startswith("C") for c in value):
        return "one line, without control characters"
    if name == "phone":
        digits = sum(c.isdigit() for c in value)
        low, high = _PHONE_DIGITS
        if _PHONE.fullmatch(value) is None or not low <= digits <= high:
            return (
                f"a phone number: {low} to {high} digits, spaces, dots, hyphens, brackets and "
                'a leading +, e.g. "01 23 45 67 89"'
            )
    return None
