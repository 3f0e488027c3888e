"""`fintune compare` on tiny models: a whole study, resume, a failed cell, the report."""

from __future__ import annotations

import json
import os
import shutil
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient

from fintune.errors import FintuneError
from fintune.recipes import classification
from fintune.study import compare
from fintune.study.compare import run_study
from fintune.study.spec import load_study
from tests.study.conftest import ctrl_c_while_logging


@pytest.fixture
def study_file(tmp_path, make_config):
    def write(**changes) -> Path:
        spec = {
            "name": "tiny-study",
            "base": make_config().model_dump(mode="json"),
            "axes": {
                "method": {
                    "full": {"method": "full"},
                    "lora": {"method": {"name": "lora", "r": 4}, "training.learning_rate": 5e-3},
                },
                "seed": [1, 2],
            },
            "baseline": {"method": "full"},
            "output": str(tmp_path / "studies"),
            "bootstrap_samples": 200,
            **changes,
        }
        spec["base"]["data"]["split"]["seed"] = 0
        path = tmp_path / "study.yaml"
        path.write_text(yaml.safe_dump(spec))
        return path

    return write


def run_dirs(folder: Path) -> list[str]:
    return sorted(p.parent.name for p in (folder / "runs").glob("*/config.yaml"))


def test_study_runs_every_cell_and_writes_the_report(study_file, make_config):
    base = make_config(tracking={"mlflow": True}).model_dump(mode="json")
    folder, state = run_study(study_file(base=base))
    assert sorted(state) == [
        "method=full,seed=1",
        "method=full,seed=2",
        "method=lora,seed=1",
        "method=lora,seed=2",
    ]
    assert all(entry["status"] == "done" for entry in state.values())
    assert len(run_dirs(folder)) == 4
    lora = json.loads(
        (folder / state["method=lora,seed=2"]["run_dir"] / "metrics.json").read_text()
    )
    assert lora["method"] == "lora" and lora["seed"] == 2
    report = (folder / "report.md").read_text()
    assert "| **method=full** | 1,2 |" in report
    assert "| **method=lora** | 1,2 |" in report and "± " in report
    assert any(v in report for v in ("within noise", "**better**", "**worse**"))
    assert "Small sample** (method=full test n = 24, method=lora test n = 24)" in report
    html = (folder / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 4  # metrics, loss, lr, confusion
    assert "<table>" in html

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny-study").experiment_id])
    cells = {r.data.tags.get("fintune.cell") for r in runs}
    assert cells == {*state, None}  # every cell, plus the run holding the study report
    summary = next(r for r in runs if "fintune.cell" not in r.data.tags)
    for run in runs:  # MLflow's UI nests the cells under the report's run
        if run is not summary:
            assert run.data.tags["mlflow.parentRunId"] == summary.info.run_id
    artifacts = {a.path for a in client.list_artifacts(summary.info.run_id)}
    assert {"report.md", "report.html"} <= artifacts

    run_study(study_file(base=base), report_only=True)  # a rerun updates the summary run
    runs = client.search_runs([client.get_experiment_by_name("tiny-study").experiment_id])
    assert [r.info.run_id for r in runs if "fintune.cell" not in r.data.tags] == [
        summary.info.run_id
    ]


def test_a_finished_study_is_reused_not_rerun(study_file):
    path = study_file()
    folder, _ = run_study(path)
    before = run_dirs(folder)
    run_study(path)
    assert run_dirs(folder) == before


def test_an_interrupted_study_continues_where_it_stopped(study_file, interrupt_run):
    path = study_file()
    restore = interrupt_run(2)
    with pytest.raises(KeyboardInterrupt):
        run_study(path)
    folder = Path(yaml.safe_load(path.read_text())["output"]) / "tiny-study"
    state = json.loads((folder / "cells.json").read_text())
    assert list(state) == ["method=full,seed=1"]
    assert not (folder / ".lock").exists()
    report = (folder / "report.md").read_text()  # written after each finished cell
    assert "4 cells: 1 finished, 0 failed, 0 outdated, 0 missing, 3 not run" in report
    assert "| **method=full** | 1 |" in report and "interim report" in report

    restore()
    _, state = run_study(path)
    assert all(entry["status"] == "done" for entry in state.values())
    assert len(run_dirs(folder)) == 4  # the first cell was reused, three ran
    assert "interim report" not in (folder / "report.md").read_text()
    assert (folder / "report.html").read_text().count("data:image/png;base64,") == 4


def fail_lora_cells(monkeypatch):
    """LoRA cells raise as a GPU out of memory would; returns the real recipe."""
    real = classification.run

    def lora_fails(config, **kwargs):
        if config.method.name == "lora":
            raise RuntimeError("simulated out of memory")
        return real(config, **kwargs)

    monkeypatch.setattr(classification, "run", lora_fails)
    return real


def test_cells_whose_names_clean_alike_keep_their_own_tracebacks(study_file, monkeypatch):
    class OneSecond(datetime):  # both fail within the same second
        @classmethod
        def now(cls, tz=None):
            return datetime(2026, 11, 22, 8, 0, 0)

    monkeypatch.setattr(compare, "datetime", OneSecond)
    fail_lora_cells(monkeypatch)
    lora = {"method": {"name": "lora", "r": 4}}
    path = study_file(axes={"method": {"full": {"method": "full"}, "lo ra": lora, "lo-ra": lora}})
    _, state = run_study(path)
    traces = {state[c]["traceback"] for c in ("method=lo ra", "method=lo-ra")}
    assert len(traces) == 2 and all(Path(t).is_file() for t in traces)


def test_a_failed_cell_is_reported_and_retried_on_request(study_file, monkeypatch):
    path = study_file()
    real = fail_lora_cells(monkeypatch)
    folder, state = run_study(path)
    failed = {c for c, e in state.items() if e["status"] == "failed"}
    assert failed == {"method=lora,seed=1", "method=lora,seed=2"}
    assert state["method=lora,seed=1"]["error"] == "RuntimeError: simulated out of memory"
    assert "simulated out of memory" in Path(state["method=lora,seed=1"]["traceback"]).read_text()
    report = (folder / "report.md").read_text()
    assert "## Failed cells" in report and "simulated out of memory" in report

    monkeypatch.setattr(classification, "run", real)
    _, state = run_study(path)  # without --retry-failed the failures stay
    assert {c for c, e in state.items() if e["status"] == "failed"} == failed
    _, state = run_study(path, retry_failed=True)
    assert all(entry["status"] == "done" for entry in state.values())


def test_a_changed_cell_is_outdated_not_reported_and_a_tracking_change_reruns_nothing(
    study_file, make_config
):
    folder, _ = run_study(study_file())
    before = run_dirs(folder)
    tagged = make_config(tracking={"tags": {"team": "quant"}}).model_dump(mode="json")
    run_study(study_file(base=tagged))
    assert run_dirs(folder) == before  # tags do not change results

    axes = {
        "method": {
            "full": {"method": "full"},
            "lora": {"method": {"name": "lora", "r": 8}, "training.learning_rate": 5e-3},
        },
        "seed": [1, 2],
    }
    changed = study_file(axes=axes)
    run_study(changed, report_only=True)
    report = (folder / "report.md").read_text()
    assert "2 finished, 0 failed, 2 outdated" in report and "## Outdated" in report
    assert "**method=lora**" not in report  # r=4 results never shown as r=8's
    run_study(changed)
    assert len(run_dirs(folder)) == 6
    assert "0 outdated" in (folder / "report.md").read_text()


def test_failures_of_cells_no_longer_in_the_study_do_not_count(study_file, monkeypatch):
    fail_lora_cells(monkeypatch)
    run_study(study_file())
    _, state = run_study(study_file(axes={"method": {"full": {"method": "full"}}, "seed": [1, 2]}))
    assert sorted(state) == ["method=full,seed=1", "method=full,seed=2"]
    assert all(entry["status"] == "done" for entry in state.values())


def test_an_ignored_sigterm_stays_ignored_under_the_study_lock(tmp_path):
    """A parent that ignores SIGTERM (nohup-like wrappers) had it replaced by the lock's
    handler: the SIGTERM meant to pass the study by stopped it."""
    import signal

    from fintune.study.compare import study_lock

    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with study_lock(tmp_path):
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_the_study_lock(tmp_path):
    import os
    import socket
    import subprocess
    import sys

    from fintune.study.compare import study_lock

    lock = tmp_path / ".lock"
    lock.write_text(str(os.getpid()))  # a live process holds it
    with pytest.raises(FintuneError, match=f"being run by process {os.getpid()}"):
        study_lock(tmp_path).__enter__()
    lock.write_text("")  # just created, its pid not yet written
    with pytest.raises(FintuneError, match="being started by another process"):
        study_lock(tmp_path).__enter__()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    dead_pid = dead.stdout.decode().strip()
    lock.write_text(f"{dead_pid} gpu-node-7")  # another machine sharing the folder: its
    with pytest.raises(FintuneError, match=f"process {dead_pid} on gpu-node-7.*delete"):
        study_lock(tmp_path).__enter__()  # processes cannot be seen from here
    lock.write_text(f"{dead_pid} {socket.gethostname()}")  # left by a process that died
    with study_lock(tmp_path):
        assert lock.read_text() == f"{os.getpid()} {socket.gethostname()}"
    assert not lock.exists()
    lock.write_text(dead_pid)  # a lock written before the host was recorded
    with study_lock(tmp_path):
        pass


def test_a_renamed_cell_with_an_unchanged_config_keeps_its_result():
    """Before YAML 1.2 reading, `seed: 01` named a cell seed=1; its result is kept."""
    from types import SimpleNamespace

    from fintune.study.compare import adopt_renamed_cells

    def cell(cell_id, sha):
        return SimpleNamespace(id=cell_id, made=lambda entry: entry.get("config_sha") == sha)

    state = {"seed=1": {"config_sha": "a", "status": "done"}, "gone": {"config_sha": "z"}}
    cells = [cell("seed=01", "a"), cell("seed=02", "b")]
    adopted = adopt_renamed_cells(state, cells)
    assert adopted["seed=01"] == {"config_sha": "a", "status": "done"}
    assert "seed=1" not in adopted and "seed=02" not in adopted and "gone" in adopted


def test_retry_failed_with_report_only_is_refused(study_file):
    """--report-only runs no cell, so --retry-failed beside it was silently ignored."""
    with pytest.raises(FintuneError, match="--retry-failed and --report-only do not go"):
        run_study(study_file(), retry_failed=True, report_only=True)


def test_report_only_on_a_study_that_never_ran_is_an_error(study_file):
    path = study_file()
    with pytest.raises(FintuneError, match="--report-only: .* holds no cells of study"):
        run_study(path, report_only=True)
    assert not (Path(yaml.safe_load(path.read_text())["output"]) / "tiny-study").exists()


def test_report_only_without_the_set_the_cells_ran_with_keeps_the_report(study_file):
    """It replaced the study's report with 'No finished cells yet' (every cell outdated),
    exit 0, and nothing on the console said why."""
    path = study_file()
    folder, _ = run_study(path, overrides=["training.weight_decay=0.02"])
    written = (folder / "report.md").read_text()
    with pytest.raises(FintuneError, match=r"--report-only: none of the 4 finished cells .*--set"):
        run_study(path, report_only=True)
    assert (folder / "report.md").read_text() == written
    run_study(path, report_only=True, overrides=["training.weight_decay=0.02"])


@pytest.mark.parametrize(
    ("lora", "message"),
    [
        (
            {"method": {"name": "lora", "target_modules": ["query", "valeu"]}},
            "cell method=lora,seed=1: method.target_modules: 'valeu' is not a module",
        ),
        (
            {"method": "lora", "model.max_length": 1024},
            "cell method=lora,seed=1: model.max_length: 1024 is more than",
        ),
    ],
)
def test_every_cells_model_and_method_are_checked_before_any_cell_trains(
    study_file, monkeypatch, lora, message
):
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("loaded"))
    path = study_file(axes={"method": {"full": {"method": "full"}, "lora": lora}, "seed": [1]})
    with pytest.raises(FintuneError, match=message):
        run_study(path)


