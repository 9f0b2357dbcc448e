"""Private instances of external servers (PostgreSQL, NATS) for tests and benchmarks."""
