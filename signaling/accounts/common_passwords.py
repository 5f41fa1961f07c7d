"""The offline list of common and breached passwords a new password must not be.

``common_passwords.txt.gz`` beside this module holds the 30,000 most common passwords of the
zxcvbn password-strength estimator's frequency list (PyPI ``zxcvbn`` 4.5.0, MIT licence,
itself taken from leaked password corpora), case folded, one a line, sorted. The list is read
once, on first use, into a frozenset: a look-up is one hash, and no network is ever asked.
"""

from __future__ import annotations

import gzip
from functools import cache
from importlib import resources

LIST_FILE = "common_passwords.txt.gz"


@cache
def common_passwords() -> frozenset[str]:
    raw = resources.files(__package__).joinpath(LIST_FILE).read_bytes()
    return frozenset(gzip.decompress(raw).decode().split("\n")) - {""}


def is_common(password: str) -> bool:
    """Whether ``password`` is on the list, whatever its letters' case."""
    return password.casefold() in common_passwords()
