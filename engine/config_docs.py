"""Generates docs/configuration.md from the config dataclasses, so the reference never drifts.

Run ``python -m engine.config_docs > docs/configuration.md``; a test checks it is current.
"""

from __future__ import annotations

import json

from engine.config import SeamlessConfig
from engine.config_schema import describe

HEADER = """# Configuration reference

Seamless reads one YAML file (`--config FILE`; without it, the embedded defaults, which
`config/config.yaml` restates). Every key is optional. Loading validates every key — unknown
keys, wrong types and values out of range are refused at start-up with the key path, the bad
value and what was expected. Environment overrides: `SEAMLESS_DB_PATH` (storage.db_path),
`SEAMLESS_LOG_LEVEL` (engine.log_level), `SEAMLESS_CONFIG` (the file `panel serve` reads),
`SEAMLESS_COOKIE_SECRET` (access.cookie_secret).

Generated from the code by `python -m engine.config_docs`; do not edit by hand.

| key | type | default | meaning |
|---|---|---|---|
"""


def render() -> str:
    """The configuration reference as Markdown."""
    rows = []
    for key, type_name, default, text in describe(SeamlessConfig):
        shown = json.dumps(default) if not isinstance(default, str) else f'"{default}"'
        rows.append(f"| `{key}` | {type_name} | `{shown}` | {text.replace('|', '/')} |")
    return HEADER + "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(render(), end="")
