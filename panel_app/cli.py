"""The ``seamless`` console script: the engine's commands plus ``serve`` (the dashboard).

It lives here, not in ``engine``, because only ``panel_app`` may import ``panel_app``
(DESIGN.md section 3): the engine's parser is extended with one more sub-command.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import TextIO

from panel_app.facade import engine_cli
from streams.errors import SeamlessError


def build_parser() -> argparse.ArgumentParser:
    """The engine's parser with ``serve`` added."""
    parser = engine_cli.build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    serve = sub.add_parser("serve", help="run the engine with the Panel dashboard")
    serve.add_argument("--config", help="YAML config file (default: embedded defaults)")
    serve.add_argument("--port", type=int, default=5006, help="HTTP port (default 5006)")
    serve.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; dev mode serves on loopback only)",
    )
    serve.add_argument("--dev", action="store_true", help="autoreload on code changes")
    serve.add_argument("--show", action="store_true", help="open a browser tab")
    serve.add_argument(
        "--mirror",
        action="store_true",
        help="no engine: mirror storage.stream read-only from the shared PostgreSQL log "
        "(and JetStream), for a dashboard on another host",
    )
    return parser


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Entry point of the ``seamless`` command."""
    args = build_parser().parse_args(argv)
    if args.command != "serve":
        return engine_cli.main(argv, out)
    try:
        from engine.config import load_config
        from panel_app.server import serve

        serve(
            load_config(args.config),
            port=args.port,
            address=args.address,
            dev=args.dev,
            show=args.show,
            mirror=args.mirror,
        )
        return 0
    except SeamlessError as exc:
        print(f"seamless serve: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
