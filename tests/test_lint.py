"""The whole tree stays clean under the project's own checks: mypy --strict as pyproject's
[tool.mypy] sets it (every Python file: the packages, the tests, the benchmarks, run.py), ruff's
lint rules and ruff's formatting. A bare ``mypy`` or ``ruff`` at the root runs the same."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import deadline

ROOT = Path(__file__).resolve().parent.parent
CHECKED = ("config", "signaling", "media", "tests", "bench")


def run_module(*args: str) -> subprocess.CompletedProcess[str]:
    # From the root, so that mypy reads pyproject.toml and keeps its incremental cache in the
    # repository's .mypy_cache (a warm run takes about a second).
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=deadline(300),
    )


def test_mypy_strict_passes_on_every_python_file() -> None:
    result = run_module("mypy")
    assert result.returncode == 0, result.stdout + result.stderr
    # The configuration names every file: a narrowed [tool.mypy] would pass on less.
    expected = sum(1 for folder in CHECKED for _ in (ROOT / folder).rglob("*.py")) + 1  # run.py
    checked = re.search(r"no issues found in (\d+) source files", result.stdout)
    assert checked, result.stdout
    assert int(checked.group(1)) == expected, result.stdout


def test_ruff_finds_nothing() -> None:
    result = run_module("ruff", "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_everything_is_formatted_as_ruff_formats_it() -> None:
    result = run_module("ruff", "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr
