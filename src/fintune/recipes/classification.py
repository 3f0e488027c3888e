"""Sequence classification, read top to bottom: setup -> fit -> validate -> save -> report.

Every user error is raised in setup, before the model loads.
"""

from __future__ import annotations

import csv
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.markup import escape
from transformers import set_seed

from fintune import interrupt
from fintune.config.schema import ExperimentConfig
from fintune.data import PreparedData, data_warnings, prepare_data
from fintune.errors import FintuneError
from fintune.evaluation.inference import predict_logits
from fintune.evaluation.metrics import check_bootstrap_memory, evaluate_predictions, split_notes
from fintune.models import check_architecture, load_classifier, pick_device, save_classifier
from fintune.models.checks import check_best_model_loads, check_dtype, check_revision
from fintune.models.load import hub_commit, load_tokenizer
from fintune.models.methods import count_parameters
from fintune.models.registry import resolve_model, weights_fingerprint
from fintune.report import write_report
from fintune.run_dir import (
    WRITE_ERRORS,
    check_output_dir,
    create_run_dir,
    hardware,
    package_versions,
    resolved_config,
    source_code,
    write_config,
    write_json,
)
from fintune.tracking import (
    check_tracking,
    error_tag,
    log_run,
    quick_requests,
    shown_error,
    store_record,
)
from fintune.training.resources import ResourceMonitor
from fintune.training.trainer import (
    build_trainer,
    check_compute_dtype,
    check_precision,
    check_precision_fits_dtype,
    count_truncated,
    examples_trained,
    resolved_precision,
    tokenize,
    training_arguments,
    warmup_note,
)

console = Console(stderr=True, soft_wrap=True)  # paths stay whole in logs and CI


def setup(config: ExperimentConfig, warn_warmup: bool = True) -> tuple[PreparedData, str]:
    """Everything that can fail because of the user's input, and nothing expensive.
    `warn_warmup` off: the caller warns of a warm-up longer than the run (a study, per cell)."""
    device = check_device(config)
    check_revision(config, resolve_model(config.model.name, config.model.gguf_file))
    check_tracking(config)
    check_output_dir(config)
    with console.status("Loading and checking data"):
        data = prepare_data(config.data, config.seed)
    check_bootstrap_memory(config.evaluation.bootstrap_samples, len(data.labels))
    notes = [*data_warnings(data, config.data)]
    if warn_warmup:
        notes.append(warmup_note(config.training, len(data.splits["train"])))
    for note in filter(None, notes):
        console.print(f"[yellow]warning:[/] {escape(note)}", highlight=False)
    check_architecture(config)  # max_length and named modules, without the weights
    return data, device


def check_device(config: ExperimentConfig) -> str:
    """The device, and the dtypes the config computes in checked against it (cheap: a sweep
    checks each point of its space)."""
    device = pick_device(config.training.device)
    check_precision(config.training, device)
    check_precision_fits_dtype(config.training, config.model.dtype, device)
    check_compute_dtype(config.method, device)
    check_dtype(config)
    check_best_model_loads(config)
    return device


def run(config: ExperimentConfig, callbacks: list | None = None) -> Path:
    """`callbacks` go to the Trainer (a sweep's pruning)."""
    data, device = setup(config)
    with torch_threads(config.training.num_threads):
        run_dir = fit_and_report(config, data, device, callbacks)
    if config.tracking.mlflow:
        try:
            track(run_dir, config)
        except (KeyboardInterrupt, SystemExit):
            # The run is finished (metrics.json). Its caller must learn so: a sweep that saw
            # the stop here failed a finished trial and trained another in its place. The
            # stop is raised again at the next safe point (after the trial, the cell, the
            # command); a stop nothing remembers (the API, no handler) is raised now.
            if not interrupt.pending():
                raise
            console.print(
                f"stopped while logging to MLflow: {run_dir} is finished; its MLflow record "
                f"is cut short (`fintune log {run_dir}` logs it again, as a sweep or study "
                "does when resumed)",
                markup=False,
            )
    return run_dir


