"""testkit/proc_cpu.py: the CPU of descendant processes, by kind, and of the whole machine."""

from __future__ import annotations

import subprocess
import sys

from testkit.proc_cpu import (
    BROWSER,
    DRIVER,
    default_kind,
    descendants_cpu_by_kind,
    descendants_cpu_s,
    machine_cpu_s,
)

#: Spins until it has used 0.5 s of CPU, says so, then waits (alive) for its stdin to close.
BURNER = """
import sys, time
while time.process_time() < 0.5:
    pass
print("burnt", flush=True)
sys.stdin.read()
"""


def test_a_labelled_child_is_counted_under_its_label() -> None:
    busy0, idle0 = machine_cpu_s()
    # other children of the test process (a browser driver left by earlier tests) count too
    others0 = descendants_cpu_by_kind().get(DRIVER, 0.0)
    child = subprocess.Popen(
        [sys.executable, "-c", BURNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "burnt"
        by_kind = descendants_cpu_by_kind({child.pid: "burner"})
        total = descendants_cpu_s()
    finally:
        child.communicate("", timeout=10)
    busy1, idle1 = machine_cpu_s()
    after_exit = descendants_cpu_by_kind({child.pid: "burner"})
    assert by_kind["burner"] >= 0.4  # clock ticks of 10 ms: allow for rounding
    # the labelled child is not counted twice (under the default kind as well)
    assert by_kind.get(DRIVER, 0.0) - others0 < 0.2
    assert total >= by_kind["burner"]
    assert busy1 - busy0 >= 0.4
    assert idle1 >= idle0
    assert "burner" not in after_exit  # an ended process is no longer counted (documented)


def test_chromium_processes_are_one_kind() -> None:
    assert default_kind("chromium") == BROWSER
    assert default_kind("chrome") == BROWSER
    assert default_kind("headless_shell") == BROWSER
    assert default_kind("node") == DRIVER
    assert default_kind("python3") == DRIVER
