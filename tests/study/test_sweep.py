"""`fintune sweep` on tiny models: trials, the final model, resume, two workers, bad files."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from transformers import TrainerState

from fintune.errors import FintuneError
from fintune.evaluation.metrics import format_interval
from fintune.recipes import classification
from fintune.study import sweep, sweep_spec
from fintune.study.sweep import (
    PruneOnValidation,
    make_pruner,
    make_sampler,
    open_storage,
    run_sweep,
)
from fintune.study.sweep_spec import Param, SweepSpec
from tests.conftest import interrupted_in_garbage_collection, terminated_at_first_save
from tests.study.conftest import SPACE, ctrl_c_while_logging


def load(folder: Path) -> optuna.Study:
    return optuna.load_study(study_name="tiny-sweep", storage=f"sqlite:///{folder / 'optuna.db'}")


def states(study: optuna.Study) -> list[str]:
    return [t.state.name for t in study.get_trials()]


def test_sweep_runs_trials_then_a_final_model_and_writes_the_report(sweep_file, make_config):
    base = make_config(training={"epochs": 2}, tracking={"mlflow": True})
    report = run_sweep(sweep_file(base=base.model_dump(mode="json")))
    folder = report.parent
    study = load(folder)
    assert states(study) == ["COMPLETE"] * 3
    trials = pd.read_csv(folder / "trials.csv")
    assert sorted(trials["trial"].unique()) == [0, 1, 2]
    assert len(trials) == 6  # two epochs per trial
    assert trials[["train_loss", "eval_loss", "eval_accuracy", "eval_f1_macro"]].notna().all().all()
    for t in study.get_trials():
        metrics = json.loads((folder / t.user_attrs["run_dir"] / "metrics.json").read_text())
        assert metrics["validation"]["accuracy"] == t.value
        assert not (folder / t.user_attrs["run_dir"] / "model").exists()  # trials keep no model
    final = json.loads((folder / "final.json").read_text())
    assert final["params"] == study.best_trial.params
    final_metrics = json.loads((folder / final["run_dir"] / "metrics.json").read_text())
    assert final_metrics["validation"]["accuracy"] == study.best_value  # deterministic retrain
    assert (folder / final["run_dir"] / "model").is_dir()
    text = report.read_text()
    assert "## Best trial" in text and "## Final model" in text and "## Trials" in text
    sizes = f"validation n = {final_metrics['validation']['n']}, test n = "
    assert f"**Small sample** ({sizes}" in text  # as the final run's own report says
    assert (folder / "plots" / "optimization_history.png").is_file()
    assert (folder / "report.html").read_text().count("data:image/png;base64,") >= 1

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny-sweep").experiment_id])
    kinds = sorted(r.data.tags.get("fintune.kind") for r in runs)
    assert kinds == ["final", "sweep report", "trial", "trial", "trial"]
    (summary,) = [r for r in runs if r.data.tags["fintune.kind"] == "sweep report"]
    assert summary.info.status == "FINISHED"
    for run in runs:  # MLflow's UI nests the trials and the final model under the report's run
        if run is not summary:
            assert run.data.tags["mlflow.parentRunId"] == summary.info.run_id
    environment = json.loads((folder / final["run_dir"] / "environment.json").read_text())
    assert environment["tracking"]["from"] == "output"  # the sweep's store, not a setting given


def test_a_sweep_resumes_and_an_interrupted_trial_is_not_counted(sweep_file, interrupt_run):
    path = sweep_file()
    restore = interrupt_run(2)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(path, worker=True)
    folder = Path(yaml.safe_load(path.read_text())["output"]) / "tiny-sweep"
    assert states(load(folder)) == ["COMPLETE", "FAIL"]

    restore()
    first_run = load(folder).trials[0].user_attrs["run_dir"]
    run_sweep(path, worker=True)
    study = load(folder)
    assert states(study).count("COMPLETE") == 3  # the budget counts finished trials only
    assert study.trials[0].user_attrs["run_dir"] == first_run  # trial 0 was not rerun
    run_sweep(path, worker=True)  # budget reached: nothing more runs
    assert len(load(folder).trials) == len(study.trials)
    report = run_sweep(path, trials=5, report_only=True)  # no trials, only final + report
    assert len(load(folder).trials) == len(study.trials)
    assert "3 complete, 1 interrupted" in report.read_text()  # not "1 fail", never explained
    table = pd.read_csv(folder / "trials.csv").drop_duplicates("trial")
    assert list(table["state"]) == ["complete", "interrupted", "complete", "complete"]


@pytest.mark.parametrize("signum", ["SIGINT", "SIGTERM"])
def test_a_stop_as_a_finished_trial_is_recorded_keeps_the_trial(sweep_file, monkeypatch, signum):
    """A Ctrl+C or SIGTERM in the 10 to 30 ms between a trial's metrics.json and Optuna
    storing its value failed the finished trial; the resumed sweep trained another in its
    place and the finished run's result never counted."""
    import signal

    from fintune import interrupt

    path = sweep_file(trials=2, final=False)
    real = optuna.trial.Trial.set_user_attr

    def stopped_here(trial, key, value):
        if key == sweep.KEPT:  # recorded after the run, before the objective returns
            os.kill(os.getpid(), getattr(signal, signum))
        real(trial, key, value)

    monkeypatch.setattr(optuna.trial.Trial, "set_user_attr", stopped_here)
    previous = signal.signal(signal.SIGTERM, interrupt.terminate)  # as the command has them
    try:
        stop = KeyboardInterrupt if signum == "SIGINT" else SystemExit
        with pytest.raises(stop), interrupt.remembered():
            run_sweep(path, worker=True)
    finally:
        signal.signal(signal.SIGTERM, previous)
    study = load(path.parent / "sweeps" / "tiny-sweep")
    assert states(study) == ["COMPLETE"]
    assert "run_dir" in study.trials[0].user_attrs and study.trials[0].value is not None
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers put back


def test_trials_csv_is_written_after_each_trial_not_only_at_the_end(
    sweep_file, make_config, interrupt_run
):
    """A killed sweep (or one still running) had no table until the search ended."""
    path = sweep_file(base=make_config(training={"epochs": 1}).model_dump(mode="json"))
    interrupt_run(2)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(path)
    folder = path.parent / "sweeps" / "tiny-sweep"
    trials = pd.read_csv(folder / "trials.csv")
    assert list(trials["trial"]) == [0] and list(trials["state"]) == ["complete"]
    assert trials[["train_loss", "eval_loss", "eval_accuracy"]].notna().all().all()
    assert not list(folder.glob("*.partial"))  # written to a temporary file, then renamed


def test_the_final_model_is_reused_only_for_the_same_config(sweep_file, make_config):
    path = sweep_file(trials=1)
    folder = run_sweep(path).parent
    first = json.loads((folder / "final.json").read_text())
    assert first["config_sha"]
    run_sweep(path, report_only=True)
    assert json.loads((folder / "final.json").read_text()) == first  # reused
    longer = make_config(training={"epochs": 2}, model={"max_length": 24})
    run_sweep(sweep_file(trials=1, base=longer.model_dump(mode="json")), report_only=True)
    second = json.loads((folder / "final.json").read_text())
    assert second["params"] == first["params"] and second["run_dir"] != first["run_dir"]


def test_a_resumed_sweep_may_move_bounds_but_not_change_how_a_field_is_sampled(
    sweep_file, monkeypatch
):
    folder = run_sweep(sweep_file(trials=1, final=False)).parent
    spec = SweepSpec.model_validate(
        yaml.safe_load((folder.parent.parent / "sweep.yaml").read_text())
    )
    stored = load(folder).trials[0].distributions
    assert stored == {f: p.distribution() for f, p in spec.space.items()}  # what suggest used

    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))
    linear = {**SPACE, "training.learning_rate": {"type": "uniform", "low": 1e-3, "high": 1e-2}}
    with pytest.raises(FintuneError, match="space.training.learning_rate: the study stored"):
        run_sweep(sweep_file(trials=2, final=False, space=linear))
    wider = {**SPACE, "training.learning_rate": {"type": "log_uniform", "low": 1e-4, "high": 1e-2}}
    monkeypatch.undo()
    run_sweep(sweep_file(trials=2, final=False, space=wider))
    assert len(load(folder).trials) == 2


def proposed(studies: list[optuna.Study], rounds: int = 3) -> list[float]:
    """The learning rates the studies propose, taking turns, each trial told its value."""
    points = []
    for _ in range(rounds):
        for study in studies:
            trial = study.ask()
            points.append(trial.suggest_float("lr", 1e-5, 1e-2, log=True))
            study.tell(trial, -abs(points[-1] - 1e-3))
    return points


@pytest.mark.parametrize("kind", ["tpe", "random"])
def test_the_sampler_is_seeded_from_the_config_and_workers_still_differ(kind):
    """The sampler was unseeded: the same sweep file proposed other trials each time. Seeded
    as Optuna seeds it, two workers on one study drew the same startup points (3 of 4
    pairs); seeded per trial number, they do not, and a rerun proposes the same ones."""
    spec = SweepSpec(name="s", base={}, space=SPACE, sampler=kind, startup_trials=2)

    def alone(seed: int, rounds: int = 3) -> list[float]:
        sampler = make_sampler(spec, seed)
        return proposed([optuna.create_study(direction="maximize", sampler=sampler)], rounds)

    assert alone(7) == alone(7) != alone(8)
    storage = optuna.storages.InMemoryStorage()
    workers = [
        optuna.create_study(
            study_name="s",
            storage=storage,
            direction="maximize",
            sampler=make_sampler(spec, 7),
            load_if_exists=True,
        )
        for _ in range(2)
    ]
    points = proposed(workers)
    assert len(set(points)) == len(points) == 6
    assert points == alone(7, rounds=6)  # trial by trial, as one process would


def test_a_stored_study_with_another_metric_or_direction_is_refused(sweep_file, monkeypatch):
    folder = run_sweep(sweep_file(trials=1, final=False)).parent
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(FintuneError, match="made to maximize its objective, but metric 'loss'"):
        run_sweep(sweep_file(trials=2, final=False, metric="loss"))
    # the same direction: f1 values were mixed with the accuracy values in one study
    with pytest.raises(FintuneError, match="metric: the stored study .* validation accuracy"):
        run_sweep(sweep_file(trials=2, final=False, metric="f1_macro"))
    with pytest.raises(FintuneError, match="metric: the stored study"):
        run_sweep(sweep_file(trials=2, final=False, metric="f1_macro"), report_only=True)
    assert len(load(folder).trials) == 1


def test_a_resume_with_other_sampler_or_pruner_settings_is_said_and_reported(sweep_file, capsys):
    """The sampler and pruner settings were not stored: a resume with `pruner: median`
    after `none` (or TPE after random) mixed trials of two regimes under a report that named
    only the last. Such a resume is allowed (BENCHMARKS.md's TFNS sweep went on with
    `pruner: none`), said, and the report names which trials ran how."""
    import sqlite3

    folder = run_sweep(sweep_file(trials=1, final=False)).parent
    first = {"sampler": "tpe", "pruner": "none", "startup_trials": 1}
    assert load(folder).user_attrs["search"] == first
    capsys.readouterr()
    run_sweep(sweep_file(trials=2, final=False, sampler="random"), report_only=True)
    assert load(folder).user_attrs["search"] == first  # --report-only records nothing
    report = run_sweep(sweep_file(trials=2, final=False, sampler="random"))
    said = capsys.readouterr().err
    assert "sampler: 'tpe' then, 'random' now" in said, said
    assert states(load(folder)) == ["COMPLETE"] * 2
    assert load(folder).user_attrs["search"] == {"sampler": "random", "pruner": "none"}
    text = report.read_text()
    assert (
        "The search settings changed during the study: trials 0–0: sampler tpe, pruner none, "
        "startup_trials 1; trials 1–1: sampler random, pruner none." in text
    ), text
    with sqlite3.connect(folder / "optuna.db") as db:  # a study of an earlier version
        db.execute("DELETE FROM study_user_attributes WHERE key = 'search'")
    run_sweep(sweep_file(trials=3, final=False, sampler="random"))
    assert load(folder).user_attrs["search"] == {"sampler": "random", "pruner": "none"}


def test_a_resumed_sweep_on_another_base_or_data_is_refused_but_a_moved_data_file_is_not(
    sweep_file, make_config, sentences_csv, tmp_path, monkeypatch
):
    folder = run_sweep(sweep_file(trials=1, final=False)).parent
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))

    def base(**sections) -> dict:
        sections["training"] = {"epochs": 2, **sections.get("training", {})}
        return make_config(**sections).model_dump(mode="json")

    with pytest.raises(FintuneError, match=r"base: .*training\.epochs: 2.0 then, 3.0 now"):
        run_sweep(sweep_file(trials=2, final=False, base=base(training={"epochs": 3})))
    edited = tmp_path / "edited.csv"
    edited.write_text(sentences_csv.read_text().replace("rose", "grew"))
    with pytest.raises(FintuneError, match="base: .*data fingerprint"):
        run_sweep(sweep_file(trials=2, final=False, base=base(data={"path": str(edited)})))
    assert len(load(folder).trials) == 1

    moved = tmp_path / "moved.csv"
    moved.write_bytes(sentences_csv.read_bytes())
    # the same data from another folder, a new value for a searched field, another thread
    # count (the trials' is 1: None, torch's own, 1 under OMP_NUM_THREADS=1 and quick) and
    # other test-side interval settings: a resume
    searched = base(
        data={"path": str(moved)},
        training={"learning_rate": 0.5, "num_threads": None},
        evaluation={"bootstrap_samples": 300},
    )
    monkeypatch.undo()
    run_sweep(sweep_file(trials=2, final=False, base=searched))
    assert states(load(folder)) == ["COMPLETE"] * 2


