"""What a server process costs, read from ``/proc``: CPU seconds, resident
memory and its peak, summed over the process and any children it forks
(a server with workers is a tree)."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")

# The servers get the first CPU this process may use and the load generators
# the second, so that neither steals from the other; with one CPU, nothing
# is pinned.
_CPUS = sorted(os.sched_getaffinity(0))
SERVER_CPUS: frozenset[int] | None = frozenset(_CPUS[:1]) if len(_CPUS) > 1 else None
CLIENT_CPUS: frozenset[int] | None = frozenset(_CPUS[1:2]) if len(_CPUS) > 1 else None


def tree(pid: int) -> list[int]:
    """``pid`` and every process below it that is still alive."""
    found = [pid]
    for parent in found:
        for task in Path(f"/proc/{parent}/task").glob("*/children"):
            try:
                found += [int(child) for child in task.read_text().split()]
            except OSError:
                continue
    return found


def cpu_seconds(pid: int) -> float:
    """User plus system time of the tree, all threads included."""
    total = 0
    for member in tree(pid):
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces; the fields after it do not.
        fields = stat.rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / _TICK


def _status(pid: int, key: str) -> int:
    """A ``kB`` line of /proc/<pid>/status, in octets; 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def rss(pid: int) -> int:
    return sum(_status(member, "VmRSS") for member in tree(pid))


def peak_rss(pid: int) -> int:
    """The highest resident size since the last :func:`reset_peak`, summed
    over the tree (each member's own peak; they need not coincide)."""
    return sum(_status(member, "VmHWM") for member in tree(pid))


def reset_peak(pid: int) -> None:
    """Start the peak over from the present size (Linux 4.0 and later)."""
    for member in tree(pid):
        with contextlib.suppress(OSError):
            Path(f"/proc/{member}/clear_refs").write_text("5")


def pin(pid: int, cpus: frozenset[int]) -> None:
    """Put every thread of the tree on ``cpus``; threads started later
    inherit it from the thread that starts them."""
    for member in tree(pid):
        for task in Path(f"/proc/{member}/task").iterdir():
            try:
                os.sched_setaffinity(int(task.name), cpus)
            except OSError:
                continue
