"""run_locked: a served session's update runs under its document lock at once, or when the
lock is released, on a real Tornado loop with a real ``tornado.locks.Lock``."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from bokeh.document import Document
from tornado import locks

from panel_app.doc_lock import run_locked


class LockedSession:
    """What run_locked uses of Bokeh's ServerSession: its lock, held around the callback,
    and the pending writes awaited before the lock is released."""

    def __init__(self) -> None:
        self.destroyed = False
        self.lock = locks.Lock()
        self.log: list[str] = []

    async def with_document_locked(self, fn: Callable[[], Any]) -> Any:
        async with self.lock:
            result = fn()
            await asyncio.sleep(0)  # a write that does not finish at once
            self.log.append("written")
            return result


def served(session: LockedSession) -> Any:
    context = type("Context", (), {"_session": session})()
    return type("Doc", (), {"session_context": context})()


def test_with_the_lock_free_the_update_runs_before_run_locked_returns() -> None:
    async def scenario() -> list[str]:
        session = LockedSession()
        assert run_locked(served(session), lambda: session.log.append("ran"))
        session.log.append("returned")
        await asyncio.sleep(0.01)
        return session.log

    assert asyncio.run(scenario()) == ["ran", "returned", "written"]


def test_with_the_lock_held_the_update_waits_for_its_release() -> None:
    async def scenario() -> list[str]:
        session = LockedSession()
        await session.lock.acquire()
        assert run_locked(served(session), lambda: session.log.append("ran"))
        await asyncio.sleep(0.01)
        session.log.append("released")
        session.lock.release()
        await asyncio.sleep(0.01)
        return session.log

    assert asyncio.run(scenario()) == ["released", "ran", "written"]


def test_a_failing_update_is_logged_and_releases_the_lock(caplog: Any) -> None:
    async def scenario() -> list[str]:
        session = LockedSession()
        run_locked(served(session), lambda: 1 / 0)
        run_locked(served(session), lambda: session.log.append("next ran"))
        await asyncio.sleep(0.01)
        return session.log

    assert asyncio.run(scenario()) == ["next ran", "written"]
    assert "document-locked update failed" in caplog.text


def test_documents_outside_a_server_or_of_a_destroyed_session_are_not_run() -> None:
    session = LockedSession()
    session.destroyed = True
    ran: list[int] = []
    assert not run_locked(Document(), lambda: ran.append(1))
    assert not run_locked(served(session), lambda: ran.append(1))
    assert ran == []
