"""Lint, format and type checks run as part of the test command, so style never drifts."""

from __future__ import annotations

import ast
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


TOPIC_PACKAGES = ("engine", "panel_app", "state", "persistence", "streams")
#: Calls whose arguments are topics or patterns (``bus.subscribe(pattern, ...)`` and kin).
TOPIC_CALLS = frozenset({"subscribe", "observe", "subscriber_count", "on_bus"})
#: Keyword arguments and names that hold a topic or pattern (``log.read(topic=...)``).
TOPIC_NAMES = frozenset({"topic", "pattern"})


def _topic_vocabulary() -> tuple[re.Pattern[str], frozenset[str]]:
    """What streams/topics.py defines: a regex for dotted topics/patterns, and the bare names.

    Dotted families come from the builders (``fills(x)`` -> ``fills``) and dotted constants
    (``ERRORS`` -> ``system``); bare names are the one-segment topics (``pnl``, ``risk``) and
    the whole-segment wildcards. A bare name is also a common word, so it counts only where a
    topic is expected (see :func:`_in_topic_position`); a dotted one counts anywhere.
    """
    from streams import topics

    families: set[str] = set()
    bare = {"*", ">", "**"}
    for name, value in vars(topics).items():
        if name.startswith("_"):
            continue
        if isinstance(value, str):
            root, dot, _ = value.partition(".")
            (families if dot else bare).add(value if not dot else root)
        elif callable(value) and getattr(value, "__module__", "") == topics.__name__:
            try:
                built = value("x")
            except TypeError:  # not a one-argument builder (e.g. ``matches``)
                continue
            if isinstance(built, str) and "." in built:
                families.add(built.partition(".")[0])
    segment = r"(?:[a-z0-9_\-]+|\*|>|\*\*)"
    roots = "|".join(sorted(re.escape(root) for root in families))
    return re.compile(rf"^(?:{roots})(?:\.{segment})+$"), frozenset(bare)