def test_a_resumed_sweep_on_a_local_model_rewritten_in_place_is_refused(
    sweep_file, make_config, tiny_bert, tmp_path, monkeypatch
):
    """A model trained again into the folder the base names: the resumed sweep ranked the
    new weights' trials with the old ones', its base config unchanged. A sweep stored
    before the base and its trials recorded the model's files takes them as they are now."""
    import sqlite3

    from safetensors.torch import load_file, save_file

    model = tmp_path / "my-model"
    shutil.copytree(tiny_bert, model)
    base = make_config(model={"name": str(model)}, training={"epochs": 1}).model_dump()
    folder = run_sweep(sweep_file(trials=1, final=False, base=base)).parent
    weights = load_file(model / "model.safetensors")
    save_file({k: v + 0.01 for k, v in weights.items()}, model / "model.safetensors")
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(FintuneError, match=r"base: .*model files \(sha256\): '[0-9a-f]{64}' then"):
        run_sweep(sweep_file(trials=2, final=False, base=base))
    monkeypatch.undo()

    study = load(folder)
    stored = study.user_attrs["base"]
    del stored["model files (sha256)"]
    study.set_user_attr("base", stored)
    with pytest.raises(FintuneError, match=r"trials whose .*model files \(.*my-model\): trial 0"):
        run_sweep(sweep_file(trials=2, final=False, base=base))  # the trial's record tells
    with sqlite3.connect(folder / "optuna.db") as db:
        db.execute("DELETE FROM trial_user_attributes WHERE key = 'inputs'")
    run_dir = folder / study.trials[0].user_attrs["run_dir"]
    for name in ("environment.json", "metrics.json"):  # as an earlier version wrote them
        record = json.loads((run_dir / name).read_text())
        del record["model_sha256"]
        (run_dir / name).write_text(json.dumps(record))
    run_sweep(sweep_file(trials=2, final=False, base=base))
    assert states(load(folder)) == ["COMPLETE"] * 2


@pytest.mark.parametrize("chosen", ["model", "data"])
def test_a_resumed_sweep_refuses_files_a_trial_chose_in_the_space_that_changed_since(
    chosen, sweep_file, make_config, tiny_bert, sentences_csv, tmp_path, monkeypatch, capsys
):
    """A space over model.name or data.path: each trial read the files its point named,
    which the base record does not cover. Rewritten since (a model trained again into its
    folder, a data file edited), the resume ranked the old files' trials with the new
    ones', saying nothing. Trials of an earlier version are checked from their run folder."""
    import sqlite3

    from safetensors.torch import load_file, save_file

    other = tmp_path / ("my-model" if chosen == "model" else "other.csv")
    if chosen == "model":
        shutil.copytree(tiny_bert, other)
        field, choices = "model.name", [str(tiny_bert), str(other)]
    else:
        shutil.copy(sentences_csv, other)
        field, choices = "data.path", [str(sentences_csv), str(other)]
    space = {
        "training.learning_rate": SPACE["training.learning_rate"],
        field: {"type": "categorical", "choices": choices},
    }
    enqueue = [{field: str(other), "training.learning_rate": 5e-3}]
    base = make_config(training={"epochs": 1}).model_dump(mode="json")
    spec = {"space": space, "enqueue": enqueue, "final": False, "base": base}
    folder = run_sweep(sweep_file(trials=1, **spec)).parent
    (trial,) = load(folder).get_trials()
    assert trial.params[field] == str(other)
    assert sweep.INPUTS in trial.user_attrs
    if chosen == "model":
        weights = load_file(other / "model.safetensors")
        save_file({k: v + 0.01 for k, v in weights.items()}, other / "model.safetensors")
        what = rf"model files \({re.escape(str(other))}\): trial 0"
    else:
        other.write_text(sentences_csv.read_text().replace("rose", "grew"))
        what = rf"data \({re.escape(str(other))}\): trial 0"
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(FintuneError, match=rf"tiny-sweep.*files have changed since .*{what}\."):
        run_sweep(sweep_file(trials=2, **spec))
    capsys.readouterr()
    run_sweep(sweep_file(trials=2, **spec), report_only=True)  # the report says so
    assert re.search(rf"warning: .* have changed\s+since, .*{what}", capsys.readouterr().err)

    with sqlite3.connect(folder / "optuna.db") as db:  # a trial of an earlier version: its
        db.execute("DELETE FROM trial_user_attributes WHERE key = 'inputs'")  # run folder says
    assert sweep.INPUTS not in load(folder).get_trials()[0].user_attrs
    with pytest.raises(FintuneError, match=what):
        run_sweep(sweep_file(trials=2, **spec))


def test_a_resumed_sweep_may_search_another_field_or_stop_searching_one(sweep_file):
    """A field added to the space was fixed in the earlier trials, one dropped from it is
    fixed from now on: each trial is still a point of one base, and ranks with the others."""
    folder = run_sweep(sweep_file(trials=1, final=False)).parent
    decay = {"type": "uniform", "low": 0.0, "high": 0.1}
    run_sweep(sweep_file(trials=2, final=False, space={**SPACE, "training.weight_decay": decay}))
    fewer = {"training.learning_rate": SPACE["training.learning_rate"]}
    run_sweep(sweep_file(trials=3, final=False, space=fewer))
    assert states(load(folder)) == ["COMPLETE"] * 3


def test_a_base_value_a_trial_ran_without_searching_it_cannot_change_on_resume(
    sweep_file, make_config, monkeypatch
):
    """The base was stored once, less the fields searched then: a field dropped from the
    space and then edited in the base (batch size 32, then 64), or added to the space while
    its base value was edited, mixed trials of two bases, and the final model of a trial
    that ran 16 trained with 32."""
    rate = {"training.learning_rate": SPACE["training.learning_rate"]}

    def run(trials: int, space: dict, batch_size: int):
        base = make_config(training={"epochs": 1, "batch_size": batch_size})
        path = sweep_file(trials=trials, final=False, space=space, base=base.model_dump())
        return run_sweep(path)

    folder = run(1, SPACE, 16).parent
    run(2, rate, 32)  # trial 0 searched it: its base value was no trial's yet
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))
    said = r"base: .*training\.batch_size: 32 then, 64 now"
    with pytest.raises(FintuneError, match=said):
        run(3, rate, 64)
    with pytest.raises(FintuneError, match=said):  # trial 1 ran 32, whatever is searched now
        run(3, SPACE, 64)
    monkeypatch.undo()
    run(3, SPACE, 32)
    assert states(load(folder)) == ["COMPLETE"] * 3


def test_report_only_on_a_study_of_an_earlier_version_records_nothing(
    sweep_file, make_config, monkeypatch
):
    """A study made before the base and metric were stored: --report-only with a final
    model on another base (more epochs) must not store that base as the trials' own, or
    the next resume on the trials' base is refused."""
    import sqlite3

    folder = run_sweep(sweep_file(trials=1, final=False)).parent
    with sqlite3.connect(folder / "optuna.db") as db:  # as an earlier version left it
        db.execute("DELETE FROM study_user_attributes")
    final_base = make_config(training={"epochs": 3}).model_dump(mode="json")
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))
    run_sweep(sweep_file(trials=1, final=False, base=final_base), report_only=True)
    assert load(folder).user_attrs == {}
    monkeypatch.undo()
    run_sweep(sweep_file(trials=2, final=False))
    assert states(load(folder)) == ["COMPLETE"] * 2


def test_the_report_shows_a_dead_workers_trial_as_failed_not_running(sweep_file):
    import sqlite3

    path = sweep_file(trials=1, final=False)
    run_sweep(path)
    folder = path.parent / "sweeps" / "tiny-sweep"
    storage, _ = open_storage(SweepSpec.model_validate(yaml.safe_load(path.read_text())), folder)
    study = optuna.load_study(study_name="tiny-sweep", storage=storage)
    trial = study.ask()  # a worker takes a trial, beats once and dies
    storage.record_heartbeat(trial._trial_id)
    with sqlite3.connect(folder / "optuna.db") as db:
        db.execute("UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00'")
    report = run_sweep(path, report_only=True)
    assert states(load(folder))[:2] == ["COMPLETE", "FAIL"]
    assert "running" not in report.read_text()


def test_enqueued_points_run_first_and_only_once_over_resumes(sweep_file):
    point = {"training.learning_rate": 0.005, "training.batch_size": 16}
    path = sweep_file(trials=1, enqueue=[point], final=False)
    run_sweep(path)
    run_sweep(path, trials=2)
    trials = load(path.parent / "sweeps" / "tiny-sweep").get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]
    assert trials[0].params == point
    assert trials[1].params != point
    table = pd.read_csv(path.parent / "sweeps" / "tiny-sweep" / "trials.csv")
    assert table.drop_duplicates("trial")["origin"].tolist() == ["enqueued", "sampled"]


def test_a_null_enqueued_value_is_held_only_by_a_trial_that_ran_it():
    """A trial that never searched max_steps held the point {max_steps: null}: a missing
    value was read as null, and the point was never queued."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    space = {**SPACE, "training.max_steps": {"type": "categorical", "choices": [None, 4]}}
    spec = SweepSpec(name="s", base={}, space=space, enqueue=[{"training.max_steps": None}])
    fields = {
        "training.learning_rate": FloatDistribution(1e-3, 1e-2, log=True),
        "training.max_steps": CategoricalDistribution([None, 4]),
    }
    for params, queued in [
        ({"training.learning_rate": 2e-3}, True),
        ({"training.max_steps": None}, False),
    ]:
        study = optuna.create_study(direction="maximize")
        ran = {f: fields[f] for f in params}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=ran, value=0.5))
        sweep.enqueue_new_points(study, spec)
        assert states(study) == ["COMPLETE"] + ["WAITING"] * queued


def test_a_bare_model_choice_does_not_cover_the_bases_other_model_fields(
    sweep_file, make_config, tiny_bert, tmp_path, monkeypatch
):
    """A bare model name sets model.name only, but `model` in the space was read as covering
    model.max_length too: a resume with another max_length was accepted, and trials of 32
    and 16 tokens were ranked together."""
    import shutil

    other = shutil.copytree(tiny_bert, tmp_path / "tiny-bert-copy")
    space = {"model": {"type": "categorical", "choices": [str(tiny_bert), str(other)]}}

    def base(length: int) -> dict:
        return make_config(model={"name": str(tiny_bert), "max_length": length}).model_dump(
            mode="json"
        )

    run_sweep(sweep_file(trials=1, final=False, space=space, base=base(32)))
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(FintuneError, match=r"base: .*model\.max_length: 32 then, 16 now"):
        run_sweep(sweep_file(trials=2, final=False, space=space, base=base(16)))


def test_a_queued_point_dropped_from_enqueue_or_outside_the_space_is_not_run(sweep_file):
    """Points queued by an earlier file outlived its edits: a rerun with `enqueue: []` and
    moved bounds ran them, one at a learning rate outside the new bounds, and trials.csv
    listed the points still queued as `waiting` rows without parameters."""
    a, b, c = [
        {"training.learning_rate": lr, "training.batch_size": 8} for lr in (9e-3, 1e-3, 5e-3)
    ]
    path = sweep_file(trials=1, enqueue=[a, b, c], final=False)
    run_sweep(path)
    folder = path.parent / "sweeps" / "tiny-sweep"
    assert states(load(folder)) == ["COMPLETE", "WAITING", "WAITING"]
    assert pd.read_csv(folder / "trials.csv")["trial"].tolist() == [0, 0]  # two epochs

    rate = {"type": "log_uniform", "low": 3e-3, "high": 1e-2}
    run_sweep(sweep_file(trials=2, final=False, space={**SPACE, "training.learning_rate": rate}))
    trials = load(folder).get_trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "FAIL", "COMPLETE"]
    assert (
        "outside the space (training.learning_rate: 0.001 is outside"
        in trials[1].user_attrs["skipped"]
    )
    assert "no longer in the sweep file's enqueue" in trials[2].user_attrs["skipped"]
    assert 3e-3 <= trials[3].params["training.learning_rate"] <= 1e-2
    assert pd.read_csv(folder / "trials.csv")["trial"].unique().tolist() == [0, 3]


def test_an_interrupted_enqueued_point_is_queued_again_on_resume(sweep_file, interrupt_run):
    point = {"training.learning_rate": 0.005}
    path = sweep_file(trials=1, enqueue=[point], final=False)
    folder = path.parent / "sweeps" / "tiny-sweep"
    with pytest.raises(FintuneError, match="--report-only: .* holds no trials of sweep"):
        run_sweep(path, report_only=True)  # nothing to report: nothing queued, nothing made
    assert not folder.exists()
    interrupt_run(1)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(path)
    interrupt_run(99)
    run_sweep(path)
    trials = load(folder).get_trials()
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].params["training.learning_rate"] == 0.005


def test_report_only_refuses_a_storage_url_without_the_study(sweep_file, tmp_path):
    """It made an empty study in the shared database and reported 'none yet'."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    optuna.create_study(study_name="another-sweep", storage=url)
    with pytest.raises(FintuneError, match="shared.db holds no study 'tiny-sweep'"):
        run_sweep(sweep_file(storage=url), report_only=True)
    assert optuna.get_all_study_names(url) == ["another-sweep"]
    assert not (tmp_path / "sweeps").exists()


