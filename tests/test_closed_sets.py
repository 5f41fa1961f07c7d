"""Closed sets are types (error codes, audit actions, roles): mypy --strict checks every place a
member is written, and these tests check what mypy cannot see: that each set and the table
built on it agree, and that a value which reaches them from data is still refused at run time."""

from __future__ import annotations

from typing import Any, get_args

import pytest

from signaling.errors import ERROR_CODES, KINDS, AppError, ErrorCode


def test_every_error_code_has_its_kind_in_the_order_the_docs_list_them() -> None:
    assert ERROR_CODES == get_args(ErrorCode)
    assert list(KINDS) == list(ERROR_CODES)
    assert all(code == kind.code for code, kind in KINDS.items())


def test_an_error_code_outside_the_set_is_refused_at_run_time() -> None:
    code: Any = "no_such_code"  # as if it came from data: mypy cannot see it
    with pytest.raises(ValueError, match="unknown error code"):
        AppError(code)
    assert AppError("not_found").http_status == 404
