"""Sample CPU, memory and GPU memory in a background thread while a block runs."""

from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from typing import Any

import psutil


class ResourceMonitor:
    """`with ResourceMonitor() as mon: ...` then `mon.summary()`.

    CPU % is for this process and its threads, where 100 = one core fully busy. Averages
    are over time: the CPU time used over the wall time, and each memory sample weighted
    by the time since the one before (the last one, at exit, may cover milliseconds).
    """

    def __init__(self, interval_s: float = 0.5, cuda: bool = False):
        self.interval_s = interval_s
        self.cuda = cuda
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample_loop, daemon=True)
        self.cpu: list[float] = []
        self.rss: list[int] = []
        self.gpu: list[int] = []
        self.times: list[float] = []
        self.start = self.end = 0.0
        self.cpu_s = 0.0
        self.gpu_max = 0
        self.rss_peak: int | None = None  # the kernel's, where the block set a new one

    def __enter__(self) -> ResourceMonitor:
        self._process.cpu_percent(None)  # prime: the first reading is always 0
        if self.cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        self._peak_before = _rss_peak()
        self.cpu_s = -self._cpu_time()
        self.start = time.perf_counter()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.end = self.times[-1]
        self.cpu_s += self._cpu_time()
        peak = _rss_peak()
        if peak is not None and self._peak_before is not None and peak > self._peak_before:
            self.rss_peak = peak  # the process's peak rose in the block: it is the block's
        if self.cuda:  # now: whatever runs after the block (evaluation) is not counted
            import torch

            self.gpu_max = torch.cuda.max_memory_allocated()

    def _cpu_time(self) -> float:
        times = self._process.cpu_times()
        return times.user + times.system

    def _sample_loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def _sample(self) -> None:
        self.times.append(time.perf_counter())
        self.cpu.append(self._process.cpu_percent(None))
        self.rss.append(self._process.memory_info().rss)
        if self.cuda:
            import torch

            self.gpu.append(torch.cuda.memory_allocated())

    def summary(self) -> dict[str, Any]:
        """CPU % counts 100 per core (psutil's convention), out of the cores this process
        may use (taskset, container limits), not all of the machine's."""
        mib = 2**20
        wall = self.end - self.start
        average = 100 * self.cpu_s / wall if wall > 0 else 0.0
        out: dict[str, Any] = {
            "wall_s": round(wall, 3),
            "cpu_percent_avg": round(average, 1),
            # the two are measured apart (CPU time over the whole block; samples), and some
            # interval was at least as busy as the average: "99.9 / 99.8" read as a bug
            "cpu_percent_max": round(max(self._cpu_max(), average), 1),
            "cpu_cores": usable_cores(),
            "rss_mib_avg": round(self._over_time(self.rss) / mib, 1),
            "rss_mib_max": round(max([*self.rss, self.rss_peak or 0]) / mib, 1),
            "samples": len(self.cpu),
        }
        if self.cuda:
            out["gpu_mem_mib_avg"] = round(self._over_time(self.gpu) / mib, 1)
            out["gpu_mem_mib_max"] = round(self.gpu_max / mib, 1)
        return out

    def _spans(self) -> list[float]:
        """Each sample's time since the one before (the first: since the start)."""
        return [b - a for a, b in zip([self.start, *self.times], self.times, strict=False)]

    def _cpu_max(self) -> float:
        """The busiest sample. psutil counts CPU time in clock ticks (10 ms on Linux): over
        the milliseconds the sample at exit may cover, one tick reads several hundred %.
        A sample counts when it spans half an interval, or when it is the only one."""
        long = [c for c, s in zip(self.cpu, self._spans(), strict=True) if s >= self.interval_s / 2]
        return max(long or self.cpu[-1:], default=0.0)

    def _over_time(self, values: list[int]) -> float:
        """The mean of samples, each weighted by the time since the one before."""
        spans = self._spans()
        total = sum(spans)
        if not values or total <= 0:
            return float(sum(values) / max(len(values), 1))
        return sum(v * w for v, w in zip(values, spans, strict=True)) / total


def _rss_peak(status: Path = Path("/proc/self/status")) -> int | None:
    """Samples every half second miss memory held between two (a fast step's activations):
    Linux keeps the process's true peak (VmHWM). It is not reset (/proc/self/clear_refs
    would also wipe what `time -v`, ru_maxrss and an outer monitor read), so it counts only
    when the block raised it; otherwise the samples give the peak."""
    try:
        line = next(x for x in status.read_text().splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024  # kB
    except (OSError, StopIteration, ValueError, IndexError):
        return None


def usable_cores(root: Path = Path("/sys/fs/cgroup"), own: Path = Path("/proc/self/cgroup")) -> int:
    """Cores this process may use: its CPU affinity (taskset), capped by the CPU quota of
    any control group it is in (`docker --cpus`, systemd's CPUQuota, a Slurm job), rounded
    up."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = psutil.cpu_count() or 1
    for quota in _cpu_quotas(root, own):
        cores = min(cores, max(1, math.ceil(quota)))
    return cores


def _cpu_quotas(root: Path, own: Path) -> list[float]:
    """The quota, in cores, of each group holding this process and of the groups above it:
    cgroup v2's `cpu.max`, v1's `cpu.cfs_quota_us` over `cpu.cfs_period_us`. A container
    sees its own group as the root of the tree; a host process, at its path below it."""
    try:
        lines = own.read_text().splitlines()
    except OSError:
        lines = []
    places = []  # (folder of the hierarchy, the group's path in it)
    for line in lines:
        hierarchy, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if hierarchy == "0" and not controllers:
            places.append((root, path))
        elif "cpu" in controllers.split(","):
            places.append((root / controllers, path))
    if not places:
        places = [(root, "/")]
    quotas = []
    for folder, path in places:
        group = folder / path.strip("/")
        for level in [group, *group.parents]:
            if level == folder.parent:
                break
            quota = _quota(level)
            if quota is not None:
                quotas.append(quota)
    return quotas


def _quota(group: Path) -> float | None:
    try:
        if (group / "cpu.max").exists():
            quota, period = (group / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        quota = int((group / "cpu.cfs_quota_us").read_text())
        period = int((group / "cpu.cfs_period_us").read_text())
        return None if quota < 0 else quota / period
    except (OSError, ValueError):
        return None  # no quota set, or none to read
