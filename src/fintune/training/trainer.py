"""The Hugging Face Trainer, set up for classification: dynamic padding, length-grouped
batches, optional class-weighted loss, per-step history as JSONL, early stopping and
best-model selection on a validation metric.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from datasets import Dataset
from transformers import (
    DataCollatorWithPadding,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from fintune import interrupt
from fintune.config.schema import MethodConfig, QLoraMethod, TrainingConfig
from fintune.errors import FintuneError
from fintune.evaluation.inference import computing_as_saved
from fintune.evaluation.metrics import confusion, metrics_from_confusion
from fintune.run_dir import to_json

TRAINERS_THROUGHPUT = {"train_samples_per_second", "train_steps_per_second"}


class JsonlHistory(TrainerCallback):
    """Appends every Trainer log (loss, learning rate, grad norm, eval metrics) as a line."""

    def __init__(self, path: Path):
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):
        # the Trainer's throughput counts every step as a full batch (examples_trained
        # counts each epoch's short last one): metrics.json's samples_per_s is the figure
        logs = {k: v for k, v in (logs or {}).items() if k not in TRAINERS_THROUGHPUT}
        if logs:
            self.write(state.global_step, state.epoch, logs)

    def write(self, step: int, epoch: float | None, logs: dict[str, Any]) -> None:
        record = {"step": step, "epoch": epoch, "time": time.time(), **logs}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(to_json(record) + "\n")


def diverged_fix(args: TrainingArguments) -> str:
    """What to change: float16's narrow range overflows where fp32 and bf16 do not."""
    return "lower training.learning_rate" + (", or use precision fp32 or bf16" if args.fp16 else "")


class DivergenceGuard(TrainerCallback):
    """Stops a run whose training or validation loss is no longer a number (NaN or
    infinity): everything after it would be a model predicting one class."""

    def on_log(self, args, state, control, logs=None, **kwargs):
        for key, what in (("loss", "training"), ("eval_loss", "validation")):
            value = (logs or {}).get(key)
            if isinstance(value, float) and not math.isfinite(value):
                raise FintuneError(
                    f"training diverged: the {what} loss is {value} at step "
                    f"{state.global_step} (learning rate {logs.get('learning_rate', 'n/a')}); "
                    f"{diverged_fix(args)}"
                )


class LogAtEvaluation(TrainerCallback):
    """Logs the training loss at each evaluation too, so that a logged mean ends where a
    validation starts: every `logging_steps` alone, an epoch of 6 steps had step 1's loss
    for its own, the next epoch's mean began in the one before, and the last had none."""

    def on_step_end(self, args, state, control, **kwargs):
        control.should_log = control.should_log or control.should_evaluate

    on_epoch_end = on_step_end


class InterruptCheck(TrainerCallback):
    """Stops at the next step after a Ctrl+C whose exception Python dropped (raised in a
    garbage collection callback or a __del__), instead of training on."""

    def on_step_end(self, args, state, control, **kwargs):
        interrupt.check()


def tokenize(frame, tokenizer, max_length: int) -> Dataset:
    """Truncate to max_length but do not pad: the collator pads each batch to its own
    longest example."""
    dataset = Dataset.from_pandas(frame[["text", "label"]], preserve_index=False)

    def encode(batch: dict[str, list]) -> dict[str, Any]:
        return tokenizer(batch["text"], truncation=True, max_length=max_length)

    dataset = dataset.map(encode, batched=True, remove_columns=["text"], desc="Tokenising")
    return dataset.rename_column("label", "labels")


def count_truncated(texts: Iterable[str], tokenizer, max_length: int) -> int:
    """Texts longer than max_length tokens (special tokens included), which training cuts.
    Tokenised to one token more than the limit, so a text exactly max_length long is not
    counted, and a long text is not tokenised in full."""
    ids = tokenizer(list(texts), truncation=True, max_length=max_length + 1)["input_ids"]
    return sum(len(one) > max_length for one in ids)


