"""benchmarks/serve_load.py and serve_report.py against `fintune serve` on a tiny run."""

from __future__ import annotations

import json
import time

import pytest

from tests.benchmarks.conftest import load_script

serve_load = load_script("serve_load")
serve_report = load_script("serve_report")


def test_a_server_that_cannot_start_says_why_at_once(tmp_path, monkeypatch):
    """A stand-in for `python -m fintune.cli serve` that fails as it would on a wrong run."""
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\necho 'error: run directory not found: no-run' >&2\nexit 2\n")
    python.chmod(0o755)
    monkeypatch.setattr(serve_load.sys, "executable", str(python))
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="did not start: error: run directory not found"):
        serve_load.start_server(tmp_path / "no-run", serve_load.free_port(), "fp32")
    assert time.perf_counter() - started < 10  # not after its 300 polls


def test_an_earlier_measurement_is_never_overwritten(tiny_runs, tmp_path, monkeypatch):
    earlier = tmp_path / "serve_load_bf16.json"
    earlier.write_text("{}")
    monkeypatch.setattr(serve_load, "start_server", lambda *a: pytest.fail("server started"))
    with pytest.raises(SystemExit, match="serve_load_bf16.json exists"):
        serve_load.main(["--run", str(tiny_runs[0]), "--out", str(tmp_path), "--precision", "bf16"])
    assert earlier.read_text() == "{}"


@pytest.mark.slow
def test_it_loads_a_served_run_and_reports_it(tiny_runs, tmp_path, capsys):
    argv = ["--run", str(tiny_runs[0]), "--out", str(tmp_path)]
    serve_load.main([*argv, "--requests", "40", "--batch-requests", "8", "--single-requests", "8"])
    result = json.loads((tmp_path / "serve_load_fp32.json").read_text())
    n = result["agreement"]["n"]
    assert result["agreement"]["same_label"] == n == 24
    assert [p["errors"] for p in result["phases"]] == [0, 0, 0]
    with pytest.raises(SystemExit, match="exists"):  # a measurement is never overwritten
        serve_load.main(argv)
    capsys.readouterr()
    serve_report.main(["--out", str(tmp_path)])
    report = capsys.readouterr().out
    assert "| `--precision fp32` | single `/analyze` | 1 | 8 | 0 |" in report
    assert f"recorded label for {n}/{n} test sentences" in report


def test_throughput_and_latency_count_answered_requests_only(monkeypatch):
    """A server that answers every other request 503 (overloaded) at once: the failures
    used to count as texts served, doubling texts/s, and their quick replies set p50."""
    import asyncio

    import httpx

    calls = iter(range(10**6))

    async def handler(request):
        if next(calls) % 2:
            return httpx.Response(503)
        await asyncio.sleep(0.02)
        return httpx.Response(200, json=[{"label": "positive"}])

    real = httpx.AsyncClient
    monkeypatch.setattr(
        serve_load.httpx,
        "AsyncClient",
        lambda **kwargs: real(transport=httpx.MockTransport(handler), **kwargs),
    )
    bodies = [{"texts": ["a", "b", "c", "d"]}]
    result = asyncio.run(serve_load.load("http://test", bodies, "/analyze/batch", 40, 1))
    assert result["errors"] == 20
    assert result["texts_per_s"] == pytest.approx(20 * 4 / result["wall_s"], rel=0.05)
    assert result["requests_per_s"] == pytest.approx(20 / result["wall_s"], rel=0.05)
    assert result["p50_ms"] >= 20


