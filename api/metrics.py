"""The metrics of `cxj serve`, built in one place from a registry passed in (like the worker's)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Histogram, PlatformCollector, ProcessCollector

__all__ = ["ROUTES", "ApiMetrics"]

# The `route` label: a route template, or "other" (unknown paths never become series).
ROUTES: Final = ("/v1/touchpoints", "/v1/customers/{id}", "/openapi.json", "/healthz", "/metrics")
_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


@dataclass(frozen=True)
class ApiMetrics:
    registry: CollectorRegistry
    requests: Counter
    seconds: Histogram
    touchpoints: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry, *, process: bool = False) -> ApiMetrics:
        """The service's series on `registry`; `process`: also the process and platform collectors."""
        if process:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
        metrics = cls(
            registry=registry,
            requests=Counter("cx_api_requests", "HTTP requests by route and status", ["route", "code"],
                             registry=registry),
            seconds=Histogram("cx_api_request_seconds", "HTTP request duration by route", ["route"],
                              registry=registry, buckets=_BUCKETS),
            touchpoints=Counter("cx_api_touchpoints", "Touchpoints forwarded, by what the pipeline will do",
                                ["outcome"], registry=registry),
        )  # fmt: skip
        for outcome in ("accepted", "rejected"):  # present at 0, so a first increase counts
            metrics.touchpoints.labels(outcome)
        return metrics