def class_weights(labels: np.ndarray, k: int) -> torch.Tensor:
    """Inverse frequency, scaled so a balanced split gives weight 1 per class."""
    counts = np.bincount(labels, minlength=k).astype(float)
    weights = np.where(counts > 0, counts.sum() / (k * np.maximum(counts, 1)), 0.0)
    return torch.tensor(weights, dtype=torch.float32)


def weighted_loss(weights: torch.Tensor | None = None):
    """Cross-entropy for training, class-weighted when `weights` are given. The models' own
    loss is each micro-batch's mean, though the Trainer (seeing they accept
    num_items_in_batch) no longer divides it by the accumulation steps: a step of 4
    micro-batches would log and backpropagate 4 times the mean. Here the sum is divided by
    the examples in the whole accumulated batch (num_items_in_batch), a shorter last step
    included. Evaluation (run without gradients) gets the plain cross-entropy: the
    validation loss that checkpoint selection, pruning and metrics.json compare across runs
    with and without weights."""

    def loss(outputs, labels, num_items_in_batch=None):
        logits = outputs["logits"] if isinstance(outputs, dict) else outputs[0]
        weighted = weights is not None and torch.is_grad_enabled()
        weight = weights.to(logits.device) if weighted else None
        if num_items_in_batch is None:
            return torch.nn.functional.cross_entropy(logits.float(), labels, weight=weight)
        total = torch.nn.functional.cross_entropy(
            logits.float(), labels, weight=weight, reduction="sum"
        )
        return total / num_items_in_batch

    return loss


def examples_trained(steps: int, examples: int, batch_size: int, accumulation: int) -> int:
    """Training examples seen in `steps` optimiser steps. An epoch's last batch is short and
    ends its last step: the Trainer's count for max_steps (steps x the full batch) does not
    see that."""
    per_epoch = math.ceil(math.ceil(examples / batch_size) / accumulation)
    epochs, steps = divmod(steps, per_epoch)
    return epochs * examples + min(examples, steps * batch_size * accumulation)


def epoch_at(step: int, examples: int, batch_size: int, accumulation: int) -> float:
    """The epoch the Trainer records at the end of optimiser step `step` (1-based): epochs
    done plus the fraction of this epoch's batches read, its short last step included."""
    batches = math.ceil(examples / batch_size)
    per_epoch = math.ceil(batches / accumulation)
    epochs, index = divmod(step - 1, per_epoch)
    return epochs + min((index + 1) * accumulation, batches) / batches


def optimiser_steps(config: TrainingConfig, examples: int) -> int:
    """The optimiser steps a run takes, counted as the Trainer counts them: max_steps, else
    `epochs` of one step per `gradient_accumulation_steps` batches (a short last one too)."""
    if config.max_steps:
        return config.max_steps
    batches = math.ceil(examples / config.batch_size)
    per_epoch = max(math.ceil(batches / config.gradient_accumulation_steps), 1)
    return math.ceil(config.epochs * per_epoch)


def warmup_note(config: TrainingConfig, examples: int) -> str | None:
    """A warm-up as long as the run or longer, which never reaches training.learning_rate:
    the rate reaches it at the step after the warm-up's last."""
    steps = optimiser_steps(config, examples)
    warmup = config.warmup_steps or math.ceil(config.warmup_ratio * steps)
    if warmup < steps:
        return None
    if config.warmup_steps:
        given = f"training.warmup_steps ({warmup}) is {'more than' if warmup > steps else 'all of'}"
        fix = "lower warmup_steps, or give warmup_ratio"
    else:
        given = f"training.warmup_ratio ({config.warmup_ratio:g}) makes a warm-up of all of"
        fix = "lower warmup_ratio"
    return (
        f"{given} the run's {steps} optimiser steps ({examples} training texts): the learning "
        f"rate is still rising when training ends, and peaks at {(steps - 1) / warmup:.0%} of "
        f"training.learning_rate; {fix}"
    )


