"""The resource monitor's averages are over time, whatever the samples' spacing."""

import json
import subprocess
import sys
import time

import psutil
import pytest

from fintune.training.resources import ResourceMonitor, _rss_peak


def test_cpu_average_is_cpu_time_over_wall_time_not_a_mean_of_uneven_samples():
    """0.5 s busy then a moment idle: the sample taken at exit covers milliseconds, and a
    plain mean of the samples gave it the weight of a full interval (61% for 96%)."""
    process = psutil.Process()
    before, start = sum(process.cpu_times()[:2]), time.perf_counter()
    with ResourceMonitor(interval_s=0.5) as monitor:
        end = time.perf_counter() + 0.52
        while time.perf_counter() < end:
            pass
        time.sleep(0.03)
    used = sum(process.cpu_times()[:2]) - before
    expected = 100 * used / (time.perf_counter() - start)
    summary = monitor.summary()
    assert summary["cpu_percent_avg"] == pytest.approx(expected, abs=8)
    assert summary["samples"] == 2


def test_memory_average_weighs_each_sample_by_its_span():
    monitor = ResourceMonitor()
    monitor.start, monitor.times, monitor.rss = 0.0, [0.5, 1.0, 1.01], [100, 100, 400]
    assert monitor._over_time(monitor.rss) == pytest.approx((100 * 1.0 + 400 * 0.01) / 1.01)


def test_the_cpu_peak_ignores_the_few_milliseconds_the_exit_sample_covers():
    """psutil counts CPU time in clock ticks (10 ms on Linux): over the 2 ms the sample at
    exit may cover, one tick reads 500%, more than a 2-core machine can give (440% was
    measured for a single busy thread)."""
    monitor = ResourceMonitor(interval_s=0.5)
    monitor.start, monitor.end = 0.0, 1.002
    monitor.times, monitor.cpu, monitor.rss = [0.5, 1.0, 1.002], [90.0, 95.0, 500.0], [1, 1, 1]
    assert monitor.summary()["cpu_percent_max"] == 95.0
    monitor.times, monitor.cpu = [0.5, 1.0, 1.3], [90.0, 95.0, 99.0]  # a long enough tail
    assert monitor.summary()["cpu_percent_max"] == 99.0


def test_a_run_shorter_than_the_interval_has_its_one_sample_as_the_peak():
    with ResourceMonitor(interval_s=5.0) as monitor:
        end = time.perf_counter() + 0.3
        while time.perf_counter() < end:
            pass
    summary = monitor.summary()
    assert summary["samples"] == 1 and summary["cpu_percent_max"] > 0
    # the one sample spans the whole run, as the average does (CPU time over wall time)
    assert summary["cpu_percent_max"] == pytest.approx(summary["cpu_percent_avg"], abs=10)


def test_the_gpu_peak_is_that_of_the_monitored_block_not_of_later_evaluation(monkeypatch):
    """summary() is called after the final evaluation on validation and test, whose larger
    batches (eval_batch_size) may set a new peak: it belongs to no training."""
    import torch

    allocated = {"now": 100 * 2**20, "peak": 300 * 2**20}
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda *a: None)
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda *a: allocated["now"])
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda *a: allocated["peak"])
    with ResourceMonitor(interval_s=0.05, cuda=True) as monitor:
        time.sleep(0.12)
    allocated["peak"] = 900 * 2**20  # the evaluation after training
    summary = monitor.summary()
    assert summary["gpu_mem_mib_max"] == 300.0 and summary["gpu_mem_mib_avg"] == 100.0


_SPIKE = """
import json, resource, sys, time
import numpy as np
from fintune.training.resources import ResourceMonitor

def spike(mib):
    held = np.ones(mib * 2**20, dtype=np.uint8)
    time.sleep(0.05)
    del held

spike(int(sys.argv[1]))  # before the block: the process's peak so far
with ResourceMonitor(interval_s=5.0) as monitor:
    resting = monitor._process.memory_info().rss
    spike(int(sys.argv[2]))
print(json.dumps({"max": monitor.summary()["rss_mib_max"], "resting": resting / 2**20,
                  "ru_maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _spike(before_mib: int, inside_mib: int) -> dict:
    """A fresh process: the test runner's own peak would hide the block's."""
    out = subprocess.run(
        [sys.executable, "-c", _SPIKE, str(before_mib), str(inside_mib)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


@pytest.mark.skipif(_rss_peak() is None, reason="Linux keeps the peak (VmHWM)")
def test_the_memory_peak_counts_a_block_held_between_two_samples():
    """A fast step's activations live for milliseconds, between two half-second samples:
    sampling alone reported the resting RSS as the peak."""
    got = _spike(0, 200)
    assert got["max"] >= got["resting"] + 0.9 * 200


@pytest.mark.skipif(_rss_peak() is None, reason="Linux keeps the peak (VmHWM)")
def test_the_memory_peak_leaves_the_process_own_peak_alone():
    """Resetting VmHWM (clear_refs) wiped the process's peak from before the block: what
    `time -v`, ru_maxrss and an outer monitor read fell from 424 MiB to 27. A block below
    that earlier peak gets the samples' peak, not the earlier one."""
    got = _spike(400, 100)
    assert got["ru_maxrss"] >= 400
    assert got["max"] < got["resting"] + 50  # the samples: the earlier 400 MiB is not its


def test_the_memory_peak_falls_back_to_the_samples_where_the_kernel_keeps_none(tmp_path):
    assert _rss_peak(tmp_path / "no_status") is None
    monitor = ResourceMonitor()
    monitor.start, monitor.end, monitor.times = 0.0, 1.0, [1.0]
    monitor.cpu, monitor.rss = [50.0], [300 * 2**20]
    assert monitor.summary()["rss_mib_max"] == 300.0


def test_the_cpu_peak_is_never_below_the_average():
    """Measured apart (CPU time over the block; samples), a short run read avg 99.9 and
    max 99.8 in report.md."""
    monitor = ResourceMonitor(interval_s=0.5)
    monitor.start, monitor.end, monitor.cpu_s = 0.0, 0.45, 0.4496
    monitor.times, monitor.cpu, monitor.rss = [0.45], [99.8], [1]
    summary = monitor.summary()
    assert summary["cpu_percent_avg"] == 99.9 and summary["cpu_percent_max"] == 99.9
