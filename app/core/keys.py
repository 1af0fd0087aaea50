"""Every Redis key and channel name Model Depot uses, built from the configured prefix.

Ops read these keys; ``docs/operations.md`` has the same list as a table. Nothing else in the code base
spells a key.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key and channel names under one prefix."""

    prefix: str

    @property
    def version(self) -> str:
        """STRING (int): global state version, bumped by every write."""
        return f"{self.prefix}:version"

    @property
    def models(self) -> str:
        """HASH: model name -> JSON model record."""
        return f"{self.prefix}:models"

    @property
    def logs(self) -> str:
        """LIST: JSON event-log entries, oldest first, capped at ``log_size``."""
        return f"{self.prefix}:logs"

    @property
    def events_channel(self) -> str:
        """PUB/SUB channel: one JSON event per write."""
        return f"{self.prefix}:events"

    @property
    def events_stream(self) -> str:
        """STREAM: the same events, capped, for ops tools that read with XREAD."""
        return f"{self.prefix}:stream"

    @property
    def snapshot(self) -> str:
        """STRING: the JSON snapshot last persisted (same bytes as ``controller_state.json``)."""
        return f"{self.prefix}:snapshot"

    @property
    def snapshot_version(self) -> str:
        """STRING (int): version of the snapshot in ``snapshot`` (compared without parsing the document)."""
        return f"{self.prefix}:snapshot:version"

    @property
    def watchdog_lock(self) -> str:
        """STRING: lock held by the one watchdog pass running at a time."""
        return f"{self.prefix}:lock:watchdog"

    @property
    def room_lock(self) -> str:
        """STRING: lock held while a download's room is checked and reserved, or an eviction or prune pass picks
        and marks what to remove: one at a time across the cluster, so no two count the same free bytes."""
        return f"{self.prefix}:lock:room"

    @property
    def upkeep_turn(self) -> str:
        """STRING with TTL: set by the worker whose turn it is to run the usage scan and the due update checks."""
        return f"{self.prefix}:upkeep:turn"

    @property
    def usage_scan_due(self) -> str:
        """STRING with TTL: present until the next usage scan of the models' access times is due."""
        return f"{self.prefix}:upkeep:usage"

    @property
    def hub_backoff(self) -> str:
        """STRING with TTL: the Hub asked us to slow down (HTTP 429); no update check runs until it expires."""
        return f"{self.prefix}:hub:backoff"

    @property
    def sessions(self) -> str:
        """Prefix of login session keys (``{prefix}:session:<sha256 of token>``)."""
        return f"{self.prefix}:session"

    @property
    def watchdog_turn(self) -> str:
        """STRING with TTL: set by the watchdog whose turn it is, so the cluster makes one pass per interval."""
        return f"{self.prefix}:watchdog:turn"

    def session(self, token: str) -> str:
        """STRING with TTL: JSON of the logged-in user; keyed by a hash so tokens never sit in Redis."""
        return f"{self.sessions}:{hashlib.sha256(token.encode()).hexdigest()}"

    @property
    def api_tokens(self) -> str:
        """HASH: sha256 of an API token -> JSON of its details (user, role, label, prefix, created, last used,
        expiry): what `modeldepot token ls` lists. The token itself is never stored."""
        return f"{self.prefix}:tokens"

    def api_token(self, token: str) -> str:
        """STRING (TTL = the token's expiry, if any): JSON of the token's details, keyed by a hash of the token, so
        checking a bearer token is one GET on every worker and a revocation (DEL) counts at once everywhere."""
        return self.api_token_by_digest(token_digest(token))

    def api_token_by_digest(self, digest: str) -> str:
        """The key of :meth:`api_token` named by the token's :func:`token_digest` (a field of :attr:`api_tokens`):
        how a revocation by label or prefix finds it."""
        return f"{self.prefix}:token:{digest}"

    def token_failures(self, source: str) -> str:
        """STRING counter with TTL: recent requests from ``source`` (a client address) with a wrong API token."""
        return f"{self.prefix}:token-failures:{hashlib.sha256(source.encode()).hexdigest()}"

    def login_failures(self, name: str) -> str:
        """STRING counter with TTL: recent wrong passwords for a user name (keyed by a hash of the name)."""
        return f"{self.prefix}:login-failures:{hashlib.sha256(name.encode()).hexdigest()}"

    def heartbeat(self, job_id: str) -> str:
        """STRING with TTL: present while the job's work-horse is alive."""
        return f"{self.prefix}:heartbeat:{job_id}"

    def partial_claim(self, repo_folder: str, etag: str) -> str:
        """STRING with TTL: the job writing ``<repo_folder>/blobs/<etag>.incomplete``; one writer per partial, on
        any host (the file lock beside it only guards one host)."""
        return f"{self.prefix}:partial:{repo_folder}:{etag}"

    @property
    def metrics(self) -> str:
        """HASH: cluster-wide counters (downloads started/succeeded/failed, bytes downloaded)."""
        return f"{self.prefix}:metrics"

    @property
    def durations(self) -> str:
        """LIST: recent job durations in seconds, for the /metrics histogram."""
        return f"{self.prefix}:durations"

    @property
    def download_queue(self) -> str:
        """RQ queue name for downloads (RQ keeps it under ``rq:queue:<name>``)."""
        return f"{self.prefix}-downloads"

    @property
    def remove_queue(self) -> str:
        """RQ queue name for removals and other short maintenance jobs."""
        return f"{self.prefix}-maintenance"


def token_digest(token: str) -> str:
    """The sha256 (hex) that names an API token in Redis instead of the token itself."""
    return hashlib.sha256(token.encode()).hexdigest()
