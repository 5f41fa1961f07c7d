"""Nothing above the seams knows Redis exists: the Redis implementations of the bus, the room
states and the store (and the room watch, which only the several-instance wiring starts) are
imported by the wiring (signaling/app.py) alone, and the redis library by them alone."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WIRING = "signaling/app.py"
# The one place each Redis implementation may be named: the wiring, and the implementations
# built on another one (the room states over the bus's connection).
ONLY_IN_WIRING = {
    "signaling.cluster.bus_redis": {WIRING, "signaling/cluster/room_state_redis.py"},
    "signaling.cluster.room_state_redis": {WIRING},
    "signaling.cluster.room_watch": {WIRING},
    "signaling.store.redis": {WIRING},
    # Short-lived keys in Redis: the Redis store's own, the PostgreSQL store's when wired so.
    "signaling.store.short_lived_redis": {WIRING, "signaling/store/redis.py"},
    # The client every Redis implementation opens.
    "signaling.store.redis_client": {
        "signaling/cluster/bus_redis.py",
        "signaling/store/redis.py",
        "signaling/store/short_lived_redis.py",
    },
}
REDIS_CLIENTS = {
    "signaling/cluster/bus_redis.py",
    "signaling/cluster/room_state_redis.py",
    "signaling/store/redis.py",
    "signaling/store/short_lived_redis.py",
    "signaling/store/redis_client.py",
}


def imports_of(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def project_modules() -> dict[str, set[str]]:
    files = [ROOT / "run.py"]
    for package in ("config", "signaling", "media"):
        files += sorted((ROOT / package).rglob("*.py"))
    return {path.relative_to(ROOT).as_posix(): imports_of(path) for path in files}


def test_the_redis_implementations_are_imported_by_the_wiring_only() -> None:
    modules = project_modules()
    for implementation, allowed in ONLY_IN_WIRING.items():
        importers = {name for name, imported in modules.items() if implementation in imported}
        assert importers <= allowed, (implementation, importers - allowed)


def test_only_the_redis_implementations_use_the_redis_client() -> None:
    users = {
        name
        for name, imported in project_modules().items()
        if any(module == "redis" or module.startswith("redis.") for module in imported)
    }
    assert users == REDIS_CLIENTS
