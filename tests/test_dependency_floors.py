"""The dependency bounds in pyproject.toml are true, and the lock files keep to them.

The floors check installs the oldest release each bound allows (``name==bound``, transitive
dependencies left to pip's newest compatible choice), installs the project over them with
``--no-deps`` and setuptools at its build-system bound, then runs a subset of the suite (units,
HTTP, aiortc signaling and recording; no browser) with that interpreter. It runs in CI with the
rest of the suite: the venv costs ~30 s (pip's download cache makes it cheaper on a machine that
has built it once), the subset ~1.5 min on 2 busy cores. The venv is kept under the system temp
directory, keyed by the pins and the Python version, so a developer's second run only reinstalls
the project. The subset runs in a non-UTC time zone so a dependency that mixes naive UTC and
local times shows (itsdangerous 1.x did).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

from tests.conftest import deadline

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = ROOT / "pyproject.toml"
RUNTIME_LOCK = ROOT / "requirements.lock"
TEST_LOCK = ROOT / "requirements-test.lock"

# Units, HTTP and CLI, and the aiortc peers (call, recording through the muxer): every
# dependency is exercised, in ~1.5 min. Browser tests need Chromium and minutes more.
FLOOR_SUBSET = [
    "tests/test_tokens.py",
    "tests/test_sdp.py",
    "tests/test_config.py",
    "tests/test_store.py",
    "tests/test_audit_redis.py",
    "tests/test_metrics.py",
    "tests/test_http.py",
    "tests/test_run.py",
    "tests/test_signaling_call.py",
    "tests/test_signaling_recording.py",
    "tests/test_media_crypto.py",
    "tests/test_media_recorder_units.py",
]
# Races of the code or the test, not of a dependency; they fail now and then on any versions
# (here more often than on the lock's), and the whole suite still runs them.
FLOOR_DESELECT = [
    # routes_auth.setup: a request that finds no user yet, then the nonce already used by the
    # winner, answers setup_link_invalid (403) instead of setup_done (409).
    "tests/test_http.py::test_parallel_setups_with_one_link_create_exactly_one_admin",
    # The SIGKILL may land mid-segment: "authentication failed", not "missing".
    "tests/test_media_crypto.py::test_a_writer_killed_midway_is_refused_then_recovered_up_to_the_cut",
]
# Central European time as a POSIX rule: needs no tzdata, never UTC.
NON_UTC_TZ = "CET-1CEST,M3.5.0,M10.5.0/3"
CACHE_ROOT = Path(tempfile.gettempdir()) / "teleconsult-dependency-floors"


def declared() -> dict[str, list[Requirement]]:
    """The runtime dependencies, the test extra and the build-system requirements."""
    data = tomllib.loads(PYPROJECT.read_text())
    return {
        "runtime": [Requirement(r) for r in data["project"]["dependencies"]],
        "test": [Requirement(r) for r in data["project"]["optional-dependencies"]["test"]],
        "build": [Requirement(r) for r in data["build-system"]["requires"]],
    }


def floors() -> dict[NormalizedName, Version]:
    """name -> its lower bound; a name bound in several groups gets the highest bound."""
    found: dict[NormalizedName, Version] = {}
    for group, requirements in declared().items():
        for req in requirements:
            specs = list(req.specifier)
            assert len(specs) == 1 and specs[0].operator == ">=", (
                f"{group} requirement {req} must be a single lower bound (name>=version): "
                "the floors check pins that bound"
            )
            name = canonicalize_name(req.name)
            bound = Version(specs[0].version)
            found[name] = max(found.get(name, bound), bound)
    return found


def read_lock(path: Path) -> dict[NormalizedName, tuple[Version, int]]:
    """name -> (pinned version, number of hashes) from a `--generate-hashes` lock file."""
    entries: dict[NormalizedName, tuple[Version, int]] = {}
    current: NormalizedName | None = None
    for line in path.read_text().splitlines():
        pin = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if pin:
            current = canonicalize_name(pin.group(1))
            assert current not in entries, f"{path.name}: {current} pinned twice"
            entries[current] = (Version(pin.group(2)), 0)
        elif current is not None and line.strip().startswith("--hash=sha256:"):
            version, hashes = entries[current]
            entries[current] = (version, hashes + 1)
        elif line and not line.startswith((" ", "#")):
            raise AssertionError(f"{path.name}: unexpected line {line!r}")
    return entries


def test_lock_files_pin_every_declared_package_with_hashes_within_its_bounds() -> None:
    groups = declared()
    runtime = read_lock(RUNTIME_LOCK)
    test = read_lock(TEST_LOCK)
    for path, lock, wanted in (
        (RUNTIME_LOCK, runtime, groups["runtime"] + groups["build"]),
        (TEST_LOCK, test, groups["runtime"] + groups["test"] + groups["build"]),
    ):
        unhashed = sorted(name for name, (_, hashes) in lock.items() if hashes == 0)
        assert not unhashed, f"{path.name}: pinned without a hash: {unhashed}"
        for req in wanted:
            name = canonicalize_name(req.name)
            assert name in lock, f"{path.name} lacks {name}: run scripts/lock.sh"
            assert req.specifier.contains(lock[name][0], prereleases=True), (
                f"{path.name} pins {name}=={lock[name][0]}, outside {req}: run scripts/lock.sh"
            )
    # What the tests run is what ships.
    differing = {
        name: (str(runtime[name][0]), str(test[name][0]))
        for name in runtime
        if name in test and runtime[name][0] != test[name][0]
    }
    missing = sorted(set(runtime) - set(test))
    assert not differing and not missing, (
        f"the test lock must contain the runtime lock: differing {differing}, missing {missing}"
    )


def _run(
    args: list[str], timeout: float, cwd: Path | None = None, env: dict[str, str] | None = None
) -> str:
    done = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-60:])
        raise AssertionError(f"{' '.join(args[:6])} ... exited {done.returncode}:\n{tail}")
    return done.stdout


def _prune(keep: str) -> None:
    """Drops the venvs of earlier pin sets (hundreds of MB each) and builds abandoned a day ago."""
    for entry in CACHE_ROOT.iterdir():
        finished = re.fullmatch(r"py\d+-[0-9a-f]{16}", entry.name) is not None
        abandoned = not finished and time.time() - entry.stat().st_mtime > 86400
        if (finished and entry.name != keep) or abandoned:
            shutil.rmtree(entry, ignore_errors=True)


def floors_venv(pins: dict[NormalizedName, Version]) -> Path:
    """A venv holding exactly the pinned floors, built once per pin set and Python version.

    Only its interpreter is used (``bin/python -m ...``), which still works after the build
    directory is renamed into place; the console scripts would name the old path.
    """
    key = json.dumps([sys.version_info[:2], sorted((n, str(v)) for n, v in pins.items())])
    name = f"py{sys.version_info[0]}{sys.version_info[1]}-"
    name += hashlib.sha256(key.encode()).hexdigest()[:16]
    venv = CACHE_ROOT / name
    if (venv / "complete").exists():
        return venv
    CACHE_ROOT.mkdir(parents=True, exist_ok=True)
    _prune(keep=name)
    building = Path(tempfile.mkdtemp(prefix=f"{name}.", dir=CACHE_ROOT))
    try:
        _run([sys.executable, "-m", "venv", str(building)], timeout=deadline(120))
        # wheel: setuptools before 70.1 builds wheels only with it, and the project is built
        # without build isolation so that the setuptools building it is the pinned one.
        requirements = [f"{n}=={v}" for n, v in sorted(pins.items())] + ["wheel"]
        _run(
            [str(building / "bin" / "python"), "-m", "pip", "install", "--quiet", *requirements],
            timeout=deadline(900),
            env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
        )
        (building / "complete").write_text("\n".join(requirements) + "\n")
        shutil.rmtree(venv, ignore_errors=True)  # an unfinished one
        building.rename(venv)
    except OSError:
        if not (venv / "complete").exists():
            raise
        # Another run finished the same venv first.
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return venv


@pytest.mark.slow
def test_the_suite_subset_passes_on_the_oldest_allowed_dependencies(tmp_path: Path) -> None:
    pins = floors()
    venv = floors_venv(pins)
    python = str(venv / "bin" / "python")
    _run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "."],
        timeout=deadline(300),
        cwd=ROOT,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    report = _run(
        [
            python,
            "-c",
            "import json, sys\nfrom importlib.metadata import version\n"
            "print(json.dumps({n: version(n) for n in sys.argv[1:]}))",
            *pins,
        ],
        timeout=deadline(60),
    )
    installed = {n: Version(v) for n, v in json.loads(report).items()}
    assert installed == pins
    # Every installed distribution's requirements hold, the project's included.
    _run([python, "-m", "pip", "check"], timeout=deadline(60))
    _run(
        [
            python,
            "-m",
            "pytest",
            *FLOOR_SUBSET,
            *(f"--deselect={test}" for test in FLOOR_DESELECT),
            "-q",
            "-p",
            "no:cacheprovider",
            "--basetemp",
            str(tmp_path / "subset"),
        ],
        timeout=deadline(600),
        cwd=ROOT,
        env={**os.environ, "TZ": NON_UTC_TZ},
    )
