"""Who the primary is and how far behind each replica is: what ``modeldepot status`` and ``/readyz`` name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis
from redis.sentinel import SentinelConnectionPool

LAGGING_S = 10
"""A replica silent this long (INFO's ``lag``) is named in the warnings: a failover now could lose more."""


@dataclass
class ReplicaLag:
    address: str
    state: str
    """``online`` once it has synced; ``wait_bgsave``, ``send_bulk`` while it is being sent the data set."""
    lag_s: int | None
    """Seconds since the replica last acknowledged (INFO's ``lag``)."""
    behind_bytes: int
    """How much of the primary's replication stream the replica has not acknowledged."""


@dataclass
class ReplicationInfo:
    primary: str
    """``host:port`` of the server answering writes."""
    via: str
    """``sentinel service 'depot'`` or ``the URL``: how clients find the primary."""
    role: str
    """The answering server's own role: ``master``; ``slave`` means the URL points at a replica (writes fail)."""
    replicas: list[ReplicaLag] = field(default_factory=list)
    min_replicas_to_write: int = 0

    @classmethod
    def read(cls, connection: redis.Redis) -> ReplicationInfo:
        """Ask the server ``connection`` writes to.

        Raises:
            redis.RedisError: Redis does not answer (the caller reports it).
        """
        info: dict[str, Any] = connection.info("replication")
        pool = connection.connection_pool
        if isinstance(pool, SentinelConnectionPool):
            host, port = pool.get_master_address()  # type: ignore[no-untyped-call]
            via = f"sentinel service {pool.service_name!r}"
        else:
            kwargs = pool.connection_kwargs
            host, port = kwargs.get("host", kwargs.get("path", "?")), kwargs.get("port", "")
            via = "the URL"
        offset = int(info.get("master_repl_offset", 0))
        replicas = [_replica(value, offset) for key, value in sorted(info.items())
                    if key.startswith("slave") and isinstance(value, dict)]
        return cls(primary=f"{host}:{port}" if port else str(host), via=via, role=str(info.get("role", "?")),
                   replicas=replicas, min_replicas_to_write=_min_replicas(connection))

    def warnings(self) -> list[str]:
        """What ops should hear about: writes going to a replica, replicas missing, lagging or still syncing."""
        if self.role != "master":
            return [f"{self.primary} (found through {self.via}) is a {self.role}, not a primary: writes fail until "
                    "it is promoted or MODELDEPOT_REDIS_URL points at the primary"]
        notes = []
        if self.min_replicas_to_write > len(self.online):
            notes.append(f"the primary has {len(self.online)} replica(s) online and min-replicas-to-write "
                         f"{self.min_replicas_to_write}: it refuses writes until a replica is back")
        for replica in self.replicas:
            if replica.state != "online":
                notes.append(f"replica {replica.address} is {replica.state} (syncing)")
            elif replica.lag_s is not None and replica.lag_s >= LAGGING_S:
                notes.append(f"replica {replica.address} last acknowledged {replica.lag_s} s ago")
        return notes

    @property
    def online(self) -> list[ReplicaLag]:
        return [replica for replica in self.replicas if replica.state == "online"]


def _replica(value: dict[str, Any], primary_offset: int) -> ReplicaLag:
    lag = value.get("lag")
    return ReplicaLag(address=f"{value.get('ip', '?')}:{value.get('port', '?')}", state=str(value.get("state", "?")),
                      lag_s=int(lag) if lag is not None else None,
                      behind_bytes=max(0, primary_offset - int(value.get("offset", 0))))


def _min_replicas(connection: redis.Redis) -> int:
    try:
        values: dict[Any, Any] = connection.config_get("min-replicas-to-write")
    except redis.ResponseError:  # CONFIG is renamed or denied on managed Redis
        return 0
    return int(values.get("min-replicas-to-write", 0) or 0)
