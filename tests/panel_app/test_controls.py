"""The Controls tab's strategy editor: a draft is checked once the user stops typing (a
debounce, in virtual time here), its Apply button disabled while the draft breaks a rule."""

from __future__ import annotations

from reactivex.testing import TestScheduler

from engine.config import StrategyConfig
from panel_app.views.controls import ControlsView
from tests.factories import trading_rig

SMA = StrategyConfig(
    name="sma", strategy="sma_crossover", symbols=("AAPL",), params={"fast": 5, "slow": 20}
)


def watchers_of_fast(controls: ControlsView) -> int:
    """Watchers of the draft's ``fast`` (the strategy keeps one of its own)."""
    return len(controls.drafts["sma"].param.watchers.get("fast", {}).get("value", []))


def view(scheduler: TestScheduler, role: str = "operator") -> ControlsView:
    rig = trading_rig(strategies=(SMA,))
    return ControlsView(rig.kernel, "ops", role, scheduler=scheduler, edit_quiet_s=0.4)


def edit(scheduler: TestScheduler, controls: ControlsView, at: float, **values: object) -> None:
    draft = controls.drafts["sma"]
    scheduler.schedule_absolute(at, lambda *_: draft.param.update(**values))


def test_a_draft_is_checked_once_typing_stops_and_apply_waits_for_a_valid_one() -> None:
    scheduler = TestScheduler()
    controls = view(scheduler)
    check, apply = controls.draft_checks["sma"], controls.apply_buttons["sma"]
    edit(scheduler, controls, 1.0, fast=30)  # fast above slow: against the rule
    edit(scheduler, controls, 1.2, fast=40)

    scheduler.advance_to(1.5)  # still typing (quiet since 1.2 only)
    before = (check.object, apply.disabled)
    scheduler.advance_to(1.7)
    invalid = (check.object, apply.disabled)
    edit(scheduler, controls, 2.0, fast=8)
    scheduler.advance_to(2.5)

    assert before == ("", False)
    assert "Not valid" in invalid[0] and "fast (40)" in invalid[0] and invalid[1] is True
    assert (check.object, apply.disabled) == ("", False)


def test_a_disposed_editor_checks_nothing_more() -> None:
    scheduler = TestScheduler()
    controls = view(scheduler)
    watching = watchers_of_fast(controls)
    controls.dispose()
    edit(scheduler, controls, 1.0, fast=30)

    scheduler.advance_to(5.0)

    assert controls.draft_checks["sma"].object == ""
    assert watchers_of_fast(controls) == watching - 1  # ours gone; the editor widget keeps its


def test_a_viewer_gets_no_editor_and_no_watchers() -> None:
    controls = view(TestScheduler(), role="viewer")

    assert controls.apply_buttons["sma"].disabled
    assert watchers_of_fast(controls) == 1  # the strategy's own only