def test_two_worker_processes_share_one_study(sweep_file, make_config):
    base = make_config(training={"epochs": 2}, tracking={"mlflow": True})
    path = sweep_file(trials=4, base=base.model_dump(mode="json"))
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    command = [sys.executable, "-m", "fintune.cli", "sweep", str(path), "--worker"]
    workers = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(2)
    ]
    outputs = [w.communicate(timeout=300)[0].decode() for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    folder = Path(yaml.safe_load(path.read_text())["output"]) / "tiny-sweep"
    study = load(folder)
    done = [t for t in study.trials if t.state.name == "COMPLETE"]
    assert len(done) == 4, states(study)
    assert all(t.state.name in ("COMPLETE", "FAIL") for t in study.trials)
    run_dirs = {t.user_attrs["run_dir"] for t in done}
    assert len(run_dirs) == 4  # no trial duplicated or lost: one run each
    for run_dir in run_dirs:
        assert (folder / run_dir / "metrics.json").is_file()
    skipped = [t for t in study.trials if t.state.name == "FAIL"]
    assert all(t.user_attrs.get("skipped") for t in skipped)
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")  # both logged to one store
    runs = client.search_runs([client.get_experiment_by_name("tiny-sweep").experiment_id])
    (summary,) = [r for r in runs if r.data.tags["fintune.kind"] == "sweep report"]
    runs.remove(summary)  # made by the first worker, found by the second; RUNNING: no report
    assert sorted(r.data.tags["fintune.trial"] for r in runs) == sorted(str(t.number) for t in done)
    assert {r.data.tags["mlflow.parentRunId"] for r in runs} == {summary.info.run_id}


def test_a_worker_with_no_slot_left_is_not_an_error(sweep_file, interrupt_run):
    """Its Ctrl+C'd trial was counted as a failure: 'no trial finished: 1 failed'."""
    path = sweep_file(trials=1, final=False)
    interrupt_run(1)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(path, worker=True)
    folder = path.parent / "sweeps" / "tiny-sweep"
    storage, _ = open_storage(SweepSpec.model_validate(yaml.safe_load(path.read_text())), folder)
    other = optuna.load_study(study_name="tiny-sweep", storage=storage).ask()
    storage.record_heartbeat(other._trial_id)  # another worker holds the only slot
    assert run_sweep(path, worker=True) == folder
    assert states(load(folder)) == ["FAIL", "RUNNING"]


def other_workers_trials(path: Path, n: int = 1) -> tuple[optuna.Study, list[optuna.Trial], Path]:
    """Trials taken (and beating) by other workers before this process starts."""
    spec = SweepSpec.model_validate(yaml.safe_load(path.read_text()))
    folder = path.parent / "sweeps" / "tiny-sweep"
    folder.mkdir(parents=True)
    storage, _ = open_storage(spec, folder)
    study = optuna.create_study(study_name="tiny-sweep", storage=storage, direction="maximize")
    trials = [study.ask({f: p.distribution() for f, p in spec.space.items()}) for _ in range(n)]
    for trial in trials:
        storage.record_heartbeat(trial._trial_id)
    return study, trials, folder


def while_waiting(monkeypatch, action) -> list[int]:
    """Replace the poll's pause: the first one runs `action` (another worker finishes or
    dies), as it would during the wait. Returns the list of pauses taken."""
    pauses: list[int] = []

    def pause(seconds):
        pauses.append(1)
        if len(pauses) == 1:
            action()
        assert len(pauses) < 5, "still waiting"

    monkeypatch.setattr(sweep, "pause", pause)
    return pauses


def test_the_report_waits_for_another_workers_running_trial(sweep_file, monkeypatch, capsys):
    path = sweep_file(trials=2, final=False)
    study, [other], folder = other_workers_trials(path)
    pauses = while_waiting(monkeypatch, lambda: study.tell(other, 2.0))  # best by far
    report = run_sweep(path)
    assert states(load(folder)) == ["COMPLETE", "COMPLETE"]  # nothing skipped while waiting
    assert len(pauses) == 1
    assert "Waiting for other workers' trials [0]" in capsys.readouterr().err
    best = report.read_text().split("## Best trial")[1]
    assert "| 0 | 2.0" in best  # the other worker's trial is in the report, and best


def test_a_killed_workers_trial_is_run_again_before_the_report(sweep_file, monkeypatch):
    import sqlite3

    path = sweep_file(trials=2, final=False)
    _, [dead], folder = other_workers_trials(path)

    def worker_is_killed():  # its heartbeat stops; the grace period has passed
        with sqlite3.connect(folder / "optuna.db") as db:
            db.execute("UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00'")

    while_waiting(monkeypatch, worker_is_killed)
    run_sweep(path)
    trials = load(folder).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE", "COMPLETE"]
    assert trials[2].params == dead.params  # its point, run again by this process
    assert (folder / "trials.csv").is_file()


def test_a_worker_runs_again_the_trial_of_a_worker_killed_on_the_last_slot(sweep_file):
    """The dead trial held the only slot as RUNNING: the worker said 'finished' and left it."""
    import sqlite3

    path = sweep_file(trials=1, final=False)
    _, [dead], folder = other_workers_trials(path)
    with sqlite3.connect(folder / "optuna.db") as db:  # killed long ago: no more heartbeats
        db.execute("UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00'")
    run_sweep(path, worker=True)
    trials = load(folder).trials
    assert [t.state.name for t in trials] == ["FAIL", "COMPLETE"]
    assert trials[1].params == dead.params


@pytest.mark.parametrize("moved", ["bounds", "field"])
def test_a_killed_workers_point_outside_the_space_now_is_not_run(sweep_file, moved):
    """Optuna queues a dead worker's trial again with its parameters set, which suggest
    returns unchecked: a rerun with moved bounds ran a learning rate outside them, and one
    that no longer searched batch_size trained the base's while the table, and the final
    model, took the dead trial's."""
    import sqlite3

    path = sweep_file(trials=1, final=False)
    _, [dead], folder = other_workers_trials(path)
    with sqlite3.connect(folder / "optuna.db") as db:  # killed long ago: no more heartbeats
        db.execute("UPDATE trial_heartbeats SET heartbeat = '2000-01-01 00:00:00'")
    lr = dead.params["training.learning_rate"]
    space = {"training.learning_rate": {"type": "log_uniform", "low": 1e-3, "high": 1e-2}}
    if moved == "bounds":
        space = {**SPACE, "training.learning_rate": {**space["training.learning_rate"]}}
        space["training.learning_rate"]["low" if lr < 5e-3 else "high"] = (
            min(lr * 1.01, 1e-2) if lr < 5e-3 else max(lr / 1.01, 1e-3)
        )
    run_sweep(sweep_file(trials=1, final=False, space=space))
    trials = load(folder).trials
    assert [t.state.name for t in trials] == ["FAIL", "FAIL", "COMPLETE"]
    assert "outside the space" in trials[1].user_attrs["skipped"]
    assert trials[2].params != dead.params


def test_enqueued_points_wait_while_other_workers_hold_the_budget(sweep_file, monkeypatch):
    """Two workers' trials cover the budget; one fails. The queued point runs then, and
    is not used up as a skipped trial while they run."""
    point = {"training.learning_rate": 0.005, "training.batch_size": 16}
    path = sweep_file(trials=2, enqueue=[point], final=False)
    study, [first, second], folder = other_workers_trials(path, 2)

    def workers_finish():
        study.tell(first, 0.5)
        study.tell(second, state=optuna.trial.TrialState.FAIL)

    while_waiting(monkeypatch, workers_finish)
    run_sweep(path)
    trials = load(folder).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[2].params == point


def test_a_queued_trial_started_after_a_newer_trial_counts_it_in_the_budget(
    sweep_file, make_config, monkeypatch
):
    """A trial's number is given when it is queued: a queued point (or a dead worker's trial
    queued again) that started after another worker's newer trial counted only lower
    numbers, did not see that trial, and ran one trial more than the budget."""
    base = make_config(training={"epochs": 1}).model_dump(mode="json")
    path = sweep_file(trials=2, final=False, base=base)
    study, [first], folder = other_workers_trials(path)
    study.tell(first, 0.5)
    study.enqueue_trial({"training.learning_rate": 0.005, "training.batch_size": 16})
    pop = optuna.Study._pop_waiting_trial_id

    def another_worker_first(self):
        # it found the queue empty a moment before the point was queued; its trial, numbered
        # after the point's, starts just before this process takes the point
        newer = self._storage.create_new_trial(self._study_id)
        self._storage.record_heartbeat(newer)
        monkeypatch.setattr(optuna.Study, "_pop_waiting_trial_id", pop)
        return pop(self)

    monkeypatch.setattr(optuna.Study, "_pop_waiting_trial_id", another_worker_first)
    run_sweep(path, worker=True)
    trials = load(folder).trials
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "RUNNING"]
    assert trials[1].user_attrs["skipped"]


def _report_of_a_failed_sweep(path, error: str) -> Path:
    """A sweep without a finished trial writes its report, then fails (a non-zero exit)."""
    with pytest.raises(
        FintuneError,
        match=rf"no trial finished: 3 failed \(the last, trial 2: "
        rf"\w+: {error}.*; report: ",
    ) as failure:
        run_sweep(path)
    return Path(str(failure.value).rsplit("; report: ", 1)[1])


def test_a_sweep_whose_trials_all_fail_stops_and_says_why(sweep_file, monkeypatch):
    def broken(config, **kwargs):
        raise RuntimeError("CUDA out of memory (simulated)")

    monkeypatch.setattr(classification, "run", broken)
    report = _report_of_a_failed_sweep(sweep_file(trials=10), "CUDA out of memory")
    assert states(load(report.parent)) == ["FAIL"] * 3  # stopped after three in a row
    text = report.read_text()
    assert "No trial finished" in text and "RuntimeError: CUDA out of memory" in text


def test_an_error_before_training_is_recorded_and_stops_the_sweep(sweep_file, monkeypatch):
    def broken(self, trial, name):
        raise RuntimeError("sampler exploded (simulated)")

    monkeypatch.setattr(Param, "suggest", broken)
    report = _report_of_a_failed_sweep(sweep_file(trials=10), "sampler exploded")
    study = load(report.parent)
    assert states(study) == ["FAIL"] * 3  # recorded as errors, so the sweep stops
    assert all("sampler exploded" in t.user_attrs["error"] for t in study.trials)
    assert "RuntimeError: sampler exploded" in report.read_text()


def test_a_trial_keeps_its_best_checkpoint_on_the_sweeps_metric(sweep_file, make_config):
    base = make_config(training={"epochs": 3, "best_metric": "accuracy"})
    report = run_sweep(
        sweep_file(metric="loss", trials=1, final=False, base=base.model_dump(mode="json"))
    )
    trial = load(report.parent).trials[0]
    history = (report.parent / trial.user_attrs["run_dir"] / "history.jsonl").read_text()
    losses = [r["eval_loss"] for r in map(json.loads, history.splitlines()) if "eval_loss" in r]
    assert trial.value == pytest.approx(min(losses), abs=1e-6)
    with pytest.raises(FintuneError, match="best_metric cannot be searched"):
        run_sweep(
            sweep_file(
                space={
                    **SPACE,
                    "training.best_metric": {
                        "type": "categorical",
                        "choices": ["loss", "accuracy"],
                    },
                }
            )
        )


def test_a_sweep_can_minimise_the_validation_loss(sweep_file):
    report = run_sweep(sweep_file(metric="loss", trials=2))
    study = load(report.parent)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert states(study) == ["COMPLETE"] * 2
    for t in study.trials:
        metrics = json.loads((report.parent / t.user_attrs["run_dir"] / "metrics.json").read_text())
        assert t.value == metrics["validation"]["loss"] > 0
    assert study.best_value == min(t.value for t in study.trials)
    final = json.loads((report.parent / "final.json").read_text())
    test = json.loads((report.parent / final["run_dir"] / "metrics.json").read_text())["test"]
    low, high = test["ci95"]["loss"]  # the final model's loss, with its interval
    assert f"| {test['loss']:.4f} {format_interval(low, high)} |" in report.read_text()


def test_fields_valid_alone_but_not_together_fail_before_training(
    sweep_file, make_config, monkeypatch
):
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))
    space = {
        "method": {"type": "categorical", "choices": ["lora", "full"]},
        "method.r": {"type": "int", "low": 4, "high": 8},
    }
    base = make_config(method={"name": "lora"}).model_dump(mode="json")
    with pytest.raises(FintuneError) as error:
        run_sweep(sweep_file(base=base, space=space))
    assert "method.r: unknown key" in str(error.value)
    assert "(at the point method=full, method.r=4 of the space)" in str(error.value)


def test_a_space_over_max_length_or_the_model_is_checked_against_each_architecture(
    sweep_file, make_config, tiny_gpt2, monkeypatch
):
    """Only the base config's architecture was checked: a point of the space that no
    architecture can run failed trial after trial."""
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))
    space = {"model.max_length": {"type": "int", "low": 32, "high": 4096}}
    with pytest.raises(FintuneError) as error:
        run_sweep(sweep_file(space=space))
    assert "model.max_length: 4096 is more than" in str(error.value)
    assert "(at the point model.max_length=4096 of the space)" in str(error.value)

    base = make_config(method={"name": "lora", "target_modules": ["query", "value"]})
    space = {"model.name": {"type": "categorical", "choices": [base.model.name, str(tiny_gpt2)]}}
    with pytest.raises(FintuneError) as error:
        run_sweep(sweep_file(base=base.model_dump(mode="json"), space=space))
    assert "method.target_modules" in str(error.value)
    assert f"(at the point model.name={tiny_gpt2} of the space)" in str(error.value)


def test_a_space_over_data_fields_checks_each_points_data_before_training(
    sweep_file, tmp_path, monkeypatch
):
    """Only the base config's data was checked: a choice naming a column the file lacks
    trained the other choices' trials first, then failed trial after trial."""
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))
    space = {"data.text_column": {"type": "categorical", "choices": ["text", "headline"]}}
    with pytest.raises(FintuneError) as error:
        run_sweep(sweep_file(space=space))
    assert "data.text_column: column 'headline' not in" in str(error.value)
    assert "(at the point data.text_column=headline of the space)" in str(error.value)
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize(
    ("param", "shown"),
    [
        ({"type": "uniform", "low": 8, "high": 16}, "12.5"),
        ({"type": "log_uniform", "low": 8, "high": 64}, "22.6"),
        ({"type": "uniform", "low": 8, "high": 16, "step": 0.5}, "8.5"),
        # its midpoint 1999999.5 shows as 2e+06, the top: the search for a fraction never ended
        ({"type": "uniform", "low": 1999999, "high": 2000000}, "1999999.5"),
    ],
)
def test_a_float_space_over_a_whole_number_field_fails_before_training(
    sweep_file, tmp_path, monkeypatch, param, shown
):
    """Its bounds (8.0, 16.0) made valid configs, so it passed the checks; every trial then
    sampled a fraction (batch size 11.37), failed, and the sweep stopped after three, its
    study stored with the field as a float: the fixed file was refused as sampled another way."""
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(FintuneError) as error:
        run_sweep(sweep_file(space={"training.batch_size": param}))
    assert "training.batch_size: Input should be a valid integer" in str(error.value)
    assert f"(at the point training.batch_size={shown}" in str(error.value)
    assert "a whole-number field needs type: int" in str(error.value)
    assert not (tmp_path / "sweeps").exists()
    # a float grid of whole numbers, and a float field, are fine
    whole_grid = {"type": "uniform", "low": 8, "high": 16, "step": 4}
    sweep_spec.load_sweep(sweep_file(space={"training.batch_size": whole_grid}))
    sweep_spec.load_sweep(sweep_file(space={"training.epochs": param}))


