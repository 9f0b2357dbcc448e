"""Lint, format and type checks run as part of the test command, so style never drifts."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
LAYERS = {
    "streams": ("state", "persistence", "engine", "panel_app"),
    "state": ("persistence", "engine", "panel_app"),
    "persistence": ("engine", "panel_app"),
    "engine": ("panel_app",),
}


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_ruff_lint_is_clean() -> None:
    result = _run(str(BIN / "ruff"), "check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean() -> None:
    result = _run(str(BIN / "ruff"), "format", "--check", ".")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean() -> None:
    result = _run(str(BIN / "mypy"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_imports_flow_one_way() -> None:
    """DESIGN.md section 3: lower layers never import higher ones."""
    bad = []
    for package, forbidden in LAYERS.items():
        for file in (ROOT / package).rglob("*.py"):
            for number, line in enumerate(file.read_text().splitlines(), 1):
                for upper in forbidden:
                    if re.match(rf"\s*(from|import)\s+{upper}(\.|\s|$)", line):
                        bad.append(f"{file.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not bad, "imports against the layer direction:\n" + "\n".join(bad)
