"""web/ as this process serves it: one snapshot taken at start-up (no build step).

Pages: ``web/shell.html`` (head, top bar, noscript, confirmation dialog) is written once; each
page file (``web/index.html``...) holds a ``<!--page ...-->`` header and its ``<main>``. They
are assembled at start-up (``signaling/api/pages.py`` serves them with ``Cache-Control: no-store``).

Assets: every file of ``web/static/`` and ``web/protocol.js`` is read into memory at start-up
and served under ``/v/<version>/`` (``/v/<version>/static/app.css``,
``/v/<version>/protocol.js``), where the version is a hash of them all, with a year of
immutable caching. The pages name assets only through that prefix and the modules import one
another by relative paths, so a page and every module it loads come from one version: the
version its HTML was assembled with. A version this process does not hold (an older one after
an upgrade, or a newer one from another instance during a rolling upgrade) is a 404 that
``static/asset-guard.js`` answers by reloading the page. Being read once, the snapshot does not
change under a running process when the files on disk are replaced.

The unversioned ``/static/<file>`` stays (same snapshot, ``no-cache`` with an ETag) for what
is not a page's module graph, such as a notification icon.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

# Paths whose last segment is a token: each serves the same page, whose script reads the
# token from location.pathname and sends it in a request body.
PAGES = {
    "/": "index.html",
    "/account": "account.html",
    "/admin": "admin.html",
    "/audit": "audit.html",
    "/recordings": "recordings.html",
    "/call/{consultation_id}": "call.html",
    "/join/{token}": "join.html",
    "/setup/{token}": "setup.html",
    "/enrol": "enrol.html",
}
SHELL = "shell.html"
VERSIONED_PREFIX = "/v/"
# The guard must load whatever version this server holds (it is what recovers from a version
# it does not hold), so its one reference stays unversioned.
ASSET_GUARD = "asset-guard.js"

_PAGE_HEADER = re.compile(r"\A<!--page\n(?P<fields>.*?)\n-->\n", re.S)
_PAGE_FIELDS = {"title", "module", "topbar", "body-class"}
_TOPBAR_PART = re.compile(r"^<!-- topbar: (?P<name>[\w-]+)\b.*-->\n", re.M)
_PLACEHOLDER = re.compile(r"\{\{([\w-]+)\}\}")
_STATIC_REF = re.compile(rf'((?:src|href)=")/static/(?!{re.escape(ASSET_GUARD)}")')


class SiteError(ValueError):
    """web/ cannot be assembled (a page header or the shell is malformed): refused at start."""


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str
    etag: str


@dataclass(frozen=True)
class Site:
    """What this process serves: the asset version, its assets, the assembled pages."""

    version: str
    # Keyed by path under web/: "static/app.css", "protocol.js".
    assets: Mapping[str, Asset]
    # Keyed by page file name: "index.html".
    pages: Mapping[str, bytes]

    def asset_url(self, path: str) -> str:
        return f"{VERSIONED_PREFIX}{self.version}/{path}"


def _content_type(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name)
    content_type = guessed or "application/octet-stream"
    if content_type.startswith("text/") or content_type == "image/svg+xml":
        content_type += "; charset=utf-8"
    return content_type


def _read_assets(web_root: Path) -> dict[str, Asset]:
    files = [web_root / "protocol.js"]
    files += [p for p in (web_root / "static").rglob("*") if p.is_file()]
    assets: dict[str, Asset] = {}
    for path in sorted(files):
        relative = path.relative_to(web_root).as_posix()
        if any(part.startswith(".") for part in relative.split("/")):
            continue  # editor and VCS leftovers are not the site
        body = path.read_bytes()
        etag = hashlib.sha256(body).hexdigest()[:20]
        assets[relative] = Asset(body, _content_type(path.name), etag)
    return assets


def _version(assets: Mapping[str, Asset]) -> str:
    digest = hashlib.sha256()
    for relative in sorted(assets):
        digest.update(relative.encode() + b"\0" + assets[relative].etag.encode() + b"\0")
    return digest.hexdigest()[:16]


def _parse_shell(text: str) -> tuple[str, dict[str, str]]:
    """The page skeleton, and the top bar variants that follow it (``<!-- topbar: name -->``)."""
    pieces = _TOPBAR_PART.split(text)
    skeleton, rest = pieces[0], pieces[1:]
    topbars = {rest[i]: rest[i + 1] for i in range(0, len(rest), 2)}
    if not topbars:
        raise SiteError(f"{SHELL}: no top bar")
    return skeleton, topbars


def _parse_page(name: str, text: str) -> tuple[dict[str, str], str]:
    match = _PAGE_HEADER.match(text)
    if match is None:
        raise SiteError(f"{name}: no <!--page ...--> header")
    fields: dict[str, str] = {}
    for line in match["fields"].splitlines():
        key, sep, value = line.partition(":")
        if not sep or key.strip() not in _PAGE_FIELDS:
            raise SiteError(f"{name}: unknown header line {line!r}")
        fields[key.strip()] = value.strip()
    missing = {"title", "module", "topbar"} - fields.keys()
    if missing:
        raise SiteError(f"{name}: header lacks {', '.join(sorted(missing))}")
    return fields, text[match.end() :]


def assemble_page(name: str, text: str, shell: str, version: str) -> str:
    """One page: the shell around the page's body, every /static/ reference versioned."""
    skeleton, topbars = _parse_shell(shell)
    fields, body = _parse_page(name, text)
    if fields["topbar"] not in topbars:
        raise SiteError(f"{name}: no top bar named {fields['topbar']!r} in {SHELL}")
    title_key, _, title = fields["title"].partition(" ")
    body_class = fields.get("body-class", "")
    values = {
        "title-key": title_key,
        "title": title,
        "module": fields["module"],
        "body-class": f' class="{body_class}"' if body_class else "",
        "topbar": topbars[fields["topbar"]].rstrip("\n"),
        "body": body.rstrip("\n"),
    }

    def fill(match: re.Match[str]) -> str:
        if match[1] not in values:
            raise SiteError(f"{SHELL}: unknown placeholder {match[0]}")
        return values[match[1]]

    html = _PLACEHOLDER.sub(fill, skeleton)
    return _STATIC_REF.sub(rf"\1{VERSIONED_PREFIX}{version}/static/", html)


def load_site(web_root: Path) -> Site:
    """Read web/ once: assets, their version, and every page assembled."""
    assets = _read_assets(web_root)
    version = _version(assets)
    shell = (web_root / SHELL).read_text(encoding="utf-8")
    pages = {
        name: assemble_page(
            name, (web_root / name).read_text(encoding="utf-8"), shell, version
        ).encode()
        for name in sorted(set(PAGES.values()))
    }
    return Site(version=version, assets=assets, pages=pages)
