"""Log a run directory to MLflow: parameters, per-step metrics, final metrics, artifacts.

The run directory stays the source of truth; MLflow is a view of it. Logging reads the
files the recipe wrote, so a pruned or failed run (no metrics.json yet) is logged too.
By default the store is embedded (`sqlite:///<output.dir>/mlflow.db`, no server);
`tracking.uri` or MLFLOW_TRACKING_URI sends it to a server instead.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from filelock import FileLock

from fintune.config.schema import ExperimentConfig
from fintune.errors import FintuneError

ARTIFACTS = (
    "report.md",
    "loss.png",
    "learning_rate.png",
    "confusion.png",
    "metrics.json",
    "config.yaml",
    "data.json",
    "environment.json",
    "history.jsonl",
    "predictions_validation.csv",
    "predictions_test.csv",
)
SKIP_HISTORY_KEYS = {"step", "epoch", "total_flos"}


def tracking_uri(config: ExperimentConfig) -> str:
    if config.tracking.uri:
        return config.tracking.uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return f"sqlite:///{(Path(config.output.dir) / 'mlflow.db').resolve()}"


def store_in(config: ExperimentConfig, folder: Path) -> None:
    """Studies and sweeps keep one embedded store for all their runs, in their folder."""
    if not config.tracking.uri and not os.environ.get("MLFLOW_TRACKING_URI"):
        config.tracking.uri = f"sqlite:///{(folder / 'mlflow.db').resolve()}"


def check_tracking(config: ExperimentConfig) -> None:
    """Fail before training when a remote tracking server cannot be reached."""
    if not config.tracking.mlflow:
        return
    uri = tracking_uri(config)
    if not uri.startswith(("http://", "https://")):
        return
    from mlflow import MlflowClient

    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    try:
        MlflowClient(uri).search_experiments(max_results=1)
    except Exception as error:  # noqa: BLE001 - any failure means unusable
        first = str(error).splitlines()[0][:200]
        raise FintuneError(
            f"tracking.uri: cannot reach the MLflow server at {uri} ({first}). Start it, "
            "fix the URI, or set tracking.mlflow: false"
        ) from None


def _client(config: ExperimentConfig):
    uri = tracking_uri(config)
    if not uri.startswith("sqlite:///"):
        return _open_experiment(config, uri)
    # MLflow builds a new SQLite store by migrating it step by step; two processes doing that
    # at once (two sweep workers' first runs) break it, one of them for good. One at a time:
    with FileLock(uri.removeprefix("sqlite:///") + ".lock", timeout=300):
        return _open_experiment(config, uri)


def _open_experiment(config: ExperimentConfig, uri: str):
    from mlflow import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    client = MlflowClient(uri)
    name = config.tracking.experiment or config.name
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return client, experiment.experiment_id
    artifacts = None
    if uri.startswith("sqlite:///"):  # keep artifacts next to the embedded store
        artifacts = (Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts").as_uri()
    try:
        return client, client.create_experiment(name, artifact_location=artifacts)
    except Exception:  # another process created it first
        return client, client.get_experiment_by_name(name).experiment_id


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def final_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Headline numbers of metrics.json as flat MLflow metrics, CI bounds included."""
    out: dict[str, float] = {}
    for split in ("validation", "test"):
        for key, value in metrics.get(split, {}).items():
            if isinstance(value, int | float):
                out[f"{split}_{key}"] = float(value)
        for key, (low, high) in metrics.get(split, {}).get("ci95", {}).items():
            out[f"{split}_{key}_ci95_low"] = low
            out[f"{split}_{key}_ci95_high"] = high
    for section in ("train", "resources"):
        for key, value in metrics.get(section, {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[f"{section}_{key}"] = float(value)
    return out


def log_run(
    run_dir: Path, config: ExperimentConfig, status: str = "FINISHED", extra_tags=None
) -> str:
    """Log one run directory; returns the MLflow run id."""
    from mlflow.entities import Metric, Param

    client, experiment_id = _client(config)
    tags = {"fintune.run_dir": str(run_dir.resolve()), **config.tracking.tags}
    tags.update(extra_tags or {})
    run = client.create_run(experiment_id, run_name=run_dir.name, tags=tags)
    run_id = run.info.run_id
    params = [
        Param(key, str(value)[:6000])
        for key, value in flatten(config.model_dump(mode="json")).items()
        if key != "tracking.tags"
    ]
    for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run_id, params=params[start : start + 100])

    points: list[Metric] = []
    history = run_dir / "history.jsonl"
    if history.is_file():
        for line in history.read_text().splitlines():
            record = json.loads(line)
            for key, value in record.items():
                if key not in SKIP_HISTORY_KEYS and isinstance(value, int | float):
                    points.append(Metric(key, float(value), 0, int(record["step"])))
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text())
        points += [Metric(k, v, 0, 0) for k, v in final_metrics(metrics).items()]
    for start in range(0, len(points), 1000):
        client.log_batch(run_id, metrics=points[start : start + 1000])
    for name in ARTIFACTS:
        if (run_dir / name).is_file():
            client.log_artifact(run_id, str(run_dir / name))
    client.set_tag(run_id, "fintune.status", status)
    client.set_terminated(run_id, status=status)
    return run_id


def log_summary(config: ExperimentConfig, name: str, files: list[Path], tags: dict) -> str:
    """A run that holds a study's or sweep's report and plots. A rerun (a resume, or
    --report-only) updates the same run instead of adding another."""
    client, experiment_id = _client(config)
    same = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
    earlier = client.search_runs(
        [experiment_id], filter_string=f"attributes.run_name = '{name}' and {same}", max_results=1
    )
    run_id = earlier[0].info.run_id if earlier else None
    if run_id is None:
        run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    for path in files:
        if path.is_file():
            client.log_artifact(run_id, str(path))
    client.set_terminated(run_id)
    return run_id
