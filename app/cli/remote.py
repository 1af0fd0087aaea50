"""The depot over HTTP: :class:`~app.cli.depot.Depot`'s calls as requests to a UI worker's ``/api/v1``
(docs/api.md), for a command run with MODELDEPOT_URL (or ``--url``) and no Redis.

The API runs the same Controller, so its answers are the Controller's own; its errors come back as the classes
of app/core/errors.py by their ``code``, with the server's message, and a server that cannot be reached as
:class:`~app.cli.errors.ServerUnreachableError`: the commands print and exit exactly as in direct mode.

The token goes in one header of one client and nowhere else: not in a message, not in a log line (httpx logs
no headers, and hides ``Authorization`` in a request's repr), not in an exception.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import fields
from types import TracebackType
from typing import Any, TypeVar, cast
from urllib.parse import quote

import httpx
from pydantic import SecretStr

from app.cli.depot import PruneReport
from app.cli.errors import ServerUnreachableError
from app.cli.streams import QUIET_S, EventFeed, ProgressFeed
from app.core.controller import Outcome
from app.core.errors import (
    ConfigError,
    ConflictError,
    InvalidInputError,
    ModelDepotError,
    NotFoundError,
    PermissionDeniedError,
    StateUnavailableError,
    TooManyTokenAttemptsError,
)
from app.core.quota import Limits, Victim
from app.core.records import RecordView
from app.core.redis_url import redact
from app.core.replication import ReplicaLag, ReplicationInfo
from app.core.settings import Settings
from app.core.status import HealthReport, QueueInfo, RoomInfo, TransferLimits, VolumeInfo, WorkerInfo
from app.core.validation import parse_model_name

API = "/api/v1"
TIMEOUT = httpx.Timeout(30.0, connect=5.0)
"""A call's timeout (seconds): connecting, and each read and write."""
STREAM_TIMEOUT = httpx.Timeout(30.0, connect=5.0, read=QUIET_S)
"""A stream's: a read that waits longer than :data:`~app.cli.streams.QUIET_S` reconnects."""

ERRORS: dict[str, type[ModelDepotError]] = {
    "invalid_input": InvalidInputError,
    "too_large": InvalidInputError,
    "unsupported_media_type": InvalidInputError,
    "unauthorized": PermissionDeniedError,
    "forbidden": PermissionDeniedError,
    "not_found": NotFoundError,
    "conflict": ConflictError,
    "unavailable": StateUnavailableError,
}
"""The API's error codes and the errors they were on the server (``too_many_requests``:
TooManyTokenAttemptsError, with the answer's ``Retry-After``)."""

_PROXY_DOWN = frozenset({502, 503, 504})


