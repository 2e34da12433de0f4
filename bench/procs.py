"""Process helpers: resident memory from /proc, process trees, starting and stopping children."""

from __future__ import annotations

import os
import signal
import subprocess
import time
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


def start(args: list[str], env: dict, cwd, log_path: Path) -> subprocess.Popen:
    log = open(log_path, "ab")
    try:
        return subprocess.Popen(args, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()


def stop(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    """SIGTERM the child's process group, then SIGKILL it after ``timeout``."""
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(5)


def wait_until(predicate, timeout: float, interval: float = 0.05, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not met within {timeout:.0f}s")