def test_a_deleted_experiment_stops_a_study_before_any_cell_trains(
    study_file, make_config, monkeypatch
):
    path = study_file(base=make_config(tracking={"mlflow": True}).model_dump(mode="json"))
    store = Path(yaml.safe_load(path.read_text())["output"]) / "tiny-study" / "mlflow.db"
    store.parent.mkdir(parents=True)
    client = MlflowClient(f"sqlite:///{store}")
    client.delete_experiment(client.create_experiment("tiny-study"))
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(FintuneError, match="the MLflow experiment 'tiny-study' was deleted"):
        run_study(path)
    assert not (store.parent / "cells.json").exists()


def test_report_only_checks_the_tracking_server_before_writing_anything(
    study_file, make_config, monkeypatch
):
    """--report-only skipped the cells' checks, so an unreachable server was first met when
    the report was logged, with MLflow's patient retries (minutes) after the report."""
    uri = "http://127.0.0.1:9/"
    path = study_file(base=make_config(tracking={"mlflow": True, "uri": uri}).model_dump())
    folder = Path(yaml.safe_load(path.read_text())["output"]) / "tiny-study"
    folder.mkdir(parents=True)
    (folder / "cells.json").write_text("{}")
    monkeypatch.setattr(compare, "log_summary", lambda *a, **k: pytest.fail("logging tried"))
    with pytest.raises(FintuneError, match=r"tracking.uri: cannot reach the MLflow server at "):
        run_study(path, report_only=True)
    assert not (folder / "report.md").exists()


