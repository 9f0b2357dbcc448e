"""testkit/loop_profile.py: event-loop callbacks timed by what they run; the drains profiled."""

from __future__ import annotations

import asyncio
import functools
import time

from tornado.ioloop import IOLoop

from panel_app.push import SessionBridge
from testkit.loop_profile import DrainProfile, LoopProfile
from tests.panel_app.test_push import make_bridge


def busy(ms: float) -> None:
    """Spin until this thread has used `ms` of CPU (not wall time: a noisy machine may preempt)."""
    end = time.thread_time() + ms / 1e3
    while time.thread_time() < end:
        pass


async def waits_then_works() -> None:
    await asyncio.sleep(0)
    busy(2)


def test_callbacks_are_timed_by_what_they_run_and_the_patch_is_removed() -> None:
    original = asyncio.events.Handle._run
    profile = LoopProfile()
    profile.install()
    try:

        async def main() -> None:
            loop = IOLoop.current()
            for _ in range(3):
                loop.add_callback(busy, 5)  # wrapped by Tornado in IOLoop._run_callback
            await asyncio.sleep(0.05)
            await asyncio.get_running_loop().create_task(waits_then_works())

        asyncio.run(main())
    finally:
        profile.remove()
    assert asyncio.events.Handle._run is original

    by_kind = {kind: s for (_, kind), s in profile.stats.items()}
    assert by_kind["busy"].count == 3
    assert by_kind["busy"].cpu_ns >= 3 * 5e6  # a busy loop is CPU, not waiting
    # Wall and thread CPU are separate clocks read a few instructions apart: allow 1 %.
    assert by_kind["busy"].wall_ns >= 0.99 * by_kind["busy"].cpu_ns
    assert by_kind["busy"].max_wall_ns >= 0.99 * 5e6
    assert by_kind["task waits_then_works"].wall_ns >= 0.99 * 2e6
    lines = profile.report()
    assert lines[0].startswith("  loop thread 'MainThread': busy ")
    (busy_line,) = [line for line in lines if line.endswith("  busy")]
    assert " 3 x mean " in busy_line


def test_reset_forgets_what_was_recorded() -> None:
    profile = LoopProfile()
    profile.install()
    try:
        asyncio.run(asyncio.sleep(0))
        assert profile.stats
        profile.reset()
        assert not profile.stats
    finally:
        profile.remove()


def test_the_drain_profile_sees_what_a_drain_ran_and_only_drains() -> None:
    original = SessionBridge._drain
    profile = DrainProfile()
    profile.install()
    try:
        bridge, doc, _ = make_bridge()
        bridge.post(functools.partial(busy, 1))
        busy(1)  # outside a drain: not profiled
        assert doc.run_pending() == 1
    finally:
        profile.remove()
    assert SessionBridge._drain is original
    assert profile.drains == 1
    report = profile.report()
    assert report[0] == "  1 drains profiled (cProfile: shares, not absolute times)"
    busy_rows = [line for line in report if line.endswith("(busy)")]
    assert len(busy_rows) == 2  # by own time and by cumulative time
    assert all(row.split()[0] == "1" for row in busy_rows)  # one call: the drain's
