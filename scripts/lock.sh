#!/usr/bin/env bash
# Refreshes the lock files from pyproject.toml, for CPython 3.11 on Linux x86_64 (wheels up to
# manylinux_2_28: Debian 11 and later), whatever machine runs it:
#   requirements.lock       the runtime dependencies and setuptools (it builds the project)
#   requirements-test.lock  the same at the same versions, plus the test extra
# Every package, transitive ones included, is pinned with all its sha256 hashes, so
# `pip install --require-hashes -r ...` installs exactly these files.
# Pins already in a lock file are kept while pyproject.toml still allows them; extra arguments
# go to `uv pip compile` (`bash scripts/lock.sh --upgrade` moves everything to the newest
# releases, `--upgrade-package NAME` one package).
# uv does the resolving (pip-compile's job, and it can target another Python and platform);
# it is installed at a fixed version in a throwaway venv.
set -euo pipefail
cd "$(dirname "$0")/.."

UV_VERSION=0.13.9
tools="$(mktemp -d)"
trap 'rm -rf "$tools"' EXIT
python3 -m venv "$tools"
"$tools/bin/python" -m pip install -q --disable-pip-version-check "uv==$UV_VERSION"

build_requires="$(python3 -c '
import tomllib
with open("pyproject.toml", "rb") as f:
    print("\n".join(tomllib.load(f)["build-system"]["requires"]))
')"
compile=(
    "$tools/bin/uv" pip compile pyproject.toml -
    --python-version 3.11 --python-platform x86_64-manylinux_2_28
    --generate-hashes --custom-compile-command "bash scripts/lock.sh" --quiet
)
echo "$build_requires" | "${compile[@]}" "$@" -o requirements.lock
# Constrained by the runtime lock: the tests run the versions that ship.
echo "$build_requires" | "${compile[@]}" --extra test -c requirements.lock "$@" \
    -o requirements-test.lock
echo "requirements.lock: $(grep -c '^[a-z]' requirements.lock) packages," \
    "requirements-test.lock: $(grep -c '^[a-z]' requirements-test.lock) packages"