def test_a_cell_whose_run_directory_was_damaged_is_listed_and_run_again(study_file):
    """A finished cell's predictions deleted or its metrics cut short by hand: the report
    is still written and names it, and the next run runs it again."""
    axes = {"method": {"full": {"method": "full"}, "lora": {"method": "lora"}}, "seed": [1]}
    path = study_file(axes=axes)
    folder, state = run_study(path)
    (folder / state["method=lora,seed=1"]["run_dir"] / "predictions_test.csv").unlink()
    run_study(path, report_only=True)
    report = (folder / "report.md").read_text()
    assert "1 finished, 0 failed, 0 outdated, 1 missing, 0 not run" in report
    assert "## Missing results" in report and "method=lora,seed=1" in report
    metrics = folder / state["method=full,seed=1"]["run_dir"] / "metrics.json"
    metrics.write_text(metrics.read_text()[:100])
    run_study(path, report_only=True)
    assert "0 finished, 0 failed, 0 outdated, 2 missing" in (folder / "report.md").read_text()

    _, state = run_study(path)
    assert all(entry["status"] == "done" for entry in state.values())
    assert len(run_dirs(folder)) == 4  # new run directories; the damaged ones are left alone
    assert "2 finished, 0 failed, 0 outdated, 0 missing" in (folder / "report.md").read_text()


def test_a_study_bootstrap_beyond_memory_is_refused_before_training(study_file, monkeypatch):
    """The study's own bootstrap_samples (its paired tests, at report time) had no bound:
    a slip failed only at the report, after every cell had trained."""
    import psutil

    free = psutil.virtual_memory()._replace(available=2**30)
    monkeypatch.setattr(psutil, "virtual_memory", lambda: free)
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("trained"))
    # fits one run's bootstrap (0.6 GiB), not a paired row of two seeds (4 such at once)
    path = study_file(bootstrap_samples=1_500_000)
    with pytest.raises(FintuneError, match=r"^bootstrap_samples: 1,500,000 resamples of 3 labels"):
        run_study(path)


def test_a_damaged_cells_json_is_named(study_file):
    path = study_file()
    folder = Path(yaml.safe_load(path.read_text())["output"]) / "tiny-study"
    folder.mkdir(parents=True)
    (folder / "cells.json").write_text('{"method=full,seed=1": {"status": "do')
    with pytest.raises(FintuneError, match=r"cells.json: not valid JSON \(.*line 1") as error:
        run_study(path, report_only=True)
    # deleting it does not run every cell again: finished runs are adopted
    assert "finished runs in " in str(error.value) and "taken back as done" in str(error.value)


def test_a_cell_whose_data_changed_runs_again(study_file, sentences_csv):
    """Correcting the data file between resumes must not leave results of the old data in
    the report as if they were of the new."""
    path = study_file(axes={"method": {"full": {"method": "full"}}, "seed": [1]})
    folder, _ = run_study(path)
    frame = pd.read_csv(sentences_csv)
    frame.loc[:9, "label"] = "neutral"  # relabel a few examples
    frame.to_csv(sentences_csv, index=False)
    run_study(path)
    assert len(run_dirs(folder)) == 2
    run_study(path)  # the same data again: reused
    assert len(run_dirs(folder)) == 2


def test_a_terminated_study_releases_its_lock(tmp_path):
    """A batch scheduler stops a job with SIGTERM; the study must resume on any machine
    afterwards, so the lock goes with the process."""
    import subprocess
    import sys

    code = (
        "import os, signal, sys, time\n"
        "from pathlib import Path\n"
        "from fintune.study.compare import study_lock\n"
        "with study_lock(Path(sys.argv[1])):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(30)\n"
    )
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)], timeout=60)
    assert done.returncode != 0
    assert not (tmp_path / ".lock").exists()


def test_a_study_output_that_is_a_file_is_named_as_the_studys_output(study_file, tmp_path):
    path = study_file(output=str(tmp_path / "study.yaml"))
    with pytest.raises(FintuneError, match=r"study.yaml: output: .*study.yaml is a file"):
        run_study(path)


def test_a_cells_precision_is_checked_before_any_cell_trains(study_file, monkeypatch):
    """Cells were checked once per model, method and data: an fp16 cell beside an fp32 one
    on a CPU failed only when its turn came, after the others had trained."""
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("loaded"))
    cpu = {"training.device": "cpu"}
    axes = {
        "precision": {
            "full": {"training.precision": "fp32", **cpu},  # checked first
            "half": {"training.precision": "fp16", **cpu},
        },
        "seed": [1],
    }
    with pytest.raises(FintuneError, match="cell precision=half,seed=1: training.precision: fp16"):
        run_study(study_file(axes=axes, baseline={"precision": "full"}))


def test_a_cells_bootstrap_samples_are_checked_before_any_cell_trains(study_file, monkeypatch):
    """Only the first cell's evaluation.bootstrap_samples was checked up front: a cell asking
    for 1e9 resamples failed when its turn came, after the others had trained."""
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("loaded"))
    axes = {"evaluation.bootstrap_samples": [200, 10**9], "seed": [1]}
    with pytest.raises(FintuneError, match=r"bootstrap_samples=1000000000,seed=1: evaluation"):
        run_study(study_file(axes=axes, baseline={"evaluation.bootstrap_samples": 200}))


def test_a_cells_load_best_model_is_checked_before_any_cell_trains(
    study_file, make_config, monkeypatch
):
    """Cells were checked once per model, method, data and precision: a prefix projection
    keeping its best checkpoint, beside a cell keeping its last model, was refused only
    when its turn came, after the others had trained (and after its own training)."""
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("loaded"))
    prefix = {"name": "prefix", "prefix_projection": True, "num_virtual_tokens": 4}
    axes = {
        "keep": {
            "final": {"training.load_best_model": False},  # checked first
            "kept_best": {"training.load_best_model": True},
        },
        "seed": [1],
    }
    path = study_file(
        base=make_config(method=prefix).model_dump(mode="json"),
        axes=axes,
        baseline={"keep": "final"},
    )
    assert [cell.id for cell in load_study(path)[1]][0] == "keep=final,seed=1"
    with pytest.raises(FintuneError, match="cell keep=kept_best,seed=1: method.prefix_proj"):
        run_study(path)


