"""Crash test on the real dashboard server: ``seamless serve`` SIGKILLed and restarted.

The server runs the crash loop's fast synthetic trading config plus a viewer API token on a
free loopback port; a thread streams ``/api/events?topic=>`` with the token and records every
critical event received (SSE publishes a critical event only after its commit, so each one
received is acknowledged). The server is SIGKILLed 1-3 s after its first event, restarted,
three times, then stopped with SIGTERM. The checks are ``testkit/crash_loop.py``'s
(``python -m bench crash_loop --serve`` runs this loop 20+ times): after every kill every
acknowledged critical event is in the log with the same seq, seq runs 1..N without gap or
duplicate, restore equals a full replay, the killed run is marked crashed, and the next start's
positions after reconciliation equal the broker's account file as the kill left it; the final
stop is clean.
"""

from __future__ import annotations

import random
from pathlib import Path

from testkit.crash_loop import ServeTarget, Tally, crash_loop
from testkit.engine_process import write_config

CYCLES = 3


def test_sigkill_of_the_dashboard_server_loses_no_acknowledged_event(tmp_path: Path) -> None:
    tally = Tally()
    target = ServeTarget(write_config(tmp_path, rate=500))
    figures = crash_loop(target, CYCLES, random.Random(20240603), 1.0, 3.0, tally, progress=False)
    assert not tally.failures, tally.failures
    assert tally.cycles == CYCLES
    assert tally.restarts_ok == CYCLES  # 2 restarts after kills + the final SIGTERM run
    assert tally.lost == 0
    assert tally.acknowledged > 20, "no critical events streamed: the test would prove little"
    assert target.sse_frames > tally.acknowledged  # market data streamed too
    assert figures["fills"] > 5, "the strategy did not trade: the test would prove little"
