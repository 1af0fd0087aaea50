"""The ops health report behind `modeldepot status`: Redis, RQ queues and workers, models, the volume, its room.

Reads only (registry counts skip RQ's cleanup, which would move jobs; RQ itself still drops index entries
of workers and executions that already expired).
A worker counts as alive while its connection is subscribed to its RQ command channel
(``rq:pubsub:<name>``): Redis drops that subscription the moment the process dies, whereas RQ's own
worker key lingers for up to ``worker_ttl + 60`` seconds (8 minutes by default).
"""

from __future__ import annotations

import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis
from rq import Queue, Worker
from rq.command import PUBSUB_CHANNEL_TEMPLATE
from rq.serializers import JSONSerializer
from rq.worker import BaseWorker

from app.core import volume
from app.core.connection import check, connection_url
from app.core.errors import ConfigError, StateUnavailableError
from app.core.jobqueue import JobQueue
from app.core.quota import Limits
from app.core.records import Status
from app.core.redis_url import redact
from app.core.replication import ReplicationInfo
from app.core.settings import Settings
from app.core.store import redis_errors
from app.core.units import human_bytes

if TYPE_CHECKING:
    from app.core.controller import Controller

LOW_SPACE_FRACTION = 0.05


@dataclass
class WorkerInfo:
    name: str
    hostname: str | None
    pid: int | None
    queues: list[str]
    state: str
    current_job: str | None
    heartbeat_age_s: float | None
    alive: bool


@dataclass
class QueueInfo:
    kind: str
    name: str
    queued: int
    running: int
    failed: int
    workers_alive: int


@dataclass
class VolumeInfo:
    path: str
    total_bytes: int
    free_bytes: int
    partial_bytes: int = 0


@dataclass
class TransferLimits:
    """The download limits in this host's settings (workers started with the same environment share them)."""

    max_bandwidth: int | None
    max_files: int
    stall_s: float
    retry_window_s: float
    transfer: str

    @classmethod
    def of(cls, settings: Settings) -> TransferLimits:
        return cls(settings.max_bandwidth, settings.max_files, settings.stall_s, settings.retry_window_s,
                   settings.transfer)


@dataclass
class RoomInfo:
    """The models against the quota and watermarks, and the lifecycle intervals, in this host's settings."""

    limits: Limits
    update_check_s: float
    """0: update checks are off."""
    usage_scan_s: float
    models_bytes: int | None = None
    """Bytes in the model folders (partial files included); None when the volume is not mounted here."""
    percent_used: float | None = None
    atime_mode: str | None = None
    """``noatime``, ``relatime``, ``strictatime`` or ``unknown`` (see :func:`app.core.volume.atime_mode`)."""

    @classmethod
    def read(cls, settings: Settings) -> RoomInfo:
        """The settings, and the volume as it is now when it is mounted here (one ``stat`` per blob)."""
        room = cls(Limits.from_settings(settings), settings.update_check_s, settings.usage_scan_s)
        models_dir = settings.resolved_models_dir
        if models_dir.is_dir():
            usage = volume.usage(models_dir)
            room.models_bytes, room.percent_used = usage.models_bytes, usage.percent_used()
            room.atime_mode = volume.atime_mode(models_dir)
        return room

    @property
    def over_quota(self) -> bool:
        quota = self.limits.quota
        return quota is not None and self.models_bytes is not None and self.models_bytes > quota

    @property
    def over_high_watermark(self) -> bool:
        high = self.limits.high_pct
        return high is not None and self.percent_used is not None and self.percent_used > high


def last_use_note(atime_mode: str | None) -> str:
    """What the volume's mount options mean for last use, as ``modeldepot status`` says it."""
    if atime_mode == "noatime":
        return "last use: volume mounted noatime, falls back to download time"
    if atime_mode == "relatime":
        return "last use: access times are updated at most about once a day (relatime)"
    if atime_mode == "strictatime":
        return "last use: access times are updated on every read (strictatime)"
    return "last use: the volume's access-time mode is unknown"


@dataclass
class HealthReport:
    redis_url: str
    redis_version: str | None = None
    redis_error: str | None = None
    replication: ReplicationInfo | None = None
    state_version: int = 0
    queues: list[QueueInfo] = field(default_factory=list)
    workers: list[WorkerInfo] = field(default_factory=list)
    models_by_status: dict[str, int] = field(default_factory=dict)
    volume: VolumeInfo | None = None
    transfers: TransferLimits | None = None
    room: RoomInfo | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return not self.problems


def health_report(settings: Settings, connection: redis.Redis,
                  replica: Callable[[], AbstractContextManager[Controller]]) -> HealthReport:
    """What `modeldepot status` (and the API's ``/status``) reports: Redis, then, if it answers, the queues,
    workers, models and volume as ``replica()`` (a controller: the UI worker's own, or the CLI's) sees them.

    Raises:
        StateUnavailableError: Redis went away while the report was being read.
    """
    report = redis_report(connection)
    report.transfers = TransferLimits.of(settings)
    report.room = RoomInfo.read(settings)
    if report.redis_version is not None:
        with replica() as controller:
            fill_report(report, controller.jobs, controller.models, state_version=controller.version,
                        models_dir=settings.resolved_models_dir)
    return report


