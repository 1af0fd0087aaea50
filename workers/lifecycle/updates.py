"""Update checks: one light call per model says whether its branch moved on the Hub.

The call is ``model_info(revision=<branch>, expand=["sha", "gated"])``: the commit the branch names now and
whether the repo is gated, with no file listing. A model downloaded at a named revision is looked up once in the
repo's refs first, which tells a branch (it may move, so it is checked and can be updated) from a tag (it does
not). A failed check (Hub down, repo gone, revision gone, gated without a token) is written on the record as
``check_error``; the model's status never changes. A 429 makes every checker in the cluster wait for its
``Retry-After`` (the ``hub_backoff`` key).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import httpx2
from huggingface_hub import HfApi, get_token
from huggingface_hub import errors as hf_errors

from app.core.errors import DownloadError
from app.core.records import ModelRecord, Status, Unchanged
from app.core.store import LogEntry, Mutation
from workers.context import WorkerContext
from workers.download.hub_errors import hub_errors
from workers.download.transfer.retry import retry_after

log = logging.getLogger(__name__)

_DEFAULT_BACKOFF_S = 30.0
_MAX_BACKOFF_S = 600.0
_BATCH = 50
"""Check results written per pipeline."""
T = TypeVar("T")


@dataclass(frozen=True)
class RefCheck:
    """What the Hub says about a model's revision: its commit now and whether it is a branch or a tag; or why
    the check failed."""

    latest_commit: str | None = None
    ref_kind: str | None = None
    error: str | None = None


class HubBusy(Exception):
    """The Hub answered 429: wait ``retry_after_s`` before the next call."""

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"the Hub asked to wait {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


def check_ref(record: ModelRecord, *, token: str | None = None, endpoint: str | None = None) -> RefCheck:
    """Ask the Hub for the commit of ``record``'s branch (one call; two the first time for a named revision).

    Raises:
        HubBusy: the Hub answered 429.
    """
    api = HfApi(endpoint=endpoint, token=token)
    try:
        with hub_errors(record.repo_id, revision=record.revision, endpoint=endpoint):
            kind = record.ref_kind or ("branch" if record.revision is None else _ref_kind(api, record))
            if kind is None:
                return RefCheck(error=f"update check failed: {record.revision} no longer exists on the Hub for "
                                      f"{record.repo_id}; it stays as it is. Download another revision to follow it.")
            info = _call(lambda: api.model_info(record.repo_id, revision=record.revision, expand=["sha", "gated"],
                                                token=token))
    except DownloadError as e:
        return RefCheck(error=f"update check failed: {e}")
    if info.gated and get_token() is None:
        return RefCheck(latest_commit=info.sha, ref_kind=kind,
                        error=f"{record.repo_id} is now gated on the Hub: an update needs HF_TOKEN on the workers, "
                              "of an account that accepted its terms")
    return RefCheck(latest_commit=info.sha, ref_kind=kind)


def _ref_kind(api: HfApi, record: ModelRecord) -> str | None:
    """``branch`` or ``tag``: what the record's revision is in the repo's refs (None: neither any more)."""
    refs = _call(lambda: api.list_repo_refs(record.repo_id))
    if any(ref.name == record.revision for ref in refs.branches):
        return "branch"
    return "tag" if any(ref.name == record.revision for ref in refs.tags) else None


def _call(call: Callable[[], T]) -> T:
    """One Hub call, its passing failures worded for a check (the next one tries again) and 429 raised as
    :class:`HubBusy`."""
    try:
        return call()
    except hf_errors.HfHubHTTPError as e:
        status = e.response.status_code if e.response is not None else 0
        if status == 429:
            raise HubBusy(min(_MAX_BACKOFF_S, retry_after(e) or _DEFAULT_BACKOFF_S)) from e
        if status == 408 or status >= 500:
            raise DownloadError(f"the Hub answered HTTP {status}; the next check tries again") from e
        raise
    except httpx2.TransportError as e:
        raise DownloadError(f"the Hub could not be reached ({type(e).__name__}); the next check tries again") from e


@dataclass
class CheckSummary:
    checked: int = 0
    updates: int = 0
    errors: int = 0


def check_models(ctx: WorkerContext, names: Iterable[str], *, sleep: Callable[[float], None] = time.sleep,
                 token: str | None = None, endpoint: str | None = None) -> CheckSummary:
    """Check each of ``names`` that is ready and follows a branch, one Hub call at a time, waiting out 429s; write
    the results to the records (in pipelined batches: a check of 1,000 models is not 1,000 fsyncs) and persist
    the snapshot when an update or an error appeared or went away."""
    models = ctx.store.read_state().models
    summary = CheckSummary()
    significant = False
    pending: dict[str, Mutation] = {}
    for name in names:
        raw = models.get(name)
        record = ModelRecord.model_validate(raw) if raw is not None else None
        if record is None or record.status is not Status.READY or not record.follows_branch:
            continue
        result = _check_waiting_out_429(ctx, record, sleep=sleep, token=token, endpoint=endpoint)
        pending[name] = _written(result)
        summary.checked += 1
        summary.updates += result.ref_kind == "branch" and result.latest_commit != record.commit
        summary.errors += result.error is not None
        if len(pending) >= _BATCH:
            significant |= _flush(ctx, pending)
            pending = {}
    significant |= _flush(ctx, pending)
    if significant:
        ctx.persist()
    return summary


def followed(ctx: WorkerContext) -> list[str]:
    """Every ready model that follows a branch, least recently checked first."""
    models = [ModelRecord.model_validate(raw) for raw in ctx.store.read_state().models.values()]
    due = [m for m in models if m.status is Status.READY and m.follows_branch]
    return [m.name for m in sorted(due, key=lambda m: (m.checked_at or 0.0, m.name))]


def _check_waiting_out_429(ctx: WorkerContext, record: ModelRecord, *, sleep: Callable[[float], None],
                           token: str | None, endpoint: str | None) -> RefCheck:
    while True:
        wait_s = ctx.store.hub_backoff_s()
        if wait_s > 0:
            sleep(wait_s)
            continue
        try:
            return check_ref(record, token=token, endpoint=endpoint)
        except HubBusy as busy:
            log.warning("the Hub answered 429 to an update check; every checker waits %.0f s", busy.retry_after_s)
            ctx.store.back_off_hub(busy.retry_after_s)


def _written(result: RefCheck) -> Mutation:
    def mutate(current: ModelRecord | None) -> tuple[ModelRecord | None, LogEntry | None]:
        if current is None:
            raise Unchanged
        checked = current.checked(latest_commit=result.latest_commit, ref_kind=result.ref_kind, error=result.error,
                                  at=time.time())
        return checked, _news(current, checked)

    return mutate


def _flush(ctx: WorkerContext, pending: dict[str, Mutation]) -> bool:
    """Write the results; True if an update or a check error appeared or went away."""
    if not pending:
        return False
    return any(change.before is not None and (change.before.update_available, change.before.check_error)
               != (change.record.update_available, change.record.check_error)
               for change in ctx.store.update_many(pending, kind="check"))


def _news(before: ModelRecord, after: ModelRecord) -> LogEntry | None:
    """A log line when the check found something new: an update, or a check error (once, not every time)."""
    if after.update_available and after.latest_commit != before.latest_commit:
        return LogEntry("worker", f"update available for {after.name}: {(after.commit or '')[:7]} → "
                                  f"{(after.latest_commit or '')[:7]} on {after.branch}")
    if after.check_error and after.check_error != before.check_error:
        return LogEntry("worker", f"{after.name}: {after.check_error}", level="warning")
    return None
