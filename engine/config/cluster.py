"""Config of a node in a scale-out deployment: its identity and the lease on its book.

Only used with ``storage.backend: postgres``: the node trades ``storage.stream`` (its book of
accounts and strategies) only while it holds that book's lease, so two nodes never trade the
same account. See ``docs/scale-out.md``.
"""

from __future__ import annotations

import dataclasses

from engine.config.schema import meta


@dataclasses.dataclass(frozen=True)
class ClusterConfig:
    """This node's name and how its book lease is held, renewed and taken over."""

    node_id: str = dataclasses.field(
        default="", metadata=meta(help="name of this node ('' = host name and process id)")
    )
    lease_ttl_s: float = dataclasses.field(
        default=10.0,
        metadata=meta(
            min=1.0, max=3_600.0, help="a lease not renewed for this long may be taken over"
        ),
    )
    standby: bool = dataclasses.field(
        default=False,
        metadata=meta(help="wait for the book's lease instead of failing when another node has it"),
    )
