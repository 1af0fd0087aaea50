"""Which transfer failures are worth another try, and how long to wait before it.

Transient: HTTP 408, 429 and 5xx, connection refused or reset, a read timeout (a stall: no byte for
``MODELDEPOT_STALL_S``), and a body cut short. Everything else (not found, gated, disk full, a bad
checksum...) is permanent and fails the download at once. Waits grow exponentially with full jitter
(AWS's "Exponential Backoff and Jitter"): a random time between 0 and ``min(cap, base * 2**n)``, so many
workers hit by one outage do not come back in step; a longer ``Retry-After`` from the Hub wins.
"""

from __future__ import annotations

import errno
import random
from dataclasses import dataclass

import httpx2
from huggingface_hub import errors as hf_errors

_PERMANENT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EROFS, errno.EPERM})


@dataclass(frozen=True)
class Backoff:
    """Waits of 0..min(cap_s, base_s * 2**(n-1)) seconds before the n-th retry of an outage."""

    base_s: float = 1.0
    cap_s: float = 60.0

    def delay(self, attempt: int, *, retry_after: float | None = None, rng: random.Random | None = None) -> float:
        """The wait before retry number ``attempt`` of an outage; never shorter than the Hub's ``Retry-After``
        (a ``Retry-After: 0`` does not turn the backoff into a busy loop)."""
        ceiling = min(self.cap_s, self.base_s * 2 ** max(attempt - 1, 0))
        jittered = (rng or random).uniform(0, ceiling)
        return max(jittered, retry_after or 0.0)


def transient_cause(error: BaseException) -> str | None:
    """A few words on a failure worth retrying (``HTTP 503``, ``connection reset``), or None if it is permanent."""
    if isinstance(error, hf_errors.HfHubHTTPError):
        status = error.response.status_code if error.response is not None else 0
        return f"HTTP {status}" if status in (408, 429) or status >= 500 else None
    if isinstance(error, httpx2.TimeoutException):
        return "no data (timeout)"
    if isinstance(error, httpx2.ConnectError):
        return "connection refused"
    if isinstance(error, httpx2.ReadError | httpx2.WriteError | httpx2.RemoteProtocolError):
        return "connection reset"
    if isinstance(error, httpx2.TransportError):
        return type(error).__name__
    if isinstance(error, OSError) and error.errno in _PERMANENT_ERRNOS:
        return None
    if isinstance(error, ConnectionError | TimeoutError):
        return "connection reset"
    if isinstance(error, OSError) and "Consistency check failed" in str(error):
        return "transfer cut short"
    return None


def retry_after(error: BaseException) -> float | None:
    """Seconds the Hub asked us to wait (``Retry-After`` on a 429 or 503), if any."""
    if not isinstance(error, hf_errors.HfHubHTTPError) or error.response is None:
        return None
    value = error.response.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