def compute_metrics(k: int):
    def compute(prediction) -> dict[str, float]:
        logits = prediction.predictions
        logits = logits[0] if isinstance(logits, tuple) else logits
        predicted = np.asarray(logits).argmax(-1)
        cm = confusion(np.asarray(prediction.label_ids, dtype=int), predicted, k)
        return {name: float(v) for name, v in metrics_from_confusion(cm).items()}

    return compute


def check_precision(config: TrainingConfig, device: str) -> None:
    """A precision the device cannot compute in natively, refused before anything loads:
    it would be emulated (much slower), or fail once training starts."""
    _refuse_emulated("training.precision", config.precision, device, ("fp16", "bf16", "fp32"))


def check_precision_fits_dtype(config: TrainingConfig, model_dtype: str, device: str) -> None:
    """Weights loaded in one half dtype and computed under autocast to the other: a layer
    norm got float16 weights and a bfloat16 input and the first training step stopped with
    'mixed dtype (CPU): expect parameter to have scalar type of Float'."""
    precision = resolved_precision(config, device)
    own = {"float16": "fp16", "bfloat16": "bf16"}.get(model_dtype)
    if own is None or precision not in ("fp16", "bf16") or precision == own:
        return
    resolved = f" ({precision} on this GPU)" if config.precision == "auto" else ""
    other = "bfloat16" if model_dtype == "float16" else "float16"
    raise FintuneError(
        f"training.precision: {config.precision}{resolved} computes in {other}, but "
        f"model.dtype {model_dtype} loads the weights in the other half dtype, which fails "
        f"at the first training step; set training.precision to {own} or fp32, or "
        f"model.dtype to {other} or auto"
    )


def check_compute_dtype(method: MethodConfig, device: str) -> None:
    """qlora's compute_dtype, checked as training.precision is: the 4-bit base is
    dequantised to it for every matmul, emulated in a half dtype the device lacks."""
    if isinstance(method, QLoraMethod):
        names = ("float16", "bfloat16", "float32")
        _refuse_emulated("method.compute_dtype", method.compute_dtype, device, names, "auto or ")


def _refuse_emulated(
    field: str, value: str, device: str, names: tuple[str, str, str], also: str = ""
) -> None:
    """`field: value` refused where `value` is a half dtype the device lacks. `names`: how
    the field spells float16, bfloat16 and float32; `also`: other advice before float32."""
    fp16, bf16, fp32 = names
    kind = torch.device(device).type
    if value == fp16 and kind == "cpu":
        raise FintuneError(
            f"{field}: {fp16} needs a CUDA GPU; on a CPU it is emulated: use {also}{fp32}, "
            f"or {bf16} where the CPU has native bfloat16 (AVX512-BF16 or AMX)"
        )
    if value != bf16:
        return
    from fintune.predict import cpu_has_native_bf16

    if kind == "cpu" and not cpu_has_native_bf16():
        raise FintuneError(
            f"{field}: {bf16} on this CPU, which has no native bfloat16 (AVX512-BF16 or AMX), "
            f"would be emulated and slower than {fp32}; use {also}{fp32}"
        )
    if kind == "cuda" and not torch.cuda.is_bf16_supported():
        raise FintuneError(f"{field}: {bf16} is not supported by this GPU; use {fp16} or {fp32}")


def resolved_precision(config: TrainingConfig, device: str) -> str:
    """What training.precision is on `device`: auto is bf16 on a CUDA GPU that has it."""
    if config.precision != "auto":
        return config.precision
    return "bf16" if device == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


