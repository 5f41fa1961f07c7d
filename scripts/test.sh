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
# The cross-browser journeys (tests/browser/test_firefox_*.py) drive Debian's Firefox ESR over
# WebDriver BiDi (tests/bidi.py): no browser download, no driver binary.
command -v firefox-esr >/dev/null || missing+=(firefox-esr)
# Debian's WebKitGTK (no WebRTC in it) shows the unsupported-browser page: test_webkit_*.py.
command -v WebKitWebDriver >/dev/null || missing+=(webkit2gtk-driver)
command -v xvfb-run >/dev/null || missing+=(xvfb xauth)
command -v redis-server >/dev/null || missing+=(redis-server)
# The postgres store's tests start their own cluster with Debian's server binaries.
compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || missing+=(postgresql)
command -v turnserver >/dev/null || missing+=(coturn)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
# tests/netns.py: a network namespace and a veth pair stand for another device of the LAN.
command -v ip >/dev/null || [ -x /usr/sbin/ip ] || [ -x /sbin/ip ] || missing+=(iproute2)
command -v ffprobe >/dev/null || missing+=(ffmpeg)  # recordings are checked with ffprobe
# axe-core (tests/browser/axe/) is installed with npm and checks every screenshotted page.
command -v npm >/dev/null || missing+=(npm)
python3 -c "import ensurepip, venv" 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq -o DPkg::Lock::Timeout=600
    # Another apt on the machine holds the dpkg lock for a while: wait for it, not fail.
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
        -o DPkg::Lock::Timeout=600 \
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

# axe-core at the version its package-lock.json pins (integrity-checked by npm ci); no
# install scripts run, and nothing else comes with it.
if [ ! -f tests/browser/axe/node_modules/axe-core/axe.min.js ]; then
    (cd tests/browser/axe && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi

exec .venv/bin/python -m pytest "$@"
