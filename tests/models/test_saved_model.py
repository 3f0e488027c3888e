"""A run's saved model loads with plain transformers / PEFT (fintune blocked from import)
and predicts what the run recorded; `fintune predict` agrees too."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from fintune.cli import app
from fintune.predict import Predictor
from fintune.recipes.classification import run

PLAIN_LOADER = r"""
import json, sys
sys.modules["fintune"] = None  # prove that nothing of fintune is needed
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
folder, method, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
tokenizer = AutoTokenizer.from_pretrained(folder)
if method == "full":
    model = AutoModelForSequenceClassification.from_pretrained(folder)
else:
    from peft import PeftConfig, PeftModel
    base_path = PeftConfig.from_pretrained(folder).base_model_name_or_path
    labels = json.load(open(folder + "/fintune_model.json"))["labels"]
    base = AutoModelForSequenceClassification.from_pretrained(
        base_path, num_labels=len(labels), ignore_mismatched_sizes=True)
    model = PeftModel.from_pretrained(base, folder)
model.eval()
with torch.no_grad():
    enc = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    probs = torch.softmax(model(**enc).logits, -1)
labels = json.load(open(folder + "/fintune_model.json"))["labels"]
print(json.dumps([[labels[int(p.argmax())], float(p.max())] for p in probs]))
"""


@pytest.mark.parametrize("method", ["full", "lora"])
def test_saved_model_loads_with_plain_libraries_and_predicts_the_same(make_config, method):
    run_dir = run(make_config(method={"name": method}, training={"epochs": 3}))
    recorded = pd.read_csv(run_dir / "predictions_test.csv").head(8)
    texts = list(recorded["text"])
    out = subprocess.run(
        [sys.executable, "-c", PLAIN_LOADER, str(run_dir / "model"), method, json.dumps(texts)],
        capture_output=True,
        text=True,
        check=True,
    )
    plain = json.loads(out.stdout.strip().splitlines()[-1])
    assert [label for label, _ in plain] == list(recorded["predicted"])
    assert [c for _, c in plain] == pytest.approx(list(recorded["confidence"]), abs=1e-4)


@pytest.mark.parametrize("method", ["adapter", "prefix"])
def test_predictor_reproduces_recorded_predictions(make_config, method):
    run_dir = run(make_config(method={"name": method}, training={"epochs": 2}))
    recorded = pd.read_csv(run_dir / "predictions_test.csv").head(8)
    results = Predictor.from_run(run_dir, device="cpu")(list(recorded["text"]))
    assert [r["label"] for r in results] == list(recorded["predicted"])
    assert [r["confidence"] for r in results] == pytest.approx(
        list(recorded["confidence"]), abs=1e-4
    )
    assert all(abs(sum(r["scores"].values()) - 1) < 1e-5 for r in results)


def test_an_adapter_run_rebuilds_its_base_in_the_runs_dtype(make_config):
    run_dir = run(make_config(method={"name": "lora"}, model={"dtype": "bfloat16"}))
    info = json.loads((run_dir / "model" / "fintune_model.json").read_text())
    assert (info["dtype"], info["revision"], info["trust_remote_code"]) == ("bfloat16", None, False)
    predictor = Predictor.from_run(run_dir, device="cpu")
    assert next(predictor.model.parameters()).dtype == torch.bfloat16
    recorded = pd.read_csv(run_dir / "predictions_test.csv").head(8)
    results = predictor(list(recorded["text"]))
    assert [r["confidence"] for r in results] == pytest.approx(
        list(recorded["confidence"]),
        abs=1e-3,  # bf16 sums vary with threads and batch shape
    )
    int8 = Predictor.from_run(run_dir, device="cpu", precision="int8")(list(recorded["text"]))
    assert [r["label"] for r in int8] and all(
        abs(sum(r["scores"].values()) - 1) < 1e-5 for r in int8
    )


def test_predict_command_prints_label_and_confidence(make_config):
    run_dir = run(make_config(training={"epochs": 2}))
    recorded = pd.read_csv(run_dir / "predictions_test.csv").head(1)
    result = CliRunner().invoke(app, ["predict", str(run_dir), recorded["text"][0]])
    assert result.exit_code == 0, result.output
    label, confidence, _ = result.stdout.strip().splitlines()[-1].split("\t")
    assert label == recorded["predicted"][0]
    assert float(confidence) == pytest.approx(recorded["confidence"][0], abs=1e-4)
