"""What the bench reads from the processes it started: resident memory and CPU time, by psutil."""

from __future__ import annotations

from collections.abc import Mapping

import psutil

__all__ = ["cpu_seconds", "memory_mb"]

MB = 2**20


def memory_mb(pids: Mapping[str, int | None]) -> dict[str, dict[str, float]]:
    """Each process's RSS and PSS (its share of pages mapped by several processes), in MB."""
    found = {}
    for name, pid in pids.items():
        if pid is not None:
            info = psutil.Process(pid).memory_full_info()
            found[name] = {"rss_mb": round(info.rss / MB, 1), "pss_mb": round(info.pss / MB, 1)}
    return found


def cpu_seconds(pids: Mapping[str, int | None]) -> dict[str, float]:
    """User plus system CPU each process has used so far."""
    found = {}
    for name, pid in pids.items():
        if pid is not None:
            times = psutil.Process(pid).cpu_times()
            found[name] = times.user + times.system
    return found