@contextmanager
def torch_threads(threads: int | None):
    """torch's thread count is per process: a study's next cell must not inherit it."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit_and_report(config: ExperimentConfig, data: PreparedData, device: str, callbacks) -> Path:
    set_seed(config.seed)

    console.print(
        f"Loading model {config.model.name} with method {config.method.name}", markup=False
    )
    model, tokenizer, info = load_classifier(config, data.labels, device)
    # a local model's files as loaded: a study tells weights rewritten in place by it
    model_sha = weights_fingerprint(config.model.name, config.model.gguf_file)
    trainable, total = count_parameters(model)
    console.print(f"Trainable parameters: {trainable:,} of {total:,}")

    run_dir = create_run_dir(config)
    try:
        console.print(f"Run directory: [bold]{escape(str(run_dir))}[/]")
        write_config(run_dir / "config.yaml", config)
        write_json(
            run_dir / "environment.json",
            {
                "seed": config.seed,
                "model_commit": hub_commit(model, info.base, info.revision),
                "model_sha256": model_sha,  # a local model's files; None: a hub model
                "packages": package_versions(),
                "source": source_code(),
                "hardware": hardware(device),
                "tracking": store_record(config),
            },
        )
        roles = ("validation", "test") if config.evaluation.test else ("validation",)
        encoded = {
            role: tokenize(frame, tokenizer, config.model.max_length)
            for role, frame in data.splits.items()
            if role in ("train", *roles)
        }
        data.report["truncated"] = truncated = {
            "max_length": config.model.max_length,
            **{
                role: count_truncated(data.splits[role]["text"], tokenizer, config.model.max_length)
                for role in encoded
            },
        }
        write_json(run_dir / "data.json", {"fingerprint": data.fingerprint, "report": data.report})
        note = truncation_note(truncated, {role: len(ds) for role, ds in encoded.items()})
        if note:
            console.print(f"[yellow]warning:[/] {escape(note)}", highlight=False)

        # fit
        args = training_arguments(config.training, run_dir / "checkpoints", config.seed, device)
        trainer = build_trainer(
            model,
            tokenizer,
            encoded["train"],
            encoded["validation"],
            config.training,
            args,
            len(data.labels),
            run_dir / "history.jsonl",
            callbacks,
        )
        with ResourceMonitor(cuda=device == "cuda") as monitor:
            train_output = trainer.train()
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # final weights go to model/

        # validate
        results: dict[str, Any] = {}
        for role in roles:
            logits = predict_logits(
                trainer.model,
                tokenizer,
                encoded[role],
                config.training.eval_batch_size,
                device,
                desc=f"Evaluating {role}",
            )
            if not np.isfinite(logits).all():
                bad = int((~np.isfinite(logits)).any(-1).sum())
                raise FintuneError(
                    f"training diverged: the model's outputs are NaN or infinite for {bad} of "
                    f"{len(logits)} {role} examples; lower training.learning_rate"
                )
            truth = data.splits[role]["label"].to_numpy()
            # cross-entropy, unweighted: its mean is what a sweep with `metric: loss` minimises
            losses = torch.nn.functional.cross_entropy(
                torch.as_tensor(logits, dtype=torch.float32),
                torch.tensor(truth),
                reduction="none",
            )
            results[role] = evaluate_predictions(
                truth,
                logits.argmax(-1),
                data.labels,
                samples=config.evaluation.bootstrap_samples,
                confidence=config.evaluation.confidence,
                seed=config.seed,
                losses=losses.numpy(),
            )
            write_predictions(run_dir / f"predictions_{role}.csv", data, role, logits)

        if config.output.save_model:
            save_classifier(trainer.model, tokenizer, info, run_dir / "model")

        metrics = {
            **results,
            "train": {
                "runtime_s": round(train_output.metrics["train_runtime"], 3),
                "samples_per_s": samples_per_s(train_output, config, len(encoded["train"])),
                "steps": train_output.global_step,
                "epochs": train_output.metrics.get("epoch"),
                "stopped_early": trainer.stopped_early,  # training.early_stopping_patience
                "final_train_loss": train_output.training_loss,  # the mean over all steps
                **last_train_loss(trainer.state),
                "trainable_params": int(trainable),
                "total_params": int(total),
                # the model evaluated is the last one unless the best checkpoint was kept
                **best_checkpoint(trainer.state, config.training.load_best_model),
                "examples": len(data.splits["train"]),
            },
            "resources": monitor.summary(),
            "labels": data.labels,
            "method": config.method.name,
            "model": resolved_config(config)["model"]["name"],  # a local folder absolute
            "seed": config.seed,
            "data_sha256": data.fingerprint["sha256"],
            "model_sha256": model_sha,  # None for a hub model: environment.json's commit
            "device": device,
            "training_precision": resolved_precision(config.training, device),  # what auto was
            "model_dtype": weights_dtype(trainer.model, config),
        }
        write_report(run_dir, config, metrics, data)
        # last: metrics.json marks a finished run (a study reuses it, serve accepts it)
        write_json(run_dir / "metrics.json", metrics)
        for note in split_notes(results):
            console.print(f"[yellow]warning:[/] {escape(note.replace('**', ''))}", highlight=False)
    except BaseException as error:  # Ctrl+C too: a run's checkpoints can take gigabytes
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # model copies, unused
        # A failed, pruned or interrupted run is logged too (config, history so far, the
        # error), so MLflow holds every run, cell and trial; the error still reaches the caller.
        if config.tracking.mlflow:
            from optuna import TrialPruned

            if isinstance(error, TrialPruned):  # a sweep's pruner stopped it
                track(run_dir, config, "KILLED", {"fintune.pruned": "true"})
            elif isinstance(error, Exception):
                track(run_dir, config, "FAILED", {"fintune.error": error_tag(error)})
            else:  # Ctrl+C, or SIGTERM raised as SystemExit: stopped, not failed
                # one quick try: MLflow's retries to a server gone would hold the stop for
                # minutes (253 s measured), past a scheduler's grace before SIGKILL
                with quick_requests():
                    track(run_dir, config, "KILLED", {"fintune.interrupted": type(error).__name__})
        if not isinstance(error, Exception):  # the folder would look like a run in progress
            how = "interrupted (Ctrl+C)" if isinstance(error, KeyboardInterrupt) else "stopped"
            console.print(f"{how}: {run_dir} is incomplete (no metrics.json)", markup=False)
        code = write_error(error)
        if code is not None or torch_write_error(error):
            filename = error.filename if isinstance(error, OSError) else None
            where = f": {filename}" if filename else f" in {run_dir}"
            reason = (
                f"{os.strerror(code)}{where}"
                if code is not None
                # torch names neither the file nor the OS error
                else (
                    f"torch could not write a file in {run_dir} ({error}; is the disk full or "
                    "over its quota?)"
                )
            )
            raise FintuneError(
                f"the run stopped: {reason}; {run_dir} is incomplete "
                "(no metrics.json): free space or fix the permissions, and run again"
            ) from error
        raise
    return run_dir


def write_error(error: BaseException) -> int | None:
    """The errno of a failed write (a full disk, a quota, permissions), if `error` is one:
    an OSError, or safetensors' error (checkpoints, the model), which only quotes it."""
    if isinstance(error, OSError):
        return error.errno if error.errno in WRITE_ERRORS else None
    found = re.search(r"\(os error (\d+)\)", str(error))
    if type(error).__name__ == "SafetensorError" and found and int(found[1]) in WRITE_ERRORS:
        return int(found[1])
    return None