def test_a_rerun_report_drops_the_plots_of_cells_no_longer_in_the_study(study_file):
    """plots/ kept the images of a group removed from the study, and they were logged to
    MLflow with the new report; a file the study did not write stays."""
    axes = {"method": {"full": {"method": "full"}}, "model.max_length": [32, 24]}
    folder, _ = run_study(study_file(axes=axes))
    plots = folder / "plots"
    assert len(list(plots.glob("model.max_length-24-*.png"))) == 4
    (plots / "mine.png").write_bytes(b"kept")
    run_study(study_file(axes={**axes, "model.max_length": [32]}), report_only=True)
    assert not list(plots.glob("model.max_length-24-*.png"))
    assert len(list(plots.glob("model.max_length-32-*.png"))) == 4
    assert (plots / "mine.png").read_bytes() == b"kept"


def test_cells_finished_without_tracking_are_logged_once_when_it_is_switched_on(
    study_file, make_config, monkeypatch
):
    """Tracking is no part of a cell's config: switching it on reused the finished cells,
    and MLflow never saw them (the study's runs had only the report's run)."""
    axes = {"method": {"full": {"method": "full"}, "lora": {"method": "lora"}}, "seed": [1]}
    folder, state = run_study(study_file(axes=axes))
    assert not (folder / "mlflow.db").exists()
    hour_ago = time.time() - 3600
    for history in (folder / "runs").rglob("history.jsonl"):  # as if they ran an hour ago
        records = [json.loads(line) for line in history.read_text().splitlines()]
        history.write_text(
            "".join(json.dumps({**r, "time": r["time"] - 3600}) + "\n" for r in records)
        )
    for path in (folder / "runs").rglob("*"):
        os.utime(path, (hour_ago, hour_ago))
    base = make_config(tracking={"mlflow": True}).model_dump(mode="json")
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("trained"))
    for _ in range(2):  # a second run logs nothing again
        run_study(study_file(axes=axes, base=base))
        client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
        runs = client.search_runs([client.get_experiment_by_name("tiny-study").experiment_id])
        cells = sorted(r.data.tags["fintune.cell"] for r in runs if "fintune.cell" in r.data.tags)
        assert cells == sorted(state)
    for run in runs:
        if "fintune.cell" in run.data.tags:
            entry = state[run.data.tags["fintune.cell"]]
            metrics = json.loads((folder / entry["run_dir"] / "metrics.json").read_text())
            assert run.info.status == "FINISHED"
            assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["test"]["accuracy"])
            assert run.info.end_time <= hour_ago * 1000 + 1  # when it ran, not now


def test_an_unreachable_tracking_server_stops_a_study_before_any_cell_trains(
    study_file, make_config, monkeypatch
):
    base = make_config(tracking={"mlflow": True, "uri": "http://127.0.0.1:9/"})
    path = study_file(base=base.model_dump(mode="json"))
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(FintuneError, match=r"tracking.uri: cannot reach the MLflow server at "):
        run_study(path)
    assert not (Path(yaml.safe_load(path.read_text())["output"]) / "tiny-study").exists()


LABELS = ["negative", "neutral", "positive"]


def finish_by_hand(path: Path, predict, texts: int = 40) -> Path:
    """Every cell of the study finished, written by hand as a run leaves it: metrics.json
    and predictions_test.csv, predictions `predict(cell)` (label ids) on one test set."""
    from fintune.evaluation.metrics import evaluate_predictions

    spec, cells = load_study(path)
    folder = Path(spec.output) / spec.name
    truth = np.arange(texts) % len(LABELS)
    state = {}
    for cell in cells:
        run_dir = folder / "runs" / cell.config.name
        run_dir.mkdir(parents=True)
        predicted = np.asarray(predict(cell))
        pd.DataFrame(
            {
                "text": [f"text {i}" for i in range(texts)],
                "label": [LABELS[i] for i in truth],
                "predicted": [LABELS[i] for i in predicted],
            }
        ).to_csv(run_dir / "predictions_test.csv", index=False)
        metrics = {
            "test": evaluate_predictions(truth, predicted, LABELS, samples=200),
            "labels": LABELS,
            "seed": cell.config.seed,
            "train": {"runtime_s": 10.0, "samples_per_s": 5.0, "trainable_params": 100},
            "resources": {},
            "device": "cpu",
            "data_sha256": "data",
        }
        (run_dir / "metrics.json").write_text(json.dumps(metrics))
        entry = {"config_sha": cell.config_sha, "coords": cell.coords, "status": "done"}
        state[cell.id] = {**entry, "run_dir": str(run_dir.relative_to(folder))}
    (folder / "cells.json").write_text(json.dumps(state))
    return folder


@pytest.mark.parametrize("kept", [21, 21.5, 0])  # lines (the header's included)
def test_a_cell_whose_predictions_were_cut_short_is_missing_not_reported(study_file, kept):
    """A predictions_test.csv cut short (a copy that ran out of disk) was read as it was:
    the row's interval came from 20 of 40 examples, [0.737, 0.938] around a mean of 0.9125
    taken from metrics.json, and its Δ said the baseline was tested on other examples; an
    line cut in two, or an empty file, stopped the report with a traceback. Such a cell is
    missing and runs again."""
    path = study_file()
    folder = finish_by_hand(path, lambda cell: np.arange(40) % 3)
    lora = json.loads((folder / "cells.json").read_text())["method=lora,seed=2"]["run_dir"]
    csv = folder / lora / "predictions_test.csv"
    lines = csv.read_text().splitlines(keepends=True)
    whole, part = int(kept), lines[int(kept)]
    csv.write_text("".join(lines[:whole]) + part[: round(len(part) * (kept - whole))])
    run_study(path, report_only=True)
    report = (folder / "report.md").read_text()
    assert "3 finished, 0 failed, 0 outdated, 1 missing, 0 not run" in report
    assert "| **method=lora** | 1 |" in report and "other examples" not in report
    _, cells = load_study(path)
    state = json.loads((folder / "cells.json").read_text())
    inputs = {cell.id: ("data", None) for cell in cells}
    todo, _ = compare.cells_to_run(cells, state, folder, inputs)
    assert [cell.id for cell in todo] == ["method=lora,seed=2"]


