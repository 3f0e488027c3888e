"""The training collator (a decoder's padding must not move a text's positions), the
weighted loss and the training arguments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, Trainer

from fintune.models import load_classifier
from fintune.recipes.classification import run
from fintune.training.trainer import (
    SelectingTrainer,
    collator,
    count_prompt_positions,
    count_truncated,
    is_better_checkpoint,
    training_arguments,
    weighted_loss,
)

LABELS = ["negative", "neutral", "positive"]


def _logits_alone_and_padded(config):
    model, tokenizer, _ = load_classifier(config, LABELS, "cpu")
    model.eval()
    count_prompt_positions(model, tokenizer)
    collate = collator(tokenizer, model)
    short = dict(tokenizer("profit fell"))
    long = dict(tokenizer("the group reported that earnings climbed and margin improved"))
    with torch.no_grad():
        alone = model(**collate([short])).logits[0]
        padded_batch = collate([short, long])
        padded = model(**padded_batch).logits[0]
    return alone, padded, padded_batch


@pytest.mark.parametrize("backbone", ["tiny_gpt2", "tiny_llama"])
@pytest.mark.parametrize("method", ["full", "lora"])
def test_a_left_padded_text_keeps_its_positions(make_config, request, backbone, method):
    model = request.getfixturevalue(backbone)
    config = make_config(model={"name": str(model)}, method={"name": method})
    alone, padded, batch = _logits_alone_and_padded(config)
    assert batch["position_ids"][0].tolist()[-2:] == [0, 1]  # counted from the first token
    assert torch.allclose(alone, padded, atol=1e-5)


@pytest.mark.parametrize("backbone", ["tiny_gpt2", "tiny_llama"])
def test_prefix_tuning_pads_decoders_on_the_right(make_config, request, backbone):
    model = request.getfixturevalue(backbone)
    config = make_config(model={"name": str(model)}, method={"name": "prefix"})
    alone, padded, batch = _logits_alone_and_padded(config)
    assert batch["attention_mask"][0].tolist()[-1] == 0  # the short text, padded at its end
    assert torch.allclose(alone, padded, atol=1e-5)


@pytest.mark.parametrize("backbone", ["tiny_gpt2", "tiny_llama"])
def test_prompt_tuning_keeps_a_left_padded_texts_positions(make_config, request, backbone):
    """PEFT drops position ids for prompt learning (with a warning), so the collator sends
    none; the base model counts them from the text itself."""
    model = request.getfixturevalue(backbone)
    config = make_config(model={"name": str(model)}, method={"name": "prompt"})
    alone, padded, batch = _logits_alone_and_padded(config)
    assert "position_ids" not in batch
    assert batch["attention_mask"][0].tolist()[0] == 0  # the short text, padded on the left
    assert torch.allclose(alone, padded, atol=1e-5)


def test_an_encoder_is_padded_on_the_right_without_position_ids(make_config):
    _, _, batch = _logits_alone_and_padded(make_config())
    assert "position_ids" not in batch
    assert batch["attention_mask"][0].tolist()[-1] == 0  # the short text, padded at its end


def test_the_weighted_training_loss_is_the_weighted_sum_over_the_accumulated_examples():
    """Training passes num_items_in_batch (all examples of the accumulated batch): the loss
    is sum(w[y] * CE) / N, so each micro-batch's share adds up to the batch's mean."""
    logits = torch.tensor([[2.0, 0.1, -1.0], [0.3, 0.2, 0.1], [-1.0, 0.5, 2.5]])
    labels = torch.tensor([0, 1, 2])
    weights = torch.tensor([0.5, 1.0, 2.0])
    per_example = torch.nn.functional.cross_entropy(logits, labels, reduction="none")
    expected = (weights[labels] * per_example).sum() / 6  # 3 of 6 accumulated examples
    got = weighted_loss(weights)({"logits": logits}, labels, num_items_in_batch=6)
    assert torch.allclose(got, expected)
    with torch.no_grad():  # evaluation: the plain mean cross-entropy
        plain = weighted_loss(weights)({"logits": logits}, labels)
    assert torch.allclose(plain, per_example.mean())


def test_a_warmup_ratio_becomes_a_fraction_of_all_steps(make_config):
    """transformers 5 has no warmup_ratio: a float warmup_steps below 1 is the fraction."""
    config = make_config(training={"warmup_ratio": 0.5, "max_steps": 8, "logging_steps": 1})
    args = training_arguments(config.training, Path("unused"), 0, "cpu")
    assert args.warmup_steps == 0.5
    run_dir = run(config)
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    rates = [r["learning_rate"] for r in history if "learning_rate" in r]
    peak = rates.index(max(rates))
    # logged as each step ran: 0, 1/4, 2/4, 3/4 of the rate over 4 warm-up steps, then down
    assert len(rates) == 8 and peak == 4 and rates[1] == pytest.approx(0.25 * rates[4])
    assert rates[:5] == sorted(rates[:5]) and rates[4:] == sorted(rates[4:], reverse=True)


@pytest.mark.parametrize("specials", [0, 2], ids=["decoder", "encoder"])
def test_only_texts_longer_than_max_length_count_as_cut(tiny_bert, tiny_llama, specials):
    """With 8 tokens allowed (special tokens included), texts of 7 and 8 tokens are whole;
    one of 9 is cut."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama if specials == 0 else tiny_bert)
    texts = [" ".join(["profit"] * (n - specials)) for n in (7, 8, 9)]
    assert [len(ids) for ids in tokenizer(texts)["input_ids"]] == [7, 8, 9]
    assert count_truncated(texts, tokenizer, 8) == 1
    assert count_truncated(texts, tokenizer, 9) == 0
    assert count_truncated(texts, tokenizer, 7) == 2