def torch_write_error(error: BaseException) -> bool:
    """Whether `error` is torch.save failing to write (a checkpoint's optimizer state on a
    full disk: a RuntimeError that quotes no OS error, measured on a 300 KiB tmpfs)."""
    message = str(error)
    return isinstance(error, RuntimeError) and (
        "PytorchStreamWriter failed writing" in message
        or bool(re.search(r"inline_container\.cc:\d+\] \. unexpected pos", message))
    )


def count_cut_texts(config: ExperimentConfig, data: PreparedData) -> dict[str, int]:
    """What a run records in data.json's `truncated`, from the tokenizer alone (for
    `validate`, which loads no model)."""
    source = resolve_model(config.model.name, config.model.gguf_file)
    tokenizer = load_tokenizer(source, config)
    limit = config.model.max_length
    counts = {"max_length": limit}
    for role, frame in data.splits.items():
        counts[role] = count_truncated(frame["text"], tokenizer, limit)
    return counts


def truncation_note(truncated: dict[str, int], sizes: dict[str, int]) -> str | None:
    """'N of M train texts, ...' cut at model.max_length, or None when no text was."""
    cut = [f"{truncated[role]} of {n} {role}" for role, n in sizes.items() if truncated[role]]
    if not cut:
        return None
    return (
        f"{', '.join(cut)} texts are longer than model.max_length "
        f"({truncated['max_length']} tokens) and are cut there: the model sees only their "
        "beginning; raise model.max_length to keep more of each text"
    )


