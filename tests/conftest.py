"""Fixtures shared by every test: private PostgreSQL and NATS servers (tests/services/)."""

from tests.services.nats import *  # noqa: F403
from tests.services.postgres import *  # noqa: F403
