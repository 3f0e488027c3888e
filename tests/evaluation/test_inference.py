"""Final evaluation computes as the saved model does, and validation during training as
the final evaluation."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from fintune.predict import Predictor, cpu_has_native_bf16
from fintune.recipes.classification import run

needs_bf16 = pytest.mark.skipif(not cpu_has_native_bf16(), reason="no native bfloat16 CPU")


@needs_bf16
@pytest.mark.parametrize(
    ("method", "dtype", "precision"),
    [
        ("lora", "bfloat16", "fp32"),  # bfloat16 weights, no mixed precision
        ("full", "auto", "bf16"),  # float32 weights, mixed-precision training
        ("lora", "auto", "bf16"),
    ],
)
def test_validation_and_the_saved_model_compute_as_the_final_evaluation(
    make_config, method, dtype, precision
):
    """bfloat16 weights at precision fp32: validation during training ran without the
    autocast the final evaluation used (the kept checkpoint's loss 1.097141 against the
    run's validation loss 1.097118). float32 weights at precision bf16: the final
    evaluation ran under the training's autocast, which a plainly loaded float32 model and
    `predict` do not use (confidences up to 5.5e-5 away)."""
    config = make_config(
        method={"name": method},
        model={"dtype": dtype},
        training={"precision": precision, "epochs": 2, "load_best_model": True},
    )
    run_dir = run(config)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["train"]["best_checkpoint_step"] is not None
    assert metrics["train"]["best_checkpoint_loss"] == pytest.approx(
        metrics["validation"]["loss"], abs=1e-6
    )
    recorded = pd.read_csv(run_dir / "predictions_validation.csv")
    results = Predictor.from_run(run_dir, device="cpu")(list(recorded["text"]))
    assert [r["label"] for r in results] == list(recorded["predicted"])
    assert [r["confidence"] for r in results] == pytest.approx(
        list(recorded["confidence"]), abs=1e-6
    )
