from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.core.controller import Controller
from app.core.settings import Settings
from tests.support.hub import hub  # noqa: F401
from tests.support.workers import start_worker, worker_env  # noqa: F401


@pytest.fixture
def controller(settings_env: Settings) -> Iterator[Controller]:
    with Controller(settings_env) as c:
        yield c