@pytest.mark.parametrize(
    ("field", "param", "message"),
    [
        (
            "training.epochs",
            {"type": "int", "low": 1, "high": 4},
            "space: training.epochs has no effect: the base sets training.max_steps (6), "
            "which overrides epochs",
        ),
        (
            "output.save_model",
            {"type": "categorical", "choices": [True, False]},
            "space: output.save_model has no effect on a trial's score",
        ),
        (
            "tracking.experiment",
            {"type": "categorical", "choices": ["a", "b"]},
            "space: tracking.experiment has no effect on a trial's score",
        ),
    ],
)
def test_a_space_over_a_field_no_trial_reads_fails_before_training(
    sweep_file, make_config, tmp_path, monkeypatch, capsys, field, param, message
):
    """Every trial ran max_steps whatever epochs it drew (or saved no model, or logged as
    the sweep), so the sweep searched a field that changed nothing, and its importances
    credited noise to it."""
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))
    base = make_config(training={"epochs": 2, "max_steps": 6}).model_dump(mode="json")
    with pytest.raises(FintuneError) as error:
        run_sweep(sweep_file(base=base, space={**SPACE, field: param}))
    assert message in str(error.value)
    assert not (tmp_path / "sweeps").exists()
    if field == "training.epochs":
        # searched together with max_steps, epochs counts where max_steps is null
        max_steps = {"type": "categorical", "choices": [None, 6]}
        space = {**SPACE, field: param, "training.max_steps": max_steps}
        sweep_spec.load_sweep(sweep_file(base=base, space=space))
        # a quick try of the sweep (--set training.max_steps=6) is only warned about
        base["training"]["max_steps"] = None
        path = sweep_file(base=base, space={**SPACE, field: param})
        sweep_spec.load_sweep(path, ["training.max_steps=6"])
        assert "training.epochs has no effect" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("field", "choices", "message"),
    [
        (
            "training.learning_rate",
            ["1e-4", 1e-3, 1e-4],
            "space.training.learning_rate: the choices '1e-4' and 0.0001 make the same config "
            "(YAML reads 1e-4 as text, and the config as the number)",
        ),
        (
            "training.batch_size",
            [8, "8"],
            "space.training.batch_size: the choices 8 and '8' make the same config",
        ),
        ("method", ["full", {"name": "full"}], "the choices 'full' and {'name': 'full'} make"),
    ],
)
def test_categorical_choices_that_make_one_config_fail_before_training(
    sweep_file, tmp_path, monkeypatch, field, choices, message
):
    """They were unequal as written, so the repeat check passed them: the sampler drew
    them as different choices, and trials with different parameters trained one config."""
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(FintuneError) as error:
        run_sweep(sweep_file(space={**SPACE, field: {"type": "categorical", "choices": choices}}))
    assert message in str(error.value)
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize(
    "max_steps",
    [{"type": "int", "low": 4, "high": 8}, {"type": "categorical", "choices": [4, 8]}],
)
def test_epochs_searched_beside_a_max_steps_every_trial_sets_fails_before_training(
    sweep_file, make_config, monkeypatch, max_steps
):
    """With max_steps in the space too, epochs passed the check, though every trial drew a
    max_steps, which overrides epochs: the sweep searched a field that changed nothing."""
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))
    epochs = {"type": "int", "low": 1, "high": 4}
    space = {**SPACE, "training.epochs": epochs, "training.max_steps": max_steps}
    with pytest.raises(
        FintuneError, match=r"training.epochs has no effect: the space's training.max_steps"
    ):
        run_sweep(sweep_file(space=space))
    space["training.max_steps"] = {"type": "categorical", "choices": [None, 8]}
    sweep_spec.load_sweep(sweep_file(space=space))  # epochs counts where max_steps is null


def test_the_command_line_options_are_checked(sweep_file, monkeypatch):
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(FintuneError, match="--worker and --report-only"):
        run_sweep(sweep_file(), worker=True, report_only=True)  # it did nothing, silently
    with pytest.raises(FintuneError, match="--trials 0: Input should be greater than 0"):
        run_sweep(sweep_file(), trials=0)
    with pytest.raises(FintuneError, match="--timeout-minutes -1"):
        run_sweep(sweep_file(), timeout_minutes=-1)


class FakeTrial:
    def __init__(self, prune_at: int):
        self.prune_at, self.reported = prune_at, []

    def report(self, value, step):
        self.reported.append((step, value))

    def should_prune(self):
        return len(self.reported) >= self.prune_at


def _state(step: int, max_steps: int = 30) -> TrainerState:
    return TrainerState(global_step=step, max_steps=max_steps)


def test_pruning_reports_each_evaluation_and_stops_a_bad_trial(tmp_path):
    trial = FakeTrial(prune_at=2)
    callback = PruneOnValidation(trial, "accuracy", tmp_path)
    callback.on_evaluate(None, _state(10), None, metrics={"eval_accuracy": 0.5})
    with pytest.raises(optuna.TrialPruned):
        callback.on_evaluate(None, _state(20), None, metrics={"eval_accuracy": 0.4})
    assert trial.reported == [(1, 0.5), (2, 0.4)]


def test_the_last_evaluation_is_reported_but_never_prunes(tmp_path):
    trial = FakeTrial(prune_at=1)
    callback = PruneOnValidation(trial, "accuracy", tmp_path)
    callback.on_evaluate(None, _state(30), None, metrics={"eval_accuracy": 0.4})
    assert trial.reported == [(1, 0.4)]


@pytest.mark.parametrize(("prune_after", "first_prunable"), [(1, 1), (2, 2), (3, 3)])
def test_a_trial_gets_prune_after_evaluations_before_it_can_be_pruned(prune_after, first_prunable):
    spec = SweepSpec(name="s", base={}, space=SPACE, startup_trials=2, prune_after=prune_after)
    study = optuna.create_study(direction="maximize", pruner=make_pruner(spec))
    for _ in range(2):  # good start-up trials set the median
        good = study.ask()
        for step in (1, 2, 3):
            good.report(0.9, step)
        study.tell(good, 0.9)
    bad = study.ask()
    prunable = []
    for step in (1, 2, 3):
        bad.report(0.1, step)
        prunable.append(bad.should_prune())
    assert prunable.index(True) + 1 == first_prunable
    assert make_pruner(spec.model_copy(update={"pruner": "none"})).prune(study, bad) is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"space": {"training.learnin_rate": SPACE["training.learning_rate"]}},
            "training.learnin_rate: unknown key; did you mean 'learning_rate'",
        ),
        ({"space": {}}, "space is empty"),
        (
            {"space": {"training.learning_rate": {"type": "uniform", "low": 0.1, "high": 0.1}}},
            "low and high are both 0.1: a range of one value searches nothing",
        ),
        (
            {"space": {"training.learning_rate": {"type": "uniform", "low": 0.2, "high": 0.1}}},
            "empty space: low (0.2) must be below high (0.1)",
        ),
        (  # an int field's bounds were printed as 3.0
            {"space": {"training.epochs": {"type": "int", "low": 3, "high": 3}}},
            "low and high are both 3: ",
        ),
        (
            {"space": {"training.batch_size": {"type": "categorical", "choices": []}}},
            "categorical needs a non-empty list of choices",
        ),
        (
            {"space": {"training.batch_size": {"type": "categorical", "choices": [8, 16, 8]}}},
            "choices repeat a value: 8 and 8",
        ),
        (  # Optuna records a trial that ran with True as 1, the first equal choice
            {"space": {"training.batch_size": {"type": "categorical", "choices": [1, True]}}},
            "choices repeat a value: 1 and True",
        ),
        (
            {"space": {"training.batch_size": {"type": "categorical", "choices": [8, 0]}}},
            "training.batch_size: Input should be greater than 0",
        ),
        (
            {"enqueue": [{"training.epochs": 3}]},
            "enqueue[0]: training.epochs is not a field of the space",
        ),
        (
            {"enqueue": [{"training.batch_size": 32}]},
            "enqueue[0]: training.batch_size: 32 is not one of [8, 16]",
        ),
        (
            {"enqueue": [{"training.batch_size": 16.0}]},
            "enqueue[0]: training.batch_size: 16.0 is not one of [8, 16]",
        ),
        (
            {"enqueue": [{"training.learning_rate": 0.1}]},
            "enqueue[0]: training.learning_rate: 0.1 is outside 0.001…0.01",
        ),
        (
            {"enqueue": [{"training.learning_rate": "5e-3"}]},
            "enqueue[0]: training.learning_rate: '5e-3' is not a number",
        ),
        (
            {
                "space": {
                    **SPACE,
                    "training.epochs": {"type": "int", "low": 2, "high": 8, "step": 2},
                },
                "enqueue": [{"training.epochs": 3}],
            },
            "enqueue[0]: training.epochs: 3 is not on the grid from 2 in steps of 2",
        ),
        ({"enqueue": [{}]}, "enqueue[0]: an empty point"),
        (  # Optuna silently searched 2…8 while the report said 2…9
            {"space": {"training.epochs": {"type": "int", "low": 2, "high": 9, "step": 2}}},
            "high (9) is not on the grid from 2 in steps of 2: the last point is 8",
        ),
        (
            {
                "space": {
                    "training.weight_decay": {"type": "uniform", "low": 0, "high": 1, "step": 0.3}
                }
            },
            "high (1) is not on the grid from 0 in steps of 0.3: the last point is 0.9",
        ),
        (  # the choices were ignored: every batch size from 8 to 32 was sampled
            {
                "space": {
                    "training.batch_size": {
                        "type": "int",
                        "low": 8,
                        "high": 32,
                        "choices": [8, 16, 32],
                    }
                }
            },
            "int does not take choices (only categorical does)",
        ),
        (
            {
                "space": {
                    "training.batch_size": {"type": "categorical", "choices": [8, 32], "step": 8}
                }
            },
            "categorical takes choices only, not step",
        ),
        (
            {"enqueue": [{"training.batch_size": 8}, {"training.batch_size": 16}] * 2},
            "enqueue[2]: the same point as enqueue[0]",
        ),
        (
            {
                "space": {
                    "training.learning_rate": {**SPACE["training.learning_rate"], "step": 1e-3}
                }
            },
            "step and a log scale do not go together",
        ),
        (
            {"space": {"training.epochs": {"type": "int", "low": 1, "high": 4, "step": 0.5}}},
            "int needs a whole-number step (got 0.5)",
        ),
        (  # pydantic's own text, without the value or why 1e3 is text
            {"trials": "1e3"},
            "trials: expected a whole number; YAML read '1e3' as text",
        ),
        ({"final": "yes please"}, "final: expected true or false, got 'yes please'"),
        (
            {"startup_trials": -1},
            "startup_trials: Input should be greater than or equal to 0 (got -1)",
        ),
        (
            {"storage": "sqlite:////nonexistent-folder/x/optuna.db"},
            "storage: cannot open sqlite:////nonexistent-folder/x/optuna.db",
        ),
        (
            {"storage": "postgresql://fintune@127.0.0.1:1/none"},
            "storage: cannot open postgresql://fintune@127.0.0.1:1/none",
        ),
    ],
)
def test_bad_sweep_files_fail_before_training(sweep_file, tmp_path, monkeypatch, change, message):
    """A storage that could not be opened left an empty sweep folder behind."""
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(FintuneError) as error:
        run_sweep(sweep_file(**change))
    assert message in str(error.value)
    assert not (tmp_path / "sweeps").exists()


def test_a_storage_password_is_never_shown(sweep_file, monkeypatch):
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(FintuneError) as error:
        run_sweep(sweep_file(storage="postgresql://fintune:s3cret@127.0.0.1:1/none"))
    assert "cannot open postgresql://fintune:***@127.0.0.1:1/none" in str(error.value)
    assert "s3cret" not in str(error.value)


@pytest.mark.parametrize(
    ("url", "shown"),
    [  # a URL that cannot be parsed was shown whole; a password in the query was shown
        ("postgresql//fintune:s3cret@127.0.0.1:1/none", "postgresql//fintune:***@127.0.0.1"),
        ("postgresql:/fintune:s3cret@127.0.0.1:1/none", "postgresql:/fintune:***@127.0.0.1"),
        (
            "postgresql://127.0.0.1:1/none?user=fintune&password=s3cret",
            "postgresql://127.0.0.1:1/none?user=fintune&password=***",
        ),
    ],
)
def test_a_storage_password_is_not_shown_from_a_malformed_url_or_its_query(url, shown):
    spec = SweepSpec(name="s", base={}, space=SPACE, storage=url)
    with pytest.raises(FintuneError) as error:
        open_storage(spec, Path("."))
    assert f"cannot open {shown}" in str(error.value)
    assert "s3cret" not in str(error.value)


@pytest.mark.parametrize(
    ("system_attrs", "origin"),
    [
        ({}, "sampled"),
        ({"fixed_params": {"training.batch_size": 8}}, "enqueued"),
        # what optuna's RetryHeartbeatStaleTrialCallback writes for a dead worker's trial
        ({"failed_trial": 13, "fixed_params": {"training.batch_size": 8}}, "retry of 13"),
    ],
)
def test_the_trial_table_says_who_chose_each_trials_parameters(system_attrs, origin):
    from fintune.study.sweep_report import _origin

    assert _origin(optuna.trial.create_trial(value=0.5, system_attrs=system_attrs)) == origin


def test_a_study_that_stored_yes_no_as_booleans_is_told_to_write_true_false():
    from types import SimpleNamespace

    from optuna.distributions import CategoricalDistribution

    from fintune.study.sweep_resume import check_stored_space

    field = "data.cleaning.lowercase"
    study = optuna.create_study(direction="maximize")
    study.add_trial(
        optuna.trial.create_trial(
            params={field: True},
            distributions={field: CategoricalDistribution((True, False))},
            value=0.5,
        )
    )
    old_file = SimpleNamespace(space={field: Param(type="categorical", choices=["yes", "no"])})
    with pytest.raises(FintuneError, match="write true/false to continue it"):
        check_stored_space(study, old_file, "sqlite:///x.db")
    rewritten = SimpleNamespace(space={field: Param(type="categorical", choices=[True, False])})
    check_stored_space(study, rewritten, "sqlite:///x.db")


def importance_plots(folder: Path, values: list[float], moved: bool = False, b=None):
    """The sweep report's plots section for finished trials of these values and a pruned
    one, over two fields (`moved`: whose bounds a resume moved before each trial; `b`:
    choices of field b, taken in turn, instead of a range)."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from fintune.report.document import Document
    from fintune.study.sweep_report import _plots

    study = optuna.create_study(direction="maximize")
    for i, value in enumerate([*values, None]):  # and a pruned trial
        high = 1 + i if moved else 1
        space = {
            "a": FloatDistribution(0, high),
            "b": CategoricalDistribution(b) if b else FloatDistribution(0, high),
        }
        state = {"state": optuna.trial.TrialState.PRUNED} if value is None else {}
        point = {"a": i / 10, "b": b[i % len(b)] if b else 1 - i / 10}
        study.add_trial(
            optuna.trial.create_trial(params=point, distributions=space, value=value, **state)
        )
    doc = Document("sweep")
    _plots(study, folder, doc, "accuracy")
    return doc


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ([0.5], "need at least 2 finished trials (1 so far)"),
        ([0.5, 0.5, 0.5], "every finished trial scored 0.5"),
    ],
)
def test_no_importances_are_drawn_from_too_few_or_equal_trials(tmp_path, values, says):
    """Optuna drew equal bars (1/n each) for them, as if every field mattered alike."""
    doc = importance_plots(tmp_path, values)
    assert not (tmp_path / "plots" / "param_importances.png").exists()
    assert any(says in block[1] for block in doc.blocks if block[0] == "p")


def test_a_sweep_output_that_is_a_file_is_named_as_the_sweeps_output(sweep_file, tmp_path):
    """The trials' output.dir is made from `output`: the user never wrote output.dir."""
    path = sweep_file(output=str(tmp_path / "sweep.yaml"))
    with pytest.raises(FintuneError, match=r"sweep.yaml: output: .*sweep.yaml is a file"):
        run_sweep(path)


