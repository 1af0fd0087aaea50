from tests.integration.conftest import controller  # noqa: F401
from tests.support.hub import hub  # noqa: F401
from tests.support.workers import start_worker, worker_env  # noqa: F401
