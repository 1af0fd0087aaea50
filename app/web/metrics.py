"""Prometheus metrics of one UI worker, computed at scrape time from its replica and from Redis.

Counters come from the cluster-wide ``Keys.metrics`` hash that workers ``HINCRBY``, so every UI worker
reports the same totals: aggregate them with ``max`` across instances, not ``sum``. The job duration
histogram is computed from the ``Keys.durations`` list, which keeps the latest ``store.DURATIONS_KEPT`` durations only.

No metric names a model: the endpoint is open to scrapers. Ready models are counted by idle age instead
(``ModelRecord.idle_since``: last use, else the download time).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

import redis
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from app.core.errors import ModelDepotError
from app.core.records import RecordView, Status, disk_bytes, idle_since
from app.core.status import list_workers, live_workers, models_by_status, volume_info

if TYPE_CHECKING:
    from app.core.controller import Controller

log = logging.getLogger(__name__)

PREFIX = "modeldepot"
COUNTERS = {
    "downloads_started": "Downloads a worker started (retries after a dead worker count again).",
    "downloads_succeeded": "Downloads that reached ready.",
    "downloads_failed": "Downloads that ended failed.",
    "downloads_cancelled": "Downloads cancelled by a user.",
    "bytes_downloaded": "Bytes fetched from the Hub by finished downloads.",
    "evictions": "Models removed by quota eviction to make room.",
    "evicted_bytes": "Bytes freed by quota eviction.",
}
_DAY = 86400.0
IDLE_AGES = (("lt_1d", _DAY), ("1d_7d", 7 * _DAY), ("7d_30d", 30 * _DAY), ("30d_90d", 90 * _DAY),
             ("ge_90d", float("inf")))
"""The ``age`` label of the idle metrics and the exclusive upper bound of each bucket."""
DURATION_BUCKETS = (1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 21600.0)


class DepotCollector(Collector):
    """Reads the controller's replica and Redis on every scrape; a Redis outage shows as ``redis_up 0``."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def describe(self) -> Iterable[Metric]:
        return []  # nothing to declare up front: collect() must not touch Redis at registration

    def collect(self) -> Iterator[Metric]:
        yield from self._replica_metrics()
        yield from self._volume_metrics()
        try:
            redis_metrics = list(self._redis_metrics())
        except (redis.RedisError, ModelDepotError, OSError) as e:
            log.warning("metrics: Redis unavailable (%s)", type(e).__name__)
            redis_metrics = []
        yield _gauge("redis_up", "1 if Redis answered this scrape.", float(bool(redis_metrics)))
        yield from redis_metrics

    def _replica_metrics(self) -> Iterator[Metric]:
        controller = self.controller
        models = GaugeMetricFamily(f"{PREFIX}_models", "Models in the list, by status.", labels=["status"])
        for status, count in models_by_status(controller.models).items():
            models.add_metric([status], count)
        yield models
        yield from idle_metrics(controller.models.values(), now=time.time())
        yield _gauge("models_pinned", "Pinned models (never evicted).",
                     sum(1 for r in controller.models.values() if r.get("pinned")))
        yield _gauge("models_update_available", "Ready models whose branch has a newer commit on the Hub.",
                     sum(1 for r in controller.models.values() if r.get("update_available")))
        yield _gauge("replica_version", "State version this process's replica holds.", controller.version)
        yield _gauge("replica_version_lag", "Versions this replica is behind Redis.", controller.version_lag)
        yield _gauge("replica_in_sync", "1 while the replica follows Redis live.", float(controller.in_sync))

    def _volume_metrics(self) -> Iterator[Metric]:
        volume = volume_info(self.controller.settings.resolved_models_dir)
        if volume is not None:
            yield _gauge("models_volume_free_bytes", "Free bytes on the models volume.", volume.free_bytes)
            yield _gauge("models_volume_size_bytes", "Size of the models volume.", volume.total_bytes)

    def _redis_metrics(self) -> Iterator[Metric]:
        controller = self.controller
        jobs = controller.jobs
        counters, durations = controller.brief_store.read_tallies()
        for field, doc in COUNTERS.items():
            yield CounterMetricFamily(f"{PREFIX}_{field}", doc, value=counters.get(field, 0))
        yield duration_histogram(durations)
        workers = list_workers(jobs)
        depth = GaugeMetricFamily(f"{PREFIX}_queue_depth", "Jobs waiting in the RQ queue.", labels=["queue"])
        alive = GaugeMetricFamily(
            f"{PREFIX}_workers_alive", "Live RQ workers listening on the queue.", labels=["queue"]
        )
        for queue in (jobs.downloads, jobs.maintenance):
            depth.add_metric([queue.name], queue.count)
            alive.add_metric([queue.name], live_workers(workers, queue.name))
        yield depth
        yield alive


def idle_buckets(records: Iterable[RecordView], *, now: float) -> dict[str, tuple[int, int]]:
    """Ready models by how long they have been idle: ``age`` label -> (count, bytes); every label is present."""
    buckets = {label: (0, 0) for label, _ in IDLE_AGES}
    for record in records:
        if record.get("status") != Status.READY:
            continue
        idle = now - idle_since(record)
        label = next(label for label, bound in IDLE_AGES if idle < bound)
        count, size = buckets[label]
        buckets[label] = (count + 1, size + disk_bytes(record))
    return buckets


def idle_metrics(records: Iterable[RecordView], *, now: float) -> Iterator[Metric]:
    """``modeldepot_models_idle{age}`` and ``modeldepot_models_idle_bytes{age}`` (ready models only)."""
    buckets: Mapping[str, tuple[int, int]] = idle_buckets(records, now=now)
    counts = GaugeMetricFamily(f"{PREFIX}_models_idle", "Ready models by time since last use (else download).",
                               labels=["age"])
    sizes = GaugeMetricFamily(f"{PREFIX}_models_idle_bytes", "Bytes of ready models by time since last use.",
                              labels=["age"])
    for label, (count, size) in buckets.items():
        counts.add_metric([label], count)
        sizes.add_metric([label], size)
    yield counts
    yield sizes


def duration_histogram(durations: list[float]) -> HistogramMetricFamily:
    """A histogram of the recent job durations (seconds)."""
    buckets = [(str(bound), float(sum(1 for d in durations if d <= bound))) for bound in DURATION_BUCKETS]
    buckets.append(("+Inf", float(len(durations))))
    return HistogramMetricFamily(
        f"{PREFIX}_job_duration_seconds",
        "Duration of recent successful downloads (the latest 1000).",
        buckets=buckets,
        sum_value=sum(durations),
    )


def build_registry(controller: Controller) -> CollectorRegistry:
    """A registry with Model Depot's collector plus the process and platform collectors."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DepotCollector(controller))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(f"{PREFIX}_{name}", doc, value=value)
