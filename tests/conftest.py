"""Fixtures shared by every test: private PostgreSQL and NATS servers (tests/services/)."""

from testkit.services.nats import *  # noqa: F403
from testkit.services.postgres import *  # noqa: F403