def test_the_trial_tables_training_loss_weighs_each_logged_loss_by_its_steps():
    """A logged loss is already the mean since the previous log: the first step's loss (one
    step) counted as much as the next ten steps' mean, which biased epoch 1 upwards."""
    from fintune.study.sweep_report import per_epoch

    history = [
        {"step": 1, "epoch": 0.1, "loss": 1.2},
        {"step": 5, "epoch": 0.5, "loss": 1.0},
        {"step": 10, "epoch": 1.0, "loss": 0.8},
        {"step": 10, "epoch": 1.0, "eval_loss": 0.7, "eval_accuracy": 0.6},
        {"step": 15, "epoch": 1.5, "loss": 0.6},
        {"step": 20, "epoch": 2.0, "loss": 0.5},
        {"step": 20, "epoch": 2.0, "eval_loss": 0.6, "eval_accuracy": 0.7},
    ]
    rows = per_epoch(history)
    assert rows[0]["train_loss"] == pytest.approx((1.2 * 1 + 1.0 * 4 + 0.8 * 5) / 10)
    assert rows[1]["train_loss"] == pytest.approx((0.6 * 5 + 0.5 * 5) / 10)


def test_the_report_shows_the_metric_the_sweep_optimised(sweep_file):
    """With metric recall_macro, neither the final model's table nor the trial table showed
    recall at all: only accuracy and F1."""
    report = run_sweep(sweep_file(metric="recall_macro", trials=1))
    final = json.loads((report.parent / "final.json").read_text())
    test = json.loads((report.parent / final["run_dir"] / "metrics.json").read_text())["test"]
    low, high = test["ci95"]["recall_macro"]
    text = report.read_text()
    assert f"| {test['recall_macro']:.4f} {format_interval(low, high)} |" in text
    assert "val recall_macro |" in text
    trials = pd.read_csv(report.parent / "trials.csv")
    assert trials["eval_recall_macro"].notna().all()


def test_the_optimisation_history_names_the_metric_and_counts_whole_trials(tmp_path, monkeypatch):
    """Optuna's plot said 'Objective Value' and put ticks at trial 0.25, 0.5, 0.75."""
    from optuna.distributions import FloatDistribution

    from fintune.report.document import Document
    from fintune.study import sweep_report

    study = optuna.create_study(direction="maximize")
    space = {"a": FloatDistribution(0, 1)}
    for i, value in enumerate([0.62, 0.6, 0.65]):
        study.add_trial(
            optuna.trial.create_trial(params={"a": i / 10}, distributions=space, value=value)
        )
    axes = []
    monkeypatch.setattr(sweep_report, "_save", lambda ax, path, doc, alt: axes.append(ax))
    sweep_report._plots(study, tmp_path, Document("sweep"), "f1_macro")
    history = axes[0]
    assert history.get_ylabel() == "validation f1_macro"
    assert all(tick == int(tick) for tick in history.get_xticks())


@pytest.mark.parametrize(
    ("metric", "direction", "side"),
    [("f1_macro", "maximize", "below"), ("loss", "minimize", "above")],
)
def test_each_trial_says_how_it_ended(
    tmp_path, make_config, monkeypatch, capsys, metric, direction, side
):
    """A pruned trial vanished from the console without a word, and a finished one never
    said what it scored: the next trial's rule simply followed. A trial pruned for a
    validation loss above the median said 'below the median'."""
    from fintune.study.sweep import make_objective

    spec = SweepSpec(name="s", base={}, space=SPACE, metric=metric)
    base = make_config().model_dump(mode="json")

    def fake_run(config, callbacks):
        trial = callbacks[0].trial
        run_dir = tmp_path / f"run{trial.number}"
        run_dir.mkdir()
        trial.set_user_attr("run_dir", run_dir.name)
        if trial.number == 1:
            raise optuna.TrialPruned("pruned after evaluation 2")
        (run_dir / "metrics.json").write_text(json.dumps({"validation": {metric: 0.71}}))
        return run_dir

    monkeypatch.setattr(classification, "run", fake_run)
    study = optuna.create_study(direction=direction)
    study.optimize(make_objective(spec, base, tmp_path, "s.yaml"), n_trials=2)
    err = capsys.readouterr().err
    assert f"trial 0: validation {metric} 0.7100" in err
    assert f"trial 1 pruned after evaluation 2: validation {metric} {side} the median" in err


def test_a_rerun_with_the_budget_spent_says_so(sweep_file, capsys):
    """It printed only the report's path, as if it had searched again."""
    path = sweep_file(trials=1)
    run_sweep(path)
    capsys.readouterr()
    run_sweep(path)
    err = capsys.readouterr().err
    assert "tiny-sweep: 1 of 1 trials already done; raise trials (or --trials N)" in err
    run_sweep(path, timeout_minutes=0.000001)  # the budget, not the time, left none to run
    assert "no trial ran" not in capsys.readouterr().err


def test_trials_evaluate_validation_only_and_the_final_model_test(sweep_file, make_config):
    """Every trial evaluated and logged test metrics too, which invites choosing by test."""
    base = make_config(training={"epochs": 2}, tracking={"mlflow": True})
    report = run_sweep(sweep_file(trials=1, base=base.model_dump(mode="json")))
    folder = report.parent
    run_dir = folder / load(folder).trials[0].user_attrs["run_dir"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert "validation" in metrics and "test" not in metrics
    assert not (run_dir / "predictions_test.csv").exists()
    text = (run_dir / "report.md").read_text()
    assert re.search(r"\| validation \| \d+ \| \d\.\d{4} \[", text)  # a results row
    assert not re.search(r"\| test \| \d+ \| \d\.\d{4} \[", text)
    final = folder / json.loads((folder / "final.json").read_text())["run_dir"]
    assert "test" in json.loads((final / "metrics.json").read_text())
    assert (final / "predictions_test.csv").is_file()

    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    runs = client.search_runs([client.get_experiment_by_name("tiny-sweep").experiment_id])
    logged = {r.data.tags["fintune.kind"]: set(r.data.metrics) for r in runs}
    assert not any(m.startswith("test_") for m in logged["trial"])
    assert "validation_accuracy" in logged["trial"] and "test_accuracy" in logged["final"]
    with pytest.raises(FintuneError, match="evaluation.test"):
        searched = {"type": "categorical", "choices": [True, False]}
        run_sweep(sweep_file(space={**SPACE, "evaluation.test": searched}))
    off = make_config(evaluation={"test": False}).model_dump(mode="json")
    with pytest.raises(FintuneError, match="base: evaluation.test: false; a sweep sets it"):
        run_sweep(sweep_file(base=off))


def test_an_interrupted_final_model_is_trained_again_and_its_folder_removed(
    sweep_file, monkeypatch, capsys
):
    """Ctrl+C during the final model's training left its folder in final/ with every
    checkpoint (full model copies), and final.json written half-way could not be read."""
    from transformers import TrainerCallback

    class Interrupt(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            raise KeyboardInterrupt

    real = classification.build_trainer

    def build(*args, **kwargs):
        trainer = real(*args, **kwargs)
        if "-final" in str(args[5].output_dir):
            trainer.add_callback(Interrupt())
        return trainer

    path = sweep_file(trials=1)
    monkeypatch.setattr(classification, "build_trainer", build)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(path)
    folder = Path(yaml.safe_load(path.read_text())["output"]) / "tiny-sweep"
    [partial] = (folder / "final").iterdir()
    assert not (partial / "checkpoints").exists()  # the model copies are gone
    assert not (partial / "metrics.json").exists() and not (folder / "final.json").exists()

    monkeypatch.setattr(classification, "build_trainer", real)
    (folder / "final.json").write_text('{"params": {"training.le')  # cut off mid-write
    report = run_sweep(path, report_only=True)
    assert f"final/{partial.name}: an interrupted final model" in capsys.readouterr().err
    [final] = (folder / "final").iterdir()  # the same name when trained within its second
    assert (final / "metrics.json").is_file()
    assert json.loads((folder / "final.json").read_text())["run_dir"] == f"final/{final.name}"
    assert final.name in report.read_text()


def test_a_final_model_a_live_process_is_training_is_not_removed(sweep_file, monkeypatch):
    """`--report-only`, or a second `fintune sweep`, started while the first process trained
    the final model took its folder (no metrics.json yet) for an interrupted one and
    deleted it mid-training."""
    import socket

    from fintune.study.sweep_report import final_run, finish_sweep

    path = sweep_file(trials=1)
    spec, base = sweep_spec.load_sweep(path)
    folder = Path(yaml.safe_load(path.read_text())["output"]) / "tiny-sweep"
    study = optuna.create_study(direction="maximize")
    distributions = {
        "training.learning_rate": optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True),
        "training.batch_size": optuna.distributions.CategoricalDistribution([8, 16]),
    }
    params = {"training.learning_rate": 5e-3, "training.batch_size": 8}
    study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, value=1))
    training = folder / "final" / "20260101-000000-tiny-sweep-final"
    training.mkdir(parents=True)
    lock = folder / "final.lock"
    trained = []

    def run(config, **kwargs):
        trained.append(lock.read_text())
        run_dir = Path(config.output.dir) / "20260101-000100-tiny-sweep-final"
        run_dir.mkdir()
        (run_dir / "metrics.json").write_text("{}")
        return run_dir

    monkeypatch.setattr(classification, "run", run)
    here = socket.gethostname()
    lock.write_text(f"{os.getpid()} {here}")  # a live process of this machine trains it
    expected = f"final model of sweep tiny-sweep is being trained by process {os.getpid()} on"
    for finish, first in (final_run, study.best_trial), (finish_sweep, study):
        with pytest.raises(FintuneError, match=f"{expected} {re.escape(here)} now; wait for it"):
            finish(first, spec, base, folder, str(path))  # the report does not say "failed"
        assert training.is_dir() and not trained
    assert not (folder / "report.md").exists()  # that process writes it, with its model

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True
    )
    lock.write_text(f"{dead.stdout.decode().strip()} {here}")  # its owner died: interrupted
    run_dir = final_run(study.best_trial, spec, base, folder, str(path))
    assert not training.exists() and run_dir.name == "20260101-000100-tiny-sweep-final"
    assert trained == [f"{os.getpid()} {here}"] and not lock.exists()


@pytest.mark.parametrize("direction", ["maximize", "minimize"])
def test_the_best_of_tied_trials_is_the_earliest_for_the_report_and_the_final(
    sweep_file, monkeypatch, direction
):
    """Optuna's best-trial query has no tie-break: on PostgreSQL any of the trials tied on
    the best value came back, so a rerun could retrain the final model with another
    trial's parameters, and the report's best trial could differ from the final's."""
    from fintune.study.sweep_report import finish_sweep

    path = sweep_file(trials=1)
    spec, base = sweep_spec.load_sweep(path)
    folder = Path(yaml.safe_load(path.read_text())["output"]) / "tiny-sweep"
    folder.mkdir(parents=True)
    study = optuna.create_study(direction=direction)
    distributions = {
        "training.learning_rate": optuna.distributions.FloatDistribution(1e-3, 1e-2, log=True),
        "training.batch_size": optuna.distributions.CategoricalDistribution([8, 16]),
    }
    tied = 0.8 if direction == "maximize" else 0.2
    for rate, batch, value in [(1e-3, 8, 0.5), (2e-3, 16, tied), (3e-3, 8, tied)]:
        params = {"training.learning_rate": rate, "training.batch_size": batch}
        study.add_trial(
            optuna.trial.create_trial(params=params, distributions=distributions, value=value)
        )
    served = iter([study.trials[2], study.trials[1]])  # as PostgreSQL may: any tied one
    monkeypatch.setattr(optuna.Study, "best_trial", property(lambda self: next(served)))
    trained = []

    def run(config, **kwargs):
        trained.append(config.training.learning_rate)
        run_dir = Path(config.output.dir) / "20260101-000100-tiny-sweep-final"
        run_dir.mkdir(parents=True)
        split = {"n": 4, "accuracy": 0.5, "f1_macro": 0.5, "f1_weighted": 0.5, "ci95": {}}
        split["loss"] = 0.5
        (run_dir / "metrics.json").write_text(json.dumps({"test": split, "validation": split}))
        return run_dir

    monkeypatch.setattr(classification, "run", run)
    report = finish_sweep(study, spec, base, folder, str(path)).read_text()
    assert trained == [2e-3]  # trial 1's, the earliest of the two tied
    assert json.loads((folder / "final.json").read_text())["trial"] == 1
    best = report[report.index("## Best trial") :].splitlines()[4]
    assert best == f"| 1 | {tied:.4f} | 0.002 | 16 |"  # the final's trial, not trial 2


def test_a_stored_sweep_keeps_the_best_trial_sqlite_gave_it(tmp_path):
    """Sweeps stored before the tie-break got SQLite's pick of tied trials: the earliest."""
    from fintune.study.sweep_report import best_trial

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'optuna.db'}")
    for value in [0.5, 0.1, 0.9, 0.1, 0.1]:
        study.tell(study.ask(), value)
    assert best_trial(study).number == study.best_trial.number == 1


def test_importances_say_how_many_finished_trials_they_rest_on(tmp_path):
    """Bars drawn from three trials looked as sure as bars drawn from fifty."""
    doc = importance_plots(tmp_path, [0.5, 0.7, 0.6])
    text = " ".join(block[1] for block in doc.blocks if block[0] == "p")
    assert "rest on 3 finished trials" in text and "mostly noise" in text


def test_importances_pedanova_cannot_compute_are_not_drawn_as_equal_bars(tmp_path):
    """PED-ANOVA compares trials of one distribution (a regime): when a resume moved the
    bounds before each trial, every regime has one trial, every importance is 0, and the
    report drew equal bars (0.5 and 0.5), as if both fields mattered alike."""
    doc = importance_plots(tmp_path, [0.5, 0.7, 0.6, 0.9], moved=True)
    text = " ".join(block[1] for block in doc.blocks if block[0] == "p")
    assert not (tmp_path / "plots" / "param_importances.png").exists()
    assert "cannot be computed yet" in text and "rest on 4 finished trials" not in text


def test_importances_leave_out_a_field_of_list_choices_and_say_so(tmp_path):
    """Optuna's PED-ANOVA hashes each field's distribution, and choices that are lists (the
    modules a method targets) cannot be: the report failed with a TypeError after every
    trial and the final model had trained, and so did --report-only."""
    modules = [["query", "value"], ["query", "key", "value"]]
    doc = importance_plots(tmp_path, [0.5, 0.7, 0.6, 0.9], b=modules)
    text = " ".join(block[1] for block in doc.blocks if block[0] == "p")
    assert "No importance for `b`: PED-ANOVA cannot compare choices that are lists" in text
    assert (tmp_path / "plots" / "param_importances.png").is_file()  # a's