def redis_report(connection: redis.Redis) -> HealthReport:
    """A report that only says whether Redis answers (and its version); the rest is filled in later."""
    report = HealthReport(redis_url=redact(connection_url(connection)))
    try:
        report.redis_version = check(connection)
        report.replication = ReplicationInfo.read(connection)
    except (StateUnavailableError, ConfigError) as e:
        report.redis_error = str(e)
        report.problems.append(f"Redis is unreachable: {e}")
    except redis.RedisError as e:  # it answered the ping, then went away (a failover under way)
        report.warnings.append(f"could not read Redis's replication info: {e}")
    if report.replication is not None:
        report.warnings += report.replication.warnings()
    return report


def fill_report(
    report: HealthReport,
    jobs: JobQueue,
    models: Mapping[str, Mapping[str, Any]],
    *,
    state_version: int,
    models_dir: Path,
) -> HealthReport:
    """Add queues, workers, models and the volume to a report whose Redis answered.

    Raises:
        StateUnavailableError: Redis went away while the report was being read.
    """
    report.state_version = state_version
    with redis_errors():
        report.workers = list_workers(jobs)
        queues = (("downloads", jobs.downloads), ("maintenance", jobs.maintenance))
        report.queues = [queue_info(kind, queue, report.workers) for kind, queue in queues]
    report.models_by_status = models_by_status(models)
    report.volume = volume_info(models_dir)
    report.problems += _problems(report)
    report.warnings += _warnings(report)
    return report


def models_by_status(models: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Count of models in every status (zeros included, in the order of :class:`Status`)."""
    counts = Counter(str(record.get("status")) for record in models.values())
    return {status.value: counts.get(status.value, 0) for status in Status}


def list_workers(jobs: JobQueue) -> list[WorkerInfo]:
    """Every RQ worker registered on our queues, alive or not, sorted by host and pid.

    Raises:
        StateUnavailableError: Redis is unreachable.
    """
    seen: dict[str, WorkerInfo] = {}
    with redis_errors():
        for queue in (jobs.downloads, jobs.maintenance):
            for worker in Worker.all(queue=queue, serializer=JSONSerializer):
                if worker.name not in seen:
                    seen[worker.name] = _worker_info(worker, jobs.connection)
    return sorted(seen.values(), key=lambda w: (w.hostname or "", w.pid or 0, w.name))


def _worker_info(worker: BaseWorker, connection: redis.Redis) -> WorkerInfo:
    heartbeat = worker.last_heartbeat
    age = None if heartbeat is None else max(0.0, (datetime.now(UTC) - heartbeat.replace(tzinfo=UTC)).total_seconds())
    return WorkerInfo(
        name=worker.name,
        hostname=worker.hostname,
        pid=worker.pid,
        queues=[q.name for q in worker.queues],
        state=str(worker.get_state()),
        current_job=worker.get_current_job_id(),
        heartbeat_age_s=age,
        alive=worker_alive(connection, worker.name),
    )


def worker_alive(connection: redis.Redis, name: str) -> bool:
    """True while the worker process holds its subscription to RQ's command channel."""
    channel = PUBSUB_CHANNEL_TEMPLATE % name
    counts = connection.pubsub_numsub(channel)
    return bool(counts) and int(counts[0][1]) > 0


def live_workers(workers: Iterable[WorkerInfo], queue: str) -> int:
    """How many of ``workers`` are alive and listen on the RQ queue named ``queue``."""
    return sum(1 for w in workers if w.alive and queue in w.queues)


def queue_info(kind: str, queue: Queue, workers: list[WorkerInfo]) -> QueueInfo:
    return QueueInfo(
        kind=kind,
        name=queue.name,
        queued=queue.count,
        running=queue.started_job_registry.get_job_count(cleanup=False),
        failed=queue.failed_job_registry.get_job_count(cleanup=False),
        workers_alive=live_workers(workers, queue.name),
    )


def volume_info(models_dir: Path) -> VolumeInfo | None:
    """Size and free space of the models volume, or None when it is not mounted on this host."""
    if not models_dir.is_dir():
        return None
    usage = shutil.disk_usage(models_dir)
    return VolumeInfo(path=str(models_dir), total_bytes=usage.total, free_bytes=usage.free,
                      partial_bytes=volume.partial_bytes(models_dir))


def _problems(report: HealthReport) -> list[str]:
    return [
        f"no live worker on the {q.kind} queue ({q.name}); start one with `modeldepot worker`"
        for q in report.queues
        if q.workers_alive == 0
    ]


def _warnings(report: HealthReport) -> list[str]:
    warnings = [
        f"worker {w.name} ({w.hostname}, pid {w.pid}) is gone; RQ drops its registration within 8 minutes"
        for w in report.workers
        if not w.alive
    ]
    volume = report.volume
    if volume is not None and volume.free_bytes < LOW_SPACE_FRACTION * volume.total_bytes:
        warnings.append(f"the models volume {volume.path} is almost full; remove models with `modeldepot rm`")
    if report.room is not None:
        warnings += _room_warnings(report.room)
    return warnings


def _room_warnings(room: RoomInfo) -> list[str]:
    warnings = []
    if room.over_quota:
        warnings.append(f"the models take {human_bytes(room.models_bytes)}, over the quota of "
                        f"{human_bytes(room.limits.quota)}; see what would go with `modeldepot prune --dry-run`")
    if room.over_high_watermark:
        warnings.append(f"the models volume is {room.percent_used:.0f}% used, over the high watermark of "
                        f"{room.limits.high_pct:g}%; see what would go with `modeldepot prune --dry-run`")
    if room.atime_mode == "noatime" and room.limits.configured:
        warnings.append("the models volume is mounted noatime: eviction and prune take the least recently "
                        "downloaded models first, not the least recently used")
    return warnings
