"""The trading state: pure folds over events, schema versions, and the ``StateStore``.

* :mod:`state.model` — the state as an immutable value (:class:`FrozenDict` tree), its shape,
  :data:`SCHEMA_VERSION`, :func:`initial_state`, :func:`state_to_dict` / :func:`state_from_dict`
  and :func:`get_path`.
* :mod:`state.fold` — :func:`apply` (one event) and :func:`replay` (many), pure, and the rules
  they follow: one fold per aggregate (market, positions and account, orders, trading and
  runner, generic values).
* :mod:`state.migrations` — :func:`migrate` old snapshot dicts to the current schema.
* :mod:`state.journal` — the :class:`Journal` port the store makes events durable through, and
  :class:`MemoryJournal`.
* :mod:`state.store` — :class:`StateStore`, the single source of truth the dashboard reads: the
  write path (journal, fold, ``update_state``, restore).
* :mod:`state.read_model` — the store's base: the current state, its versions and ``param``
  views (and :func:`~state.read_model.view_changes` to observe one); path subscriptions live in
  :mod:`state.subscriptions`.

This package imports only the standard library, ``param``, ``reactivex`` and ``streams``.
"""

from state.fold import apply, apply_traced, replay
from state.journal import Journal, MemoryJournal
from state.migrations import MIGRATIONS, SchemaVersionError, migrate
from state.model import (
    DOMAIN_SECTIONS,
    SCHEMA_VERSION,
    FrozenDict,
    State,
    StateSchemaError,
    freeze,
    get_path,
    initial_state,
    state_from_dict,
    state_to_dict,
    thaw,
)
from state.store import StateStore
from state.subscriptions import Subscription

__all__ = [
    "DOMAIN_SECTIONS",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "FrozenDict",
    "Journal",
    "MemoryJournal",
    "SchemaVersionError",
    "State",
    "StateSchemaError",
    "StateStore",
    "Subscription",
    "apply",
    "apply_traced",
    "freeze",
    "get_path",
    "initial_state",
    "migrate",
    "replay",
    "state_from_dict",
    "state_to_dict",
    "thaw",
]