def test_importances_leave_out_a_field_of_mapping_choices(tmp_path):
    """Method variants as choices ({name: lora, r: 4}) are mappings, which PED-ANOVA cannot
    hash either: the report failed after every trial had run."""
    variants = ["full", {"name": "lora", "r": 4}]
    doc = importance_plots(tmp_path, [0.5, 0.7, 0.6, 0.9], b=variants)
    text = " ".join(block[1] for block in doc.blocks if block[0] == "p")
    assert (
        "No importance for `b`: PED-ANOVA cannot compare choices that are lists or mappings" in text
    )


@pytest.mark.parametrize(
    ("param", "shown"),
    [
        ({"type": "int", "low": 2, "high": 8, "step": 2}, "int 2…8 in steps of 2"),
        ({"type": "uniform", "low": 1e-5, "high": 1e-3, "log": True}, "uniform 1e-05…0.001 (log)"),
        ({"type": "int", "low": 8, "high": 64, "log": True}, "int 8…64 (log)"),
        ({"type": "log_uniform", "low": 1e-5, "high": 1e-3}, "log_uniform 1e-05…0.001"),
        ({"type": "uniform", "low": 0, "high": 0.1}, "uniform 0…0.1"),
    ],
)
def test_the_report_describes_each_field_as_it_was_sampled(param, shown):
    """A grid's step and an int or uniform on a log scale were left out of the report's
    space: `int 2…8` for 2, 4, 6, 8, and `uniform 1e-05…0.001` for a log-scale search."""
    from fintune.study.sweep_report import _space

    assert _space(Param(**param)) == shown


def test_the_importances_are_computed_by_the_method_the_report_names(tmp_path, monkeypatch):
    """The report said fANOVA, but Optuna 5 computes PED-ANOVA unless told otherwise (4.x:
    fANOVA): the bars' method depended on the installed Optuna, and the label was wrong."""
    from optuna.importance import PedAnovaImportanceEvaluator

    real = optuna.visualization.matplotlib.plot_param_importances
    used = []

    def plot(study, **kwargs):
        used.append(kwargs.get("evaluator"))
        return real(study, **kwargs)

    monkeypatch.setattr(optuna.visualization.matplotlib, "plot_param_importances", plot)
    doc = importance_plots(tmp_path, [0.5, 0.7, 0.6, 0.9])
    text = " ".join(block[1] for block in doc.blocks if block[0] == "p")
    assert [type(e) for e in used] == [PedAnovaImportanceEvaluator]
    assert "PED-ANOVA" in text and "fANOVA" not in text
    assert (tmp_path / "plots" / "param_importances.png").is_file()


def test_a_pruned_trials_value_says_at_which_epoch_it_was_taken(tmp_path):
    """trials.csv's value for a pruned trial is its last evaluation's, not a final value
    like a finished trial's; nothing said so."""
    from optuna.distributions import FloatDistribution

    from fintune.study.sweep_report import trial_rows

    study = optuna.create_study(direction="maximize")
    space = {"a": FloatDistribution(0, 1)}
    for number, (state, epochs) in enumerate(
        [(optuna.trial.TrialState.COMPLETE, 3), (optuna.trial.TrialState.PRUNED, 2)]
    ):
        run_dir = tmp_path / f"t{number}"
        run_dir.mkdir()
        history = [
            {"step": 4 * e, "epoch": e, "eval_loss": 1.0, "eval_accuracy": 0.5 + e / 10}
            for e in range(1, epochs + 1)
        ]
        (run_dir / "history.jsonl").write_text("\n".join(map(json.dumps, history)))
        study.add_trial(
            optuna.trial.create_trial(
                params={"a": 0.1},
                distributions=space,
                value=0.7,
                state=state,
                intermediate_values={e: 0.5 + e / 10 for e in range(1, epochs + 1)},
                user_attrs={"run_dir": run_dir.name},
            )
        )
    frame = trial_rows(study, tmp_path).drop_duplicates("trial")
    assert frame["state"].tolist() == ["complete", "pruned"]
    assert frame["value_at"].tolist() == ["end of training", "pruned at epoch 2"]


def test_a_finished_trials_value_names_the_epoch_of_its_kept_checkpoint(tmp_path):
    """A finished trial's value is its kept (best) checkpoint's: 0.8 at epoch 2 of 3, while
    its last row said 0.6. value_at said 'end of training', as if it were that row's."""
    from optuna.distributions import FloatDistribution

    from fintune.study.sweep_report import trial_rows

    study = optuna.create_study(direction="maximize")
    for number, best_epoch in enumerate([2.0, None]):  # None: load_best_model off
        run_dir = tmp_path / f"t{number}"
        run_dir.mkdir()
        history = [
            {"step": 4 * e, "epoch": e, "eval_loss": 1.0, "eval_accuracy": a}
            for e, a in ((1, 0.5), (2, 0.8), (3, 0.6))
        ]
        (run_dir / "history.jsonl").write_text("\n".join(map(json.dumps, history)))
        train = {"epochs": 3.0} | ({"best_checkpoint_epoch": best_epoch} if best_epoch else {})
        (run_dir / "metrics.json").write_text(json.dumps({"train": train}))
        study.add_trial(
            optuna.trial.create_trial(
                params={"a": 0.1},
                distributions={"a": FloatDistribution(0, 1)},
                value=0.8 if best_epoch else 0.6,
                user_attrs={"run_dir": run_dir.name},
            )
        )
    frame = trial_rows(study, tmp_path).drop_duplicates("trial")
    assert frame["value_at"].tolist() == ["best checkpoint, epoch 2", "end of training"]


def test_the_trial_table_reads_a_running_trial_whose_last_line_is_half_written(tmp_path):
    """trials.csv is written after each trial, while other workers' trials append to their
    history: a line caught half written raised JSONDecodeError and stopped the sweep."""
    from fintune.study.sweep_report import trial_rows

    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    trial.set_user_attr("run_dir", "t0")
    (tmp_path / "t0").mkdir()
    epoch = {"step": 4, "epoch": 1.0, "eval_loss": 0.9, "eval_accuracy": 0.6}
    (tmp_path / "t0" / "history.jsonl").write_text(json.dumps(epoch) + '\n{"step": 5, "lo')
    frame = trial_rows(study, tmp_path)
    assert frame["state"].tolist() == ["running"]
    assert frame["eval_accuracy"].tolist() == [0.6]


def test_a_trial_history_damaged_before_its_end_is_named_and_its_rows_come_from_the_storage(
    sweep_file,
):
    """Only a cut last line was forgiven: a history.jsonl cut or not UTF-8 anywhere else
    stopped every sweep report with a traceback, and no rerun mended it."""
    path = sweep_file(trials=1, final=False)
    folder = run_sweep(path).parent
    (trial,) = load(folder).get_trials()
    history = folder / trial.user_attrs["run_dir"] / "history.jsonl"
    before = pd.read_csv(folder / "trials.csv")
    history.write_bytes(b'{"step": 1, "lo\xff\n' + history.read_bytes())
    report = run_sweep(path, report_only=True)
    after = pd.read_csv(folder / "trials.csv")
    assert after["eval_accuracy"].tolist() == before["eval_accuracy"].tolist()
    assert "could not be read, so these trials' rows come from the storage: trial 0." in (
        " ".join(report.read_text().split())
    )


def test_a_final_model_trained_on_other_data_is_not_reused(sweep_file, sentences_csv):
    """--report-only after a corrected data file (same path, so the same config) warned that
    the final model uses the new data, then reported the old final model's test scores."""
    path = sweep_file(trials=1)
    folder = run_sweep(path).parent
    first = json.loads((folder / "final.json").read_text())
    sentences_csv.write_text(sentences_csv.read_text().replace("rose", "grew"))
    run_sweep(path, report_only=True)
    second = json.loads((folder / "final.json").read_text())
    assert second["run_dir"] != first["run_dir"]
    old = json.loads((folder / first["run_dir"] / "metrics.json").read_text())
    new = json.loads((folder / second["run_dir"] / "metrics.json").read_text())
    assert new["data_sha256"] != old["data_sha256"]
    run_sweep(path, report_only=True)
    assert json.loads((folder / "final.json").read_text()) == second  # now reused


def test_a_failed_final_model_still_leaves_the_trials_report(sweep_file, monkeypatch):
    """The sweep stopped at the final model's error: report.md was not written, or an
    earlier one, with an earlier best trial and final model, stayed."""
    real = classification.run

    def run(config, **kwargs):
        if config.name.endswith("-final"):
            raise RuntimeError("CUDA out of memory")
        return real(config, **kwargs)

    monkeypatch.setattr(classification, "run", run)
    path = sweep_file(trials=1)
    with pytest.raises(FintuneError, match="final model failed: RuntimeError: CUDA out of"):
        run_sweep(path)
    folder = Path(yaml.safe_load(path.read_text())["output"]) / "tiny-sweep"
    text = (folder / "report.md").read_text()
    assert "## Best trial" in text and "Training the final model failed" in text
    assert "## Trials" in text


def test_a_final_model_of_a_searched_data_field_is_reused(sweep_file):
    """The final model's data was compared with the base config's: with a data field in
    the space (here the split seed) they differ, and every --report-only trained the final
    model again."""
    space = {**SPACE, "data.split.seed": {"type": "categorical", "choices": [3]}}
    folder = run_sweep(sweep_file(trials=1, space=space)).parent
    first = json.loads((folder / "final.json").read_text())
    run_sweep(sweep_file(trials=1, space=space), report_only=True)
    assert json.loads((folder / "final.json").read_text()) == first


@pytest.mark.parametrize(
    ("field", "choices", "message"),
    [
        ("training.precision", ["fp32", "fp16"], "training.precision: fp16 needs a CUDA GPU"),
        ("method.compute_dtype", ["auto", "float16"], "method.compute_dtype: float16 needs"),
    ],
)
def test_a_precision_in_the_space_the_device_cannot_do_fails_before_training(
    sweep_file, make_config, monkeypatch, field, choices, message
):
    """Only the base config's precision was checked: a choice of fp16 on a CPU failed in
    each trial that drew it."""
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))
    base = make_config(method={"name": "qlora"}, training={"device": "cpu", "epochs": 2})
    space = {field: {"type": "categorical", "choices": choices}}
    with pytest.raises(FintuneError) as error:
        run_sweep(sweep_file(base=base.model_dump(mode="json"), space=space))
    assert message in str(error.value)
    assert f"(at the point {field}={choices[1]} of the space)" in str(error.value)


@pytest.mark.parametrize("name", ["q?x=1", "a%20b"])
def test_a_sweep_folder_with_uri_characters_keeps_its_optuna_db_in_it(sweep_file, tmp_path, name):
    """The storage URL was `sqlite:///` + the path, which SQLAlchemy reads percent-decoded
    and up to a `?`: the study went to a file `q` beside the folder, or failed to open."""
    path = sweep_file(trials=1, final=False)
    folder = tmp_path / name / "tiny-sweep"
    folder.mkdir(parents=True)
    storage, _ = open_storage(SweepSpec.model_validate(yaml.safe_load(path.read_text())), folder)
    optuna.create_study(study_name="tiny-sweep", storage=storage)
    assert (folder / "optuna.db").is_file()
    files = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert files == ["sentences.csv", "sweep.yaml"]


def test_an_unreachable_tracking_server_stops_a_sweep_before_any_trial(
    sweep_file, make_config, monkeypatch
):
    from fintune.recipes import classification

    base = make_config(tracking={"mlflow": True, "uri": "http://127.0.0.1:9/"})
    path = sweep_file(base=base.model_dump(mode="json"))
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(FintuneError, match=r"tracking.uri: cannot reach the MLflow server at "):
        run_sweep(path)
    assert not (path.parent / "sweeps" / "tiny-sweep").exists()