class RemoteDepot:
    """The shared model list through one UI worker's HTTP API; every call is one request (the streams aside).

    ``listen``: the live reads (``models``, ``version``, ``replica``, ``fetch_models``, ``get_logs``) follow the
    events stream, opened the first time one of them is read; without it they are requests too.
    ``requested_by`` is not sent: the API names the caller itself (the token's user).

    Reads after a write pass the write's ``version`` (``?version=``), so that the worker answering them (any one,
    behind a balancer) has seen the write first.
    """

    def __init__(self, url: str, token: SecretStr | None, *, settings: Settings, listen: bool = False) -> None:
        self.url = url.rstrip("/")
        self.settings = settings
        self.listen = listen
        headers = {"Accept": "application/json", "User-Agent": "modeldepot-cli"}
        if token is not None and token.get_secret_value():
            headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        self.client = httpx.Client(base_url=self.url + API, headers=headers, timeout=TIMEOUT)
        self._events: EventFeed | None = None
        self._written = 0  # the server's state version after this depot's last write

    def __enter__(self) -> RemoteDepot:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        if self._events is not None:
            self._events.close()
        self.client.close()

    # ---- live reads ----------------------------------------------------------------------------------
    @property
    def models(self) -> Mapping[str, RecordView]:
        if self.listen:
            return self._feed().models
        return {record["name"]: record for record in self._list()}

    @property
    def version(self) -> int:
        return self._feed().version if self.listen else 0

    @property
    def replica(self) -> EventFeed | _Still:
        return self._feed() if self.listen else _Still()

    def fetch_models(self) -> list[RecordView]:
        """Every record, sorted by name (as ``Controller.fetch_models``)."""
        if self.listen:
            models = self._feed().models
            return [models[name] for name in sorted(models)]
        return self._list()

    def get_logs(self) -> list[str]:
        """The event log, oldest first, as many lines as a log keeps (MODELDEPOT_LOG_SIZE, 1000 by default)."""
        if self.listen:
            return list(self._feed().state.logs)
        return self._logs()

    def _feed(self) -> EventFeed:
        if self._events is None:
            self._events = EventFeed.open(lambda headers: self._stream("/events", headers),
                                          lambda: (self._list(), self._logs()), log_size=self.settings.log_size)
        return self._events

    def progress(self, name: str) -> ProgressFeed:
        """The progress stream of ``name``, its first line read (what `--wait` follows).

        Raises:
            NotFoundError, PermissionDeniedError, ServerUnreachableError...
        """
        return ProgressFeed.open(name, lambda headers: self._stream(model_path(name) + "/progress", headers,
                                                                    params=self._after_writes()))

    # ---- reads ---------------------------------------------------------------------------------------
    def get_model(self, model_name: str) -> RecordView:
        """Raises: NotFoundError, InvalidInputError."""
        answer = self._call("GET", model_path(model_name), params=self._after_writes())
        return cast(RecordView, _object(answer, "a record"))

    def health(self) -> HealthReport:
        """The server's health report (`modeldepot status`)."""
        return health_report(_object(self._call("GET", "/status"), "a health report"))

    def _list(self) -> list[RecordView]:
        answer = _object(self._call("GET", "/models", params=self._after_writes()), "the model list")
        return cast(list[RecordView], _array(answer.get("models"), "the model list"))

    def _logs(self) -> list[str]:
        answer = _object(self._call("GET", "/logs", params={"n": self.settings.log_size}), "the log")
        return [str(line) for line in _array(answer.get("logs"), "the log")]

    # ---- actions -------------------------------------------------------------------------------------
    def download_model(self, model_name: str, revision: str | None = None,
                       allow_patterns: list[str] | None = None, ignore_patterns: list[str] | None = None,
                       requested_by: str | None = None) -> Outcome:
        body = {"model": model_name, "revision": revision, "include": allow_patterns or [],
                "exclude": ignore_patterns or []}
        return self._write("POST", "/models", json=body)

    def remove_model(self, model_name: str, requested_by: str | None = None) -> Outcome:
        return self._write("DELETE", model_path(model_name))

    def cancel_download(self, model_name: str, requested_by: str | None = None) -> Outcome:
        return self._act(model_name, "cancel")

    def retry_download(self, model_name: str, requested_by: str | None = None) -> Outcome:
        return self._act(model_name, "retry")

    def pause_download(self, model_name: str, requested_by: str | None = None) -> Outcome:
        return self._act(model_name, "pause")

    def resume_download(self, model_name: str, requested_by: str | None = None) -> Outcome:
        return self._act(model_name, "resume")

    def verify_model(self, model_name: str, requested_by: str | None = None) -> Outcome:
        return self._act(model_name, "verify")

    def update_model(self, model_name: str, requested_by: str | None = None) -> Outcome:
        return self._act(model_name, "update")

    def pin_model(self, model_name: str, requested_by: str | None = None) -> Outcome:
        return self._act(model_name, "pin")

    def unpin_model(self, model_name: str, requested_by: str | None = None) -> Outcome:
        return self._act(model_name, "unpin")

    def check_updates(self, model_name: str | None = None, requested_by: str | None = None) -> Outcome:
        if model_name is None:
            return self._write("POST", "/updates/check")
        return self._act(model_name, "check")

    def prune(self, *, dry_run: bool = False, requested_by: str | None = None) -> PruneReport:
        answer = _object(self._call("POST", "/prune", json={"dry_run": dry_run}), "a prune report")
        victims = tuple(Victim(str(v["name"]), int(v["size_bytes"]), float(v["idle_since"]))
                        for v in answer.get("victims") or ())
        return PruneReport(bool(answer.get("dry_run")), tuple(answer.get("removing") or ()), victims,
                           str(answer.get("message") or ""))

    def _act(self, model_name: str, action: str) -> Outcome:
        return self._write("POST", f"{model_path(model_name)}/{action}")

    def _write(self, method: str, path: str, **kwargs: Any) -> Outcome:
        answer = _object(self._call(method, path, **kwargs), "an action's outcome")
        if isinstance(answer.get("version"), int):
            self._written = max(self._written, answer["version"])
        return outcome(answer)

    def _after_writes(self) -> dict[str, int]:
        return {"version": self._written} if self._written else {}

    # ---- HTTP ----------------------------------------------------------------------------------------
    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        """One request's JSON answer.

        Raises:
            ServerUnreachableError: no answer.
            ModelDepotError: the API's error as its app.core.errors class; ConfigError for an answer that is not
                the API's.
        """
        try:
            response = self.client.request(method, path, **kwargs)
        except httpx.TransportError as e:
            raise unreachable(self.url, e) from e
        if not response.is_success:
            raise api_error(response, self.url)
        try:
            return response.json()
        except ValueError as e:
            raise not_the_api(response, self.url) from e

    def _stream(self, path: str, headers: dict[str, str], *, params: dict[str, int] | None = None) -> httpx.Response:
        """A streaming GET whose status was checked (its body is left to read).

        Raises: as :meth:`_call`.
        """
        request = self.client.build_request("GET", path, headers=headers, params=params, timeout=STREAM_TIMEOUT)
        try:
            response = self.client.send(request, stream=True)
            if not response.is_success:
                response.read()
        except httpx.TransportError as e:
            raise unreachable(self.url, e) from e
        if not response.is_success:
            response.close()
            raise api_error(response, self.url)
        return response


