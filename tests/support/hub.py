"""The local Hub (:mod:`tests.hubserver`) as fixtures.

``hub`` is a fresh Hub for one test: worker processes reach it through ``HF_ENDPOINT`` (see
:func:`tests.support.workers.worker_env`). ``module_hub`` is one Hub for a whole test module whose tests call
huggingface_hub in this process; the module's own ``hf`` fixture points this process at it with :func:`serving`
and says what else it changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from tests.hubserver import HubServer, point_huggingface_hub_at


@pytest.fixture
def hub() -> Iterator[HubServer]:
    with HubServer() as server:
        yield server


@pytest.fixture(scope="module")
def module_hub() -> Iterator[HubServer]:
    with HubServer() as server:
        yield server


@contextmanager
def serving(server: HubServer, monkeypatch: pytest.MonkeyPatch, *, stall_seconds: float) -> Iterator[HubServer]:
    """Point this process's huggingface_hub at a shared ``server`` for one test, then undo what the test set on it.

    The records (``bytes_served``...) stay: each test makes repos of its own names.
    """
    point_huggingface_hub_at(monkeypatch, server.url)
    server.stall_seconds = stall_seconds
    try:
        yield server
    finally:
        server.clear_faults()
        server.throttle_bps = None
        server.ignore_range = False
        server.xet = False
        server.valid_tokens.clear()