@pytest.mark.parametrize("stop", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_a_failed_trials_csv_write_leaves_no_temporary_file(tmp_path, monkeypatch, stop):
    """trials.csv is written to a temporary file named by host and pid, then renamed: a
    write that failed (a full disk) or was interrupted left that file behind, one more per
    process."""
    from fintune.study.sweep_report import write_trials_csv

    real = Path.write_text

    def fail(path, text, **kwargs):
        real(path, text[:9])  # half a table, then the error
        raise stop

    (tmp_path / "trials.csv").write_text("trial\n0\n")
    monkeypatch.setattr(Path, "write_text", fail)
    with pytest.raises(type(stop)):
        write_trials_csv(optuna.create_study(), tmp_path, "accuracy")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trials.csv"]
    assert (tmp_path / "trials.csv").read_text() == "trial\n0\n"  # the last whole table


def test_an_integer_parameter_a_trial_lacks_stays_an_integer(tmp_path):
    """A rerun may add a field to the space: the earlier trials lack it, and the column of
    an integer (batch size 16) was written as 16.0 in trials.csv and 16.0000 in the
    report's trial table."""
    from optuna.distributions import FloatDistribution, IntDistribution
    from optuna.trial import create_trial

    from fintune.study import sweep_report

    study = optuna.create_study(direction="maximize")
    rate = {"training.learning_rate": FloatDistribution(1e-5, 1e-3, log=True)}
    batch = {"training.batch_size": IntDistribution(8, 32)}
    study.add_trial(
        create_trial(params={"training.learning_rate": 1e-4}, distributions=rate, value=0.5)
    )
    study.add_trial(
        create_trial(
            params={"training.learning_rate": 2e-4, "training.batch_size": 16},
            distributions=rate | batch,
            value=0.6,
        )
    )
    sweep_report.write_trials_csv(study, tmp_path, "accuracy")
    table = pd.read_csv(tmp_path / "trials.csv", dtype=str, keep_default_na=False)
    assert table["param:training.batch_size"].tolist() == ["", "16"]
    assert table["param:training.learning_rate"].tolist() == ["0.0001", "0.0002"]
    frame = sweep_report.trial_rows(study, tmp_path)
    cells = [sweep_report._fmt(v) for v in frame["param:training.batch_size"]]
    assert cells == ["—", "16"]


def test_a_null_choice_shows_as_null_not_as_a_field_not_searched(tmp_path):
    """A trial that chose `null` (max_steps: none, so epochs count) had a blank cell in
    trials.csv and '—' in the report, as a trial that did not search the field has."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import create_trial

    from fintune.study import sweep_report

    study = optuna.create_study(direction="maximize")
    rate = {"training.learning_rate": FloatDistribution(1e-5, 1e-3, log=True)}
    steps = {"training.max_steps": CategoricalDistribution([None, 4])}
    for steps_chosen in [{}, {"training.max_steps": None}, {"training.max_steps": 4}]:
        params = {"training.learning_rate": 1e-4, **steps_chosen}
        ran = rate | (steps if steps_chosen else {})
        study.add_trial(create_trial(params=params, distributions=ran, value=0.5))
    sweep_report.write_trials_csv(study, tmp_path, "accuracy")
    table = pd.read_csv(tmp_path / "trials.csv", dtype=str, keep_default_na=False)
    assert table["param:training.max_steps"].tolist() == ["", "null", "4"]
    frame = sweep_report.trial_rows(study, tmp_path)
    assert [sweep_report._fmt(v) for v in frame["param:training.max_steps"]] == ["—", "null", "4"]


def test_a_terminated_sweep_fails_its_trial_and_removes_its_checkpoints(sweep_file):
    """A batch scheduler stops a job with SIGTERM, which ended `fintune sweep` at once: the
    trial stayed RUNNING, so the rerun waited 125 s (measured) for 'other workers' trials
    [1]' before retrying it, and its checkpoints/ (model copies) stayed on disk. It now
    stops as on Ctrl+C: the trial is failed (interrupted: not counted), exit status 143."""
    path = sweep_file(trials=1, final=False)
    done = terminated_at_first_save("sweep", str(path))
    assert done.returncode == 128 + 15, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    folder = path.parent / "sweeps" / "tiny-sweep"
    (trial,) = load(folder).trials
    assert trial.state.name == "FAIL" and "error" not in trial.user_attrs
    (run_dir,) = (folder / "trials").iterdir()
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "metrics.json").exists()


def test_ctrl_c_in_a_sweep_shows_no_traceback(sweep_file, interrupt_run):
    """Optuna logged a trial stopped by Ctrl+C as failed, with the whole traceback of the
    interruption (about 100 lines) and 'Trial 0 failed with value None.'"""
    import logging

    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append
    logging.getLogger("optuna").addHandler(handler)
    try:
        interrupt_run(1)
        with pytest.raises(KeyboardInterrupt):
            run_sweep(sweep_file(trials=1, final=False), worker=True)
    finally:
        logging.getLogger("optuna").removeHandler(handler)
    assert [r.getMessage() for r in records if "failed" in r.getMessage() or r.exc_info] == []


def test_a_final_model_stopped_after_it_finished_is_adopted_not_trained_again(
    sweep_file, make_config, monkeypatch
):
    """A stop (Ctrl+C, SIGTERM) while the finished final model was logged to MLflow, before
    final.json named it: the rerun trained it again, leaving two whole folders in final/
    and the first one's MLflow record KILLED beside the second's."""
    from fintune import tracking

    base = make_config(training={"epochs": 2}, tracking={"mlflow": True})
    path = sweep_file(trials=1, base=base.model_dump(mode="json"))
    real = tracking._log_files

    def stop_at_the_final(client, run_id, run_dir, config, started):
        if config.tracking.tags["fintune.kind"] == "final":
            raise KeyboardInterrupt
        return real(client, run_id, run_dir, config, started)

    monkeypatch.setattr(tracking, "_log_files", stop_at_the_final)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(path)
    folder = Path(yaml.safe_load(path.read_text())["output"]) / "tiny-sweep"
    (first,) = (folder / "final").iterdir()
    assert (first / "metrics.json").is_file() and not (folder / "final.json").exists()

    monkeypatch.setattr(tracking, "_log_files", real)
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("trained"))
    for _ in range(2):  # adopted once, then reused
        report = run_sweep(path)
        assert list((folder / "final").iterdir()) == [first]
        assert json.loads((folder / "final.json").read_text())["run_dir"] == f"final/{first.name}"
        assert first.name in report.read_text()
        client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
        runs = client.search_runs([client.get_experiment_by_name("tiny-sweep").experiment_id])
        finals = [r for r in runs if r.data.tags.get("fintune.kind") == "final"]
        assert [(r.info.run_name, r.info.status) for r in finals] == [(first.name, "FINISHED")]


def test_ctrl_c_while_a_finished_trial_is_logged_keeps_the_trial(
    sweep_file, make_config, monkeypatch
):
    """Ctrl+C while a finished trial was logged to MLflow (its metrics.json whole) failed
    the trial in Optuna: the resume trained another in its place. The stop now waits for
    the trial to be told COMPLETE, then ends the sweep; the resume logs it whole."""
    base = make_config(training={"epochs": 1}, tracking={"mlflow": True})
    path = sweep_file(trials=2, final=False, base=base.model_dump(mode="json"))
    ctrl_c_while_logging(monkeypatch, lambda: run_sweep(path))
    folder = Path(yaml.safe_load(path.read_text())["output"]) / "tiny-sweep"
    (trial,) = load(folder).trials  # the second never started
    assert trial.state.name == "COMPLETE"
    run_dir = folder / trial.user_attrs["run_dir"]
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny-sweep").experiment_id

    def trial_records():
        runs = client.search_runs([experiment])
        return [r.info.status for r in runs if r.info.run_name == run_dir.name]

    assert trial_records() == ["KILLED"]  # cut short

    run_sweep(path)
    assert [t.state.name for t in load(folder).trials] == ["COMPLETE", "COMPLETE"]
    assert load(folder).trials[0].user_attrs["run_dir"] == trial.user_attrs["run_dir"]
    assert trial_records() == ["FINISHED"]  # logged again, whole, once


@pytest.mark.parametrize("output", ["sweeps/a\0b", "sweeps/" + "a" * 256])
def test_a_sweep_output_with_a_nul_byte_or_an_overlong_name_is_refused_naming_it(
    sweep_file, output
):
    """It passed the spec and crashed later ('embedded null byte', 'File name too long')."""
    with pytest.raises(FintuneError, match=r"output: .*(NUL byte|over the 255)"):
        run_sweep(sweep_file(output=output))


def test_ctrl_c_that_lands_in_garbage_collection_still_stops_the_sweep(sweep_file):
    """A SIGINT arriving while Python collects garbage (Optuna collects after every trial;
    a __del__ runs anywhere) raised its KeyboardInterrupt inside the collector, which
    printed 'Exception ignored' and went on: the sweep ran every trial and exited 0. The
    interrupt is now remembered and raised at the next training step or trial."""
    path = sweep_file(trials=2, final=False)
    done = interrupted_in_garbage_collection("sweep", str(path))
    assert done.returncode == 130, done.stderr[-3000:]  # as a Ctrl+C that is not dropped
    folder = path.parent / "sweeps" / "tiny-sweep"
    assert [t.state.name for t in load(folder).trials] == ["FAIL"]  # the second never started
    (run_dir,) = (folder / "trials").iterdir()
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "metrics.json").exists()


def test_a_warmup_that_outlasts_the_trials_at_the_spaces_bounds_is_warned_first(sweep_file, capsys):
    """Only the base config's warm-up was checked: a space over warmup_steps (or
    max_steps, epochs) whose bound makes the warm-up outlast the trial ran those trials
    with a learning rate that never reached its value, unsaid. Now warned before any
    trial, naming the point and the numbers, once per distinct warning."""
    space = {**SPACE, "training.warmup_steps": {"type": "int", "low": 0, "high": 50}}
    path = sweep_file(space=space)
    with pytest.raises(FintuneError, match="--report-only"):  # stops before any trial
        run_sweep(path, report_only=True)
    err = capsys.readouterr().err
    assert "at the point training.warmup_steps=50 of the space: training.warmup_steps (50) " in err
    assert "is more than the run's 12 optimiser steps" in err  # 86 texts, batch 16, 2 epochs
    assert "training.warmup_steps=0" not in err


def test_a_killed_trials_checkpoints_are_removed_once_it_is_failed(tmp_path, capsys):
    """A worker killed mid-trial left the trial's checkpoints/ for ever (its retry runs in
    a new folder). Once the trial is failed they are removed; a running trial's, and
    everything else of a trial's folder, stay."""
    study = optuna.create_study()
    folders = {}
    for state in ("FAIL", "RUNNING"):
        trial = study.ask()
        run = tmp_path / "trials" / f"run-{state}"
        (run / "checkpoints" / "checkpoint-1").mkdir(parents=True)
        (run / "checkpoints" / "checkpoint-1" / "model.safetensors").write_bytes(b"0" * 2**20)
        (run / "history.jsonl").write_text("")
        trial.set_user_attr("run_dir", f"trials/run-{state}")
        if state == "FAIL":
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        folders[state] = run
    sweep.drop_failed_checkpoints(study, tmp_path)
    assert not (folders["FAIL"] / "checkpoints").exists()
    assert (folders["FAIL"] / "history.jsonl").is_file()
    assert (folders["RUNNING"] / "checkpoints" / "checkpoint-1").is_dir()
    assert "trials/run-FAIL: removed the checkpoints of trial 0" in capsys.readouterr().err


def test_checkpoints_that_could_not_be_removed_are_named_not_counted_as_freed(
    tmp_path, capsys, monkeypatch
):
    """rmtree(ignore_errors=True) failed silently and the sweep said 'removed the
    checkpoints of trial 0 (1.0 MiB)' of a folder still on disk."""
    study = optuna.create_study()
    trial = study.ask()
    checkpoints = tmp_path / "trials" / "run-0" / "checkpoints"
    for name in ("checkpoint-1", "checkpoint-2"):
        (checkpoints / name).mkdir(parents=True)
        (checkpoints / name / "model.safetensors").write_bytes(b"0" * 2**19)
    trial.set_user_attr("run_dir", "trials/run-0")
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    real_unlink = os.unlink

    def unlink(path, *, dir_fd=None):  # checkpoint-2's file is not ours to remove
        where = os.readlink(f"/proc/self/fd/{dir_fd}") if dir_fd is not None else str(path)
        if "checkpoint-2" in where:
            raise PermissionError(13, "Permission denied", path)
        return real_unlink(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "unlink", unlink)
    sweep.drop_failed_checkpoints(study, tmp_path)
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert not (checkpoints / "checkpoint-1").exists()
    assert (checkpoints / "checkpoint-2" / "model.safetensors").is_file()
    assert "removed the checkpoints" not in err
    assert f"could not remove {checkpoints}, those of trial 0" in " ".join(err.split())
    assert "(0.5 MiB left, 0.5 MiB freed)" in err


def test_trials_finished_without_tracking_are_logged_once_when_it_is_switched_on(
    sweep_file, make_config, monkeypatch
):
    """Tracking is no part of a trial's config: switching it on reused the finished trials
    and final model, and MLflow never saw them (a study logs its cells then)."""
    from fintune.recipes import classification

    report = run_sweep(sweep_file(trials=2))
    folder = report.parent
    assert not (folder / "mlflow.db").exists()
    base = make_config(training={"epochs": 2}, tracking={"mlflow": True}).model_dump(mode="json")
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("trained"))
    for _ in range(2):  # a second run logs nothing again
        run_sweep(sweep_file(trials=2, base=base))
        client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
        runs = client.search_runs([client.get_experiment_by_name("tiny-sweep").experiment_id])
        kinds = sorted(r.data.tags["fintune.kind"] for r in runs)
        assert kinds == ["final", "sweep report", "trial", "trial"]
    assert all(r.info.status == "FINISHED" for r in runs)
    for run in runs:
        if run.data.tags["fintune.kind"] == "trial":
            metrics = json.loads(
                (Path(run.data.tags["fintune.run_dir"]) / "metrics.json").read_text()
            )
            assert run.data.metrics["validation_accuracy"] == metrics["validation"]["accuracy"]


def test_a_stopped_sweep_does_not_leave_its_report_run_running(
    sweep_file, make_config, monkeypatch
):
    """The report's run is made RUNNING before the first trial, to parent them; a sweep
    stopped before its report (Ctrl+C) left it RUNNING for ever in MLflow's UI. It now ends
    KILLED, and the rerun's report ends it FINISHED."""
    base = make_config(training={"epochs": 2}, tracking={"mlflow": True})
    path = sweep_file(base=base.model_dump(mode="json"), trials=1, final=False)

    def stopped(*args):
        def objective(trial):
            raise KeyboardInterrupt

        return objective

    monkeypatch.setattr(sweep, "make_objective", stopped)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(path)
    folder = path.parent / "sweeps" / "tiny-sweep"
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny-sweep").experiment_id
    (summary,) = client.search_runs([experiment])
    assert summary.info.status == "KILLED"
    monkeypatch.undo()
    run_sweep(path)
    assert len(client.search_runs([experiment])) == 2  # the trial, and the same report run
    assert client.get_run(summary.info.run_id).info.status == "FINISHED"


def test_a_sweep_run_only_by_workers_does_not_leave_its_report_run_running(sweep_file, make_config):
    """Workers open the report's run (their trials are its children) but never log a
    report: a sweep run only with --worker left it RUNNING for ever. The last worker to end
    now ends it KILLED (one with another process's trial running leaves it), and the report
    of a run without --worker ends it FINISHED."""
    base = make_config(training={"epochs": 2}, tracking={"mlflow": True})
    path = sweep_file(base=base.model_dump(mode="json"), trials=2, final=False)
    folder = path.parent / "sweeps" / "tiny-sweep"
    run_sweep(path, worker=True, trials=1)
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny-sweep").experiment_id

    def summary():
        (run,) = client.search_runs([experiment], "tags.`fintune.kind` = 'sweep report'")
        return client.get_run(run.info.run_id)

    assert summary().info.status == "KILLED"
    client.update_run(summary().info.run_id, "RUNNING")  # as a worker still running leaves it
    other = load(folder).ask()  # another worker's trial, running
    run_sweep(path, worker=True, trials=1)  # its budget slot is taken: it runs none
    assert summary().info.status == "RUNNING"
    load(folder).tell(other, state=optuna.trial.TrialState.FAIL)
    run_sweep(path)
    assert summary().info.status == "FINISHED"


def test_a_trial_run_on_another_machine_keeps_its_epoch_rows_in_the_storage(tmp_path):
    """A worker on another machine writes its trial's history.jsonl there: the report's
    per-epoch rows (training and validation loss, accuracy, F1) were blank for its trials.
    Each evaluation's rows are now stored with the trial too."""
    from fintune.study.sweep_report import trial_rows

    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    callback = PruneOnValidation(trial, "accuracy", tmp_path)
    state = _state(10)
    state.log_history = [
        {"loss": 0.9, "step": 5, "epoch": 0.5},
        {"loss": 0.7, "step": 10, "epoch": 1.0},
        {"eval_loss": 0.6, "eval_accuracy": 0.75, "eval_f1_macro": 0.7, "step": 10, "epoch": 1.0},
    ]
    callback.on_evaluate(None, state, None, metrics={"eval_accuracy": 0.75})
    trial.set_user_attr("run_dir", "trials/on-another-machine")  # no such folder here
    study.tell(trial, 0.75)
    (row,) = trial_rows(study, tmp_path).to_dict("records")
    assert row["epoch"] == 1.0 and row["train_loss"] == pytest.approx(0.8)
    assert (row["eval_loss"], row["eval_accuracy"], row["eval_f1_macro"]) == (0.6, 0.75, 0.7)