def training_arguments(
    config: TrainingConfig, output_dir: Path, seed: int, device: str
) -> TrainingArguments:
    precision = resolved_precision(config, device)
    best = "eval_loss" if config.best_metric == "loss" else f"eval_{config.best_metric}"
    keep_best = config.load_best_model
    return TrainingArguments(
        output_dir=str(output_dir),
        learning_rate=config.learning_rate,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps or -1,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        weight_decay=config.weight_decay,
        # transformers 5 reads a float below 1 as a fraction of all steps
        warmup_steps=config.warmup_ratio if config.warmup_ratio else config.warmup_steps,
        lr_scheduler_type=config.scheduler,
        lr_scheduler_kwargs={"num_cycles": config.cycles} if config.cycles > 1 else None,
        max_grad_norm=config.max_grad_norm,
        eval_strategy=config.eval_strategy,
        eval_steps=config.eval_steps,
        save_strategy=config.eval_strategy if keep_best else "no",
        save_steps=config.eval_steps,
        save_total_limit=1,
        save_only_model=True,
        load_best_model_at_end=keep_best,
        metric_for_best_model=best,
        greater_is_better=config.best_metric != "loss",
        logging_strategy="steps",
        logging_steps=config.logging_steps,
        logging_first_step=True,
        logging_nan_inf_filter=False,  # a diverged loss is logged as it is, not hidden
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
        seed=seed,
        data_seed=seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        label_names=["labels"],
        report_to="none",
        dataloader_num_workers=0,
    )


def collator(tokenizer, model):
    """Pads each batch to its own longest example. Decoders pad on the left, which would
    shift every shorter text's positions (GPT-2's learned ones, and RoPE's absolute angle):
    they get position ids counted from their first real token, as generation does. PEFT
    ignores position ids for prefix and prompt tuning: prefix tuning pads decoders on the
    right instead (the head reads the last token that is not padding); prompt tuning hands
    the model embeddings, where that last token cannot be found, so it stays on the left
    and `count_prompt_positions` gives the base model its position ids."""
    if tokenizer.padding_side == "left" and _peft_type(model) == "PREFIX_TUNING":
        return lambda features: tokenizer.pad(
            features, padding=True, return_tensors="pt", padding_side="right"
        )
    pad = DataCollatorWithPadding(tokenizer)
    if not counts_positions_from_the_text(model, tokenizer):
        return pad

    def collate(features):
        batch = pad(features)
        batch["position_ids"] = (batch["attention_mask"].cumsum(-1) - 1).clamp(min=0)
        return batch

    return collate


def count_prompt_positions(model, tokenizer) -> None:
    """For a prompt-tuned decoder padded on the left: the base model, which receives the
    virtual tokens and the text as embeddings and no position ids, counts them over the
    tokens that are not padding, so the text starts right after the virtual tokens, as it
    does unpadded (in evaluation, serving, and a plain PEFT load)."""
    if _peft_type(model) != "PROMPT_TUNING" or tokenizer.padding_side != "left":
        return
    base = model.get_base_model()
    if "position_ids" not in inspect.signature(base.forward).parameters:
        return

    def add_position_ids(_module, args, kwargs):
        mask = kwargs.get("attention_mask")
        if kwargs.get("position_ids") is None and mask is not None:
            kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        return args, kwargs

    base.register_forward_pre_hook(add_position_ids, with_kwargs=True)


def _peft_type(model) -> str | None:
    peft_config = getattr(model, "active_peft_config", None)
    return None if peft_config is None else str(peft_config.peft_type.value)


def counts_positions_from_the_text(model, tokenizer) -> bool:
    if tokenizer.padding_side != "left":
        return False
    peft_config = getattr(model, "active_peft_config", None)
    if peft_config is not None and peft_config.is_prompt_learning:
        return False
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "position_ids" in inspect.signature(base.forward).parameters


def is_better_checkpoint(
    score: float, loss: float, best: tuple[float, float] | None, greater_is_better: bool
) -> bool:
    """Whether an evaluation (best_metric score, validation loss) beats the best so far.
    Small validation sets tie often on accuracy or F1: an exact tie goes to the lower
    validation loss, then stays with the earlier evaluation. A tie is equal up to float
    rounding: one macro F1 summed over its classes in another order differs by an ulp."""
    if best is None:
        return True
    if not math.isclose(score, best[0], rel_tol=1e-12, abs_tol=1e-15):
        return score > best[0] if greater_is_better else score < best[0]
    return loss < best[1]


