"""Every file in benchmarks/configs still loads under the current schema (no data read),
and one that starts from an earlier run says how to make that run when it is absent."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from fintune.cli import app
from fintune.config.load import file_kind, load_config, read_yaml
from fintune.study.spec import load_study
from fintune.study.sweep_spec import load_sweep
from tests.benchmarks.conftest import BENCHMARKS

ROOT = BENCHMARKS.parent
CONFIGS = sorted((BENCHMARKS / "configs").glob("*.yaml"))
LOADERS = {"experiment": load_config, "study": load_study, "sweep": load_sweep}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_each_benchmark_config_loads(path, monkeypatch):
    monkeypatch.chdir(ROOT)  # their bases and paths are written from the repository root
    kind = file_kind(read_yaml(path))
    assert kind in LOADERS, f"{path.name}: not an experiment, study or sweep file"
    LOADERS[kind](path.relative_to(ROOT))


def test_there_are_configs_of_each_kind():
    kinds = {file_kind(read_yaml(p)) for p in CONFIGS}
    assert kinds == set(LOADERS)


@pytest.mark.parametrize(
    "name", ["fpb_from_tfns.yaml", "fpb_from_tfns_sweep.yaml"], ids=lambda n: n
)
def test_a_config_that_starts_from_an_absent_run_says_how_to_make_it(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    pinned = Path(load_config("benchmarks/configs/fpb_from_tfns.yaml").model.name)
    if pinned.exists():
        pytest.skip(f"{pinned} exists on this machine")
    command = "sweep" if name.endswith("_sweep.yaml") else "validate"
    result = CliRunner().invoke(app, [command, f"benchmarks/configs/{name}"])
    message = " ".join(result.output.split())
    assert result.exit_code == 2, message
    assert "model.name" in message and pinned.parent.name in message
    assert "final model of sweep 'tfns-sweep', which `fintune sweep`" in message
    assert "--set model.name=" in message
    assert "Traceback" not in message