def test_the_warmup_check_counts_each_points_own_training_texts(sweep_file, capsys):
    """The warm-up was checked against the base config's training texts at every point:
    a space over data.max_train_samples (or a split) that trains on fewer texts ran its
    trials with a warm-up longer than training, unsaid."""
    space = {**SPACE, "data.max_train_samples": {"type": "categorical", "choices": [8, 86]}}
    path = sweep_file(space=space)
    spec = yaml.safe_load(path.read_text())
    spec["base"]["training"]["warmup_steps"] = 4  # 86 texts: 12 steps; 8 texts: 2 steps
    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(FintuneError, match="--report-only"):  # stops before any trial
        run_sweep(path, report_only=True)
    err = " ".join(capsys.readouterr().err.split())
    assert "at the point data.max_train_samples=8 of the space: training.warmup_steps (4)" in err
    assert "(8 training texts)" in err and "data.max_train_samples=86" not in err


def test_the_stored_epoch_rows_fit_a_database_text_column(tmp_path):
    """Each evaluation stored all the trial's epoch rows: a long trial evaluated by steps
    (2,000 evaluations: ~260,000 characters) overflowed MySQL's TEXT (65,535 bytes), and
    the storage error failed the trial. The latest rows that fit are stored."""
    import json

    study = optuna.create_study(direction="maximize")
    trial = study.ask()
    callback = PruneOnValidation(trial, "accuracy", tmp_path)
    state = _state(10, max_steps=10**6)
    for step in range(1, 2001):
        state.log_history += [
            {"loss": 0.123456789, "step": step * 10, "epoch": step / 3},
            {"eval_loss": 0.6, "eval_accuracy": 0.75, "eval_f1_macro": 0.7, "step": step * 10},
        ]
        state.log_history[-1]["epoch"] = step / 3
    callback.on_evaluate(None, state, None, metrics={"eval_accuracy": 0.75})
    rows = study.trials[0].user_attrs["epochs"]
    assert len(json.dumps(rows)) <= sweep.EPOCHS_ATTR_CHARS < 65_535
    assert 300 < len(rows) < 2000 and rows[-1]["epoch"] == round(2000 / 3, 3)


def test_a_report_run_a_worker_ended_is_running_again_while_the_report_is_made(
    sweep_file, make_config, monkeypatch
):
    """The last worker ended the report's run KILLED while a run without --worker waited
    for its trial: that run then trained the final model and wrote the report under a
    KILLED run, and an error there left it KILLED, not FAILED. It is RUNNING again while
    the report is made, and an error ends it FAILED."""
    from fintune.study import sweep_report

    base = make_config(training={"epochs": 2}, tracking={"mlflow": True})
    path = sweep_file(base=base.model_dump(mode="json"), trials=2, final=False)
    folder = path.parent / "sweeps" / "tiny-sweep"
    run_sweep(path, worker=True, trials=1)  # the last worker to end: KILLED
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny-sweep").experiment_id
    (run,) = client.search_runs([experiment], "tags.`fintune.kind` = 'sweep report'")
    assert run.info.status == "KILLED"
    seen = []

    def failing(*args, **kwargs):
        seen.append(client.get_run(run.info.run_id).info.status)
        raise OSError("disk full")

    monkeypatch.setattr(sweep_report, "finish_sweep", failing)
    with pytest.raises(OSError, match="disk full"):
        run_sweep(path, trials=1)  # the budget is spent: straight to the report
    assert seen == ["RUNNING"]
    assert client.get_run(run.info.run_id).info.status == "FAILED"


def test_a_worker_leaves_the_report_run_of_a_final_model_in_training(sweep_file, make_config):
    """The last worker to end set the report's run KILLED while another process trained
    the final model (its trials all done: none running), so an error in that training
    left it KILLED, not FAILED. A live final.lock now keeps it; a dead one's does not."""
    base = make_config(training={"epochs": 2}, tracking={"mlflow": True})
    path = sweep_file(base=base.model_dump(mode="json"), trials=1, final=False)
    folder = path.parent / "sweeps" / "tiny-sweep"
    run_sweep(path, worker=True)
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny-sweep").experiment_id
    (run,) = client.search_runs([experiment], "tags.`fintune.kind` = 'sweep report'")
    client.update_run(run.info.run_id, "RUNNING")  # as the final model's process made it
    (folder / "final.lock").write_text(f"{os.getpid()} {socket.gethostname()}")
    run_sweep(path, worker=True)  # the budget is spent: it runs no trial
    assert client.get_run(run.info.run_id).info.status == "RUNNING"
    (folder / "final.lock").write_text(f"{2**22 + 12345} {socket.gethostname()}")  # dead
    run_sweep(path, worker=True)
    assert client.get_run(run.info.run_id).info.status == "KILLED"


def test_trials_csv_is_synced_before_its_rename_and_a_killed_writers_file_is_removed(
    tmp_path, monkeypatch
):
    """trials.csv went through `trials.csv.<host>-<pid>.tmp`, renamed unsynced (a power
    cut could leave an empty table) and left behind by a worker killed (SIGKILL) before
    its rename, one more per kill. It is now written as write_json writes its records."""
    from fintune import run_dir
    from fintune.study.sweep_report import write_trials_csv

    synced = []
    real = run_dir._sync
    monkeypatch.setattr(run_dir, "_sync", lambda path: synced.append(path.name) or real(path))
    dead = tmp_path / f"trials.csv.999999999-deadbeef@{socket.gethostname()}.partial"
    dead.write_text("trial,state\n0,comp")
    os.utime(dead, (os.path.getmtime(dead) - 120,) * 2)
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({})
    study.tell(study.ask(), 0.5)
    write_trials_csv(study, tmp_path, "accuracy")
    assert pd.read_csv(tmp_path / "trials.csv")["value"].tolist() == [0.5]
    assert [name.split(".")[:2] for name in synced] == [["trials", "csv"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["trials.csv"]


def test_a_trial_run_on_another_machine_names_its_kept_epoch(sweep_file):
    """value_at read a finished trial's kept epoch from its metrics.json only: for a trial
    run on another machine (no run folder here) it said 'end of training', though its
    value is its best checkpoint's. The kept epoch is stored with the trial too."""
    from fintune.study.sweep_report import trial_rows

    folder = run_sweep(sweep_file(trials=1, final=False)).parent
    study = load(folder)
    here = trial_rows(study, folder)["value_at"].tolist()
    assert here[0].startswith("best checkpoint, epoch ")
    shutil.rmtree(folder / study.trials[0].user_attrs["run_dir"])  # as on another machine
    assert trial_rows(study, folder)["value_at"].tolist() == here


def test_the_report_says_when_a_remote_trial_shows_only_its_latest_evaluations(
    sweep_file, tmp_path
):
    """A trial of another machine with more evaluations than the storage holds showed only
    its latest rows in the report, as if it had had no others."""
    from fintune.study.sweep_report import finish_sweep

    path = sweep_file(trials=1, final=False)
    spec, base = sweep_spec.load_sweep(path)
    folder = tmp_path / "sweeps" / "tiny-sweep"
    folder.mkdir(parents=True)
    study = optuna.create_study(direction="maximize")
    for evaluations in (2000, 3):
        trial = study.ask()
        callback = PruneOnValidation(trial, "accuracy", folder)
        state = _state(10, max_steps=10**6)
        for step in range(1, evaluations + 1):
            state.log_history += [
                {"loss": 0.123456789, "step": step * 10, "epoch": step / 3},
                {"eval_loss": 0.6, "eval_accuracy": 0.75, "step": step * 10, "epoch": step / 3},
            ]
        callback.on_evaluate(None, state, None, metrics={"eval_accuracy": 0.75})
        trial.set_user_attr("run_dir", f"trials/t{trial.number}")  # not on this machine
        study.tell(trial, 0.75)
    shown = len(study.trials[0].user_attrs["epochs"])
    text = " ".join(finish_sweep(study, spec, base, folder, str(path)).read_text().split())
    assert f"trial 0: its latest {shown} of 2000 evaluations" in text
    assert "trial 1:" not in text


def test_a_trial_pruned_while_tracking_was_off_is_logged_when_it_is_on(
    sweep_file, make_config, monkeypatch
):
    """Finished trials that ran with MLflow off (or unreachable) were logged by the next
    run; pruned ones never were, so MLflow lacked them and their per-step curves. They are
    logged once, KILLED and tagged pruned, as a trial pruned with tracking on is."""
    monkeypatch.setattr(optuna.trial.Trial, "should_prune", lambda self: self.number == 1)
    path = sweep_file(trials=2, final=False)
    folder = run_sweep(path).parent
    assert states(load(folder)) == ["COMPLETE", "PRUNED"]
    spec = yaml.safe_load(path.read_text())
    spec["base"]["tracking"]["mlflow"] = True
    path.write_text(yaml.safe_dump(spec))
    for _ in range(2):  # logged once
        run_sweep(path)
        client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
        runs = client.search_runs([client.get_experiment_by_name("tiny-sweep").experiment_id])
        trials = {r.data.tags["fintune.trial"]: r for r in runs if "fintune.trial" in r.data.tags}
        assert sorted(trials) == ["0", "1"]
        assert (trials["0"].info.status, trials["1"].info.status) == ("FINISHED", "KILLED")
        assert trials["1"].data.tags["fintune.pruned"] == "true"
        assert "eval_accuracy" in trials["1"].data.metrics


def test_the_sweep_plots_leave_matplotlibs_style_as_it_was(tmp_path):
    """Optuna's plots call plt.style.use('ggplot'), which restyled every later plot of the
    process: a study report drawn after a sweep, or a user's own figures."""
    import matplotlib.pyplot as plt

    before = dict(plt.rcParams)
    importance_plots(tmp_path, [0.5, 0.6, 0.7, 0.8])
    assert (tmp_path / "plots" / "optimization_history.png").exists()
    changed = {k for k, v in plt.rcParams.items() if before[k] != v}
    assert not changed, sorted(changed)[:5]


def test_a_sweep_whose_trials_were_all_pruned_reports_their_evaluations(sweep_file):
    """The report stopped at 'No trial finished': the pruned trials' parameters and
    per-epoch scores were in trials.csv only, though README says the report has the table."""
    from fintune.study.sweep_report import finish_sweep

    path = sweep_file(trials=2)
    spec, base = sweep_spec.load_sweep(path)
    folder = Path(yaml.safe_load(path.read_text())["output"]) / "tiny-sweep"
    folder.mkdir(parents=True)
    study = optuna.create_study(direction="maximize")
    rate = {"training.learning_rate": optuna.distributions.FloatDistribution(1e-3, 1e-2)}
    for value in (0.31, 0.27):
        study.add_trial(
            optuna.trial.create_trial(
                params={"training.learning_rate": 2e-3},
                distributions=rate,
                value=value,
                state=optuna.trial.TrialState.PRUNED,
                intermediate_values={1: value},
            )
        )
    report = finish_sweep(study, spec, base, folder, str(path)).read_text()
    assert "No trial finished" in report and "## Trials" in report
    assert "| 0 | pruned |" in report and "| 1 | pruned |" in report


def test_the_optimisation_history_of_one_trial_has_whole_trial_numbers(tmp_path, monkeypatch):
    """With one trial the x axis read -0.060 ... 0.060: no whole number to tick."""
    from fintune.report.document import Document
    from fintune.study import sweep_report

    study = optuna.create_study(direction="maximize")
    rate = {"training.learning_rate": optuna.distributions.FloatDistribution(1e-3, 1e-2)}
    study.add_trial(
        optuna.trial.create_trial(
            params={"training.learning_rate": 2e-3}, distributions=rate, value=0.5
        )
    )
    drawn = []
    monkeypatch.setattr(sweep_report, "_save", lambda ax, path, doc, alt: drawn.append(ax))
    sweep_report._plots(study, tmp_path, Document("s"), "accuracy")
    ax = drawn[0]
    low, high = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if low <= t <= high]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


@pytest.mark.parametrize(
    ("item", "said"),
    [
        ("output.dir=elsewhere", "--set output.dir: the sweep file's `output` sets output.dir"),
        ("name=other", "--set name: the sweep file's `name` sets name"),
    ],
)
def test_a_set_of_output_dir_or_name_on_a_sweep_is_refused_not_dropped(sweep_file, item, said):
    """`fintune sweep s.yaml --set output.dir=elsewhere` (or name=...) ran every trial
    where and as the sweep names it, without a word."""
    with pytest.raises(FintuneError) as error:
        sweep_spec.load_sweep(sweep_file(), [item])
    assert said in str(error.value)
    sweep_spec.load_sweep(sweep_file(), ["output.save_model=false"])  # the final model's


def test_a_sweep_whose_time_ran_out_before_any_trial_says_so_and_fails(
    sweep_file, monkeypatch, capsys
):
    """It ended with no trial and no final model, exit 0, and no line saying none ran."""
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))
    path = sweep_file()
    with pytest.raises(FintuneError, match=r"no trial finished: timeout_minutes 1e-06 ran out"):
        run_sweep(path, timeout_minutes=0.000001)
    err = capsys.readouterr().err
    assert "tiny-sweep: no trial ran: timeout_minutes 1e-06 ran out before this process" in err
    with pytest.raises(FintuneError, match=r"no trial finished: timeout_minutes"):
        run_sweep(path, worker=True, timeout_minutes=0.000001)


def test_a_refused_resume_stores_none_of_its_settings(sweep_file, make_config, capsys):
    """A resume refused for its base had stored its search settings first: the next resume,
    with the file the trials ran with, said they had run with the refused file's pruner."""
    folder = run_sweep(sweep_file(trials=1, final=False)).parent
    stored = dict(load(folder).user_attrs)
    other = make_config(training={"epochs": 3}).model_dump(mode="json")
    with pytest.raises(FintuneError, match="ran trials on another base config"):
        run_sweep(sweep_file(trials=2, final=False, pruner="median", base=other))
    assert load(folder).user_attrs == stored
    capsys.readouterr()
    run_sweep(sweep_file(trials=2, final=False))
    assert "other search settings" not in capsys.readouterr().err
    assert states(load(folder)) == ["COMPLETE"] * 2
