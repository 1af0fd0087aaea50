"""Workers run only Model Depot's own job functions and callbacks.

With the JSON serializer a payload cannot carry pickled code, but a job still names a function to import;
someone with write access to Redis could name ``os.system``. :class:`SafeJob` refuses every name that is
not in the allowlist before anything is imported.
"""

from __future__ import annotations

from typing import Any

from rq.job import Job

from app.core.jobqueue import ALLOWED_CALLABLES


class ForbiddenJobError(Exception):
    """A job names a function Model Depot does not run."""


def _check(name: str | None) -> None:
    if name is not None and name not in ALLOWED_CALLABLES:
        raise ForbiddenJobError(f"refusing to run {name[:100]!r}: not a Model Depot job function")


class SafeJob(Job):
    """An RQ job that only resolves allowlisted function and callback names."""

    @property
    def func(self) -> Any:
        if self.instance is not None:
            raise ForbiddenJobError("refusing a job bound to an object instance")
        _check(self.func_name)
        return super().func

    @property
    def success_callback(self) -> Any:
        _check(self._success_callback_name)
        return super().success_callback

    @property
    def failure_callback(self) -> Any:
        _check(self._failure_callback_name)
        return super().failure_callback

    @property
    def stopped_callback(self) -> Any:
        _check(self._stopped_callback_name)
        return super().stopped_callback