def test_the_report_states_the_cores_and_sentences_that_were_measured(tmp_path, capsys):
    """It used to say '2 CPU cores' and 'the run's 967 test sentences' whatever the
    measurement's machine and run."""
    phase = {
        "path": "/analyze",
        "requests": 8,
        "concurrency": 1,
        "texts_per_request": 1,
        "errors": 0,
        "wall_s": 0.1,
        "requests_per_s": 80.0,
        "texts_per_s": 80.0,
        "p50_ms": 12.0,
        "p99_ms": 15.0,
    }
    result = {
        "run": "runs/tiny",
        "precision": "fp32",
        "agreement": {"n": 24, "same_label": 24, "served_accuracy": 0.5},
        "phases": [phase],
        "server_batching": {"mean_batch": 1.0, "largest_batch": 1},
        "cpu_cores": 16,
        "hardware": {"cpu": "Some CPU", "cpu_cores_usable": 16, "ram_gib": 125.7, "device": "cpu"},
    }
    (tmp_path / "serve_load_fp32.json").write_text(json.dumps(result))
    serve_report.main(["--out", str(tmp_path)])
    report = " ".join(capsys.readouterr().out.split())
    assert "16 CPU cores" in report and "2 CPU cores" not in report
    assert "the run's 24 test sentences" in report and "967" not in report
    assert "Some CPU" in report and "125.7 GiB RAM" in report


def test_the_report_refuses_measurements_of_two_different_runs(tmp_path, capsys):
    """fp32 and bf16 are measured by separate calls, each serving the newest `full` run: a
    rerun of fpb_methods.py between them made one table of two models, with no word."""
    for precision, run in (
        ("fp32", "runs/a-fpb50-minilm-full"),
        ("bf16", "runs/b-fpb50-minilm-full"),
    ):
        (tmp_path / f"serve_load_{precision}.json").write_text(json.dumps({"run": run}))
    with pytest.raises(SystemExit, match="served different runs .*fp32: runs/a.*bf16: runs/b"):
        serve_report.main(["--out", str(tmp_path)])


def test_the_report_takes_one_run_written_two_ways_and_names_it(tmp_path, capsys):
    """serve_load records --run as typed and its default absolute: one run written both
    ways was refused as two."""
    result = {
        "cpu_cores": 2,
        "agreement": {"n": 3, "same_label": 3, "served_accuracy": 1.0},
        "phases": [],
        "server_batching": {"mean_batch": 1.0, "largest_batch": 1},
    }
    runs = {
        "fp32": "/abs/benchmarks/out/runs/x-fpb50-minilm-full",
        "bf16": "benchmarks/out/runs/x-fpb50-minilm-full",
    }
    for precision, run in runs.items():
        (tmp_path / f"serve_load_{precision}.json").write_text(json.dumps({**result, "run": run}))
    serve_report.main(["--out", str(tmp_path)])
    assert "on the `full` run above (`x-fpb50-minilm-full`; loopback" in capsys.readouterr().out


def test_the_report_refuses_measurements_from_different_machines(tmp_path):
    """fp32 measured on 16 cores and int8 on 2 shared one table under "16 CPU cores"."""
    for precision, cores in (("fp32", 16), ("int8", 2)):
        hardware = {"cpu": "Some CPU", "cpu_cores_usable": cores, "device": "cpu"}
        result = {"run": "runs/x-fpb50-minilm-full", "hardware": hardware}
        (tmp_path / f"serve_load_{precision}.json").write_text(json.dumps(result))
    with pytest.raises(SystemExit, match="measured on different machines .*16 cores.*2 cores"):
        serve_report.main(["--out", str(tmp_path)])


@pytest.mark.parametrize(
    "argv",
    [
        ["--run", "{tmp}/nope"],
        ["--run", "{run}", "--requests", "-5"],
        ["--run", "{run}", "--single-requests", "-1"],
    ],
)
def test_bad_arguments_are_refused_before_the_server_starts(tiny_runs, tmp_path, monkeypatch, argv):
    """A mistyped --run was a FileNotFoundError traceback; --requests -5 crashed in
    np.percentile after the earlier phases had run, and nothing was written."""
    monkeypatch.setattr(serve_load, "start_server", lambda *a: pytest.fail("server started"))
    argv = [a.format(tmp=tmp_path, run=tiny_runs[0]) for a in argv]
    with pytest.raises(SystemExit) as error:
        serve_load.main([*argv, "--out", str(tmp_path)])
    assert error.value.code == 2 or "no predictions_test.csv" in str(error.value)
