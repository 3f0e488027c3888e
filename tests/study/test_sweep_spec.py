"""Sweep files and the checks of their space that need no trial: `Param`, `load_sweep`
with `--set`, and the config a point of the space makes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from fintune.errors import FintuneError
from fintune.recipes import classification
from fintune.study import sweep_spec
from fintune.study.sweep_spec import Param
from tests.study.conftest import SPACE


def test_an_int_on_a_log_scale_may_say_step_1():
    assert Param(type="int", low=1, high=64, log=True, step=1).distribution().log


def test_an_unrelated_set_does_not_turn_the_epochs_refusal_into_a_warning(
    sweep_file, make_config, monkeypatch, capsys
):
    """The file's base sets max_steps, so the space's epochs changes no trial: refused. Any
    --set (model.max_length=24) made it only a warning, as if the --set had set max_steps
    for a quick try, and the sweep went on searching a field that changed nothing."""
    monkeypatch.setattr(classification, "run", lambda *a, **k: pytest.fail("trained"))
    base = make_config(training={"epochs": 2, "max_steps": 6}).model_dump(mode="json")
    space = {**SPACE, "training.epochs": {"type": "int", "low": 1, "high": 4}}
    path = sweep_file(base=base, space=space)
    with pytest.raises(FintuneError, match=r"training.epochs has no effect.*\(6\)"):
        sweep_spec.load_sweep(path, ["model.max_length=24"])
    with pytest.raises(FintuneError, match=r"training.epochs has no effect.*\(6\)"):
        sweep_spec.load_sweep(path, ["training.max_steps=6"])  # the file's own, as written
    sweep_spec.load_sweep(path, ["training.max_steps=3"])  # a quick try's: warned
    assert "training.epochs has no effect" in capsys.readouterr().err


@pytest.mark.parametrize("value", [0.3, 0.7, 0.15, 0.0, 1.0])
def test_an_enqueued_value_on_a_fine_grid_is_accepted(value):
    param = Param(type="uniform", low=0.0, high=1.0, step=0.05)
    assert param.problem_with(value) is None
    assert param.problem_with(value + 0.01) is not None


def test_a_home_folder_in_base_and_output_is_expanded(
    sweep_file, make_config, tmp_path, monkeypatch
):
    home = tmp_path / "home"
    home.mkdir()
    (home / "base.yaml").write_text(yaml.safe_dump(make_config().model_dump(mode="json")))
    monkeypatch.setenv("HOME", str(home))
    spec, base = sweep_spec.load_sweep(sweep_file(base="~/base.yaml", output="~/sweeps"))
    assert spec.output == str(home / "sweeps") and base["model"]["max_length"] == 32


def test_a_home_folder_or_variable_in_a_sqlite_storage_url_is_expanded(
    sweep_file, tmp_path, monkeypatch
):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("SHARED", str(tmp_path / "shared"))
    spec, _ = sweep_spec.load_sweep(sweep_file(storage="sqlite:///~/optuna.db"))
    assert spec.storage == f"sqlite:///{tmp_path}/home/optuna.db"
    spec, _ = sweep_spec.load_sweep(sweep_file(storage="sqlite:///${SHARED}/optuna.db"))
    assert spec.storage == f"sqlite:///{tmp_path}/shared/optuna.db"


def test_a_space_over_the_method_drops_the_options_a_chosen_method_lacks(sweep_file, make_config):
    """As `--set method.name=full` does: a full trial from a lora base has no r or alpha."""
    base = make_config(method={"name": "lora", "r": 4, "alpha": 32}).model_dump(mode="json")
    space = {**SPACE, "method.name": {"type": "categorical", "choices": ["lora", "dora", "full"]}}
    spec, base = sweep_spec.load_sweep(sweep_file(base=base, space=space))
    configs = {
        name: sweep_spec.trial_config(base, {"method.name": name}, spec, Path("."), 0, "s")
        for name in ("lora", "dora", "full")
    }
    assert (configs["dora"].method.r, configs["dora"].method.alpha) == (4, 32)
    assert configs["full"].method.name == "full"
    space["method.rr"] = {"type": "categorical", "choices": [1]}  # a typo is still named
    with pytest.raises(FintuneError, match=r"method\.rr: unknown key"):
        sweep_spec.load_sweep(sweep_file(base=base, space=space))


def test_sweep_set_overrides_the_base_and_refuses_a_searched_field(sweep_file, make_config):
    """sweep had no --set (run has): a trial budget test on fewer steps meant a copy of
    the base file. A --set is as if written there; on a searched field it would be lost."""
    from fintune.study.sweep_spec import load_sweep

    spec, base = load_sweep(sweep_file(), ["training.max_steps=2"])
    assert base["training"]["max_steps"] == 2
    written = make_config(training={"epochs": 2, "max_steps": 2}).model_dump(mode="json")
    assert base == load_sweep(sweep_file(base=written))[1]
    for field in ("training.learning_rate", "training.best_metric"):
        with pytest.raises(FintuneError, match=rf"--set {field}: the .* sets {field} for each"):
            load_sweep(sweep_file(), [f"{field}=0.1"])


def test_sweep_set_of_max_length_passes_a_space_of_bare_model_names(sweep_file, make_config):
    """A choice of bare model names sets only model.name (the base's max_length stays), but
    a --set of model.max_length was refused as overwritten by the space's model."""
    from fintune.study.sweep_spec import load_sweep

    base = make_config(model={"name": "a", "max_length": 48}).model_dump(mode="json")
    path = sweep_file(base=base, space={"model": {"type": "categorical", "choices": ["a", "b"]}})
    _, written = load_sweep(path, ["model.max_length=16"])
    assert written["model"]["max_length"] == 16
    with pytest.raises(FintuneError, match=r"--set model\.name: the space's model sets model\."):
        load_sweep(path, ["model=c"])


def test_a_bad_sweep_set_is_named_as_the_set(sweep_file):
    """A mistyped --set on sweep was blamed on the sweep file's space ('sweep.yaml: space:
    invalid config - trainig: unknown key'), where no such key is written."""
    from fintune.study.sweep_spec import load_sweep

    with pytest.raises(FintuneError, match=r"trainig: unknown key.*\[from --set\]"):
        load_sweep(sweep_file(), ["trainig.max_steps=2"])


def test_a_trial_in_a_folder_named_with_a_dollar_keeps_its_folder(
    sweep_file, make_config, tmp_path, monkeypatch
):
    """In a folder named 'p$HOME', a trial's runs and MLflow store went to 'p/root/...'
    ($HOME expanded again); with '$budget' unset, the sweep stopped with a traceback."""
    from fintune.tracking import sqlite_uri

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec, base = sweep_spec.load_sweep(sweep_file(base=make_config().model_dump(mode="json")))
    for name in ("p$HOME", "Q3$budget"):
        folder = tmp_path / name
        config = sweep_spec.trial_config(base, {}, spec, folder, 0, "s")
        assert config.output.dir == str(folder / "trials")
        assert config.tracking.uri == sqlite_uri(folder / "mlflow.db")


def test_an_unknown_key_in_a_space_entry_lists_what_a_parameter_takes(sweep_file):
    """It listed nothing: 'space.training.learning_rate.lowww: unknown key. Allowed here: '."""
    space = {"training.learning_rate": {"type": "log_uniform", "low": 1e-5, "high": 1e-3}}
    space["training.learning_rate"]["lowww"] = 3
    with pytest.raises(FintuneError) as error:
        sweep_spec.load_sweep(sweep_file(space=space))
    assert (
        "space.training.learning_rate.lowww: unknown key; did you mean 'low'? "
        "Allowed here: choices, high, log, low, step, type"
    ) in str(error.value)
