"""Whole classification runs on tiny random models: every method, encoder and decoder,
the metrics.json contract, reproducibility, and the run directory."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from transformers import TrainerCallback

from fintune.config.schema import METRICS
from fintune.errors import FintuneError
from fintune.evaluation.metrics import format_interval
from fintune.recipes.classification import run
from tests.conftest import make_sentences

BERT_METHODS = ["full", "lora", "dora", "ia3", "prefix", "prompt", "adapter", "qlora"]
DECODER_METHODS = ["full", "lora", "prefix", "prompt", "adapter", "qlora"]
HAS_BNB = importlib.util.find_spec("bitsandbytes") is not None


def _skip_without_bnb(method: str) -> None:
    if method == "qlora" and not HAS_BNB:
        pytest.skip("bitsandbytes is not installed")


def _metrics(run_dir) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.parametrize("method", BERT_METHODS)
def test_each_method_trains_an_encoder_end_to_end(make_config, method):
    _skip_without_bnb(method)
    run_dir = run(make_config(method={"name": method}))
    metrics = _metrics(run_dir)
    assert metrics["method"] == method
    train = metrics["train"]
    assert 0 < train["trainable_params"] <= train["total_params"]
    if method != "full":
        assert train["trainable_params"] < train["total_params"] / 2
    assert (run_dir / "model" / "fintune_model.json").is_file()


@pytest.mark.parametrize("method", DECODER_METHODS)
def test_each_method_trains_a_decoder_without_pad_token(make_config, tiny_llama, method):
    _skip_without_bnb(method)
    config = make_config(model={"name": str(tiny_llama)}, method={"name": method})
    metrics = _metrics(run(config))
    assert metrics["test"]["n"] == 24 and metrics["validation"]["n"] == 10


@pytest.mark.parametrize("method", ["full", "prefix", "prompt"])
def test_a_decoders_validation_in_training_matches_its_final_evaluation(
    make_config, tiny_gpt2, method
):
    """The Trainer's per-epoch validation (padded batches) and the final evaluation (batches
    of equal length) see the same positions, so checkpoint choice and pruning read the
    numbers metrics.json reports."""
    config = make_config(
        model={"name": str(tiny_gpt2)}, method={"name": method}, training={"epochs": 1}
    )
    run_dir = run(config)
    history = (run_dir / "history.jsonl").read_text().splitlines()
    during = [json.loads(line) for line in history if "eval_loss" in line][-1]
    assert during["eval_loss"] == pytest.approx(_metrics(run_dir)["validation"]["loss"], abs=1e-5)


def _strict_json(text: str):
    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    return json.loads(text, parse_constant=refuse)


def test_a_diverged_run_stops_with_an_error_not_a_report(make_config):
    config = make_config(training={"learning_rate": 1e6, "epochs": 2})
    with pytest.raises(FintuneError, match=r"training diverged: the \w+ loss is nan at step"):
        run(config)
    # the advice to train in fp32 or bf16 was given to this fp32 run too
    with pytest.raises(FintuneError, match=r"\); lower training.learning_rate$"):
        run(config)
    run_dir = sorted(Path(config.output.dir).iterdir())[0]
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "checkpoints").exists()
    history = [_strict_json(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert history[-1].get("loss", history[-1].get("eval_loss")) is None  # NaN written as null


class _PoisonAfterFirstStep(TrainerCallback):
    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step == 1:
            with torch.no_grad():
                model.classifier.bias.fill_(float("nan"))


def test_a_nan_training_loss_stops_the_run_at_the_step_it_appears(make_config):
    """Only logged losses were checked: with logging_steps 50 a loss NaN from step 2 on
    trained to the epoch's end, and the error named the validation loss at step 6 with
    'learning rate n/a' (found by a review)."""
    config = make_config(training={"epochs": 20, "logging_steps": 50})
    with pytest.raises(
        FintuneError, match=r"training loss is nan at step 2 \(learning rate 0.000992\)"
    ):
        run(config, callbacks=[_PoisonAfterFirstStep()])
    (run_dir,) = Path(config.output.dir).iterdir()
    history = [_strict_json(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert (history[-1]["step"], history[-1]["loss"]) == (2, None)  # NaN written as null
    # step 2 of 6 in an epoch (86 examples, batches of 16); it had step 1's epoch, 1/6
    assert history[-1]["epoch"] == pytest.approx(2 / 6)


def test_a_machine_with_several_gpus_trains_on_one_at_the_configured_batch_size(
    make_config, monkeypatch
):
    """One process on a node with 2 visible GPUs: transformers set n_gpu 2 and wrapped the
    model in DataParallel, batches of 2 x batch_size: 86 examples at batch_size 16 took 3
    steps, not 6, and samples_per_s counted 48 (found by a review; n_gpu simulated)."""
    import fintune.recipes.classification as recipe

    made = recipe.training_arguments

    def on_two_gpus(*args, **kwargs):
        arguments = made(*args, **kwargs)
        arguments._n_gpu = 2  # as transformers sets it there
        return arguments

    monkeypatch.setattr(recipe, "training_arguments", on_two_gpus)
    config = make_config()
    config.output.save_model = False
    train = _metrics(run(config))["train"]
    assert train["steps"] == 6  # 86 examples in batches of 16
    assert train["samples_per_s"] * train["runtime_s"] == pytest.approx(86, rel=0.05)


class _FailAfterSaving(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        raise RuntimeError("stopped after a checkpoint")


def test_a_failed_run_leaves_no_checkpoints_and_the_thread_count_as_it_was(make_config):
    before = torch.get_num_threads()
    config = make_config(training={"num_threads": 1 if before > 1 else 2})
    with pytest.raises(RuntimeError, match="stopped after a checkpoint"):
        run(config, callbacks=[_FailAfterSaving()])
    (run_dir,) = Path(config.output.dir).iterdir()
    assert (run_dir / "history.jsonl").is_file() and not (run_dir / "checkpoints").exists()
    assert torch.get_num_threads() == before


def test_a_run_whose_report_failed_does_not_look_finished(make_config, monkeypatch):
    """metrics.json marks a finished run (studies reuse it, a sweep keeps its final model,
    serve accepts it): it is written last, after the report."""
    import fintune.recipes.classification as recipe

    def fail(*args, **kwargs):
        raise RuntimeError("a plot failed")

    monkeypatch.setattr(recipe, "write_report", fail)
    config = make_config(training={"max_steps": 1})
    with pytest.raises(RuntimeError, match="a plot failed"):
        run(config)
    (run_dir,) = Path(config.output.dir).iterdir()
    assert (run_dir / "history.jsonl").is_file() and not (run_dir / "metrics.json").exists()


def _run_whose_model_save_fails(make_config, monkeypatch, fail) -> tuple[Path, str]:
    """A one-step run whose model save raises as `fail` does: its folder and the error."""
    import fintune.recipes.classification as recipe

    monkeypatch.setattr(recipe, "save_classifier", fail)
    config = make_config(training={"max_steps": 1})
    with pytest.raises(FintuneError) as caught:
        run(config)
    (run_dir,) = Path(config.output.dir).iterdir()
    return run_dir, str(caught.value)


@pytest.mark.parametrize(
    ("code", "reason"), [(28, "No space left on device"), (13, "Permission denied")]
)
def test_a_disk_full_or_permission_error_names_the_file_and_the_run(
    make_config, monkeypatch, code, reason
):

    def fail(model, tokenizer, info, folder):
        raise OSError(code, reason, str(folder / "model.safetensors"))

    run_dir, message = _run_whose_model_save_fails(make_config, monkeypatch, fail)
    assert f"{reason}: {run_dir / 'model' / 'model.safetensors'}" in message
    assert f"{run_dir} is incomplete" in message and not (run_dir / "metrics.json").exists()


def test_a_full_disk_while_safetensors_writes_is_an_error_not_a_traceback(make_config, monkeypatch):
    """Checkpoints and the model are written by safetensors, whose error on a full disk is
    no OSError (measured on a 300 KiB tmpfs: a traceback, exit 1)."""
    from safetensors import SafetensorError

    def fail(model, tokenizer, info, folder):
        raise SafetensorError(
            "Error while serializing: I/O error: No space left on device (os error 28)"
        )

    run_dir, message = _run_whose_model_save_fails(make_config, monkeypatch, fail)
    assert message.startswith(f"the run stopped: No space left on device in {run_dir};")
    assert not (run_dir / "metrics.json").exists()


@pytest.mark.parametrize(
    "torch_message",
    [  # measured: torch.save of an optimizer state onto a full 300 KiB tmpfs
        "[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598",
        "PytorchStreamWriter failed writing file data/0: file write failed",
    ],
)
def test_a_full_disk_while_torch_saves_a_checkpoint_is_an_error_not_a_traceback(
    make_config, monkeypatch, torch_message
):
    """torch.save (a checkpoint's optimizer and scheduler states) quotes no OS error: a
    RuntimeError, which gave a traceback."""

    def fail(*args, **kwargs):
        raise RuntimeError(torch_message)

    monkeypatch.setattr(torch, "save", fail)
    config = make_config(training={"max_steps": 1})
    with pytest.raises(FintuneError) as caught:
        run(config)
    (run_dir,) = Path(config.output.dir).iterdir()
    message = str(caught.value)
    assert message.startswith(f"the run stopped: torch could not write a file in {run_dir} (")
    assert torch_message in message and "is the disk full or over its quota?" in message
    assert not (run_dir / "metrics.json").exists() and not (run_dir / "checkpoints").exists()


def test_metrics_json_contract(make_config):
    run_dir = run(make_config())
    metrics = _metrics(run_dir)
    for split, n in (("validation", 10), ("test", 24)):
        block = metrics[split]
        assert block["n"] == n
        for key in METRICS:
            low, high = block["ci95"][key]
            assert 0.0 <= low <= block[key] <= high <= 1.0
    assert set(metrics["train"]) >= {
        "runtime_s",
        "samples_per_s",
        "trainable_params",
        "total_params",
    }
    assert {"cpu_percent_avg", "cpu_percent_max", "rss_mib_avg", "rss_mib_max", "wall_s"} <= set(
        metrics["resources"]
    )
    for name in (
        "report.md",
        "loss.png",
        "learning_rate.png",
        "confusion.png",
        "config.yaml",
        "data.json",
        "environment.json",
        "history.jsonl",
        "predictions_test.csv",
    ):
        assert (run_dir / name).is_file(), name
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    assert any("loss" in r and "learning_rate" in r and "grad_norm" in r for r in history)
    assert any("eval_f1_macro" in r for r in history)
    best = max(r["eval_f1_macro"] for r in history if "eval_f1_macro" in r)
    assert metrics["train"]["best_checkpoint_metric"] == pytest.approx(best)
    kept = min(  # of ties, the lowest validation loss, then the first
        (r for r in history if r.get("eval_f1_macro") == best),
        key=lambda r: (r["eval_loss"], r["step"]),
    )
    assert metrics["train"]["best_checkpoint_step"] == kept["step"]
    assert metrics["train"]["best_checkpoint_epoch"] == kept["epoch"]
    environment = json.loads((run_dir / "environment.json").read_text())
    assert environment["seed"] == 7 and environment["packages"]["torch"]
    assert "source" in environment  # the git commit when fintune runs from a checkout
    data = json.loads((run_dir / "data.json").read_text())
    assert data["fingerprint"]["counts"]["train"]["n"] == 86
    assert metrics["data_sha256"] == data["fingerprint"]["sha256"]
    # 10 validation and 24 test examples: the report says the intervals are unreliable
    report = (run_dir / "report.md").read_text()
    assert "Small sample** (validation n = 10, test n = 24)" in report
    for label, row in metrics["test"]["per_class"].items():  # every number with its interval
        low, high = row["ci95"]["recall"]
        assert low <= row["recall"] <= high
        assert f"| {label} | {row['precision']:.4f} [" in report
    assert "`predictions_*.csv`, `model/`." in report


def test_a_tie_on_best_metric_keeps_the_checkpoint_with_the_lower_validation_loss(make_config):
    """On 10 validation examples macro F1 ties at epochs 4 and 5 while the loss still falls
    (these settings were found to tie): the kept model is the tied one with the lowest
    validation loss, and it is the model evaluated, though training went on to epoch 8."""
    run_dir = run(make_config(training={"epochs": 8, "learning_rate": 3e-3}))
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    evals = [r for r in history if "eval_f1_macro" in r]
    best = max(r["eval_f1_macro"] for r in evals)
    tied = [r for r in evals if r["eval_f1_macro"] == best]
    assert len({r["eval_loss"] for r in tied}) > 1  # a tie the loss breaks
    kept = min(tied, key=lambda r: (r["eval_loss"], r["step"]))
    assert kept is not tied[0]
    metrics = _metrics(run_dir)
    assert metrics["train"]["best_checkpoint_step"] == kept["step"]
    assert metrics["train"]["best_checkpoint_epoch"] == kept["epoch"]
    assert metrics["validation"]["loss"] == pytest.approx(kept["eval_loss"], abs=1e-5)
    report = " ".join((run_dir / "report.md").read_text().split())
    assert (
        f"| model evaluated | the best on validation f1_macro ({best:.4f}; of equal scores, "
        f"the lowest validation loss, {kept['eval_loss']:.4f}), at epoch "
        f"{int(kept['epoch'])} (step {kept['step']}) |" in report
    )


def test_report_shows_the_configured_level_fractional_epochs_and_no_model(make_config):
    config = make_config(
        evaluation={"confidence": 0.9},
        training={"max_steps": 2, "batch_size": 12},
    )
    config.output.save_model = False
    config.training.load_best_model = False
    run_dir = run(config)
    report = (run_dir / "report.md").read_text()
    test = _metrics(run_dir)["test"]
    assert _metrics(run_dir)["train"]["best_checkpoint_metric"] is None  # the last model
    assert "At the configured 90% level:" in report
    low, high = test["ci"]["accuracy"]
    assert f"| test | 24 | {test['accuracy']:.4f} {format_interval(low, high)}" in report
    assert "| epochs / optimiser steps | 0.25 / 2 |" in report  # 2 of 8 steps per epoch
    assert "| model evaluated | the last (training.load_best_model off) |" in report
    assert "(no `model/`: output.save_model off)" in report and not (run_dir / "model").exists()


def test_odd_texts_and_labels_survive_every_artifact(make_config, tmp_path):
    """A carriage return inside a text, labels with "|", "$", "<!--" or named like an average."""
    names = {"positive": "up|hausse", "negative": "<!-- $AAPL_down$", "neutral": "macro avg"}
    frame = make_sentences()
    frame["label"] = frame["label"].map(names)
    frame["text"] = [t.replace(" ", " \r ", 1) if i % 3 else t for i, t in enumerate(frame.text)]
    path = tmp_path / "odd.jsonl"
    frame.to_json(path, orient="records", lines=True)
    run_dir = run(make_config(data={"path": str(path), "labels": sorted(names.values())}))
    metrics = _metrics(run_dir)
    predictions = pd.read_csv(run_dir / "predictions_test.csv", dtype=str, keep_default_na=False)
    assert len(predictions) == metrics["test"]["n"]
    assert predictions["text"].str.contains("\r").any()
    assert set(predictions["label"]) | set(predictions["predicted"]) <= set(names.values())
    assert list(metrics["test"]["per_class"]) == sorted(names.values())
    report = (run_dir / "report.md").read_text(encoding="utf-8")
    row = next(line for line in report.splitlines() if line.startswith("| up\\|hausse |"))
    assert row.replace("\\|", "").count("|") == 6  # five cells: the label's "|" is escaped
    assert "<!--" not in report.replace("\\<!--", "")  # no comment hides the rest


def test_a_report_lists_the_labels_its_confusion_matrix_shows_as_ids(make_config, tmp_path):
    """Labels no font here draws (利空, 利好) are class ids on the matrix's axes: the report
    says which id is which."""
    names = {"positive": "利好", "negative": "利空", "neutral": "中性"}
    frame = make_sentences()
    frame["label"] = frame["label"].map(names)
    path = tmp_path / "zh.csv"
    frame.to_csv(path, index=False)
    data = {"path": str(path), "labels": sorted(names.values())}
    run_dir = run(make_config(data=data, training={"max_steps": 1}))
    labels = _metrics(run_dir)["labels"]
    said = ", ".join(f"{i} {label}" for i, label in enumerate(labels))
    assert f"no font here draws them): {said}." in (run_dir / "report.md").read_text("utf-8")


def test_predictions_hold_the_users_text_and_predict_again_as_recorded(make_config, tmp_path):
    """With data.cleaning on, `text` is the text as the data file has it (fed back to
    `fintune predict`, it is cleaned once, as in training); `cleaned_text` is what the model
    read."""
    from fintune.config.schema import CleaningConfig
    from fintune.data.clean import make_cleaner
    from fintune.predict import Predictor

    frame = make_sentences()
    frame["text"] = [
        f"<b>{t.upper()}</b>" if i % 2 else t.title() for i, t in enumerate(frame.text)
    ]
    path = tmp_path / "shouting.csv"
    frame.to_csv(path, index=False)
    cleaning = {"strip_html": True, "lowercase": True}
    run_dir = run(make_config(data={"path": str(path), "cleaning": cleaning}))
    predictions = pd.read_csv(run_dir / "predictions_test.csv", dtype=str, keep_default_na=False)
    assert set(predictions["text"]) <= set(frame["text"])
    clean = make_cleaner(CleaningConfig(**cleaning))
    assert list(predictions["cleaned_text"]) == [clean(t) for t in predictions["text"]]
    again = Predictor.from_run(run_dir)(list(predictions["text"]))
    assert [p["label"] for p in again] == list(predictions["predicted"])
    plain = pd.read_csv(run(make_config()) / "predictions_test.csv")
    assert list(plain.columns) == ["text", "label", "predicted", "confidence"]  # as before


def test_validation_and_test_loss_are_the_mean_cross_entropy(make_config):
    run_dir = run(make_config())
    metrics = _metrics(run_dir)
    frame = pd.read_csv(run_dir / "predictions_test.csv", keep_default_na=False)
    # the predicted label's probability bounds the loss: -log(p_true) >= -log(p_max) on average
    assert metrics["test"]["loss"] >= -np.log(frame["confidence"]).mean() - 1e-5 > 0
    assert metrics["validation"]["loss"] > 0
    for split in ("validation", "test"):  # with its interval, as every other number
        low, high = metrics[split]["ci95"]["loss"]
        assert low <= metrics[split]["loss"] <= high


def test_a_max_length_beyond_the_models_positions_fails_before_a_run_folder(make_config):
    config = make_config(model={"max_length": 80})  # the tiny BERT has 64 positions
    too_long = r"model.max_length: 80 is more than .* \(64 positions\)"
    with pytest.raises(FintuneError, match=too_long):
        run(config)
    assert not Path(config.output.dir).exists()
    prompt = make_config(
        model={"max_length": 50}, method={"name": "prompt", "num_virtual_tokens": 20}
    )
    with pytest.raises(FintuneError, match="less the prompt's 20 virtual tokens.*at most 44"):
        run(prompt)
    prefix = make_config(model={"max_length": 50}, method={"name": "prefix"})
    with pytest.raises(FintuneError, match="less the prefix's 20 virtual tokens.*at most 44"):
        run(prefix)
    # no max_length would do: it said 'set model.max_length to at most -36'
    many = make_config(method={"name": "prompt", "num_virtual_tokens": 100})
    with pytest.raises(FintuneError, match=r"method.num_virtual_tokens: 100 leaves .*at most 56$"):
        run(many)


def test_full_finetuning_learns_a_separable_task(make_config):
    """The verb alone decides the label, so a working pipeline must get (nearly) all right."""
    config = make_config(
        training={"epochs": 15, "learning_rate": 1e-3, "warmup_ratio": 0.1, "batch_size": 8}
    )
    run_dir = run(config)
    assert _metrics(run_dir)["test"]["accuracy"] >= 0.95
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in history if "loss" in r]
    assert losses[-1] < losses[0] / 3


def test_the_report_gives_the_last_logged_training_loss_beside_the_mean(make_config):
    """The report's "final training loss" was the Trainer's mean over every step: 0.578 for
    a quick-start run whose last logged loss was 0.168. metrics.json keeps that mean as
    final_train_loss, as before, and adds the last logged loss."""
    config = make_config(training={"epochs": 4, "learning_rate": 5e-3, "logging_steps": 2})
    run_dir = run(config)
    train = _metrics(run_dir)["train"]
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in history if "loss" in r]
    assert train["last_train_loss"] == pytest.approx(losses[-1])
    assert train["final_train_loss"] == pytest.approx(history[-1]["train_loss"])  # the mean
    assert train["last_train_loss"] < train["final_train_loss"]  # it learns
    report = (run_dir / "report.md").read_text()
    assert (
        f"| training loss: last logged (step {train['last_train_loss_step']}) / mean of all "
        f"steps | {train['last_train_loss']:.4f} / {train['final_train_loss']:.4f} |"
    ) in report


def test_the_report_gives_exact_intervals_for_per_class_rates_at_the_edge(make_config):
    """A class scored all right (or none) showed 1.0000 [1.000, 1.000] with no warning."""
    from fintune.evaluation.metrics import per_class_edge_note

    run_dir = run(make_config(training={"max_steps": 1}))  # a barely trained model
    metrics = _metrics(run_dir)
    note = per_class_edge_note(metrics["test"]["confusion_matrix"], metrics["labels"])
    assert note is not None  # this run has such a class (checked, so the test can fail)
    per_class = (run_dir / "report.md").read_text().split("### Per class")[1]
    assert note in per_class.split("## Training")[0]


def test_lora_parameter_count_matches_the_formula(make_config):
    # r=4 on query and value of 2 layers (64 wide): 2 layers * 2 modules * (64*4 + 4*64),
    # plus the head: pooler (64*64 + 64) and classifier (64*3 + 3).
    metrics = _metrics(run(make_config(method={"name": "lora", "r": 4})))
    assert metrics["train"]["trainable_params"] == 2 * 2 * (64 * 4 + 4 * 64) + 4160 + 195


def test_adapter_parameter_count_matches_the_formula(make_config):
    # reduction 16 on width 64 -> bottleneck 4: down (64*4 + 4) + up (4*64 + 64), per layer.
    metrics = _metrics(run(make_config(method={"name": "adapter", "reduction_factor": 16})))
    assert metrics["train"]["trainable_params"] == 2 * (260 + 320) + 4160 + 195


def test_same_config_and_seed_give_identical_metrics(make_config):
    config = make_config(method={"name": "lora"}, training={"epochs": 2})
    first, second = _metrics(run(config)), _metrics(run(config))
    assert first["validation"] == second["validation"]
    assert first["test"] == second["test"]
    assert first["train"]["final_train_loss"] == second["train"]["final_train_loss"]


def test_a_second_run_never_overwrites_the_first(make_config):
    config = make_config(training={"max_steps": 1})
    first, second = run(config), run(config)
    assert first != second and first.parent == second.parent
    assert (first / "metrics.json").is_file() and (second / "metrics.json").is_file()


def test_class_weights_change_training(make_config, tmp_path):
    skewed = tmp_path / "skewed.csv"
    from tests.conftest import make_sentences

    frame = make_sentences(40)
    frame = frame[(frame["label"] != "negative") | (frame.index % 4 == 0)]
    frame.to_csv(skewed, index=False)
    base = {"path": str(skewed), "labels": ["negative", "neutral", "positive"]}
    plain = _metrics(run(make_config(data=base)))
    weighted = _metrics(run(make_config(data=base, training={"class_weights": True})))
    assert plain["train"]["final_train_loss"] != weighted["train"]["final_train_loss"]


def test_weighted_loss_is_not_inflated_by_gradient_accumulation(make_config):
    """With a custom loss the Trainer stops dividing by accumulation steps; the first
    logged loss of 2 x 8 examples must match 1 x 16, not be twice as large."""

    def first_loss(**training):
        config = make_config(training={"class_weights": True, "max_steps": 2, **training})
        history = (run(config) / "history.jsonl").read_text().splitlines()
        return next(json.loads(r)["loss"] for r in history if '"loss"' in r)

    single = first_loss(batch_size=16)
    accumulated = first_loss(batch_size=8, gradient_accumulation_steps=2)
    assert accumulated == pytest.approx(single, rel=0.25)


def test_class_weights_shape_training_but_not_the_validation_loss():
    import torch
    import torch.nn.functional as F

    from fintune.training.trainer import weighted_loss

    logits, labels = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), torch.tensor([0, 1, 1])
    weights = torch.tensor([1.0, 3.0])
    loss = weighted_loss(weights)
    with torch.enable_grad():
        training = loss({"logits": logits}, labels)
    with torch.no_grad():  # how the Trainer evaluates
        evaluation = loss({"logits": logits}, labels)
    assert float(training) == pytest.approx(float(F.cross_entropy(logits, labels, weight=weights)))
    assert float(evaluation) == pytest.approx(float(F.cross_entropy(logits, labels)))
    assert float(training) != pytest.approx(float(evaluation))


def test_other_confidence_levels_add_a_ci_and_keep_ci95(make_config):
    metrics = _metrics(run(make_config(training={"max_steps": 2}, evaluation={"confidence": 0.8})))
    low95, high95 = metrics["test"]["ci95"]["accuracy"]
    low80, high80 = metrics["test"]["ci"]["accuracy"]
    assert low95 <= low80 <= high80 <= high95


def test_step_evaluation_early_stopping_and_schedule_options(make_config):
    config = make_config(
        training={
            "epochs": 20,
            "learning_rate": 1e-6,  # too small to improve: early stopping must end the run
            "eval_strategy": "steps",
            "eval_steps": 2,
            "early_stopping_patience": 2,
            "best_metric": "loss",
            "scheduler": "cosine",
            "warmup_steps": 2,
        }
    )
    run_dir = run(config)
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    eval_steps = [r["step"] for r in history if "eval_loss" in r]
    assert eval_steps[:3] == [2, 4, 6]
    train = _metrics(run_dir)["train"]
    assert train["steps"] < 20 * 6  # stopped well before 20 epochs
    # and says so: "2 / 12" read as a run configured that short
    assert train["stopped_early"] is True
    row = f"| epochs / optimiser steps | {train['epochs']:.4g} / {train['steps']} (stopped early: "
    assert (
        row + "2 evaluations in a row without a better checkpoint) |"
        in (run_dir / "report.md").read_text()
    )


class _TiedScoreFallingLoss(TrainerCallback):
    """Every evaluation ties on best_metric with a lower validation loss than the last: by
    the tie rule each one is a better checkpoint than all before it."""

    def __init__(self):
        self.evaluations = 0

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        self.evaluations += 1
        metrics["eval_f1_macro"], metrics["eval_loss"] = 0.5, 1.0 - 0.1 * self.evaluations


def test_early_stopping_counts_a_tie_with_a_lower_loss_as_an_improvement(make_config):
    """Patience counts evaluations without a better checkpoint, by the rule that chooses
    the checkpoint: the run is not stopped while its kept checkpoint keeps improving."""
    config = make_config(training={"epochs": 4, "early_stopping_patience": 2})
    config.output.save_model = False
    train = _metrics(run(config, callbacks=[_TiedScoreFallingLoss()]))["train"]
    assert train["steps"] == 4 * 6 and train["best_checkpoint_step"] == 4 * 6
    assert train["stopped_early"] is False


def test_texts_cut_at_max_length_are_counted_and_warned_about(make_config, capsys):
    config = make_config(model={"max_length": 8}, training={"max_steps": 1})
    config.output.save_model = False
    run_dir = run(config)
    report = json.loads((run_dir / "data.json").read_text())["report"]
    test = pd.read_csv(run_dir / "predictions_test.csv", keep_default_na=False)
    cut = int((test["text"].str.split().str.len() + 2 > 8).sum())  # words + [CLS] [SEP]
    assert (test["text"].str.split().str.len() + 2 == 8).any()  # exactly 8: not cut
    assert 0 < report["truncated"]["test"] == cut
    assert report["truncated"]["max_length"] == 8 and report["truncated"]["train"] > 0
    err = " ".join(capsys.readouterr().err.split())
    assert f"{cut} of {len(test)} test texts are longer than model.max_length (8 tokens)" in err
    assert "raise model.max_length" in err
    assert (
        "- texts cut at model.max_length (8 tokens): train " in (run_dir / "report.md").read_text()
    )
    untouched = run(make_config(training={"max_steps": 1}))  # max_length 32: nothing cut
    data = json.loads((untouched / "data.json").read_text())["report"]["truncated"]
    assert data == {"max_length": 32, "train": 0, "validation": 0, "test": 0}
    assert "longer than model.max_length" not in capsys.readouterr().err


def test_a_projected_prefix_keeping_its_best_checkpoint_is_refused_before_the_data(make_config):
    """PEFT saves a projected prefix's checkpoint as the prefixes it computes, which the
    Trainer cannot load back into the projection it trains: every such run with
    load_best_model (the default) trained to the end, then failed with a RuntimeError."""
    from fintune.predict import Predictor
    from fintune.recipes.classification import setup

    prefix = {"name": "prefix", "prefix_projection": True, "num_virtual_tokens": 4}
    config = make_config(method=prefix, data={"path": "missing.csv"})  # never read
    with pytest.raises(FintuneError, match=r"method.prefix_projection: .*load_best_model: false"):
        setup(config)
    run_dir = run(make_config(method=prefix, training={"load_best_model": False}))
    recorded = pd.read_csv(run_dir / "predictions_test.csv")
    results = Predictor.from_run(run_dir, device="cpu")(list(recorded["text"]))
    assert [r["confidence"] for r in results] == pytest.approx(
        list(recorded["confidence"]), abs=1e-5
    )


def test_the_precision_a_run_trained_in_is_recorded_not_only_auto(make_config, monkeypatch):
    """precision: auto trains in bf16 on a CUDA GPU that has it, else in fp32; config.yaml
    keeps `auto`, and nothing in the run said which it was."""
    from fintune.training import trainer

    run_dir = run(make_config(training={"max_steps": 1}))
    assert _metrics(run_dir)["training_precision"] == "fp32"
    assert (
        "device cpu, training precision fp32, weights loaded in float32."
        in (run_dir / "report.md").read_text()
    )
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    auto = make_config().training
    assert trainer.resolved_precision(auto, "cuda") == "bf16"
    assert trainer.resolved_precision(auto, "cpu") == "fp32"


def test_predictions_csv_gives_the_label_the_metrics_counted(tmp_path):
    """metrics.json scores the largest logit; predictions_*.csv took the largest softmax
    probability, which rounds two logits a float32 step apart to one value and then picks
    the first: the file's label differed from the one counted (19% of such near ties)."""
    from fintune.data import PreparedData
    from fintune.recipes.classification import write_predictions

    low = np.float32(0.1)
    logits = np.array([[low, np.nextafter(low, np.float32(1)), -3.0]], dtype=np.float32)
    frame = pd.DataFrame({"text": ["sales rose"], "label": [1]})
    data = PreparedData({"test": frame}, ["negative", "neutral", "positive"])
    write_predictions(tmp_path / "p.csv", data, "test", logits)
    assert pd.read_csv(tmp_path / "p.csv")["predicted"].tolist() == ["neutral"]
    assert logits.argmax(-1).tolist() == [1]  # what evaluate_predictions is given


@pytest.mark.parametrize(
    ("training", "steps"),
    [
        ({"epochs": 2}, 12),
        ({"max_steps": 5}, 5),
        ({"epochs": 2, "gradient_accumulation_steps": 4}, 4),
    ],
)
def test_warmup_longer_than_the_run_is_warned_about_before_training(
    make_config, capsys, training, steps
):
    """86 training texts at batch 16 are 6 optimiser steps an epoch (2 with accumulation 4,
    the last step short): a warm-up of 50 steps was taken silently, and the learning rate
    never rose past a fraction of training.learning_rate."""
    from fintune.recipes.classification import setup

    setup(make_config(training={**training, "warmup_steps": 50}))
    err = " ".join(capsys.readouterr().err.split())
    assert f"training.warmup_steps (50) is more than the run's {steps} optimiser steps" in err
    assert f"peaks at {(steps - 1) / 50:.0%} of training.learning_rate" in err
    setup(make_config(training={**training, "warmup_steps": steps - 1}))
    assert "warmup_steps" not in capsys.readouterr().err


@pytest.mark.parametrize(
    ("training", "said"),
    [
        ({"warmup_steps": 6}, "training.warmup_steps (6) is all of the run's 6 optimiser steps"),
        (
            {"warmup_ratio": 0.9},
            "training.warmup_ratio (0.9) makes a warm-up of all of the run's 6",
        ),
    ],
)
def test_a_warmup_as_long_as_the_run_is_warned_about_too(make_config, capsys, training, said):
    """The rate reaches training.learning_rate at the step after the warm-up's last: a
    warm-up of all 6 steps peaked at 83% of it, unwarned (the check was 'more than')."""
    from fintune.recipes.classification import setup

    setup(make_config(training={"epochs": 1, **training}))
    err = " ".join(capsys.readouterr().err.split())
    assert said in err and "peaks at 83% of training.learning_rate" in err


def test_a_hub_base_s_commit_is_recorded_so_an_unpinned_run_is_pinned_after_it(
    make_config, offline_hub
):
    """A hub model without model.revision was recorded by name only: an upstream push
    later changed what a rerun trained, and nothing said which weights this run had. (A
    hub cache made here stands in for the hub: the load resolves the id offline in it;
    transformers 5 does not note the commit on the config, which was read before.)"""
    commit = "c0ffee" * 6 + "c0ff"
    offline_hub(commit)
    config = make_config(
        model={"name": "org/tiny-bert"}, method={"name": "lora"}, training={"max_steps": 1}
    )
    environment = json.loads((run(config) / "environment.json").read_text())
    assert environment["model_commit"] == commit
    config = make_config(method={"name": "lora"}, training={"max_steps": 1})
    environment = json.loads((run(config) / "environment.json").read_text())
    assert environment["model_commit"] is None  # a local folder: read as it is


def test_samples_per_second_of_a_run_timed_at_0_is_none_not_0():
    """The Trainer rounds its runtime to 0.1 ms: a run timed at 0 got samples/s 0.0, a
    rate the run did not have."""
    from types import SimpleNamespace

    from fintune.config import validate_config
    from fintune.recipes.classification import samples_per_s

    config = validate_config({"name": "x", "data": {"path": "d.csv"}})
    timed = SimpleNamespace(global_step=2, metrics={"train_runtime": 0.0})
    assert samples_per_s(timed, config, 40) is None
    timed.metrics["train_runtime"] = 0.5
    assert samples_per_s(timed, config, 40) == 64.0  # 2 batches of 16


def test_the_dtype_the_weights_computed_in_is_recorded(make_config):
    """With model.dtype bfloat16 the frozen base computes in bfloat16, though
    training_precision (the Trainer's mixed precision) says fp32, and under model.dtype auto
    nothing said what the checkpoint's weights loaded as."""
    config = make_config(method={"name": "lora"}, model={"dtype": "bfloat16"})
    config.training.max_steps = 1
    run_dir = run(config)
    metrics = _metrics(run_dir)
    assert (metrics["training_precision"], metrics["model_dtype"]) == ("fp32", "bfloat16")
    report = (run_dir / "report.md").read_text()
    assert "training precision fp32, weights loaded in bfloat16." in report
    assert _metrics(run(make_config(training={"max_steps": 1})))["model_dtype"] == "float32"
