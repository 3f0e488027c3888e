"""The resource monitor's averages are over time, whatever the samples' spacing."""

import time

import psutil
import pytest

from fintune.training.resources import ResourceMonitor


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