@pytest.mark.parametrize("damage", [b'{"step": 1, "lo', b"\xff\xfe"])
def test_a_finished_cell_with_a_damaged_history_is_plotted_without_it(study_file, damage):
    """A history.jsonl cut mid-line (or not UTF-8) stopped every study report with a
    traceback, after all training; the cell counts as finished, so a rerun never mended it.
    Its curves are left out and the report says so (the cell's name escaped once: a "_"
    at its end showed as "\\_" in report.html)."""
    axes = {"method": {"full": {"method": "full"}, "lora_": {"method": "lora"}}, "seed": [1]}
    path = study_file(axes=axes)
    folder, state = run_study(path)
    history = folder / state["method=lora_,seed=1"]["run_dir"] / "history.jsonl"
    history.write_bytes(history.read_bytes() + damage)
    run_study(path, report_only=True)
    report = " ".join((folder / "report.md").read_text().split())
    assert "2 finished, 0 failed" in report
    said = "method=lora_: no loss or learning-rate curve, its history.jsonl is missing or "
    said += "cannot be read"
    assert said.replace("_:", "\\_:") in report
    assert said in " ".join((folder / "report.html").read_text().split())


def test_results_on_data_since_changed_are_not_reported_while_their_cells_rerun(
    study_file, interrupt_run
):
    """A corrected data file reruns the finished cells, but until each had rerun, the
    reports (interim, or one after an interruption) showed the old data's results beside
    the new ones, and paired them."""
    path = study_file()
    folder = finish_by_hand(path, lambda cell: np.arange(40) % 3)  # on data "data"
    interrupt_run(1)
    with pytest.raises(KeyboardInterrupt):
        run_study(path)
    run_study(path, report_only=True)
    report = (folder / "report.md").read_text()
    assert "0 finished, 0 failed, 4 outdated, 0 missing, 0 not run" in report
    assert "data changed" in report and "**method=lora**" not in report


def test_a_lock_released_while_it_is_read_is_taken(tmp_path, monkeypatch):
    """Another `compare` finishing just as this one starts: its lock was there when this
    one tried to create its own, and gone when it read whose it was, and the study
    stopped with a FileNotFoundError traceback."""
    import socket

    from fintune.study.compare import study_lock

    real_open, calls = os.open, []

    def released_meanwhile(path, flags, *args):
        calls.append(path)
        if len(calls) == 1:
            raise FileExistsError(path)  # held then; released before it is read
        return real_open(path, flags, *args)

    monkeypatch.setattr(os, "open", released_meanwhile)
    with study_lock(tmp_path):
        assert (tmp_path / ".lock").read_text() == f"{os.getpid()} {socket.gethostname()}"


def test_a_row_whose_baseline_failed_says_so(study_file):
    """The row said "baseline not finished", as if waiting for a baseline that had failed
    (and would not run again without --retry-failed)."""
    path = study_file()
    folder = finish_by_hand(path, lambda cell: np.arange(40) % 3)
    state = json.loads((folder / "cells.json").read_text())
    for seed in (1, 2):
        state[f"method=full,seed={seed}"] |= {"status": "failed", "error": "E", "traceback": "t"}
    (folder / "cells.json").write_text(json.dumps(state))
    run_study(path, report_only=True)
    report = (folder / "report.md").read_text()
    assert "| **method=lora** | 1,2 |" in report and "| baseline failed |" in report


def test_cells_marked_data_changed_are_reused_when_the_data_is_back_as_they_ran_on_it(
    study_file, interrupt_run, monkeypatch
):
    """A data file edited by mistake marks the finished cells 'data changed' as compare
    starts; stopped there and the file put back, the next compare reran all of them (4 of 4
    here), where before the mark it reused them."""
    path = study_file()
    folder = finish_by_hand(path, lambda cell: np.arange(40) % 3)  # on data "data"
    interrupt_run(1)
    with pytest.raises(KeyboardInterrupt):
        run_study(path)  # the data read now is not "data": all four marked
    assert {e["status"] for e in json.loads((folder / "cells.json").read_text()).values()} == {
        compare.DATA_CHANGED
    }
    as_it_was = ("data", None)
    monkeypatch.setattr(
        compare, "check_cells", lambda cells, spec: dict.fromkeys([c.id for c in cells], as_it_was)
    )  # the file as it was
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("a cell ran again"))
    run_study(path)
    report = (folder / "report.md").read_text()
    assert "4 finished, 0 failed, 0 outdated, 0 missing, 0 not run" in report
    assert {e["status"] for e in json.loads((folder / "cells.json").read_text()).values()} == {
        "done"
    }


def test_a_cell_stopped_after_its_run_finished_is_adopted_not_trained_again(
    study_file, make_config, monkeypatch
):
    """A stop (Ctrl+C, SIGTERM) while a finished cell was logged to MLflow, before cells.json
    named its run: the rerun trained the cell again in a second folder, and MLflow kept the
    first one's record KILLED beside the new one."""
    from fintune import tracking

    axes = {"method": {"full": {"method": "full"}}, "seed": [1]}
    base = make_config(tracking={"mlflow": True}).model_dump(mode="json")
    path = study_file(axes=axes, base=base)
    real = tracking._log_files
    monkeypatch.setattr(
        tracking, "_log_files", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt)
    )
    with pytest.raises(KeyboardInterrupt):
        run_study(path)
    folder = Path(yaml.safe_load(path.read_text())["output"]) / "tiny-study"
    (first,) = run_dirs(folder)
    assert (folder / "runs" / first / "metrics.json").is_file()
    assert "method=full,seed=1" not in json.loads((folder / "cells.json").read_text())

    monkeypatch.setattr(tracking, "_log_files", real)
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("trained"))
    for _ in range(2):  # adopted once, then reused
        _, state = run_study(path)
        assert state["method=full,seed=1"]["status"] == "done"
        assert state["method=full,seed=1"]["run_dir"] == f"runs/{first}"
        assert run_dirs(folder) == [first]
        assert "1 finished" in (folder / "report.md").read_text()
        client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
        runs = client.search_runs([client.get_experiment_by_name("tiny-study").experiment_id])
        cells = [r for r in runs if "fintune.cell" in r.data.tags]
        assert [(r.info.run_name, r.info.status) for r in cells] == [(first, "FINISHED")]
        assert "test_accuracy" in cells[0].data.metrics


