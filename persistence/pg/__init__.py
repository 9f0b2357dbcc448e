"""The PostgreSQL event log (``storage.backend: postgres``): several engine nodes share one
database, each writing its own stream, with a gapless global commit order across streams.

Needs psycopg 3 (the ``scale`` extra); :mod:`persistence` itself never imports this package,
so the embedded DuckDB default works without it.
"""

from persistence.pg.log import PostgresEventLog
from persistence.pg.schema import MIGRATIONS, SCHEMA_VERSION, Migration, migrate

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration", "PostgresEventLog", "migrate"]
