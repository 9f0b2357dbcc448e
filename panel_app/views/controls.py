"""The Controls tab: operator commands, risk limits, strategy parameters and feed speed.

Every action goes through :meth:`ControlsView.act`, which re-checks the session's role on the
server before calling ``kernel.command(..., actor=user)`` (an audited ``command_issued``
event); a viewer's click, or a forged widget message from a viewer's browser, is refused
there whatever the page shows. The engine checks the actor again when it handles the command.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import panel as pn
import param

from panel_app.views.dashboard import notify

log = logging.getLogger(__name__)

OPERATOR = "operator"
RUNNER_COMMANDS = ("start", "pause", "resume", "stop", "reset")


def on_click(button: pn.widgets.Button, action: Callable[[], object]) -> None:
    """Run ``action()`` when ``button`` is clicked (its result is not the handler's)."""

    def handler(_event: param.parameterized.Event) -> None:
        action()

    button.on_click(handler)


def _editable(strategy: param.Parameterized) -> list[str]:
    """The strategy's own tunable parameters (not ``name``/``symbols`` of the base class)."""
    base = {"name", "symbols"}
    return [n for n in strategy.param if n not in base and not strategy.param[n].constant]


class ControlsView(pn.viewable.Viewer):
    """Operator controls for one session; disabled (and refused server-side) for viewers."""

    def __init__(self, kernel: Any, user: str, role: str, **params: Any) -> None:
        super().__init__(**params)
        self.kernel = kernel
        self.user = user
        self.role = role
        self.refused = 0
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self._build()

    @property
    def allowed(self) -> bool:
        """May this session's user act? Checked on every action, on the server."""
        return self.role == OPERATOR

    def act(self, command: str, **args: Any) -> bool:
        """Send ``command`` as this session's user if the role allows it; True if sent."""
        if not self.allowed:
            self.refused += 1
            log.warning("refused %r from %s (role %s)", command, self.user, self.role)
            notify("error", f"{self.user} ({self.role}) may not {command}: operators only")
            return False
        try:
            self.kernel.command(command, actor=self.user, **args)
        except Exception as exc:
            notify("error", f"{command} failed: {exc}")
            return False
        self.sent.append((command, args))
        notify("info", f"{command} sent")
        return True

    # -- layout -------------------------------------------------------------------------------
    def _build(self) -> None:
        disabled = not self.allowed
        self.buttons: dict[str, pn.widgets.Button] = {}
        for command in RUNNER_COMMANDS:
            label = "Reset risk halt" if command == "reset" else command.title()
            button = pn.widgets.Button(
                label=label,
                color="primary" if command in ("start", "resume") else "default",
                disabled=disabled,
                css_classes=[f"sl-cmd-{command}"],
                width=140,
            )
            on_click(button, functools.partial(self.act, command))
            self.buttons[command] = button
        self.flatten = pn.widgets.Button(
            label="Flatten all…",
            color="danger",
            disabled=disabled,
            css_classes=["sl-cmd-flatten"],
            width=140,
        )
        self.flatten_confirm = pn.widgets.Button(
            label="Confirm: close every position",
            color="danger",
            visible=False,
            css_classes=["sl-cmd-flatten-confirm"],
        )
        self.flatten_cancel = pn.widgets.Button(label="Cancel", visible=False)
        self.flatten.on_click(lambda _e: self._ask_flatten(True))
        self.flatten_cancel.on_click(lambda _e: self._ask_flatten(False))
        self.flatten_confirm.on_click(self._do_flatten)

        self.speed = pn.widgets.FloatInput(
            label="Feed speed (x real time, 0 = max)",
            value=_feed_speed(self.kernel),
            start=0.0,
            disabled=disabled,
            width=220,
        )
        self.speed_apply = pn.widgets.Button(label="Set speed", disabled=disabled)
        on_click(self.speed_apply, lambda: self.act("set_speed", speed=self.speed.value))

        risk = getattr(getattr(self.kernel, "config", None), "risk", None)
        self.limits = {
            name: pn.widgets.FloatInput(
                label=name.replace("_", " "),
                value=float(getattr(risk, name, 0.0) or 0.0),
                start=0.0,
                disabled=disabled,
                width=200,
            )
            for name in ("max_position", "max_order_notional", "daily_loss_limit")
        }
        self.limits_apply = pn.widgets.Button(label="Apply risk limits", disabled=disabled)
        on_click(
            self.limits_apply,
            lambda: self.act(
                "set_risk_limits", limits={k: w.value for k, w in self.limits.items()}
            ),
        )

        strategy_panels = []
        self.drafts: dict[str, param.Parameterized] = {}
        for name, strategy in getattr(getattr(self.kernel, "host", None), "strategies", {}).items():
            fields = _editable(strategy)
            # Widgets edit a draft copy: the live strategy belongs to the engine thread and
            # changes only through the audited set_params command.
            draft = type(strategy)(**{f: getattr(strategy, f) for f in fields})
            self.drafts[name] = draft
            apply = pn.widgets.Button(label=f"Apply {name}", disabled=disabled)
            on_click(apply, functools.partial(self._apply_params, name))
            editor: Any
            if not fields:
                editor = pn.pane.Markdown("no tunable parameters")
            elif disabled:
                editor = pn.pane.Markdown(
                    "\n".join(f"- {f}: `{getattr(strategy, f)}`" for f in fields)
                )
            else:
                editor = pn.Param(draft, parameters=fields, show_name=False)
            strategy_panels.append(pn.Card(editor, apply, title=f"Strategy {name}", width=320))

        role_note = (
            f"Signed in as **{self.user}** ({self.role})."
            if self.allowed
            else f"Signed in as **{self.user}** ({self.role}): read-only, controls are disabled."
        )
        self._layout = pn.Column(
            pn.pane.Markdown(role_note, css_classes=["sl-role"]),
            pn.Row(*self.buttons.values()),
            pn.Row(self.flatten, self.flatten_confirm, self.flatten_cancel),
            pn.Row(
                pn.Card(*self.limits.values(), self.limits_apply, title="Risk limits", width=320),
                *strategy_panels,
                pn.Card(self.speed, self.speed_apply, title="Feed", width=280),
            ),
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    def _ask_flatten(self, show: bool) -> None:
        if show and not self.allowed:
            self.act("flatten")  # refused and reported
            return
        self.flatten_confirm.visible = show
        self.flatten_cancel.visible = show

    def _do_flatten(self, _event: Any) -> None:
        self._ask_flatten(False)
        self.act("flatten", reason=f"flatten all by {self.user}")

    def _apply_params(self, name: str) -> None:
        draft = self.drafts[name]
        live = self.kernel.host.strategies[name]
        changed = {
            f: getattr(draft, f) for f in _editable(draft) if getattr(draft, f) != getattr(live, f)
        }
        if not changed:
            notify("info", f"{name}: nothing changed")
            return
        self.act("set_params", strategy=name, params=changed)


def _feed_speed(kernel: Any) -> float:
    feed = getattr(getattr(kernel, "config", None), "feed", None)
    return float(getattr(feed, "speed", 1.0) or 0.0)
