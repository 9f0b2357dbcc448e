"""testkit/measure.py: the one percentile every benchmark reports; the CPU of descendant
processes, by kind, and of the whole machine; this process's resident memory."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from testkit.measure import (
    BROWSER,
    DRIVER,
    default_kind,
    descendants_cpu_by_kind,
    descendants_cpu_s,
    machine_cpu_s,
    percentile,
    rss_kib,
)


def test_nearest_rank_of_the_sorted_values() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]  # unsorted on purpose

    assert percentile(values, 50) == 3.0  # the median of an odd count
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 5.0
    assert percentile(values, 75) == 4.0  # index round(0.75 * 4) = 3
    assert percentile(range(1, 101), 99) == 99  # index round(0.99 * 99) = 98


def test_no_values_gives_nan() -> None:
    assert math.isnan(percentile([], 50))


@pytest.mark.parametrize("q", [-1, 100.5, 150])
def test_q_outside_0_to_100_is_refused_naming_it(q: float) -> None:
    with pytest.raises(ValueError, match=rf"q={q!r}"):
        percentile([1.0], q)


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


def test_rss_is_this_process_resident_memory() -> None:
    assert rss_kib() > 1024  # an interpreter with pytest loaded holds more than a MiB