class _Still:
    """The replica of a depot that does not listen: it never moves (as a Controller's without its listener)."""

    def wait_for(self, version: int, timeout: float) -> bool:
        time.sleep(timeout)
        return False


def model_path(model_name: str) -> str:
    """``/models/org/name`` or ``/models/org/name@rev`` with each part URL-encoded.

    Raises:
        InvalidModelNameError, InvalidInputError: as the Controller refuses the name (the same message).
    """
    repo_id, revision = parse_model_name(model_name)
    org, name = (quote(part, safe="") for part in repo_id.split("/", 1))
    return f"/models/{org}/{name}" + (f"@{quote(revision, safe='')}" if revision else "")


def api_error(response: httpx.Response, url: str) -> ModelDepotError:
    """The error of an answer that is not a success: the app.core.errors class of its ``code`` with the server's
    message; a proxy's 502/503/504 as ServerUnreachableError; anything else as an answer that is not the API's."""
    try:
        error = response.json()["error"]
        code, message = str(error["code"]), str(error["message"])
    except (ValueError, KeyError, TypeError):
        if response.status_code in _PROXY_DOWN:
            return ServerUnreachableError(f"cannot reach the Model Depot API at {redact(url)}: it answered HTTP "
                                          f"{response.status_code}. Is its UI worker running? Check MODELDEPOT_URL.")
        return not_the_api(response, url)
    if code == "too_many_requests":
        wait = response.headers.get("Retry-After", "")
        return TooManyTokenAttemptsError(message, retry_after_s=int(wait) if wait.isdigit() else 0)
    return ERRORS.get(code, ModelDepotError)(message)


def unreachable(url: str, error: httpx.TransportError) -> ServerUnreachableError:
    reason = "no answer in time" if isinstance(error, httpx.TimeoutException) else str(error) or type(error).__name__
    return ServerUnreachableError(f"cannot reach {redact(url)}: {reason.rstrip('.')}. Check MODELDEPOT_URL (or "
                                  "--url) and that the UI worker is running.")


def not_the_api(response: httpx.Response, url: str) -> ConfigError:
    kind = response.headers.get("content-type", "no content type").split(";")[0]
    where = response.headers.get("location")
    moved = f", redirecting to {redact(where)}" if where else ""
    return ConfigError(f"{redact(url)} did not answer as the Model Depot API (HTTP {response.status_code}, {kind}"
                       f"{moved} for {response.request.method} {response.request.url.path}). Set MODELDEPOT_URL to "
                       "a UI worker's address, e.g. http://modeldepot.internal:7860.")


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _unexpected(what)
    return value


def _array(value: object, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise _unexpected(what)
    return value


def _unexpected(what: str) -> ModelDepotError:
    return ModelDepotError(f"the API answered something other than {what}; is the server a newer or older Model "
                           "Depot than this command line?")


def outcome(answer: object) -> Outcome:
    """An action's ``202 {"name", "job_id", "message", "changed"}`` as the Controller's Outcome."""
    body = _object(answer, "an action's outcome")
    job = body.get("job_id")
    return Outcome(str(body.get("name") or ""), str(body.get("message") or ""), bool(body.get("changed")),
                   str(job) if job is not None else None)


def health_report(body: Mapping[str, Any]) -> HealthReport:
    """``GET /status``'s JSON (``modeldepot status --json``) as the HealthReport it was made from."""
    room = body.get("room")
    return HealthReport(
        redis_url=str(body.get("redis_url") or ""),
        redis_version=body.get("redis_version"),
        redis_error=body.get("redis_error"),
        replication=_replication(body["replication"]) if body.get("replication") else None,
        state_version=int(body.get("state_version") or 0),
        queues=[_build(QueueInfo, q) for q in body.get("queues") or ()],
        workers=[_build(WorkerInfo, w) for w in body.get("workers") or ()],
        models_by_status=dict(body.get("models_by_status") or {}),
        volume=_build(VolumeInfo, body["volume"]) if body.get("volume") else None,
        transfers=_build(TransferLimits, body["transfers"]) if body.get("transfers") else None,
        room=_build(RoomInfo, {**room, "limits": _build(Limits, room.get("limits") or {})}) if room else None,
        problems=list(body.get("problems") or ()),
        warnings=list(body.get("warnings") or ()),
    )


def _replication(values: Mapping[str, Any]) -> ReplicationInfo:
    replicas = [_build(ReplicaLag, r) for r in values.get("replicas") or ()]
    return _build(ReplicationInfo, {**values, "replicas": replicas})


Built = TypeVar("Built")


def _build(cls: type[Built], values: Mapping[str, Any]) -> Built:
    """A dataclass from its ``asdict`` form; keys it does not know (a newer server's) are left out."""
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    return cls(**{k: v for k, v in values.items() if k in known})
