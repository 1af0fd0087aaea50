from tests.integration.conftest import controller, hub, start_worker, worker_env  # noqa: F401