def _docstring_ids(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _in_topic_position(tree: ast.AST) -> set[int]:
    """Ids of the nodes that stand where a topic or pattern is expected."""
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in TOPIC_CALLS:
                ids.update(id(arg) for arg in node.args)
            ids.update(id(kw.value) for kw in node.keywords if kw.arg in TOPIC_NAMES)
        elif isinstance(node, ast.Compare) and all(
            isinstance(op, ast.Eq | ast.NotEq) for op in node.ops
        ):
            sides = [node.left, *node.comparators]
            named = [
                side.attr if isinstance(side, ast.Attribute) else getattr(side, "id", "")
                for side in sides
            ]
            if TOPIC_NAMES.intersection(named):
                ids.update(id(side) for side in sides)
    return ids


def topic_literals(source: str, dotted: re.Pattern[str], bare: frozenset[str]) -> list[int]:
    """Line numbers of string literals in ``source`` that are exactly a topic or a pattern.

    Docstrings and the fragments of f-strings are not literals of a topic; a bare name
    (``"pnl"``, ``">"``) counts only as a topic argument or compared with a ``topic``.
    """
    tree = ast.parse(source)
    skip = _docstring_ids(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(part) for part in node.values)
    positioned = _in_topic_position(tree)
    lines = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
            continue
        if id(node) in skip:
            continue
        if dotted.match(node.value) or (node.value in bare and id(node) in positioned):
            lines.append(node.lineno)
    return sorted(lines)


def test_topic_detector_is_precise() -> None:
    """The detector flags topic literals and patterns, not state keys, names or prose."""
    dotted, bare = _topic_vocabulary()
    flagged = """
bus.subscribe("fills.*", on_fill)
bus.subscribe(">", on_any)
log.read(topic="data.bars.aapl")
b.on_bus(bus, "pnl", on_pnl)
if event.topic == "risk":
    pass
DEFAULT = ("system.errors",)
"""
    assert topic_literals(flagged, dotted, bare) == [2, 3, 4, 5, 6, 8]
    clean = '''
"""Subscribes to fills.* and data.bars.* for every symbol."""
state.get("pnl")
store.get_state("risk.limits")
bus.subscribe(topics.ALL_FILLS, on_fill, name="pnl.fills")
log.info("fills.* subscribed")
html = f'<div data-x="{x}">'
path = "state.json"
if "*" in event.topic:
    pass
'''
    assert topic_literals(clean, dotted, bare) == []


def test_topic_patterns_are_built_in_the_topics_module() -> None:
    """STYLE.md: topics are built only in streams/topics.py; elsewhere use its constants."""
    dotted, bare = _topic_vocabulary()
    bad = []
    for package in TOPIC_PACKAGES:
        for file in sorted((ROOT / package).rglob("*.py")):
            if file == ROOT / "streams" / "topics.py":
                continue
            for number in topic_literals(file.read_text(), dotted, bare):
                line = file.read_text().splitlines()[number - 1].strip()
                bad.append(f"{file.relative_to(ROOT)}:{number}: {line}")
    assert not bad, "topic literals outside streams/topics.py:\n" + "\n".join(bad)


#: What a panel_app module other than the facade may import of the packages below it.
DASHBOARD_ENGINE_IMPORTS = ("engine.config",)
DASHBOARD_SEAM = ROOT / "panel_app" / "facade.py"
#: Names in panel_app that hold the engine or one of its parts: typed, never ``Any``.
ENGINE_NAMES = frozenset({"kernel", "engine", "bus", "store", "log"})


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
            if node.module == "engine":  # ``from engine import cli`` imports engine.cli
                found += [(node.lineno, f"engine.{alias.name}") for alias in node.names]
    return found


def dashboard_seam_violations(path: Path, source: str) -> list[str]:
    """Imports of ``source`` (a panel_app module) that bypass the facade.

    Everywhere in panel_app: no ``persistence``. Outside ``panel_app/facade.py``: of ``engine``
    only ``engine.config``, and nothing of ``state``; ``streams`` (events, topics, operators:
    the bus's vocabulary) stays open.
    """
    bad = []
    for number, module in _imported_modules(ast.parse(source)):
        root = module.partition(".")[0]
        if root == "persistence":
            bad.append(f"{number}: {module} (panel_app never imports persistence)")
        elif path == DASHBOARD_SEAM:
            continue
        elif root == "state" or (
            root == "engine"
            and module != "engine"
            and not any(
                module == ok or module.startswith(ok + ".") for ok in DASHBOARD_ENGINE_IMPORTS
            )
        ):
            bad.append(f"{number}: {module} (use panel_app.facade)")
    return bad


def test_dashboard_reaches_the_engine_through_its_facade() -> None:
    """Issue 25 part 2: panel_app imports of the engine only panel_app.facade and engine.config."""
    bad = []
    for file in sorted((ROOT / "panel_app").rglob("*.py")):
        for problem in dashboard_seam_violations(file, file.read_text()):
            bad.append(f"{file.relative_to(ROOT)}:{problem}")
    assert not bad, "panel_app imports past its facade:\n" + "\n".join(bad)


def test_dashboard_seam_detector_is_precise() -> None:
    view = ROOT / "panel_app" / "views" / "x.py"
    source = (
        "from engine.config import DashboardConfig\n"
        "from panel_app.facade import EngineFacade\n"
        "from streams import topics\n"
        "import engine.kernel\n"
        "def f():\n"
        "    from engine import plugins\n"
        "    from state.store import StateStore\n"
        "    import persistence.event_log\n"
    )
    assert [line.split(":")[0] for line in dashboard_seam_violations(view, source)] == [
        "4",
        "6",
        "7",
        "8",
    ]
    seam_problems = dashboard_seam_violations(DASHBOARD_SEAM, source)
    assert seam_problems == ["8: persistence.event_log (panel_app never imports persistence)"]


def _untyped_engine_names(tree: ast.AST) -> list[int]:
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            name, annotation = node.arg, node.annotation
        elif isinstance(node, ast.AnnAssign):
            target = node.target
            name = target.attr if isinstance(target, ast.Attribute) else getattr(target, "id", "")
            annotation = node.annotation
        else:
            continue
        if name in ENGINE_NAMES and annotation is not None and "Any" in ast.unparse(annotation):
            lines.append(node.lineno)
    return lines


def test_dashboard_types_the_engine() -> None:
    """No ``kernel: Any`` (nor bus, store, log) in panel_app: they are the facade's types."""
    bad = []
    for file in sorted((ROOT / "panel_app").rglob("*.py")):
        for number in _untyped_engine_names(ast.parse(file.read_text())):
            line = file.read_text().splitlines()[number - 1].strip()
            bad.append(f"{file.relative_to(ROOT)}:{number}: {line}")
    assert not bad, "engine parts typed Any in panel_app:\n" + "\n".join(bad)
