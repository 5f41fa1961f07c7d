"""A token bucket: the per-connection limit on client messages (``signaling.messages_per_second``
on average, ``signaling.message_burst`` at once)."""

from __future__ import annotations


class TokenBucket:
    """``rate`` messages per second on average, ``burst`` at once."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.capacity = float(burst)
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True