def test_ctrl_c_while_the_last_cell_is_logged_records_it_and_stops_before_the_report(
    study_file, make_config, monkeypatch
):
    """A Ctrl+C typed while a finished cell is logged waits for the cell to be recorded in
    cells.json, then stops the study before its report; the rerun logs the cell whole and
    writes the report without training."""
    axes = {"method": {"full": {"method": "full"}}, "seed": [1]}
    base = make_config(tracking={"mlflow": True}).model_dump(mode="json")
    path = study_file(axes=axes, base=base)
    ctrl_c_while_logging(monkeypatch, lambda: run_study(path))
    folder = Path(yaml.safe_load(path.read_text())["output"]) / "tiny-study"
    (first,) = run_dirs(folder)
    cells = json.loads((folder / "cells.json").read_text())
    assert cells["method=full,seed=1"]["run_dir"] == f"runs/{first}"
    assert not (folder / "report.md").exists()

    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("trained"))
    run_study(path)
    assert "1 finished" in (folder / "report.md").read_text()
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny-study").experiment_id])
    logged = [(r.info.run_name, r.info.status) for r in runs if "fintune.cell" in r.data.tags]
    assert logged == [(first, "FINISHED")]


def test_a_finished_run_is_adopted_when_only_its_tracking_changed(
    study_file, make_config, monkeypatch
):
    """Tracking settings are no part of a cell: switching MLflow off after it hung while a
    finished cell was logged trained that cell again in a second folder."""
    axes = {"method": {"full": {"method": "full"}}, "seed": [1]}
    base = make_config(tracking={"mlflow": True}).model_dump(mode="json")
    path = study_file(axes=axes, base=base)
    folder, _ = run_study(path)
    (folder / "cells.json").unlink()  # as if stopped before cells.json named the run
    (first,) = run_dirs(folder)
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("trained"))
    _, state = run_study(path, overrides=["tracking.mlflow=false"])
    assert state["method=full,seed=1"]["run_dir"] == f"runs/{first}"
    assert run_dirs(folder) == [first]


def _other_seed(text: str) -> bytes:
    return yaml.safe_dump({**yaml.safe_load(text), "seed": 99}).encode()


@pytest.mark.parametrize(
    "rewrite",
    [
        _other_seed,
        lambda _: ("name: " + "[" * 5000 + "]" * 5000 + "\n").encode(),
        lambda _: b"name: caf\xe9\n",
        lambda _: b"name: [unclosed\n",
    ],
    ids=["another config", "nested too deep", "not UTF-8", "not YAML"],
)
def test_a_finished_run_of_another_config_or_a_damaged_one_is_not_adopted(
    study_file, sentences_csv, rewrite
):
    """A config.yaml nested 5,000 brackets deep (or not UTF-8) in the study's runs folder
    stopped the study with a traceback while it looked for finished runs to adopt; such a
    folder is passed by, as one of another config is."""
    axes = {"method": {"full": {"method": "full"}}, "seed": [1]}
    path = study_file(axes=axes)
    folder, _ = run_study(path)
    (folder / "cells.json").unlink()  # as if stopped before cells.json named the run
    (first,) = run_dirs(folder)
    config = folder / "runs" / first / "config.yaml"
    config.write_bytes(rewrite(config.read_text()))
    run_study(path)
    assert len(run_dirs(folder)) == 2  # trained again: the folder was not this cell's


def test_every_cell_whose_warmup_outlasts_it_is_warned_naming_it(study_file, capsys):
    """Cells are checked once per model, method, data and seed: an axis over max_steps warned
    (unnamed) for the first cell only, and the others trained on a learning rate still rising."""
    from fintune.study.compare import check_cells

    axes = {"steps": {str(n): {"training.max_steps": n} for n in (3, 4, 100)}}
    path = study_file(axes=axes, baseline={"steps": "100"})
    text = path.read_text().replace("warmup_steps: 0", "warmup_steps: 10")
    path.write_text(text)
    spec, cells = load_study(path)
    check_cells(cells, spec)
    err = " ".join(capsys.readouterr().err.split())
    for steps in (3, 4):
        assert f"cell steps={steps}: training.warmup_steps (10) is more than the run's " in err
    assert "steps=100:" not in err
    assert err.count("training.warmup_steps (10)") == 2


def test_a_stop_while_cells_json_is_written_leaves_no_temporary_file(tmp_path, monkeypatch):
    """cells.json.tmp (a fixed name) was left beside cells.json by a stop between its
    write and its rename."""
    from fintune.study.compare import read_state, write_state

    done = {"status": "done", "run_dir": "runs/a"}
    write_state(tmp_path, {"a": done})

    real_os, real_path = os.replace, Path.replace

    def stop_at(real):
        def replace(source, target):
            if Path(target).name == "cells.json":  # the rename that publishes the state
                raise KeyboardInterrupt
            return real(source, target)

        return replace

    monkeypatch.setattr(os, "replace", stop_at(real_os))
    monkeypatch.setattr(Path, "replace", stop_at(real_path))
    with pytest.raises(KeyboardInterrupt):
        write_state(tmp_path, {"a": {"status": "failed", "error": "x", "traceback": "t"}})
    assert [p.name for p in tmp_path.iterdir()] == ["cells.json"]
    assert read_state(tmp_path) == {"a": done}


def test_only_one_of_two_processes_taking_over_a_dead_holders_lock_gets_it(tmp_path, monkeypatch):
    """Both see the dead holder's pid; one removes its lock and makes its own, then the
    other, which checked the same dead pid, removed that new lock and made its own too:
    two `fintune compare` in one study. The takeover is now one process's at a time,
    and removes only the lock it found dead."""
    import contextlib
    import socket

    from fintune.study.compare import LockHeld, study_lock

    lock = tmp_path / ".lock"
    lock.write_text(f"999999999 {socket.gethostname()}")  # its process died
    other = contextlib.ExitStack()
    checks, real_alive = [], compare._alive

    def alive(pid: int) -> bool:
        checks.append(pid)
        if len(checks) == 1:  # between our check and our takeover, the other racer's
            other.enter_context(study_lock(tmp_path))
        return real_alive(pid)

    monkeypatch.setattr(compare, "_alive", alive)
    with other:
        with pytest.raises(LockHeld, match="being run by process"), study_lock(tmp_path):
            pass
        assert lock.is_file()  # the other racer's, still held
    assert not lock.exists()


def test_ctrl_c_that_lands_in_garbage_collection_still_stops_the_study(study_file):
    """A SIGINT arriving while Python collects garbage raised its KeyboardInterrupt inside
    the collector, which printed 'Exception ignored' and went on: every cell ran and the
    command exited 0. The interrupt is now remembered and raised at the next step."""
    from tests.conftest import interrupted_in_garbage_collection

    path = study_file(axes={"seed": [1, 2]}, baseline={"seed": 1})
    done = interrupted_in_garbage_collection("compare", str(path))
    assert done.returncode == 130, done.stderr[-3000:]  # as a Ctrl+C that is not dropped
    folder = path.parent / "studies" / "tiny-study"
    (run_dir,) = (folder / "runs").iterdir()  # the second cell never started
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "checkpoints").exists()
    assert not (folder / "report.md").exists()


