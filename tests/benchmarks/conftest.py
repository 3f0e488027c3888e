"""The benchmark scripts (benchmarks/*.py, not a package) loaded as modules, and a few
finished tiny runs on one split for them to read."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from fintune.recipes.classification import run
from tests.conftest import make_sentences, tiny_run_config

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_script(name: str) -> ModuleType:
    """benchmarks/<name>.py as a module, imported once."""
    module_name = f"benchmark_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


@pytest.fixture(scope="session")
def sentences_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("data") / "sentences.csv"
    make_sentences().to_csv(path, index=False)
    return path


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory, tiny_bert, sentences_file) -> list[Path]:
    """Three finished runs on the same split (split seed 7), each part-way to learning the
    task, so their predictions differ: full with training seeds 1 and 2, LoRA with seed 3."""
    out = tmp_path_factory.mktemp("runs")
    runs = []
    for seed, method, rate in ((1, "full", 1e-3), (2, "full", 1e-3), (3, "lora", 1e-2)):
        config = tiny_run_config(
            tiny_bert,
            sentences_file,
            out,
            name=f"tiny-{method}-{seed}",
            seed=seed,
            method={"name": method},
            data={"split": {"seed": 7}},
            training={"epochs": 6, "batch_size": 8, "learning_rate": rate, "num_threads": 1},
        )
        runs.append(run(config))
    return runs
