"""Prometheus metrics, one registry per application (tests run many apps in one process).

Gauges that describe live state (sockets, rooms by state, waiting patients) are read when
scraped, from the signaling state itself, so they can never drift from it. No metric carries
a personal datum or an identifier: only counts, reasons and roles.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Awaitable, Callable, Iterable

from aiohttp import web
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from signaling.errors import AppError


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.login_failures = Counter(
            "teleconsult_login_failures", "Failed sign-in steps", ["step"], registry=r
        )
        self.lockouts = Counter(
            "teleconsult_lockouts", "Accounts or addresses locked out", ["kind"], registry=r
        )
        self.store_errors = Counter(
            "teleconsult_store_errors", "Requests that found the store unavailable", registry=r
        )
        self.joins = Counter("teleconsult_joins", "Accepted room joins", ["role"], registry=r)
        self.refusals = Counter(
            "teleconsult_join_refusals", "Refused joins by reason", ["reason"], registry=r
        )
        self.relay_seconds = Histogram(
            "teleconsult_relay_seconds",
            "Time from receiving a signaling message to queueing it for the peer",
            registry=r,
            buckets=(
                0.0001,
                0.00025,
                0.0005,
                0.001,
                0.0025,
                0.005,
                0.01,
                0.025,
                0.05,
                0.1,
                0.25,
                1.0,
            ),
        )

    def add_live_gauges(self, read: Callable[[], dict[str, float | dict[str, float]]]) -> None:
        """Register gauges computed at scrape time by ``read`` (name -> value or by-label)."""
        self.registry.register(_LiveCollector(read))


class _LiveCollector(Collector):
    def __init__(self, read: Callable[[], dict[str, float | dict[str, float]]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        for name, value in self._read().items():
            if isinstance(value, dict):
                family = GaugeMetricFamily(
                    f"teleconsult_{name}", name.replace("_", " "), labels=["state"]
                )
                for label, v in value.items():
                    family.add_metric([label], v)
            else:
                family = GaugeMetricFamily(
                    f"teleconsult_{name}", name.replace("_", " "), value=value
                )
            yield family


def is_local(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def metrics_handler(
    metrics: Metrics, address_of: Callable[[web.Request], str]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def serve(request: web.Request) -> web.StreamResponse:
        # Scraped from the machine itself (or a sidecar): never served to the public.
        if not is_local(address_of(request)):
            raise AppError("forbidden", "Metrics are only served to local scrapers.")
        return web.Response(
            body=generate_latest(metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    return serve
