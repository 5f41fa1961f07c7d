"""Persistence behind one protocol: SQLite for one node, Redis for several (later)."""

from signaling.store.base import AuditFilter, DuplicateUsername, Store, StoreUnavailable

__all__ = ["AuditFilter", "DuplicateUsername", "Store", "StoreUnavailable"]
