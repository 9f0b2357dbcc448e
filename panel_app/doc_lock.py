"""Run a function under a served session's document lock now, not a loop iteration later.

Bokeh's ``Document.add_next_tick_callback`` costs a served session two passes of the event
loop before the callback runs: the callback is queued with ``IOLoop.add_callback``, and the
coroutine that takes the session's document lock is then started as a task, one more pass
later. Under load each pass waits behind everything else queued on the loop (every session's
messages, the SSE writes): measured in ``bench/load.py`` with ten sessions, 35-50 ms at the
median between the dashboard asking for a drain and the drain starting.

:func:`run_locked` starts that same coroutine (``ServerSession.with_document_locked``) at
once, on the calling loop thread. It finishes there and then when the lock is free and the
session's socket takes the message; otherwise it is resumed by the futures it waits on, in
order, exactly as a task would be. Bokeh's invariants hold: the document is changed under
its lock, and the lock's owner sends the pending messages before releasing it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from tornado.ioloop import IOLoop

log = logging.getLogger(__name__)


def run_locked(doc: Any, fn: Callable[[], None]) -> bool:
    """Loop thread: run ``fn()`` under ``doc``'s session lock, starting now.

    Returns False (nothing run) when ``doc`` is not the document of a live server session
    (a notebook or a test document): the caller then falls back to
    ``doc.add_next_tick_callback``.
    """
    context = getattr(doc, "session_context", None)
    session = getattr(context, "_session", None)
    locked = getattr(session, "with_document_locked", None)
    if locked is None or getattr(session, "destroyed", True):
        return False
    _step(locked(fn))
    return True


def _step(coro: Coroutine[Any, Any, Any]) -> None:
    """Advance ``coro`` until it waits; resume it when what it waits on is done (a minimal
    asyncio task: the awaited future is handed back with ``_asyncio_future_blocking``
    cleared, as ``asyncio.Task`` does)."""
    try:
        awaited = coro.send(None)
    except StopIteration:
        return
    except Exception:
        log.exception("dashboard: a document-locked update failed")
        return
    if awaited is None:  # a bare yield (``asyncio.sleep(0)``): go on in the next pass
        IOLoop.current().add_callback(_step, coro)
        return
    awaited._asyncio_future_blocking = False
    awaited.add_done_callback(lambda _done: _step(coro))
