"""The pages and their assets over HTTP: one shell around every page, every asset a page names
under the one version the server holds, immutable; an upgrade never mixes two versions."""

from __future__ import annotations

import re
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from config import Settings
from signaling.api.site import PAGES, SiteError, load_site
from signaling.app import create_app
from signaling.clock import ManualClock
from signaling.keys import SITE

WEB = Path(__file__).resolve().parent.parent / "web"
PAGE_PATHS = {
    route.replace("{consultation_id}", "c1").replace("{token}", "t0k3n"): name
    for route, name in PAGES.items()
}
_ASSET_REF = re.compile(r'(?:src|href)="(/(?:v|static)/[^"]+)"')
_IMPORT = re.compile(
    r"""(?:^|\n)\s*import\s[^"';]*?["']([^"']+)["']|\bimport\(\s*["']([^"']+)["']"""
)

Client = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


def asset_refs(html: str) -> list[str]:
    return _ASSET_REF.findall(html)


def web_copy(tmp_path: Path) -> Path:
    root = tmp_path / "web"
    shutil.copytree(WEB, root)
    return root


async def test_every_page_names_its_assets_under_one_version_cached_for_good(
    client: TestClient[Any, Any],
) -> None:
    version = client.app[SITE].version
    for path in PAGE_PATHS:
        page = await client.get(path)
        assert page.status == 200, path
        assert page.headers["Cache-Control"] == "no-store"
        assert page.content_type == "text/html"
        refs = asset_refs(await page.text())
        # The shell's styles, icon and the page's module, all of this version; only the guard
        # (which must load whatever the version) is unversioned.
        assert [r for r in refs if not r.startswith(f"/v/{version}/static/")] == [
            "/static/asset-guard.js"
        ], path
        for ref in refs:
            asset = await client.get(ref)
            assert asset.status == 200, ref
            if ref.startswith("/v/"):
                assert asset.headers["Cache-Control"] == "public, max-age=31536000, immutable"
            assert "Content-Security-Policy" in asset.headers
    module = await client.get(f"/v/{version}/static/call-session.js")
    assert module.content_type == "text/javascript"
    protocol = await client.get(f"/v/{version}/protocol.js")
    assert "export class SignalingClient" in await protocol.text()


def test_modules_import_one_another_by_relative_paths_only() -> None:
    # An absolute import ("/static/x.js", "/protocol.js") would leave the page's version.
    modules = [WEB / "protocol.js", *sorted((WEB / "static").glob("*.js"))]
    seen = 0
    for module in modules:
        for groups in _IMPORT.findall(module.read_text()):
            specifier = groups[0] or groups[1]
            seen += 1
            assert specifier.startswith(("./", "../")), (module.name, specifier)
    assert seen > 50


async def test_the_shell_is_written_once_and_each_page_has_its_own_body(
    client: TestClient[Any, Any],
) -> None:
    bodies = {}
    for path, name in PAGE_PATHS.items():
        html = await (await client.get(path)).text()
        assert html.count('<header class="topbar">') == 1, name
        assert html.count('class="lang-switch"') == 1, name
        assert html.count('id="confirm-dialog"') == 1, name
        assert html.count("<main ") == 1, name
        assert "{{" not in html and "<!--page" not in html, name
        bodies[name] = html[html.index("<main ") : html.index("</main>")]
    assert len(set(bodies.values())) == len(PAGE_PATHS)
    staff = await (await client.get("/admin")).text()
    assert 'id="signout"' in staff and 'id="account-link"' in staff
    patient = await (await client.get("/join/t0k3n")).text()
    # The patient's brand does not lead to the staff sign-in, and no staff control is there.
    assert '<span class="brand">' in patient and 'id="signout"' not in patient
    call = await (await client.get("/call/c1")).text()
    assert 'id="call-title"' in call and '<body class="call-body">' in call


async def test_an_upgrade_never_serves_two_versions_under_one_name(
    tmp_path: Path, settings: Settings, clock: ManualClock, aiohttp_client: Client
) -> None:
    root = web_copy(tmp_path)
    before = await aiohttp_client(create_app(settings, clock=clock, web_root=root))
    old_version = before.app[SITE].version
    old_i18n = (root / "static" / "i18n.js").read_bytes()
    page = await (await before.get("/")).text()
    assert f"/v/{old_version}/static/index.js" in page

    # The files are replaced on disk (an upgrade) while version A still runs: it keeps serving
    # A's bytes under A's name, and its pages keep naming A.
    (root / "static" / "i18n.js").write_bytes(old_i18n + b"\n// version B\n")
    served = await before.get(f"/v/{old_version}/static/i18n.js")
    assert await served.read() == old_i18n
    assert await (await before.get("/static/i18n.js")).read() == old_i18n
    assert f"/v/{old_version}/" in await (await before.get("/")).text()

    # Version B starts: a fresh page names B only, and A's name is a clean, uncached 404
    # (never B's bytes under A's name).
    after = await aiohttp_client(create_app(settings, clock=clock, web_root=root))
    new_version = after.app[SITE].version
    assert new_version != old_version
    fresh = await (await after.get("/")).text()
    assert {ref.split("/")[2] for ref in asset_refs(fresh) if ref.startswith("/v/")} == {
        new_version
    }
    gone = await after.get(f"/v/{old_version}/static/i18n.js")
    assert gone.status == 404
    assert gone.headers["Cache-Control"] == "no-store"
    changed = await after.get(f"/v/{new_version}/static/i18n.js")
    assert (await changed.read()).endswith(b"// version B\n")
    # A module that did not change is byte for byte the same under B's name.
    same = await after.get(f"/v/{new_version}/static/ui.js")
    assert await same.read() == (root / "static" / "ui.js").read_bytes()


async def test_unversioned_static_files_revalidate_with_an_etag(
    client: TestClient[Any, Any],
) -> None:
    first = await client.get("/static/logo.svg")
    assert first.status == 200
    assert first.headers["Cache-Control"] == "no-cache"
    etag = first.headers["ETag"]
    again = await client.get("/static/logo.svg", headers={"If-None-Match": etag})
    assert again.status == 304
    assert again.headers["ETag"] == etag
    assert (await client.get("/static/nothing.js")).status == 404
    assert (await client.get("/static/../pages.py")).status == 404


def test_a_page_without_its_header_is_refused_at_start(tmp_path: Path) -> None:
    root = web_copy(tmp_path)
    admin = root / "admin.html"
    admin.write_text(admin.read_text().replace("<!--page\n", "<!--\n", 1))
    with pytest.raises(SiteError, match=r"admin\.html: no <!--page"):
        load_site(root)
    admin.write_text(
        "<!--page\ntitle: title.admin Administration\nmodule: admin.js\n-->\n<main></main>\n"
    )
    with pytest.raises(SiteError, match="lacks topbar"):
        load_site(root)
