"""The RQ side of the controller: enqueue, look up, cancel and stop jobs. JSON serializer only.

Jobs name their functions by string so the UI processes need neither huggingface_hub nor the models
volume; the workers refuse any function not in :data:`ALLOWED_FUNCTIONS` (see ``workers/safety.py``).
"""

from __future__ import annotations

import logging
import uuid

import redis
from rq import Callback, Queue
from rq.command import send_stop_job_command
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from app.core.keys import Keys
from app.core.settings import Settings
from app.core.store import redis_errors

log = logging.getLogger(__name__)

DOWNLOAD_FUNC = "workers.jobs.download_job"
REMOVE_FUNC = "workers.jobs.remove_job"
DISCARD_FUNC = "workers.jobs.discard_partial_job"
VERIFY_FUNC = "workers.jobs.verify_job"
CHECK_FUNC = "workers.jobs.check_updates_job"
ALLOWED_FUNCTIONS = frozenset({DOWNLOAD_FUNC, REMOVE_FUNC, DISCARD_FUNC, VERIFY_FUNC, CHECK_FUNC})

_ON_SUCCESS = "workers.hooks.on_download_success"
_ON_FAILURE = "workers.hooks.on_download_failure"
_ON_STOPPED = "workers.hooks.on_download_stopped"
_ALLOWED_CALLBACKS = frozenset({_ON_SUCCESS, _ON_FAILURE, _ON_STOPPED})
ALLOWED_CALLABLES = ALLOWED_FUNCTIONS | _ALLOWED_CALLBACKS


def new_job_id(kind: str) -> str:
    return f"md-{kind}-{uuid.uuid4().hex[:16]}"


class JobQueue:
    """Enqueue and control Model Depot's RQ jobs, with the queue names and job timeout of ``settings``."""

    def __init__(self, connection: redis.Redis, settings: Settings) -> None:
        self.connection = connection
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.downloads = Queue(self.keys.download_queue, connection=connection, serializer=JSONSerializer)
        self.maintenance = Queue(self.keys.remove_queue, connection=connection, serializer=JSONSerializer)

    def enqueue_download(self, name: str, job_id: str) -> None:
        """Queue the download of the record ``name``; the job reads its parameters from the record."""
        with redis_errors():
            self.downloads.enqueue(
                DOWNLOAD_FUNC, name, job_id=job_id, job_timeout=self.settings.job_timeout,
                result_ttl=3600, failure_ttl=24 * 3600, description=f"download {name}",
                on_success=Callback(_ON_SUCCESS), on_failure=Callback(_ON_FAILURE),
                on_stopped=Callback(_ON_STOPPED),
            )

    def enqueue_remove(self, name: str, job_id: str, stopping_job_id: str | None = None) -> None:
        """Queue the removal of ``name``, after the download ``stopping_job_id`` (if any) has stopped."""
        with redis_errors():
            self.maintenance.enqueue(REMOVE_FUNC, name, stopping_job_id, job_id=job_id, job_timeout=600,
                                     result_ttl=3600, failure_ttl=24 * 3600, description=f"remove {name}")

    def enqueue_discard(self, repo_id: str, commit: str | None) -> None:
        with redis_errors():
            self.maintenance.enqueue(DISCARD_FUNC, repo_id, commit, job_id=new_job_id("discard"), job_timeout=600,
                                     result_ttl=600, description=f"discard partial {repo_id}")

    def enqueue_verify(self, name: str) -> str:
        job_id = new_job_id("verify")
        with redis_errors():
            self.maintenance.enqueue(VERIFY_FUNC, name, job_id=job_id, job_timeout=3600, result_ttl=3600,
                                     failure_ttl=24 * 3600, description=f"verify {name}")
        return job_id

    def enqueue_check(self, names: list[str] | None) -> str:
        """Queue an update check of the records ``names`` (None: every model that follows a branch)."""
        job_id = new_job_id("check")
        what = "every model" if names is None else ", ".join(names[:3]) + ("…" if len(names) > 3 else "")
        with redis_errors():
            self.maintenance.enqueue(CHECK_FUNC, names, job_id=job_id, job_timeout=3600, result_ttl=3600,
                                     failure_ttl=24 * 3600, description=f"check updates of {what}")
        return job_id

    def is_waiting(self, job_id: str) -> bool:
        """True while the job sits in one of our queues (not merely marked queued by a worker that died)."""
        with redis_errors():
            return any(self.connection.lpos(queue.key, job_id) is not None
                       for queue in (self.downloads, self.maintenance))

    def is_alive(self, job_id: str) -> bool:
        """True while the job's work-horse beats: its heartbeat key (``workers/heartbeat.py``) has not expired."""
        with redis_errors():
            return bool(self.connection.exists(self.keys.heartbeat(job_id)))

    def exists(self, job_id: str) -> bool:
        with redis_errors():
            return bool(Job.exists(job_id, connection=self.connection))

    def status(self, job_id: str) -> JobStatus | None:
        with redis_errors():
            try:
                return Job.fetch(job_id, connection=self.connection, serializer=JSONSerializer).get_status()
            except NoSuchJobError:
                return None

    def cancel_queued(self, job_id: str) -> bool:
        """Take a job off its queue; False if it is no longer queued."""
        with redis_errors():
            try:
                job = Job.fetch(job_id, connection=self.connection, serializer=JSONSerializer)
                if job.get_status() not in (JobStatus.QUEUED, JobStatus.DEFERRED, JobStatus.SCHEDULED):
                    return False
                job.cancel()
                return True
            except (NoSuchJobError, InvalidJobOperation):
                return False

    def stop_running(self, job_id: str) -> bool:
        """Ask the worker running ``job_id`` to stop it; False if no worker runs it."""
        with redis_errors():
            try:
                send_stop_job_command(self.connection, job_id, serializer=JSONSerializer)
                return True
            except (NoSuchJobError, InvalidJobOperation):
                return False