def test_a_tie_on_macro_f1_is_a_tie_whatever_order_its_classes_were_summed_in():
    """Two evaluations with the same macro F1 (337/420) scored 0.80238095238095230 and
    0.80238095238095250 (the per-class F1s summed in another order): the tie rule was
    decided by 2 ulp of rounding, not by the validation loss (found by a review)."""
    from types import SimpleNamespace

    import numpy as np

    from fintune.training.trainer import compute_metrics

    truth = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
    a, b = (
        compute_metrics(3)(SimpleNamespace(predictions=np.eye(3)[p], label_ids=truth))["f1_macro"]
        for p in ([0, 0, 0, 1, 1, 1, 1, 2, 1, 2], [1, 0, 0, 0, 1, 1, 1, 0, 2, 2])
    )
    assert a != b and a == pytest.approx(337 / 420, abs=1e-15)
    assert is_better_checkpoint(a, 0.4, (b, 0.9), greater_is_better=True)
    assert not is_better_checkpoint(b, 0.9, (a, 0.4), greater_is_better=True)
    assert is_better_checkpoint(b + 1e-9, 0.9, (a, 0.4), greater_is_better=True)  # not a tie


def test_cosine_with_restarts_restarts_cycles_times(make_config):
    """scheduler: cosine_with_restarts took transformers' one cycle: the same schedule as
    cosine, step for step (found by a review). training.cycles now sets it."""
    config = make_config(
        training={"max_steps": 12, "scheduler": "cosine_with_restarts", "cycles": 3}
    )
    config.training.logging_steps = 1
    config.output.save_model = False
    history = (run(config) / "history.jsonl").read_text().splitlines()
    rates = [r["learning_rate"] for r in map(json.loads, history) if "loss" in r]
    peaks = [i for i in range(1, len(rates)) if rates[i] > rates[i - 1]]
    assert len(rates) == 12 and len(peaks) == 2, rates  # two restarts: three cycles


def test_a_checkpoint_tied_on_best_metric_is_chosen_by_its_validation_loss():
    assert is_better_checkpoint(0.8, 0.9, None, greater_is_better=True)
    assert is_better_checkpoint(0.8, 0.9, (0.7, 0.1), greater_is_better=True)
    assert not is_better_checkpoint(0.6, 0.1, (0.7, 0.9), greater_is_better=True)
    assert is_better_checkpoint(0.7, 0.5, (0.7, 0.6), greater_is_better=True)  # tie: lower loss
    assert not is_better_checkpoint(0.7, 0.6, (0.7, 0.6), greater_is_better=True)  # the earlier
    assert is_better_checkpoint(0.4, 0.4, (0.5, 0.5), greater_is_better=False)  # loss itself
    # the Trainer still chooses through the method SelectingTrainer overrides
    assert "_determine_best_metric" in vars(Trainer)
    assert "_determine_best_metric" in vars(SelectingTrainer)


@pytest.mark.parametrize(
    ("precision", "native_bf16", "message"),
    [
        ("fp16", True, "training.precision: fp16 needs a CUDA GPU"),
        ("bf16", False, "training.precision: bf16 .* no native bfloat16"),
    ],
)
def test_a_precision_the_cpu_cannot_do_is_refused_before_the_model_loads(
    make_config, monkeypatch, tmp_path, precision, native_bf16, message
):
    """fp16 on a CPU trained under emulated float16 autocast, without a word."""
    from fintune import predict
    from fintune.errors import FintuneError
    from fintune.recipes import classification

    monkeypatch.setattr(predict, "cpu_has_native_bf16", lambda: native_bf16)
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("loaded"))
    config = make_config(training={"precision": precision, "device": "cpu"})
    with pytest.raises(FintuneError, match=message):
        run(config)
    assert not any(Path(config.output.dir).glob("*"))  # no run directory either