def track(run_dir: Path, config: ExperimentConfig, status: str = "FINISHED", tags=None) -> None:
    """Log to MLflow; a tracking failure is reported but never loses the finished run."""
    try:
        log_run(run_dir, config, status, tags)
    except Exception as error:  # noqa: BLE001
        again = f"; `fintune log {run_dir}` logs it" if status == "FINISHED" else ""
        console.print(
            f"[yellow]warning:[/] MLflow logging failed ({shown_error(error)}); "
            f"{escape(str(run_dir))} is intact{escape(again)}"
        )


def samples_per_s(train_output, config: ExperimentConfig, examples: int) -> float | None:
    """Training examples seen per second of the Trainer's runtime (per-epoch validation and
    checkpoint saving included); None where the Trainer timed the run at 0 (it rounds to
    0.1 ms), which has no rate."""
    batch, accumulation = config.training.batch_size, config.training.gradient_accumulation_steps
    seen = examples_trained(train_output.global_step, examples, batch, accumulation)
    runtime = train_output.metrics["train_runtime"]
    return round(seen / runtime, 3) if runtime > 0 else None


def weights_dtype(model, config: ExperimentConfig) -> str:
    """The dtype most of the model's weights are in, which the frozen base computes in
    whatever training_precision says (model.dtype auto: the checkpoint's own, float32 for
    method full); "4bit" for qlora's quantised base."""
    if config.method.name == "qlora":
        return "4bit"
    sizes: dict[torch.dtype, int] = {}
    for parameter in model.parameters():
        sizes[parameter.dtype] = sizes.get(parameter.dtype, 0) + parameter.numel()
    return str(max(sizes, key=sizes.__getitem__)).removeprefix("torch.")


def last_train_loss(state) -> dict[str, Any]:
    """The training loss last logged (the mean over its logging window) and its step."""
    record = next((r for r in reversed(state.log_history) if "loss" in r), {})
    return {"last_train_loss": record.get("loss"), "last_train_loss_step": record.get("step")}


def best_checkpoint(state, kept: bool) -> dict[str, Any]:
    """Which evaluation's model the run kept (the Trainer's choice, `is_better_checkpoint`):
    its validation best_metric, validation loss, step and epoch (all None when the last
    model was kept)."""
    step = state.best_global_step if kept else None
    evaluation = next(
        (r for r in state.log_history if r.get("step") == step and "eval_loss" in r), {}
    )
    return {
        "best_checkpoint_metric": state.best_metric if kept else None,
        "best_checkpoint_loss": evaluation.get("eval_loss"),
        "best_checkpoint_step": step,
        "best_checkpoint_epoch": evaluation.get("epoch"),
    }


def write_predictions(path: Path, data: PreparedData, role: str, logits: np.ndarray) -> None:
    """Per-example predictions, so later comparisons can pair runs on the same examples.
    `text` is the data's own text, which `fintune predict` takes as it is (cleaning it as
    the run did); with data.cleaning on, `cleaned_text` is what the model read."""
    probs = torch.softmax(torch.as_tensor(logits, dtype=torch.float32), dim=-1).numpy()
    # the largest logit, as the metrics count it: softmax can round a near tie to a tie
    predicted = logits.argmax(-1)
    frame = data.splits[role]
    columns = {
        "text": frame.get("original_text", frame["text"]),
        "label": [data.labels[i] for i in frame["label"]],
        "predicted": [data.labels[i] for i in predicted],
        "confidence": probs[np.arange(len(probs)), predicted].round(6),
    }
    if "original_text" in frame:
        columns["cleaned_text"] = frame["text"]
    pd.DataFrame(columns).to_csv(
        path, index=False, quoting=csv.QUOTE_NONNUMERIC
    )  # a "\r" in a text stays in it
