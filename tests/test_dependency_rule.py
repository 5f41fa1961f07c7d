"""The dependency rule of docs/architecture.md, checked on the import statements themselves:
routes (``api/``) → domain packages → ``store/`` and the top-level models; ``live/`` knows no
Redis and no HTTP routes; only ``app.py`` wires the Redis implementations in ``cluster/``."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = ("accounts", "consultations", "audit", "live", "recording", "mail")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> Iterator[str]:
    """Every module a file imports, wherever the import stands (functions, TYPE_CHECKING)."""
    package = (
        module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    )
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            yield target
            # `from signaling import live` imports the subpackage itself
            yield from (f"{target}.{alias.name}" for alias in node.names)


def graph(top: str) -> dict[str, set[str]]:
    return {
        module_name(path): {
            name
            for name in imports_of(path)
            if name.split(".")[0] in ("signaling", "media", "config", "redis")
        }
        for path in sorted((ROOT / top).rglob("*.py"))
    }


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(
    importer: str, forbidden: tuple[str, ...], allowed: tuple[str, ...] = ()
) -> list[str]:
    found = []
    everything = {**graph("signaling"), **graph("media"), **graph("config")}
    for module, targets in everything.items():
        if not within(module, importer) or any(within(module, a) for a in allowed):
            continue
        for target in targets:
            if any(within(target, f) for f in forbidden) and not within(target, importer):
                found.append(f"{module} imports {target}")
    return sorted(found)


def test_the_import_graph_is_read() -> None:
    # A guard for the guard: the rules below would pass vacuously on an empty graph.
    signaling = graph("signaling")
    assert any(within(t, "signaling.live") for t in signaling["signaling.app"])
    assert len(signaling) > 40


@pytest.mark.parametrize(
    ("importer", "forbidden", "allowed"),
    [
        ("config", ("signaling", "media"), ()),
        ("media", ("signaling",), ()),
        ("signaling.live", ("signaling.cluster", "signaling.api", "signaling.app", "redis"), ()),
        *[(f"signaling.{domain}", ("signaling.api", "signaling.app"), ()) for domain in DOMAIN],
        (
            "signaling.store",
            (
                "signaling.api",
                "signaling.app",
                "signaling.cluster",
                *(f"signaling.{d}" for d in DOMAIN),
            ),
            (),
        ),
        ("signaling.cluster", ("signaling.api", "signaling.app"), ()),
        (
            "signaling.models",
            (
                "signaling.api",
                "signaling.app",
                "signaling.store",
                "signaling.cluster",
                *(f"signaling.{d}" for d in DOMAIN),
            ),
            (),
        ),
        (
            "signaling.errors",
            (
                "signaling.api",
                "signaling.app",
                "signaling.store",
                "signaling.cluster",
                *(f"signaling.{d}" for d in DOMAIN),
            ),
            (),
        ),
        ("signaling.clock", ("signaling",), ()),
    ],
)
def test_layers_import_only_downwards(
    importer: str, forbidden: tuple[str, ...], allowed: tuple[str, ...]
) -> None:
    assert violations(importer, forbidden, allowed) == []


def test_only_the_wiring_knows_the_redis_implementations() -> None:
    users = sorted(
        module
        for module, targets in graph("signaling").items()
        if any(within(t, "signaling.cluster") for t in targets)
        and not within(module, "signaling.cluster")
    )
    assert users == ["signaling.app"]