@pytest.mark.parametrize(
    ("compute_dtype", "native_bf16", "message"),
    [
        ("float16", True, "method.compute_dtype: float16 needs a CUDA GPU"),
        ("bfloat16", False, "method.compute_dtype: bfloat16 .* no native bfloat16"),
    ],
)
@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_qlora_compute_dtype_the_cpu_cannot_do_is_refused_before_the_model_loads(
    make_config, monkeypatch, compute_dtype, native_bf16, message, command
):
    """The 4-bit base is dequantised to compute_dtype for every matmul: in a half dtype the
    CPU lacks, each is emulated, and the run is slow without a word."""
    from fintune import predict
    from fintune.errors import FintuneError
    from fintune.recipes import classification

    monkeypatch.setattr(predict, "cpu_has_native_bf16", lambda: native_bf16)
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("loaded"))
    monkeypatch.setattr(classification, "prepare_data", lambda *a, **k: pytest.fail("data"))
    method = {"name": "qlora", "compute_dtype": compute_dtype}
    config = make_config(method=method, training={"device": "cpu"})
    check = classification.setup if command == "validate" else run
    with pytest.raises(FintuneError, match=message):
        check(config)
    assert not any(Path(config.output.dir).glob("*"))


@pytest.mark.parametrize("backbone", ["tiny_bert", "tiny_llama"])
def test_gradient_accumulation_logs_the_mean_loss_not_its_sum(make_config, request, backbone):
    """The models' own loss ignores num_items_in_batch though the Trainer believes it scaled
    for accumulation: without fintune's loss each optimiser step summed its micro-batches'
    means (4 x 1.1 logged, and gradients 4 times too large against max_grad_norm). 86
    examples in batches of 16 and 4 per step: a step of 4 batches, then one of 2."""
    config = make_config(
        model={"name": str(request.getfixturevalue(backbone))},
        training={"learning_rate": 1e-6, "gradient_accumulation_steps": 4, "logging_steps": 1},
    )
    config.output.save_model = False
    history = (run(config) / "history.jsonl").read_text().splitlines()
    losses = [json.loads(r)["loss"] for r in history if '"loss"' in r]
    assert len(losses) == 2
    assert losses == pytest.approx([1.1, 1.1], abs=0.15)  # ln 3 at a random start


def test_samples_per_second_counts_the_examples_trained_not_full_steps(make_config):
    """86 examples, batches of 16, 4 per step: an epoch is a step of 64 examples and one of
    22. Four steps train 172 examples; the Trainer counted max_steps x 64 = 256."""
    config = make_config(training={"max_steps": 4, "gradient_accumulation_steps": 4})
    config.output.save_model = False
    run_dir = run(config)
    train = json.loads((run_dir / "metrics.json").read_text())["train"]
    assert train["samples_per_s"] * train["runtime_s"] == pytest.approx(172, rel=0.01)
    # history.jsonl (and MLflow, which logs it) kept the Trainer's 256 beside it
    history = (run_dir / "history.jsonl").read_text()
    assert "train_runtime" in history
    assert "train_samples_per_second" not in history and "train_steps_per_second" not in history


@pytest.mark.parametrize(
    ("steps", "accumulation", "expected"),
    [(1, 4, 64), (2, 4, 86), (3, 4, 150), (4, 4, 172), (5, 1, 80), (6, 1, 86), (7, 1, 102)],
)
def test_examples_trained_follow_each_epochs_short_last_batch(steps, accumulation, expected):
    from fintune.training.trainer import examples_trained

    assert examples_trained(steps, 86, batch_size=16, accumulation=accumulation) == expected


@pytest.mark.parametrize(
    ("step", "accumulation", "expected"),
    [(1, 1, 1 / 6), (6, 1, 1.0), (7, 1, 1 + 1 / 6), (1, 4, 4 / 6), (2, 4, 1.0), (3, 4, 1 + 4 / 6)],
)
def test_epoch_at_a_step_is_the_trainers(step, accumulation, expected):
    """86 examples in batches of 16 are 6 batches an epoch; with 4 a step, the second step
    reads the last 2 and ends the epoch."""
    from fintune.training.trainer import epoch_at

    assert epoch_at(step, 86, batch_size=16, accumulation=accumulation) == pytest.approx(expected)