def test_a_killed_cells_checkpoints_are_removed_and_nothing_else(tmp_path, capsys):
    """A cell's run killed by SIGKILL (a lost node, the OOM killer) left its checkpoints/
    (model copies: gigabytes with real models) for ever; the cell runs again in a new
    folder. Under the study lock they are removed, and only they: its config and logs
    stay, and a finished run keeps everything."""
    killed = tmp_path / "runs" / "20260101-000000-killed"
    finished = tmp_path / "runs" / "20260101-000001-finished"
    for run in (killed, finished):
        (run / "checkpoints" / "checkpoint-2").mkdir(parents=True)
        (run / "checkpoints" / "checkpoint-2" / "model.safetensors").write_bytes(b"0" * 2**20)
        (run / "config.yaml").write_text("name: x\n")
    (finished / "metrics.json").write_text("{}")
    compare._drop_abandoned_checkpoints(tmp_path)
    assert not (killed / "checkpoints").exists() and (killed / "config.yaml").is_file()
    assert (finished / "checkpoints" / "checkpoint-2" / "model.safetensors").is_file()
    err = capsys.readouterr().err
    assert f"runs/{killed.name}: removed the checkpoints" in err and "(1.0 MiB)" in err


def test_a_stopped_study_does_not_leave_its_report_run_running(
    study_file, make_config, monkeypatch
):
    """The report's run is made RUNNING before the first cell, to parent them; a study
    stopped before its report (Ctrl+C, an error) left it RUNNING for ever in MLflow's UI. It
    now ends KILLED (FAILED for an error), and the rerun's report ends it FINISHED."""
    base = make_config(tracking={"mlflow": True}).model_dump(mode="json")
    path = study_file(base=base, axes={"seed": [1]}, baseline={"seed": 1})

    def stop(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(compare, "run_cell", stop)
    with pytest.raises(KeyboardInterrupt):
        run_study(path)
    folder = path.parent / "studies" / "tiny-study"
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny-study").experiment_id
    (summary,) = client.search_runs([experiment])
    assert summary.info.status == "KILLED"
    monkeypatch.undo()
    run_study(path)
    runs = client.search_runs([experiment])
    assert len(runs) == 2  # the cell, and the same report run
    assert client.get_run(summary.info.run_id).info.status == "FINISHED"


def test_a_dead_holders_empty_lock_is_not_confused_with_the_next_holders(tmp_path, monkeypatch):
    """A holder killed before writing its pid leaves an empty lock. Two processes find it
    dead; the first removes it and makes its own, empty until its pid is written; the
    second compared only the text (empty both) and removed that new lock too: both ran."""
    import time

    from fintune.study.compare import LockHeld, study_lock

    lock = tmp_path / ".lock"
    lock.write_text("")
    old = time.time() - 60
    os.utime(lock, (old, old))
    real_remove = compare._remove_dead

    def raced(*args):  # the other racer took over first, and has not written its pid yet
        lock.unlink()
        lock.write_text("")
        return real_remove(*args)

    monkeypatch.setattr(compare, "_remove_dead", raced)
    with pytest.raises(LockHeld, match="being started by another process"), study_lock(tmp_path):
        pass
    assert lock.is_file()  # the other racer's, still held


def test_a_sigterm_outside_the_study_lock_stops_compare_as_143(tmp_path):
    """`compare` caught SIGTERM only under the study lock: one during the checks before it
    (data, model, every cell's config) or the report's MLflow upload after it ended the
    process at once (exit -15), the report's MLflow run left RUNNING. Now as `run` and
    `sweep`: exit 143, through the command's cleanup."""
    import subprocess
    import sys

    code = (
        "import os, signal, sys, time\n"
        "import fintune.study.compare as compare\n"
        "from fintune.cli import app\n"
        "def stop(*args, **kwargs):\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(10)\n"
        "compare.load_study = stop\n"  # the first of the checks
        "app(sys.argv[1:])\n"
    )
    study = tmp_path / "study.yaml"
    study.write_text("name: x\n")
    done = subprocess.run(
        [sys.executable, "-c", code, "compare", str(study)],
        timeout=120,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 143, done.stderr[-3000:]


def test_checkpoints_left_by_a_failed_removal_name_its_cause(tmp_path, capsys, monkeypatch):
    """'could not remove .../checkpoints ... remove it by hand' did not say why (rmtree's
    errors were ignored): permissions, a busy mount or a read-only disk each want another
    fix. The first error is now named, with its file."""
    run = tmp_path / "runs" / "20260101-000000-killed"
    (run / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    kept = run / "checkpoints" / "checkpoint-2" / "model.safetensors"
    kept.write_bytes(b"0" * 2**20)
    real_unlink = os.unlink

    def unlink(path, *, dir_fd=None):
        if str(path) in ("model.safetensors", str(kept)):
            raise PermissionError(13, "Permission denied", path)
        return real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", unlink)
    compare.drop_killed_checkpoints(run, "runs/x", "a run")
    monkeypatch.undo()
    err = " ".join(capsys.readouterr().err.split())
    assert kept.is_file() and "could not remove" in err
    assert f"(Permission denied: {kept})" in err


def test_a_takeover_left_by_a_crashed_process_does_not_block_the_study(tmp_path):
    """A process killed while it took over a dead holder's lock left `.lock.takeover`,
    and every `compare` for the next 60 s stopped with 'being started by another
    process'. A takeover holds its file's flock while its process lives: one whose lock
    is free is taken at once; one held by a live process is not."""
    import fcntl
    import socket

    from fintune.study.compare import LockHeld, study_lock

    here = socket.gethostname()
    (tmp_path / ".lock").write_text(f"999999999 {here}")  # its holder died
    guard = tmp_path / ".lock.takeover"
    guard.write_text(f"999999998 {here}")  # and so did the one taking it over
    with study_lock(tmp_path):
        assert (tmp_path / ".lock").read_text() == f"{os.getpid()} {here}"
    assert not guard.exists()

    (tmp_path / ".lock").write_text(f"999999999 {here}")
    guard.write_text(f"{os.getpid()} {here}")
    with open(guard) as live:  # a live takeover holds its lock
        fcntl.flock(live, fcntl.LOCK_EX)
        with pytest.raises(LockHeld, match="being started by another"), study_lock(tmp_path):
            pass
    assert guard.read_text() == f"{os.getpid()} {here}"


@pytest.mark.parametrize(
    "text",
    [
        '["a"]',
        '{"a": "done"}',
        '{"a": {"status": "done", "run_dir": 3}}',
        '{"a": {"status": 1}}',
        # every version wrote a done cell's run_dir, a failed one's error and traceback
        '{"a": {"status": "done"}}',
        '{"a": {"status": "failed", "error": "x"}}',
        '{"a": {"status": "data changed"}}',  # a done cell's inputs since changed
    ],
)
def test_a_cells_json_of_the_wrong_shape_is_named(tmp_path, text):
    """cells.json edited by hand into valid JSON of another shape (a list, an entry that is
    not a mapping, a run_dir that is not a path) ended the study in a traceback
    (AttributeError, TypeError) instead of naming the file, as invalid JSON is."""
    from fintune.study.compare import read_state

    (tmp_path / "cells.json").write_text(text)
    with pytest.raises(FintuneError, match=r"cells.json: .*changed by hand"):
        read_state(tmp_path)


def test_a_stale_takeover_check_never_removes_the_next_ones_live_file(tmp_path, monkeypatch):
    """A process that opened an old stale `.lock.takeover` (another machine's) checked its
    age on the file it had opened but removed the path: once another process had removed
    that file and made a new one, it removed the new live one, and two took the lock over."""
    guard = tmp_path / ".lock.takeover"
    guard.write_text("999999998 another-machine")
    os.utime(guard, (time.time() - 120, time.time() - 120))
    real = compare._flock

    def replaced_meanwhile(fd, wait):
        guard.unlink()  # the other process: it removed the stale one, and took its own
        guard.write_text(f"{os.getpid()} another-process")
        return real(fd, wait)

    monkeypatch.setattr(compare, "_flock", replaced_meanwhile)
    assert compare._take_dead_guard(guard, "here") is None
    assert guard.read_text() == f"{os.getpid()} another-process"


def test_finished_cells_run_again_when_their_local_model_is_rewritten_in_place(
    study_file, make_config, tiny_bert, tmp_path, capsys
):
    """A model trained again into the folder the study names (same path, new weights): the
    finished cells were reused, and the report showed the old weights' results as the new
    ones'. Only the path and the data were compared. A model card edit changes nothing."""
    from safetensors.torch import load_file, save_file

    model = tmp_path / "my-model"
    shutil.copytree(tiny_bert, model)
    base = make_config(model={"name": str(model)}).model_dump(mode="json")
    path = study_file(axes={"method": {"full": {"method": "full"}}, "seed": [1]}, base=base)
    folder, state = run_study(path)
    first = state["method=full,seed=1"]["run_dir"]
    assert json.loads((folder / first / "metrics.json").read_text())["model_sha256"]

    (model / "README.md").write_text("# my model\n")
    _, state = run_study(path)
    assert state["method=full,seed=1"]["run_dir"] == first

    weights = load_file(model / "model.safetensors")
    save_file({k: v + 0.01 for k, v in weights.items()}, model / "model.safetensors")
    capsys.readouterr()
    _, state = run_study(path)
    said = " ".join(capsys.readouterr().err.split())
    assert "the model's files changed since these finished cells ran; they run again: " in said
    assert state["method=full,seed=1"]["run_dir"] != first
    assert len(run_dirs(folder)) == 2


@pytest.mark.parametrize(
    "damage",
    [
        lambda m: m["test"].pop("accuracy"),
        lambda m: m["test"].update(accuracy="0.5"),
        lambda m: m["test"]["ci95"].update(f1_macro=[0.5]),
        lambda m: m["test"].pop("confusion_matrix"),
        lambda m: m["test"].update(confusion_matrix=[[1, 2], [3, 4]]),
        lambda m: m.pop("seed"),
    ],
)
def test_a_finished_runs_metrics_edited_into_what_no_report_reads_are_not_whole(
    make_config, damage
):
    """metrics.json edited by hand, still valid JSON with n and the labels: the cell was
    taken as finished and every study report ended in a KeyError or ValueError."""
    from fintune.study.adopt import whole_metrics

    run_dir = classification.run(make_config())
    assert whole_metrics(run_dir) is not None
    metrics = json.loads((run_dir / "metrics.json").read_text())
    damage(metrics)
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    assert whole_metrics(run_dir) is None


def test_run_files_nested_too_deep_are_not_read_as_a_finished_run(make_config):
    """json's RecursionError on '[[[...]]]' ended a study, a sweep or `fintune log` in a
    traceback, where other damage to the file leaves the run to be run again."""
    from fintune.study.adopt import whole_metrics
    from fintune.study.sweep_resume import run_inputs

    run_dir = classification.run(make_config())
    for name in ("metrics.json", "environment.json"):
        (run_dir / name).write_text("[" * 100_000 + "]" * 100_000)
    assert whole_metrics(run_dir) is None
    assert run_inputs(run_dir) is None


def test_finished_runs_are_taken_back_after_the_study_was_moved_or_renamed(
    study_file, make_config, tmp_path, capsys
):
    """Deleting cells.json takes the finished runs back as done, its error said; but they
    were compared with the whole config.yaml: a study moved (output.dir) or whose base was
    renamed (the runs' names) trained every cell again."""
    axes = {"method": {"full": {"method": "full"}}, "seed": [1]}
    folder, _ = run_study(study_file(axes=axes))
    moved = tmp_path / "moved"
    shutil.move(tmp_path / "studies", moved)
    base = make_config(name="renamed").model_dump(mode="json")
    path = study_file(axes=axes, output=str(moved), base=base)
    (moved / "tiny-study" / "cells.json").unlink()
    capsys.readouterr()
    folder, state = run_study(path)
    assert len(run_dirs(folder)) == 1  # not trained again
    assert state["method=full,seed=1"]["run_dir"].startswith("runs/")
    said = capsys.readouterr()
    out = " ".join((said.out + said.err).split())
    assert "cells.json does not name them" in out and "method=full,seed=1" in out


def test_an_edit_put_back_takes_the_earlier_run_and_says_so(study_file, capsys):
    """It was said that cells.json did not name the run (the study stopped, or the file
    deleted), though it had, and nothing had stopped."""
    axes = {"lr": {"a": {"training.learning_rate": 1e-3}}, "seed": [1]}
    folder, _ = run_study(study_file(axes=axes, baseline={"lr": "a"}))
    changed = {**axes, "lr": {"a": {"training.learning_rate": 2e-3}}}
    run_study(study_file(axes=changed, baseline={"lr": "a"}))
    capsys.readouterr()
    folder, _ = run_study(study_file(axes=axes, baseline={"lr": "a"}))
    said = capsys.readouterr()
    out = " ".join((said.out + said.err).split())
    assert "configured as an earlier run of theirs was" in out and "lr=a,seed=1" in out
    assert "cells.json does not name them" not in out
    assert len(run_dirs(folder)) == 2
