#!/usr/bin/env bash
# Installs everything the tests need on a Debian machine (system packages when missing, a
# virtualenv with the locked test dependencies), then runs the whole suite. Extra arguments go
# to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v redis-server >/dev/null || missing+=(redis-server)
command -v turnserver >/dev/null || missing+=(coturn)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
python3 -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# Exactly the locked versions, hash-checked (requirements-test.lock, refreshed by
# scripts/lock.sh), then the project itself, built by the locked setuptools. Editable: a
# copied install would keep serving modules since deleted or moved in the tree, and tests
# could pass against code that no longer exists.
.venv/bin/python -m pip install -q --disable-pip-version-check --require-hashes \
    -r requirements-test.lock
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation \
    --editable .

exec .venv/bin/python -m pytest "$@"
