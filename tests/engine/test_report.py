"""The HTML report (engine/research/report.py, ``seamless report``): written from a real
backtest's DuckDB log, standalone (no script, style or image loaded from a URL), with its five
sections, parseable HTML, the same metrics whether recorded or computed from the log, and
one-line errors that name the argument."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from engine.backtest import BacktestResult, run_backtest
from engine.config import SeamlessConfig, StateConfig
from engine.research.metrics import (
    METRIC_KEYS,
    daily_returns,
    format_metric,
    json_ready,
    monthly_returns,
)
from engine.research.report import (
    SECTIONS,
    report_data_from_log,
    report_data_from_result,
    report_html,
    write_report,
)
from persistence import EventLog
from streams.errors import PersistenceError
from testkit.engine_process import seamless
from tests.engine.test_metrics import hourly_bars


class Page(HTMLParser):
    """What the tests look for in a report: section ids, URLs loaded, the cells of each table
    (by its id, else its class)."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: list[str] = []
        self.loaded: list[str] = []
        self.roots = 0
        self.cells: dict[str, list[list[str]]] = {}
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "section" and a.get("id"):
            self.ids.append(str(a["id"]))
        if "data-root-id" in a:
            self.roots += 1
        for name in ("src", "href"):
            if tag in ("script", "link", "img", "iframe") and a.get(name):
                self.loaded.append(str(a[name]))
        if tag == "table":
            self._table = a.get("id") or a.get("class") or "table"
            self.cells[self._table] = []
        elif tag == "tr" and self._table:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._row is not None and self._cell is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._table and self._row is not None:
            self.cells[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture(scope="module")
def backtest(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BacktestResult]:
    db = tmp_path_factory.mktemp("report") / "bt.duckdb"
    result = run_backtest(
        hourly_bars(70), strategy="sma", symbol="AAPL", params={"fast": 3, "slow": 12}, db_path=db
    )
    return db, result


def test_seamless_report_writes_a_standalone_page_next_to_the_db(
    backtest: tuple[Path, BacktestResult],
) -> None:
    db, result = backtest

    run = seamless("report", "--db", str(db), cwd=db.parent)

    assert run.returncode == 0, run.stderr
    out = db.with_suffix(".html")
    assert str(out) in run.stdout
    page = Page(out.read_text(encoding="utf-8"))
    assert page.ids == list(SECTIONS)
    assert page.loaded == []  # Bokeh's JavaScript is inline: nothing to fetch, opens offline
    assert page.roots == 3  # equity+drawdown, the monthly heatmap, the histogram
    metrics = dict((row[0], row[1]) for row in page.cells["metrics-table"])
    assert list(metrics.values()) == [
        format_metric(k, v) for k, v in json_ready(result.metrics).items()
    ]
    trades = page.cells["trade-list"]
    assert len(trades) == 1 + result.fills  # a header row, then one row a fill
    assert trades[1][2:6] == [
        "AAPL",
        result.trades[0]["side"],
        f"{result.trades[0]['qty']:,.4g}",
        f"{result.trades[0]['price']:,.4f}",
    ]


def test_out_names_the_file(backtest: tuple[Path, BacktestResult], tmp_path: Path) -> None:
    db, _ = backtest

    run = seamless("report", "--db", str(db), "--out", "sub/tearsheet.html", cwd=tmp_path)

    assert run.returncode == 0, run.stderr
    assert Page((tmp_path / "sub" / "tearsheet.html").read_text()).ids == list(SECTIONS)


def test_the_log_gives_back_the_backtests_curve_fills_and_metrics(
    backtest: tuple[Path, BacktestResult],
) -> None:
    db, result = backtest

    recorded = report_data_from_log(db)
    computed = report_data_from_log(db, use_recorded=False)  # from pnl_updated and the fills

    assert recorded.equity_curve == computed.equity_curve == result.equity_curve
    assert [dict(f) for f in recorded.fills] == [dict(t) for t in result.trades]
    assert recorded.metrics == json_ready(result.metrics)
    for key in METRIC_KEYS:
        want, got = recorded.metrics[key], computed.metrics[key]
        assert (want is None and got is None) or got == pytest.approx(want, rel=1e-9), key


def test_a_run_that_may_not_record_its_metrics_still_gets_them_in_its_report(
    tmp_path: Path,
) -> None:
    db = tmp_path / "bt.duckdb"
    config = SeamlessConfig(state=StateConfig(owners={"engine": ("notes",)}))

    result = run_backtest(
        hourly_bars(30),
        strategy="sma",
        symbol="AAPL",
        params={"fast": 3, "slow": 12},
        config=config,
        db_path=db,
    )

    with EventLog(db) as log:
        refused = log.read(types=["write_refused"])
    assert [e.path for e in refused] == ["backtest.metrics"]  # audited, and the run went on
    data = report_data_from_log(db)
    assert data.subtitle.endswith("metrics computed from the log")
    for key in METRIC_KEYS:
        want, got = json_ready(result.metrics)[key], data.metrics[key]
        assert (want is None and got is None) or got == pytest.approx(want, rel=1e-9), key


def test_a_result_gives_the_same_page(backtest: tuple[Path, BacktestResult]) -> None:
    _, result = backtest

    page = Page(report_html(result))

    assert page.ids == list(SECTIONS) and page.loaded == [] and page.roots == 3
    assert report_data_from_result(result).metrics == json_ready(result.metrics)


def test_a_missing_log_is_a_one_line_error_naming_db(tmp_path: Path) -> None:
    run = seamless("report", "--db", "nowhere.duckdb", cwd=tmp_path)

    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [
        "seamless report: error: --db 'nowhere.duckdb': no event log file there"
    ]


def test_a_log_without_equity_is_a_one_line_error(tmp_path: Path) -> None:
    db = tmp_path / "empty.duckdb"
    with EventLog(db):
        pass

    run = seamless("report", "--db", str(db), cwd=tmp_path)

    assert run.returncode == 1 and "Traceback" not in run.stderr
    (line,) = run.stderr.strip().splitlines()
    assert "--db" in line and "no equity" in line
    assert not db.with_suffix(".html").exists()


def test_write_report_errors_name_out(
    backtest: tuple[Path, BacktestResult], tmp_path: Path
) -> None:
    db, _ = backtest
    blocker = tmp_path / "file"
    blocker.write_text("")

    with pytest.raises(PersistenceError, match="--out"):
        write_report(db, blocker / "report.html")


def test_the_monthly_cells_compound_to_the_total_return(
    backtest: tuple[Path, BacktestResult],
) -> None:
    _, result = backtest

    monthly = monthly_returns(daily_returns(result.equity_curve))

    # 70 weekdays from 2 January 2024: January to April, one heatmap cell a month.
    assert list(monthly.index) == [(2024, 1), (2024, 2), (2024, 3), (2024, 4)]
    assert (1 + monthly).prod() - 1 == pytest.approx(result.metrics["total_return"], rel=1e-9)
