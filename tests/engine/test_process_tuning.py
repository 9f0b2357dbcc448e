"""Process tuning: the GIL switch interval and the collector settings of `seamless run/serve`,
and the record of the collector's pauses in the health report."""

from __future__ import annotations

import gc
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from engine.config import EngineConfig, parse_config
from engine.process_tuning import GcPauses
from streams.errors import ConfigError
from testkit.engine_process import write_config
from testkit.serve_target import ServeProcess, write_serve_config

ROOT = Path(__file__).resolve().parents[2]


def test_tune_process_sets_the_switch_interval_and_the_collector_and_freezes() -> None:
    # In a child: the settings are process-wide, and this test process keeps the defaults.
    code = textwrap.dedent(
        """
        import gc, json, sys
        from engine.config import EngineConfig
        from engine.process_tuning import GC_PAUSES, tune_process
        before = {"frozen": gc.get_freeze_count(), "threshold": gc.get_threshold()}
        tune_process(EngineConfig(gil_switch_interval_ms=0.5, gc_full_every=77))
        gc.collect()
        print(json.dumps({
            "before": before,
            "switch": sys.getswitchinterval(),
            "threshold": gc.get_threshold(),
            "frozen": gc.get_freeze_count(),
            "report": GC_PAUSES.as_dict(),
        }))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["before"]["frozen"] == 0
    assert got["switch"] == pytest.approx(0.0005)
    assert got["threshold"][2] == 77
    assert got["threshold"][:2] == got["before"]["threshold"][:2]
    assert got["frozen"] > 10_000, "the objects of start-up (modules, classes) are frozen"
    report = got["report"]
    assert report["gil_switch_interval_ms"] == pytest.approx(0.5)
    assert report["collections"][2] >= 1, "the collection after tuning was recorded"
    assert abs(report["frozen_objects"] - got["frozen"]) < 1_000  # frozen objects can still die


def test_tune_process_can_leave_start_up_objects_to_the_collector() -> None:
    code = (
        "import gc; from engine.config import EngineConfig;"
        "from engine.process_tuning import tune_process;"
        "tune_process(EngineConfig(gc_freeze_after_start=False)); print(gc.get_freeze_count())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0"


def test_gc_pauses_records_each_generation_and_the_longest_pause() -> None:
    pauses = GcPauses().install()
    try:
        pauses.install()  # idempotent: one callback, not two
        gc.collect(2)
        gc.collect(0)
    finally:
        pauses.uninstall()
    gc.collect(2)  # not recorded any more
    report = pauses.as_dict()
    assert report["collections"][2] == 1
    assert report["collections"][0] >= 1
    assert report["max_pause_ms"][2] > 0
    assert report["pause_ms"][2] >= report["max_pause_ms"][2]


@pytest.mark.parametrize(
    ("field", "value"),
    [("gil_switch_interval_ms", 0.0), ("gil_switch_interval_ms", 500), ("gc_full_every", 0)],
)
def test_out_of_range_settings_are_refused_naming_the_key(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=field):
        parse_config({"engine": {field: value}}, env={})


def test_defaults_are_what_the_docs_say() -> None:
    cfg = EngineConfig()
    assert (cfg.gil_switch_interval_ms, cfg.gc_full_every, cfg.gc_freeze_after_start) == (
        1.0,
        100,
        True,
    )


def test_seamless_serve_runs_tuned_and_reports_it_in_health(tmp_path: Path) -> None:
    config, token = write_serve_config(write_config(tmp_path, rate=50))
    server = ServeProcess(config, token, tmp_path / "serve.err")
    try:
        server.wait_ready()
        health = server.health()
        assert health is not None
        process = health["process"]
        assert process["gil_switch_interval_ms"] == pytest.approx(1.0)
        assert process["frozen_objects"] > 10_000
        assert len(process["collections"]) == 3
        # SIGUSR1 prints every thread's stack and the server goes on.
        server.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        # every thread's stack (the engine has several), not only the main one's
        while server.err.read_text().count("most recent call first") < 3:
            assert time.monotonic() < deadline, server.err.read_text()[-2000:]
            time.sleep(0.05)
        assert server.health() is not None
    finally:
        assert server.kill(signal.SIGTERM) in (0, 128 + signal.SIGTERM)  # as the crash loop
