"""The Controls tab: operator commands, risk limits, strategy parameters and feed speed.

Every action goes through :meth:`ControlsView.act`, which re-checks the session's role on the
server before calling ``kernel.command(..., actor=user)`` (an audited ``command_issued``
event); a viewer's click, or a forged widget message from a viewer's browser, is refused
there whatever the page shows. The engine checks the actor again when it handles the command.

Strategy parameters are edited on a draft copy; once the user stops typing for
``edit_quiet_s`` (a debounce), the draft is checked against the strategy's rules and the
result shown beside its Apply button, which is disabled while the draft is invalid.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import panel as pn
import param
from reactivex import abc
from reactivex.subject import Subject

from panel_app.facade import EngineFacade, check_params
from panel_app.toasts import notify
from streams.errors import ConfigError
from streams.operators import debounced

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

    def __init__(
        self,
        kernel: EngineFacade,
        user: str,
        role: str,
        *,
        post: Callable[[Callable[[], None]], None] | None = None,
        edit_quiet_s: float = 0.4,
        scheduler: abc.SchedulerBase | None = None,
        **params: Any,
    ) -> None:
        """``post`` runs an update on the session's loop (the session bridge's ``post``; by
        default at once, in the caller's thread); ``scheduler`` drives the debounce."""
        super().__init__(**params)
        self.kernel = kernel
        self.user = user
        self.role = role
        self.refused = 0
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self._post = post if post is not None else (lambda update: update())
        self._edit_quiet_s = edit_quiet_s
        self._scheduler = scheduler
        self._subscriptions: list[abc.DisposableBase | _Unwatch] = []
        self._build()

    def dispose(self) -> None:
        """Stop checking drafts (the session ended)."""
        for subscription in self._subscriptions:
            subscription.dispose()
        self._subscriptions.clear()

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
        self.draft_checks: dict[str, pn.pane.Markdown] = {}
        self.apply_buttons: dict[str, pn.widgets.Button] = {}
        for name, strategy in getattr(getattr(self.kernel, "host", None), "strategies", {}).items():
            fields = _editable(strategy)
            # Widgets edit a draft copy: the live strategy belongs to the engine thread and
            # changes only through the audited set_params command.
            draft = type(strategy)(**{f: getattr(strategy, f) for f in fields})
            self.drafts[name] = draft
            apply = pn.widgets.Button(label=f"Apply {name}", disabled=disabled)
            on_click(apply, functools.partial(self._apply_params, name))
            self.apply_buttons[name] = apply
            self.draft_checks[name] = pn.pane.Markdown("", css_classes=["sl-draft-check"])
            if fields and not disabled:
                self._check_while_typing(name, draft, fields)
            editor: Any
            if not fields:
                editor = pn.pane.Markdown("no tunable parameters")
            elif disabled:
                editor = pn.pane.Markdown(
                    "\n".join(f"- {f}: `{getattr(strategy, f)}`" for f in fields)
                )
            else:
                editor = pn.Param(draft, parameters=fields, show_name=False)
            strategy_panels.append(
                pn.Card(editor, self.draft_checks[name], apply, title=f"Strategy {name}", width=320)
            )

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

    def _check_while_typing(self, name: str, draft: param.Parameterized, fields: list[str]) -> None:
        edits: Subject[str] = Subject()
        watcher = draft.param.watch(lambda _event: edits.on_next(name), fields)
        quiet = edits.pipe(debounced(self._edit_quiet_s, scheduler=self._scheduler))
        self._subscriptions.append(
            quiet.subscribe(on_next=lambda n: self._post(functools.partial(self._show_check, n)))
        )
        self._subscriptions.append(_Unwatch(draft, watcher))

    def _show_check(self, name: str) -> None:
        self.check_draft(name)

    def check_draft(self, name: str) -> str | None:
        """Check strategy ``name``'s draft against its rules; show and return why it may not
        be applied (None when it may), and disable its Apply button meanwhile."""
        draft = self.drafts[name]
        live = self.kernel.host.strategies[name]
        changed = {f: getattr(draft, f) for f in _editable(draft)}
        try:
            check_params(live, changed, where=f"strategy {name!r}")
        except ConfigError as exc:
            self.draft_checks[name].object = f"Not valid: {exc}"
            self.apply_buttons[name].disabled = True
            return str(exc)
        self.draft_checks[name].object = ""
        self.apply_buttons[name].disabled = not self.allowed
        return None

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


class _Unwatch:
    """Removes a ``param`` watcher when disposed (kept with the session's subscriptions)."""

    def __init__(self, owner: param.Parameterized, watcher: Any) -> None:
        self._owner, self._watcher = owner, watcher

    def dispose(self) -> None:
        self._owner.param.unwatch(self._watcher)


def _feed_speed(kernel: EngineFacade) -> float:
    feed = getattr(getattr(kernel, "config", None), "feed", None)
    return float(getattr(feed, "speed", 1.0) or 0.0)
