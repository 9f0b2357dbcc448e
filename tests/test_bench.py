"""The benchmark suite's entry point (``python -m bench``) and the seams around it.

Run as the users run it: a child ``python -m bench`` from the repository root. The one
measurement here is the bus benchmark on a few thousand events (about a second): it proves
``--json`` gives one JSON object on stdout with the baseline measured in the same run.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


def bench(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def bench_modules() -> list[str]:
    """The modules of bench/ that define a top-level ``main`` (read, not imported)."""
    return sorted(
        path.stem
        for path in BENCH.glob("*.py")
        if not path.stem.startswith("_")
        and re.search(r"^def main\(", path.read_text(encoding="utf-8"), re.MULTILINE)
    )


def test_list_names_every_benchmark_with_a_description() -> None:
    result = bench("--list")

    assert result.returncode == 0, result.stderr
    listed = dict(
        re.match(r"\s+(\w+)\s+(.*)", line).groups()  # type: ignore[union-attr]
        for line in result.stdout.splitlines()
        if line.startswith("  ")
    )
    assert sorted(listed) == bench_modules()
    assert {"backtest", "bus", "crash_loop", "load", "ui_latency"} <= set(listed)
    assert all(description.strip() for description in listed.values()), listed
    assert bench().stdout == result.stdout  # no name lists them too


def test_unknown_benchmark_is_refused_by_name() -> None:
    result = bench("no_such_bench")

    assert result.returncode == 2
    assert "'no_such_bench'" in result.stderr and "bus" in result.stderr


def test_json_prints_one_object_with_the_baseline_of_the_same_run() -> None:
    result = bench("bus", "--events", "2000", "--json")

    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)  # stdout is the object alone
    assert figures["events"] == 2000
    runs = {(run["subscribers"], run["mode"]): run for run in figures["runs"]}
    assert set(runs) == {(1, "sync"), (1, "threaded"), (10, "sync"), (10, "threaded")}
    for run in runs.values():
        assert run["events_per_s"] > 0 and run["baseline_per_s"] > 0
        assert run["ratio"] == run["events_per_s"] / run["baseline_per_s"]
    assert "bus throughput" in result.stderr  # the usual lines, moved out of the way


def test_every_benchmark_parses_its_options_and_json() -> None:
    for name in bench_modules():
        result = bench(name, "--help")
        assert result.returncode == 0, f"{name}: {result.stderr}"
        assert f"python -m bench {name}" in result.stdout, name
        assert "--json" in result.stdout, name


def _imports(folder: Path, package: str) -> list[str]:
    pattern = re.compile(rf"^\s*(from|import)\s+{package}(\.|\s|$)")
    return [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
        for path in sorted(folder.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.match(line)
    ]


def test_bench_and_tests_share_helpers_only_through_testkit() -> None:
    """bench/ never imports tests/, tests/ never import bench/, testkit imports neither."""
    assert not _imports(BENCH, "tests")
    assert not _imports(ROOT / "tests", "bench")
    assert not _imports(ROOT / "testkit", "tests") + _imports(ROOT / "testkit", "bench")


def test_production_packages_import_no_test_or_bench_code() -> None:
    for package in ("streams", "state", "persistence", "engine", "panel_app"):
        for support in ("testkit", "tests", "bench"):
            assert not _imports(ROOT / package, support), (package, support)


def test_bench_does_not_edit_sys_path() -> None:
    edits = [
        f"{path.name}: {line.strip()}"
        for path in sorted(BENCH.glob("*.py"))
        for line in path.read_text(encoding="utf-8").splitlines()
        if "sys.path" in line
    ]
    assert not edits
