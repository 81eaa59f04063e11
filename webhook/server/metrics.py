"""Prometheus metrics of one webhook process, in a registry of its own.

The ServiceAccount source is read at scrape time by a custom collector, so the cache module
keeps plain int counters and knows nothing of Prometheus.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector

from webhook.serviceaccounts import ServiceAccountSource

OUTCOMES = ("mutated", "skipped", "error")
# Admissions take about a millisecond; the tail up to the API server's own timeout matters too.
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)

_CACHE_COUNTERS = (
    ("misses", "ServiceAccounts asked for that the cache had not seen yet"),
    ("direct_lookups", "ServiceAccounts fetched from the API directly after a cache miss"),
    ("lookup_failures", "direct lookups that timed out or failed (the pod was not mutated)"),
    ("watch_restarts", "times the ServiceAccount watch was restarted"),
    ("relists", "full lists after the first one (after 410 Gone)"),
)


class ServiceAccountSourceCollector(Collector):
    """Size and readiness of any source; miss and watch counters of the API cache."""

    def __init__(self, source: ServiceAccountSource) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        size = GaugeMetricFamily(
            "irsa_webhook_serviceaccount_cache_size", "ServiceAccounts held by the source"
        )
        size.add_metric([], len(self.source))
        yield size
        ready = GaugeMetricFamily(
            "irsa_webhook_serviceaccount_cache_ready", "1 once the source holds its first full list"
        )
        ready.add_metric([], 1.0 if self.source.is_ready() else 0.0)
        yield ready
        stats: Any = getattr(self.source, "stats", None)
        if stats is None:
            return
        for attribute, doc in _CACHE_COUNTERS:
            if not hasattr(stats, attribute):
                continue
            family = CounterMetricFamily(f"irsa_webhook_serviceaccount_cache_{attribute}", doc)
            family.add_metric([], float(getattr(stats, attribute)))
            yield family


class ServerMetrics:
    def __init__(
        self,
        source: ServiceAccountSource,
        cert_seconds_left: Callable[[], float] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        admissions = Counter(
            "irsa_webhook_admissions",
            "Admission reviews answered, by outcome and dry run",
            ["outcome", "dry_run"],
            registry=self.registry,
        )
        # Children bound once: label lookup per request is measurable at thousands a second.
        self._admissions = {
            (outcome, dry_run): admissions.labels(outcome, str(dry_run).lower())
            for outcome in OUTCOMES
            for dry_run in (False, True)
        }
        self._latency = Histogram(
            "irsa_webhook_admission_duration_seconds",
            "Time from request to answer for admission reviews",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.rejected = Counter(
            "irsa_webhook_rejected_requests",
            "Requests answered with a 4xx, by status code",
            ["code"],
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "irsa_webhook_requests_in_flight",
            "Admission requests being handled now",
            registry=self.registry,
        )
        if cert_seconds_left is not None:
            Gauge(
                "irsa_webhook_serving_certificate_expiry_seconds",
                "Seconds until the serving certificate expires",
                registry=self.registry,
            ).set_function(cert_seconds_left)
        self.registry.register(ServiceAccountSourceCollector(source))

    def observe(self, outcome: str, dry_run: bool, seconds: float) -> None:
        self._admissions[outcome, dry_run].inc()
        self._latency.observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
