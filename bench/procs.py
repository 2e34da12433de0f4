"""Process figures from /proc: resident memory and CPU time of a process and of its whole tree."""

from __future__ import annotations

import os
from pathlib import Path


def rss_kib(pid: int | None) -> int:
    """VmRSS of ``pid`` (None: this process) in KiB; 0 if it is gone."""
    path = Path("/proc/self/status" if pid is None else f"/proc/{pid}/status")
    try:
        for line in path.read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def children(pid: int) -> list[int]:
    """Direct children of ``pid`` (from /proc/<pid>/task/*/children)."""
    result: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            result += [int(x) for x in (task / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            continue
    return result


def tree(pid: int) -> list[int]:
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo += children(current)
    return pids


def tree_rss_kib(pid: int) -> int:
    """Resident memory of ``pid`` and every descendant (e.g. gunicorn master + workers)."""
    return sum(rss_kib(p) for p in tree(pid))


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of ``pid`` (None: this process) so far."""
    if pid is None:
        times = os.times()
        return times.user + times.system
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(p) for p in tree(pid))