def test_epoch_at_each_step_is_the_one_the_trainer_logs(make_config):
    from fintune.training.trainer import epoch_at

    config = make_config(
        training={"epochs": 2, "gradient_accumulation_steps": 4, "logging_steps": 1}
    )
    config.output.save_model = False
    lines = (run(config) / "history.jsonl").read_text().splitlines()
    logged = {r["step"]: r["epoch"] for r in map(json.loads, lines) if "loss" in r}
    assert list(logged) == [1, 2, 3, 4]
    assert logged == {s: pytest.approx(epoch_at(s, 86, 16, 4)) for s in logged}


def test_how_often_a_run_evaluates_does_not_change_what_it_trains(make_config):
    """Each evaluation's data loader drew a seed from torch's generator, which moved every
    later dropout mask: evaluating every 3 steps instead of every epoch trained another
    model (step 4's loss already differed)."""

    def losses(**evaluation) -> list[float]:
        training = {"epochs": 2, "learning_rate": 1e-3, "batch_size": 8, "logging_steps": 1}
        config = make_config(training={**training, "load_best_model": False, **evaluation})
        config.output.save_model = False
        history = (run(config) / "history.jsonl").read_text().splitlines()
        return [json.loads(r)["loss"] for r in history if '"loss"' in r]

    by_epoch = losses()
    assert len(by_epoch) > 4
    assert losses(eval_strategy="steps", eval_steps=3) == by_epoch


def test_each_evaluations_training_loss_is_the_mean_over_its_own_steps(make_config):
    """Logged every 10 steps alone, an epoch of 6 steps showed step 1's loss for its own,
    the next epoch's mean began in the one before, and the last showed none: the sweep
    table's train-versus-validation columns compared other steps than they said."""
    from fintune.study.sweep_report import per_epoch

    def history(logging_steps: int) -> list[dict]:
        training = {"epochs": 3, "batch_size": 16, "logging_steps": logging_steps}
        config = make_config(training={**training, "load_best_model": False})
        config.output.save_model = False
        lines = (run(config) / "history.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    every_step = [r for r in history(1) if "loss" in r]
    steps_per_epoch = max(r["step"] for r in every_step) // 3
    assert steps_per_epoch not in (1, 10) and 10 % steps_per_epoch != 0  # windows would agree
    expected = [
        np.mean(
            [
                r["loss"]
                for r in every_step
                if e * steps_per_epoch < r["step"] <= (e + 1) * steps_per_epoch
            ]
        )
        for e in range(3)
    ]
    rows = per_epoch(history(10))
    assert [row["train_loss"] for row in rows] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("command", ["validate", "run"])
def test_weights_in_one_half_dtype_computed_in_the_other_are_refused_before_loading(
    make_config, monkeypatch, command
):
    """model.dtype float16 with training.precision bf16 passed validate, and the run died at
    the first training step: 'mixed dtype (CPU): expect parameter to have scalar type of
    Float' in BERT's layer norm."""
    from fintune import predict
    from fintune.errors import FintuneError
    from fintune.recipes import classification

    monkeypatch.setattr(predict, "cpu_has_native_bf16", lambda: True)
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("loaded"))
    monkeypatch.setattr(classification, "prepare_data", lambda *a, **k: pytest.fail("data"))
    config = make_config(
        model={"dtype": "float16"}, method="lora", training={"precision": "bf16", "device": "cpu"}
    )
    check = classification.setup if command == "validate" else run
    with pytest.raises(FintuneError, match=r"training.precision: bf16 computes in bfloat16, but "):
        check(config)


def test_an_auto_precision_is_checked_against_the_weights_dtype_as_it_resolves():
    from fintune.config.schema import TrainingConfig
    from fintune.errors import FintuneError
    from fintune.training import trainer

    auto = TrainingConfig()
    trainer.check_precision_fits_dtype(auto, "float16", "cpu")  # fp32 on a CPU
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
        with pytest.raises(
            FintuneError, match=r"precision: auto \(bf16 on this GPU\) computes in bfloat16"
        ):
            trainer.check_precision_fits_dtype(auto, "float16", "cuda")
        trainer.check_precision_fits_dtype(auto, "bfloat16", "cuda")
    fp16 = TrainingConfig(precision="fp16")
    with pytest.raises(FintuneError, match=r"set training.precision to bf16 or fp32"):
        trainer.check_precision_fits_dtype(fp16, "bfloat16", "cuda")
