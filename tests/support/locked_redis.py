"""The password of the ``locked_redis`` fixture (tests/conftest.py): a redis-server started with ``requirepass``."""

PASSWORD = "s3cret-Pa55"
