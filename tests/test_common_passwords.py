"""The shipped list of common passwords: its size, its case folding, one load per process."""

from __future__ import annotations

from signaling.accounts import common_passwords
from signaling.accounts.common_passwords import is_common


def test_the_list_holds_the_30000_most_common_passwords_case_folded() -> None:
    listed = common_passwords.common_passwords()
    assert len(listed) == 30_000
    assert all(word == word.casefold() and word.strip() == word and word for word in listed)
    assert {"123456", "password", "qwerty123456", "1qaz2wsx3edc"} <= listed


def test_a_password_is_common_whatever_its_case_and_a_passphrase_is_not() -> None:
    assert is_common("PassWord") and is_common("QWERTY123456")
    assert not is_common("correct horse battery staple")
    assert not is_common("")


def test_the_list_is_read_once() -> None:
    assert common_passwords.common_passwords() is common_passwords.common_passwords()