class SelectingTrainer(Trainer):
    """The Trainer with fintune's checkpoint choice (`is_better_checkpoint`): the one that
    load_best_model_at_end loads, keeps from rotation, and metrics.json reports. With
    `patience`, training stops after that many evaluations in a row without a better
    checkpoint by the same rule (transformers' EarlyStoppingCallback would count a tie
    with a lower validation loss, a new best checkpoint here, as no improvement)."""

    _best: tuple[float, float] | None = None
    patience: int | None = None
    stopped_early = False  # by `patience`, with steps still to go
    _without_improvement = 0

    def training_step(self, model, inputs, num_items_in_batch=None):
        """DivergenceGuard sees only logged losses: a loss gone NaN between two logs trained
        on to the next one. Each step's loss is checked here (on a GPU, one sync a step)."""
        loss = super().training_step(model, inputs, num_items_in_batch)
        if torch.isfinite(loss).all():
            return loss
        step, value = self.state.global_step + 1, loss.float().mean().item()
        rate = self._get_learning_rate()
        # state.epoch moves on after the optimiser step, which this step never reaches
        epoch = epoch_at(
            step,
            len(self.train_dataset),
            self._train_batch_size,
            self.args.gradient_accumulation_steps,
        )
        for callback in self.callback_handler.callbacks:  # the history ends with that step
            if isinstance(callback, JsonlHistory):
                callback.write(step, epoch, {"loss": value, "learning_rate": rate})
        raise FintuneError(
            f"training diverged: the training loss is {value} at step {step} (learning rate "
            f"{rate:.3g}); {diverged_fix(self.args)}"
        )

    def evaluate(self, *args, **kwargs):
        """Each evaluation's data loader draws a seed from torch's generator: unforked, how
        often a run evaluated (eval_steps, or epochs) changed the dropout masks of every
        later step, and so the trained model. Validation computes as the final evaluation
        does (`computing_as_saved`), so the checkpoint chosen is judged by the same numbers
        the run records."""
        devices = [self.args.device.index or 0] if self.args.device.type == "cuda" else []
        with (
            torch.random.fork_rng(devices=devices),
            computing_as_saved(self.model, self.args.device.type),
        ):
            return super().evaluate(*args, **kwargs)

    def _determine_best_metric(self, metrics: dict[str, float], trial) -> bool:
        score, loss = metrics[self.args.metric_for_best_model], metrics["eval_loss"]
        if not is_better_checkpoint(score, loss, self._best, self.args.greater_is_better):
            self._without_improvement += 1
            if self.patience is not None and self._without_improvement >= self.patience:
                self.control.should_training_stop = True
                self.stopped_early = self.state.global_step < self.state.max_steps
            return False
        self._best, self._without_improvement = (score, loss), 0
        self.state.best_metric = score
        if self.args.save_strategy != "no":
            self.state.best_global_step = self.state.global_step
        return True


def build_trainer(
    model,
    tokenizer,
    train: Dataset,
    validation: Dataset,
    config: TrainingConfig,
    args: TrainingArguments,
    num_labels: int,
    history_path: Path,
    extra_callbacks: list[TrainerCallback] | None = None,
) -> Trainer:
    callbacks: list[TrainerCallback] = [
        JsonlHistory(history_path),
        LogAtEvaluation(),
        DivergenceGuard(),
        InterruptCheck(),
        *(extra_callbacks or []),
    ]
    count_prompt_positions(model, tokenizer)
    if args.n_gpu > 1:
        # one process seeing several GPUs: transformers would wrap the model in DataParallel,
        # batches of batch_size x n_gpu, and every step count and rate would be off
        args._n_gpu = 1
    weights = None
    if config.class_weights:
        weights = class_weights(np.asarray(train["labels"]), num_labels)
    trainer = SelectingTrainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=validation,
        data_collator=collator(tokenizer, model),
        processing_class=tokenizer,
        compute_metrics=compute_metrics(num_labels),
        compute_loss_func=weighted_loss(weights),
        callbacks=callbacks,
    )
    trainer.patience = config.early_stopping_patience
    return trainer
