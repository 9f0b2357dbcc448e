"""``seamless verify`` run as a real process: exit 0 and the head hash for an intact log, 1 and
the first bad seq for a changed one, a clear one-line refusal for a file another process
holds open, and PostgreSQL streams named by ``--dsn/--stream`` or by a config file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import psycopg
import pytest
import yaml

from persistence import EventLog
from persistence.pg import PostgresEventLog
from testkit.engine_process import env, seamless
from tests.persistence.builders import fill, tick

ROOT = Path(__file__).resolve().parents[2]


def assert_one_line_error(result: subprocess.CompletedProcess[str], *names: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for name in names:
        assert name in lines[0]


def _write_log(path: Path, n: int = 30) -> str:
    with EventLog(path) as log:
        for i in range(n):
            log.append(fill(i) if i % 6 == 0 else tick(i))
        log.save_snapshot(log.flush(), 1, {"meta": {"seq": n}})
        return log.verify_chain().head


def test_help_names_the_exit_codes(tmp_path: Path) -> None:
    result = seamless("verify", "--help", cwd=tmp_path)
    assert result.returncode == 0 and result.stdout.startswith("usage: seamless verify")
    assert "--db" in result.stdout and "--dsn" in result.stdout and "--config" in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["verify"],
        ["verify", "--db", "x", "--dsn", "y"],
        ["verify", "--db", "x", "--batch-size", "0"],
    ],
)
def test_bad_arguments_exit_2(args: list[str], tmp_path: Path) -> None:
    result = seamless(*args, cwd=tmp_path)
    assert result.returncode == 2 and "usage: seamless verify" in result.stderr


def test_an_intact_log_exits_0_with_its_head(tmp_path: Path) -> None:
    head = _write_log(tmp_path / "log.duckdb")

    text = seamless("verify", "--db", "log.duckdb", cwd=tmp_path)
    as_json = seamless("verify", "--db", "log.duckdb", "--json", "--batch-size", "7", cwd=tmp_path)

    assert text.returncode == 0, text.stderr
    assert "intact, 30 events up to seq 30, 1 snapshot chain head(s) match" in text.stdout
    assert f"chain head {head}" in text.stdout
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["ok"] is True and report["head"] == head and report["last_seq"] == 30
    assert report["first_bad_seq"] is None and report["log"] == "log.duckdb"


def test_a_changed_row_exits_1_naming_the_first_bad_seq(tmp_path: Path) -> None:
    _write_log(tmp_path / "log.duckdb")
    con = duckdb.connect(str(tmp_path / "log.duckdb"))
    try:
        con.execute("UPDATE events SET payload = '{\"qty\": 9}' WHERE seq = 17")
    finally:
        con.close()

    text = seamless("verify", "--db", "log.duckdb", cwd=tmp_path)
    as_json = seamless("verify", "--db", "log.duckdb", "--json", cwd=tmp_path)

    assert text.returncode == 1
    assert "BROKEN at seq 17" in text.stdout and "16 events verify before it" in text.stdout
    assert as_json.returncode == 1
    report = json.loads(as_json.stdout)
    assert report["ok"] is False and report["first_bad_seq"] == 17


def test_a_missing_file_is_named_and_not_created(tmp_path: Path) -> None:
    result = seamless("verify", "--db", "none.duckdb", cwd=tmp_path)
    assert_one_line_error(result, "seamless verify: error:", "none.duckdb")
    assert not (tmp_path / "none.duckdb").exists()


_HOLD = """
import sys, time
from persistence import EventLog
log = EventLog(sys.argv[1]).open()
print("holding", flush=True)
time.sleep(120)
"""


def test_a_file_an_engine_holds_open_is_refused_clearly(tmp_path: Path) -> None:
    _write_log(tmp_path / "held.duckdb")
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD, str(tmp_path / "held.duckdb")],
        cwd=ROOT,
        env=env(),
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        result = seamless("verify", "--db", "held.duckdb", cwd=tmp_path)
        assert_one_line_error(
            result,
            "seamless verify: error: cannot verify",
            "held.duckdb",
            "held by another process",
            f"PID {holder.pid}",
            "stop that engine first",
        )
    finally:
        holder.kill()
        holder.wait(30)


def test_a_postgres_stream_by_dsn_or_config(pg_dsn: str, tmp_path: Path) -> None:
    with PostgresEventLog(pg_dsn, stream="book-a") as log:
        for i in range(20):
            log.append(fill(i) if i % 5 == 0 else tick(i))
        head = log.verify_chain().head
    with PostgresEventLog(pg_dsn, stream="book-b") as log:
        log.append(tick(1), wait=True)
    config = {"storage": {"backend": "postgres", "postgres_dsn": pg_dsn, "stream": "book-a"}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")

    by_dsn = seamless("verify", "--dsn", pg_dsn, "--stream", "book-a", "--json", cwd=tmp_path)
    by_config = seamless("verify", "--config", "cfg.yaml", "--json", cwd=tmp_path)

    for result in (by_dsn, by_config):
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["ok"] and report["head"] == head and report["events"] == 20
        assert "#book-a" in report["log"] and "password" not in report["log"]

    with psycopg.connect(pg_dsn) as con:
        con.execute("UPDATE events SET topic = 'forged' WHERE stream = 'book-a' AND seq = 11")
    broken = seamless("verify", "--dsn", pg_dsn, "--stream", "book-a", cwd=tmp_path)
    other = seamless("verify", "--dsn", pg_dsn, "--stream", "book-b", cwd=tmp_path)
    assert broken.returncode == 1 and "BROKEN at seq 11" in broken.stdout
    assert other.returncode == 0, other.stdout  # each stream has its own chain
