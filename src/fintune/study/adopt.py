"""A run that finished, though the study or sweep that started it was stopped before it
recorded the run (a stop while the run was logged to MLflow): the rerun takes it as done
rather than training it again in a second folder. And a finished run logged to MLflow
later (a rerun's cells and trials; `fintune log` for one run)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from fintune.config.load import load_config, parse_yaml
from fintune.config.schema import METRICS, ExperimentConfig, escape_variables
from fintune.errors import FintuneError
from fintune.run_dir import written_config
from fintune.tracking import (
    RUN_KEY,
    check_tracking,
    log_run,
    redact,
    run_key,
    tracked_runs,
    tracking_uri,
)


def whole_metrics(run_dir: Path) -> dict[str, Any] | None:
    """A run's metrics; None unless its folder holds the metrics and all the predictions
    of the split it was scored on last: test, or validation where evaluation.test was off
    (deleted, damaged by hand, or cut short)."""
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        split = "test" if "test" in metrics else "validation"
        frame = pd.read_csv(run_dir / f"predictions_{split}.csv", dtype=str, keep_default_na=False)
        whole = (
            _scored(metrics, split)
            and len(frame) == metrics[split]["n"]
            and bool(frame[["label", "predicted"]].isin(metrics["labels"]).all(axis=None))
        )
    # pandas' parse errors are ValueErrors; json's on a file nested too deep, RecursionError
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    return metrics if whole else None


def _scored(metrics: dict[str, Any], split: str) -> bool:
    """Whether the metrics hold what the reports read, as the run wrote it: each metric a
    number with its 95% interval, n, the seed and a confusion matrix of the labels."""
    block, k = metrics[split], len(metrics["labels"])
    values = [block[m] for m in METRICS] + [x for m in METRICS for x in block["ci95"][m]]
    matrix = block["confusion_matrix"]
    return (
        all(_number(x) for x in values)
        and all(len(block["ci95"][m]) == 2 for m in METRICS)
        and isinstance(block["n"], int)
        and isinstance(metrics["seed"], int)
        and len(matrix) == k
        and all(len(row) == k and all(isinstance(x, int) for x in row) for row in matrix)
    )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def same_inputs(metrics: dict[str, Any], data_sha: str, model_sha: str | None) -> bool:
    """Whether a finished run read data of fingerprint `data_sha` and, for a local model,
    weights of fingerprint `model_sha` (None: a hub model). A run from before runs recorded
    model_sha256 is taken to have read the weights there now."""
    return (
        metrics.get("data_sha256") == data_sha
        and metrics.get("model_sha256", model_sha) == model_sha
    )


def finished_run(
    config: ExperimentConfig,
    data_sha: str,
    model_sha: str | None,
    taken: set[str] = frozenset(),
    written: dict[Path, Any] | None = None,
) -> Path | None:
    """The newest whole run in config.output.dir of this config (its config.yaml as this
    run would write it, its name, folder and tracking aside: a study renamed or moved) on
    the same inputs (`same_inputs`), not in `taken` (folder names). `written`: the folders'
    config.yaml files, read once for many configs. Only under the lock of whoever makes
    runs there: no live process writes one."""
    parent = Path(config.output.dir)
    if not parent.is_dir():
        return None
    written = {} if written is None else written
    expected = None
    for run_dir in sorted(parent.iterdir(), reverse=True):
        if run_dir.name in taken:
            continue
        if run_dir not in written:
            written[run_dir] = _read_written(run_dir / "config.yaml")
        expected = expected or _results_part(written_config(config))
        same = isinstance(written[run_dir], dict) and _results_part(written[run_dir]) == expected
        metrics = whole_metrics(run_dir) if same else None
        if metrics is not None and same_inputs(metrics, data_sha, model_sha):
            return run_dir
    return None


def _read_written(path: Path) -> Any:
    try:  # a damaged or foreign folder is passed by, not adopted and not fatal
        return parse_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, RecursionError, yaml.YAMLError):
        return None


def _results_part(config: dict[str, Any]) -> dict[str, Any]:
    """What a run's results depend on. Not tracking (switching MLflow off after it hung
    while a finished run was logged must not train it again), nor the run's name or the
    folder it was made in."""
    part = {key: value for key, value in config.items() if key not in ("tracking", "name")}
    if isinstance(part.get("output"), dict):
        part["output"] = {k: v for k, v in part["output"].items() if k != "dir"}
    return part


def log_finished(
    run_dir: Path, config: ExperimentConfig, records: list | None = None, pruned: bool = False
) -> bool:
    """Log a finished run (`pruned`: a sweep trial its pruner stopped) to MLflow unless a
    whole record of it is there (FINISHED; a pruned one's KILLED, tagged pruned and logged
    to the end); a record cut short (KILLED by a stop while it was logged, FAILED, left
    RUNNING) is deleted first, so the run is logged once. `records`: the experiment's
    runs, when known. Returns whether it logged."""
    from fintune.tracking import _client

    records = tracked_runs(config) if records is None else records
    key = run_key(run_dir)
    mine = [r for r in records if _of_this_run(r, run_dir.name, key)]
    if any(_whole(r, pruned) for r in mine):
        return False
    client, _ = _client(config)
    for record in mine:
        tags = record.data.tags
        here = tags.get("fintune.run_dir") == str(run_dir.resolve())
        if (key and tags.get(RUN_KEY) == key) or here:
            client.delete_run(record.info.run_id)
    if pruned:  # as the recipe logs a trial pruned with tracking on
        log_run(run_dir, config, "KILLED", {"fintune.pruned": "true"})
    else:
        log_run(run_dir, config)
    return True


def log_run_folder(run_dir: Path, overrides: list[str] | None = None) -> tuple[bool, str]:
    """`fintune log`: a finished run logged to the MLflow store its config.yaml names,
    unless a whole record of it is there; for a run whose logging was stopped or failed, or
    that ran with tracking off. `overrides`: --set of tracking fields only (a tracking.uri
    whose password the file writes ***). Returns whether it logged, and the store (its
    password written ***)."""
    if not (run_dir / "config.yaml").is_file():
        raise FintuneError(f"{run_dir}: no config.yaml here: give a run's folder")
    if whole_metrics(run_dir) is None:
        raise FintuneError(
            f"{run_dir}: not a finished run: logging needs its metrics.json and all its "
            "predictions (predictions_test.csv, or predictions_validation.csv where "
            "evaluation.test was off), which are missing, damaged or cut short"
        )
    for item in overrides or []:
        field, sep, _ = item.partition("=")
        field = field.strip()
        if not sep or not field:  # the form first, as run's --set says it
            raise FintuneError(
                f"--set {item!r}: expected FIELD=VALUE, e.g. tracking.uri=sqlite:///mlflow.db"
            )
        if field != "tracking" and not field.startswith("tracking."):
            raise FintuneError(
                f"--set {field}: fintune log takes tracking settings only (tracking.uri, "
                "tracking.experiment, ...); a run is logged with the settings it ran with"
            )
    _check_whole_config(run_dir / "config.yaml")
    config = load_config(run_dir / "config.yaml", overrides)
    ran_tracked = config.tracking.mlflow
    config.tracking.mlflow = True  # asked for by name, whatever the run had: check the store
    # the default store is beside the run where it is now (a folder may have been moved)
    config.output.dir = escape_variables(str(run_dir.resolve().parent))
    check_tracking(config)
    config.tracking.mlflow = ran_tracked  # its parameters say how it ran, as config.yaml does
    return log_finished(run_dir.resolve(), config), redact(tracking_uri(config)) or ""


WRITTEN_SECTIONS = ("name", "task", "seed", "model", "data", "method", "training")
WRITTEN_SECTIONS += ("evaluation", "output", "tracking")  # what every run's config.yaml holds


def _check_whole_config(path: Path) -> None:
    """A run writes its config whole, every default filled in: one cut short would be read
    with defaults for what it lost, and logged as the settings the run ran with."""
    written = _read_written(path)
    if not isinstance(written, dict):
        return  # load_config names what is wrong with it
    if missing := [section for section in WRITTEN_SECTIONS if section not in written]:
        raise FintuneError(
            f"{path}: has no {', '.join(missing)}: not the whole file the run wrote (cut "
            "short or edited), and their defaults would be logged as the run's settings; "
            "put back the config.yaml the run wrote"
        )


def _of_this_run(record, name: str, key: str | None) -> bool:
    """A record of this run folder: by its metrics.json (RUN_KEY) where both have one, else
    (a record logged by an earlier version; a pruned trial) by its name. A record cut short
    is replaced only where its metrics.json or its folder is this run's."""
    if key and (logged := record.data.tags.get(RUN_KEY)):
        return logged == key
    return record.info.run_name == name


def _whole(record, pruned: bool) -> bool:
    if not pruned:
        return record.info.status == "FINISHED"
    tags = record.data.tags  # fintune.status: set once all was logged
    return tags.get("fintune.pruned") == "true" and tags.get("fintune.status") == "KILLED"
