"""Helpers shared by the tests (``tests/``) and the benchmarks (``bench/``).

Why a top-level package of its own: the benchmarks and the tests drive the same real things
(``seamless run``/``serve`` processes, private PostgreSQL and NATS servers, a dashboard server
with known users and tokens, headless Chromium, /proc CPU accounting, the event-loop profiler),
and each must be able to use them without depending on the other: ``bench/`` never imports
``tests/`` and ``tests/`` never imports ``bench/``. Production packages (``streams``, ``state``,
``persistence``, ``engine``, ``panel_app``) must not carry test machinery either, and nothing in
them imports ``testkit``. ``testkit`` may import every production package and ``pytest``
(the ``test`` extra), like the tests themselves.

Modules:

- ``testkit``: :func:`free_port`, the loopback port every server here is started on.
- ``testkit.measure``: the one percentile every benchmark reports; CPU and memory from /proc.
- ``testkit.workload``: numbered fills and ticks for event logs, random-walk bars for backtests.
- ``testkit.services``: private ``nats-server`` (JetStream) and PostgreSQL servers.
- ``testkit.engine_process``: the ``seamless`` CLI as a child process (crash-test config) and
  the systemd side of its ``$NOTIFY_SOCKET`` (messages with sender pids).
- ``testkit.serve_target``: ``seamless serve`` with an SSE recorder, as a crash-loop target.
- ``testkit.crash_loop``: SIGKILL a real engine at random moments and check the log after each.
- ``testkit.access_server``: a dashboard server with known users and tokens, an HTTP client.
- ``testkit.dashboard``: headless Chromium and a fast in-process engine for the dashboard.
- ``testkit.loop_profile``: what occupies the server's asyncio event loop.
- ``testkit.broker_contract``: the broker contract suite every broker adapter runs.

It lives in the source tree beside ``tests/`` and ``bench/`` and, like them, is not part of the
installed distribution (pyproject's setuptools ``include`` list): test machinery that needs
pytest and apt-installed servers has no place in the wheel. It is imported from the repository
root, where ``python -m pytest`` and ``python -m bench`` put it on ``sys.path``; mypy checks it
with the rest of the project.
"""

from __future__ import annotations

import socket


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (another process may take it
    before it is bound: callers start their server at once)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
