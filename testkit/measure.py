"""What the benchmarks measure with: the one percentile they all report, and the CPU time and
memory of processes, read from ``/proc``.

One percentile so that p50/p95/p99 mean the same on every page. CPU by process kind because a
bench that runs the server, its clients and headless browsers on one host needs to say who had
the CPU: the pages only keep up if the cores left beside the server and the stand-in clients
cover what they need (``bench/page_cost.py`` measures one page's need; ``bench/load.py`` the
budget of a load run: server, SSE clients, page driver, Chromium, machine idle).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

#: Kinds of descendant process, by the start of their command name (``/proc/<pid>/comm``).
BROWSER = "Chromium"
DRIVER = "page driver"


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile ``q`` (0-100) of ``values``: the sorted value at index
    ``round(q / 100 * (n - 1))``, so p50 of an odd count is the median and p100 the maximum.
    NaN for no values (a run that measured nothing says so instead of failing)."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile q={q!r}: expected a value from 0 to 100")
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def rss_kib() -> int:
    """This process's resident memory in KiB (``VmRSS`` of ``/proc/self/status``; 0 if absent)."""
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _processes() -> dict[int, tuple[int, str, float]]:
    """pid -> (parent pid, command name, CPU seconds user + system) of every process now."""
    tick = os.sysconf("SC_CLK_TCK")
    table: dict[int, tuple[int, str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                head, tail = fh.read().rsplit(")", 1)
        except OSError:  # the process ended meanwhile
            continue
        fields = tail.split()
        comm = head.split("(", 1)[1]
        table[int(entry)] = (int(fields[1]), comm, (int(fields[11]) + int(fields[12])) / tick)
    return table


def default_kind(comm: str) -> str:
    """Chromium's processes (browser, renderers, GPU/compositor, network) are one kind;
    anything else a bench starts beside them drives the pages (Playwright's node, Python)."""
    return BROWSER if comm.startswith(("chrom", "headless")) else DRIVER


def descendants_cpu_by_kind(labels: Mapping[int, str] | None = None) -> dict[str, float]:
    """CPU seconds used so far by every descendant process of this one, summed by kind.

    A descendant of a pid in ``labels`` (or that pid itself) counts under its label (e.g. the
    SSE clients' child process); any other under :func:`default_kind` of its command name. A
    process that has ended is no longer counted, so read before the processes of interest
    stop."""
    table = _processes()
    labels = dict(labels or {})
    me = os.getpid()
    totals: dict[str, float] = {}
    for pid, (_, comm, cpu) in table.items():
        label = None
        up = pid
        while up and up != me:
            if label is None and up in labels:
                label = labels[up]
            up = table.get(up, (0, "", 0.0))[0]
        if up != me or pid == me:
            continue
        name = label or default_kind(comm)
        totals[name] = totals.get(name, 0.0) + cpu
    return totals


def descendants_cpu_s() -> float:
    """CPU seconds (user + system) used so far by every descendant process of this one."""
    return sum(descendants_cpu_by_kind().values())


def machine_cpu_s() -> tuple[float, float]:
    """(busy, idle) CPU seconds of the whole machine since boot, all cores together."""
    with open("/proc/stat", encoding="ascii") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    tick = os.sysconf("SC_CLK_TCK")
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / tick, idle / tick
