"""After the search: the per-trial table, the best trial, a final model with its
parameters evaluated on test, plots, and the report (Markdown + self-contained HTML)."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from rich.markup import escape  # noqa: E402

from fintune import interrupt  # noqa: E402
from fintune.errors import FintuneError  # noqa: E402
from fintune.evaluation.metrics import format_interval, split_notes  # noqa: E402
from fintune.models.registry import weights_fingerprint  # noqa: E402
from fintune.report.document import Document, lead_bold  # noqa: E402
from fintune.run_dir import write_json, write_whole  # noqa: E402
from fintune.study.adopt import finished_run, log_finished, same_inputs  # noqa: E402
from fintune.study.compare import LockHeld, owner_lock  # noqa: E402
from fintune.study.report import drop_stale_plots  # noqa: E402
from fintune.study.spec import results_sha  # noqa: E402
from fintune.study.sweep import EVALUATIONS, KEPT  # noqa: E402
from fintune.study.sweep_resume import search_changes  # noqa: E402
from fintune.study.sweep_spec import SweepSpec, console, trial_config  # noqa: E402
from fintune.tracking import shown_error  # noqa: E402

FEW_TRIALS = 10  # finished trials below which importances are mostly noise
SWEEP_PLOTS = ("optimization_history.png", "param_importances.png")
EPOCH_COLUMNS = ["train_loss", "eval_loss", "eval_accuracy", "eval_f1_macro"]


def epoch_columns(metric: str) -> list[str]:
    """The per-evaluation columns, with the sweep's own metric when it is not among them."""
    extra = f"eval_{metric}"
    return EPOCH_COLUMNS + ([] if extra in EPOCH_COLUMNS else [extra])


def per_epoch(history: list[dict], metric: str = "accuracy") -> list[dict[str, Any]]:
    """One row per evaluation: the mean training loss since the previous one, and the
    validation loss, accuracy and macro F1 (and the sweep's metric)."""
    rows: list[dict[str, Any]] = []
    losses: list[tuple[float, int]] = []  # (logged loss, steps it averages)
    last_logged = 0
    for record in history:
        if "loss" in record:
            # a logged loss is the mean over the steps since the previous log: weigh it so
            steps = max(record["step"] - last_logged, 1)
            last_logged = record["step"]
            if record["loss"] is not None:  # null: a diverged step
                losses.append((record["loss"], steps))
        if "eval_loss" in record:
            total = sum(steps for _, steps in losses)
            rows.append(
                {
                    "epoch": round(record.get("epoch") or 0, 3),
                    "train_loss": sum(v * n for v, n in losses) / total if losses else None,
                    **{k: record.get(k) for k in epoch_columns(metric)[1:]},
                }
            )
            losses = []
    return rows


def trial_rows(study, folder: Path, metric: str = "accuracy") -> pd.DataFrame:
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("skipped") or t.state.name == "WAITING":  # never run
            continue
        run_dir = t.user_attrs.get("run_dir")
        path = folder / run_dir / "history.jsonl" if run_dir else None
        history = (_history(path) if path and path.is_file() else None) or []
        # a trial run on another machine: its folder is there, its epochs in the storage
        epochs = per_epoch(history, metric) or t.user_attrs.get("epochs") or [{"epoch": None}]
        common = {
            "trial": t.number,
            "state": _state(t),
            "value": t.value,
            "value_at": _value_at(t, epochs[-1]["epoch"], _kept_epoch(folder, run_dir, t)),
            "origin": _origin(t),
            **{f"param:{k}": _chosen(v) for k, v in t.params.items()},
            "run_dir": run_dir,
            "error": t.user_attrs.get("error"),
        }
        rows += [{**common, **epoch} for epoch in epochs]
    frame = pd.DataFrame(rows)
    for column in [c for c in frame.columns if c.startswith("param:")]:
        values = [row[column] for row in rows if row.get(column) is not None]
        if values and all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            # a trial from before the field was searched lacks it: blank, not 16.0 for 16
            frame[column] = frame[column].astype("Int64")
    return frame


def _cut_short(study, folder: Path) -> list[str]:
    """'trial N: its latest K of M evaluations' for each trial whose rows the trial table
    took from the storage (its history.jsonl is not here) and which did not all fit."""
    cut = []
    for t in study.get_trials(deepcopy=False):
        run_dir, total = t.user_attrs.get("run_dir"), t.user_attrs.get(EVALUATIONS)
        if total and not (run_dir and (folder / run_dir / "history.jsonl").is_file()):
            shown = len(t.user_attrs.get("epochs") or [])
            cut.append(f"trial {t.number}: its latest {shown} of {total} evaluations")
    return cut


def _history(path: Path) -> list[dict] | None:
    """A trial's history, or None when it is damaged (cut or not UTF-8 before its end):
    the trial's rows then come from the storage, and the report names it."""
    try:
        text = path.read_text(encoding="utf-8")
        try:
            history = [json.loads(line) for line in text.splitlines() if line.strip()]
        except ValueError:  # a running trial may be writing its last line: left out
            lines = text.rpartition("\n")[0].splitlines()
            history = [json.loads(line) for line in lines if line.strip()]
    except (OSError, ValueError):
        return None
    return history if all(isinstance(r, dict) and "step" in r for r in history) else None


def _unreadable(study, folder: Path) -> list[str]:
    """'trial N' for each trial whose history.jsonl is here but cannot be read."""
    return [
        f"trial {t.number}"
        for t in study.get_trials(deepcopy=False)
        if (run_dir := t.user_attrs.get("run_dir"))
        and (path := folder / run_dir / "history.jsonl").is_file()
        and _history(path) is None
    ]


def write_trials_csv(study, folder: Path, metric: str) -> pd.DataFrame:
    """trials.csv as the study stands now, written whole or not at all (as write_json
    writes): a reader, or another worker writing it at the same time, never sees half a
    table, and a worker killed meanwhile leaves no file behind for good."""
    frame = trial_rows(study, folder, metric)
    write_whole(folder / "trials.csv", frame.to_csv(index=False))
    return frame


def _kept_epoch(folder: Path, run_dir: str | None, trial) -> float | None:
    """The epoch of the checkpoint a finished run kept (the best on the sweep's metric),
    or None: no run, or the last checkpoint kept (load_best_model off). A trial run on
    another machine has no metrics.json here: its epoch was stored with it."""
    record = _read_record(folder / run_dir / "metrics.json") if run_dir else {}
    train = record.get("train") if record else {"best_checkpoint_epoch": trial.user_attrs.get(KEPT)}
    epoch = train.get("best_checkpoint_epoch") if isinstance(train, dict) else None
    return epoch if isinstance(epoch, (int, float)) else None


def _value_at(trial, last_epoch: float | None, kept_epoch: float | None = None) -> str | None:
    """Where a trial's value comes from: a finished trial's kept checkpoint (the best on
    the sweep's metric, often not the last epoch's row), a pruned trial's last evaluation
    before it was stopped."""
    if trial.state.name == "COMPLETE":
        return "end of training" if kept_epoch is None else f"best checkpoint, epoch {kept_epoch:g}"
    if trial.state.name == "PRUNED" and trial.value is not None:
        at = f"epoch {last_epoch:g}" if last_epoch is not None else f"evaluation {trial.last_step}"
        return f"pruned at {at}"
    return None


def _origin(trial) -> str:
    """Who chose the parameters: the sampler, the sweep file's `enqueue`, or a retry of
    a trial whose worker died."""
    attrs = trial.system_attrs
    if "failed_trial" in attrs:
        return f"retry of {attrs['failed_trial']}"
    return "enqueued" if "fixed_params" in attrs else "sampled"


def _chosen(value: Any) -> Any:
    """A parameter's value, a chosen null told from the blank of a trial without the field."""
    return "null" if value is None else value


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and pd.isna(value)):
        return "—"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-2 and value != 0 else f"{value:.{digits}f}"
    return str(value)


def best_trial(study):
    """The finished trial with the best value, the earliest (by number) of those tied on
    it: Optuna's own query has no tie-break (PostgreSQL may return any of them), and ties
    on accuracy are common on a small validation set. SQLite returned the earliest, so a
    stored sweep keeps its best trial."""
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    pick = min if study.direction.name == "MINIMIZE" else max
    value = pick(t.value for t in finished)
    return min((t for t in finished if t.value == value), key=lambda t: t.number)


def final_run(best, spec: SweepSpec, base: dict, folder: Path, source: str) -> Path | None:
    """Train once with the parameters of trial `best`; reused when it already exists for
    them, and for the data the config reads now (a file corrected in place keeps its
    config)."""
    from fintune.data.prepare import prepare_data
    from fintune.recipes import classification

    config = trial_config(base, best.params, spec, folder, best.number, source, kind="final")
    sha = results_sha(config)
    record_path = folder / "final.json"
    record = _read_record(record_path)
    # the final config's own data: the space may search a data field (split seed, ...)
    data_sha = prepare_data(config.data, config.seed).fingerprint["sha256"]
    model_sha = weights_fingerprint(config.model.name, config.model.gguf_file)
    finished = _read_record(folder / record.get("run_dir", "-") / "metrics.json")
    if (
        record.get("params") == best.params
        and record.get("config_sha", sha) == sha  # files from before the hash: params only
        and same_inputs(finished, data_sha, model_sha)
    ):
        return folder / record["run_dir"]
    # a final model without metrics.json may be one another process is training now
    # (`--report-only`, a second sweep): its owner is recorded beside it
    with owner_lock(folder / "final.lock", f"the final model of sweep {spec.name}", "trained"):
        # finished, but stopped before final.json
        run_dir = finished_run(config, data_sha, model_sha)
        if run_dir is not None:
            console.print(
                f"final/{escape(run_dir.name)}: the final model finished before the sweep "
                "was stopped; taken, not trained again"
            )
            _log_adopted(run_dir, config)
        else:
            _remove_interrupted(folder / "final", spec.name)
            console.rule(f"final model with the parameters of trial {best.number}")
            run_dir = classification.run(config)
        record = {
            "params": best.params,
            "trial": best.number,
            "run_dir": str(run_dir.relative_to(folder)),
            "config_sha": sha,
        }
        write_json(record_path, record)  # never half a file
    interrupt.check()  # a stop held back while the final model was logged: no report
    return run_dir


def _log_adopted(run_dir: Path, config) -> None:
    """Its MLflow record, cut short by the stop, is replaced by a whole one."""
    if not config.tracking.mlflow:
        return
    try:
        log_finished(run_dir, config)
    except Exception as error:  # noqa: BLE001 - the run on disk is intact
        console.print(f"[yellow]warning:[/] MLflow logging failed ({shown_error(error)})")


def _read_record(path: Path) -> dict[str, Any]:
    """A JSON record (final.json, metrics.json), or {} when it is missing or unreadable:
    then the final model is trained again."""
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _remove_interrupted(final: Path, name: str) -> None:
    """Final runs of this sweep that never wrote metrics.json (interrupted, or failed)
    are never reported from; they are removed before the final model is trained again.
    Called only under final.lock: no live process is writing any of them."""
    for run_dir in sorted(final.glob(f"*-{name}-final*")):
        if run_dir.is_dir() and not (run_dir / "metrics.json").is_file():
            console.print(
                f"final/{escape(run_dir.name)}: an interrupted final model (no metrics.json); "
                "removed, and trained again"
            )
            shutil.rmtree(run_dir, ignore_errors=True)


def finish_sweep(study, spec: SweepSpec, base: dict, folder: Path, source: str) -> Path:
    frame = write_trials_csv(study, folder, spec.metric)
    finished = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
    doc = Document(f"Sweep {spec.name}")
    states = frame.drop_duplicates("trial")["state"].value_counts().to_dict() if len(frame) else {}
    doc.text(
        f"Optuna {spec.sampler.upper()} sampler, {spec.pruner} pruner, objective: validation "
        f"{spec.metric} ({'minimised' if spec.metric == 'loss' else 'maximised'}). Trials: "
        + (", ".join(f"{n} {s}" for s, n in states.items()) or "none yet")
        + f" (budget {spec.trials} finished or pruned). Space: "
        + "; ".join(f"`{k}` {_space(p)}" for k, p in spec.space.items())
        + "."
    )
    if changes := search_changes(study.get_trials(deepcopy=False)):
        doc.text("The search settings changed during the study: " + "; ".join(changes) + ".")
    if not finished:
        doc.text("No trial finished, so there is no best configuration yet.")
        if len(frame):  # pruned trials' evaluations are still worth reading
            _trials(doc, study, frame, spec.metric, folder)
        _failures(doc, frame)
        md, _ = doc.write(folder)
        return md

    best = best_trial(study)  # once: the report's best trial is the final model's
    doc.heading("Best trial")
    doc.table(
        ["trial", f"validation {spec.metric}", *best.params],
        [[str(best.number), _fmt(best.value), *[_fmt(_chosen(v)) for v in best.params.values()]]],
    )
    failed = None
    if spec.final:
        try:
            run_dir = final_run(best, spec, base, folder, source)
        except LockHeld:
            raise  # the process training the final model writes the report when it is done
        except Exception as error:  # noqa: BLE001 - the trials' report is still written
            failed = f"{type(error).__name__}: {error}".splitlines()[0][:300]
            doc.heading("Final model")
            doc.text(f"Training the final model failed ({failed}), so there are no test scores.")
    if spec.final and failed is None:
        metrics = json.loads((run_dir / "metrics.json").read_text())
        test, val = metrics["test"], metrics["validation"]
        doc.heading("Final model (best parameters, retrained) on test")
        doc.text(
            f"Run `{run_dir}`; its validation {spec.metric} is {_fmt(val[spec.metric])} "
            f"(the trial had {_fmt(best.value)}; equal when training is deterministic)."
        )
        names = ["accuracy", "f1_macro", "f1_weighted"]
        names += [] if spec.metric in names else [spec.metric]
        doc.table(
            ["split", "n", *names],
            [
                [split, str(m["n"]), *[_with_interval(m, k) for k in names]]
                for split, m in (("validation", val), ("test", test))
            ],
        )
        for note in split_notes({"validation": val, "test": test}):  # as the run's report
            doc.text(lead_bold(note))

    _trials(doc, study, frame, spec.metric, folder)
    _failures(doc, frame)
    _plots(study, folder, doc, spec.metric)
    drop_stale_plots(doc, folder / "plots", lambda name: name in SWEEP_PLOTS)
    md, page = doc.write(folder)
    _track(
        spec,
        base,
        folder,
        source,
        [md, page, folder / "trials.csv", *sorted((folder / "plots").glob("*.png"))],
    )
    if failed:
        raise FintuneError(
            f"the final model failed: {failed}. The report {md} has the trials without it; "
            "once the cause is fixed, `fintune sweep FILE --report-only` trains it again"
        )
    return md


def _trials(doc: Document, study, frame: pd.DataFrame, metric: str, folder: Path) -> None:
    """The per-evaluation table, as the lab notebooks keep it."""
    doc.heading("Trials")
    doc.text(
        "One row per evaluation (epoch): mean training loss since the previous "
        "evaluation, validation loss, accuracy and macro F1. 'origin' says where a "
        "trial's parameters came from: the sampler, the sweep file's `enqueue`, or a retry "
        "of a trial whose worker died. Also in `trials.csv`, whose `value` is the trial's "
        f"validation {metric} as Optuna ranked it: a finished trial's at its kept (best) "
        "checkpoint, a pruned trial's at its last evaluation (`value_at` says which epoch); "
        "the two are not alike."
    )
    if cut := _cut_short(study, folder):
        doc.text(
            "Trials run on another machine, with more evaluations than the storage holds, "
            "show only their latest (all are in the trial's history.jsonl on that machine): "
            + "; ".join(cut)
            + "."
        )
    if unreadable := _unreadable(study, folder):
        doc.text(
            "A damaged history.jsonl (cut or not UTF-8 before its end) could not be read, so "
            "these trials' rows come from the storage: " + "; ".join(unreadable) + "."
        )
    params = [c for c in frame.columns if c.startswith("param:")]
    body = []
    for _, row in frame.iterrows():
        body.append(
            [
                str(row["trial"]),
                row["state"],
                row["origin"],
                *[_fmt(row[p]) for p in params],
                "—" if pd.isna(row.get("epoch")) else f"{row['epoch']:g}",
                *[_fmt(row.get(c)) for c in epoch_columns(metric)],
            ]
        )
    doc.table(
        [
            "trial",
            "state",
            "origin",
            *[p.removeprefix("param:") for p in params],
            "epoch",
            "train loss",
            "val loss",
            "val acc",
            "val F1 macro",
            *[c.replace("eval_", "val ") for c in epoch_columns(metric)[len(EPOCH_COLUMNS) :]],
        ],
        body,
    )


def _state(trial) -> str:
    """A trial failed without an error was stopped (Ctrl+C, SIGTERM, its worker gone): not
    called a failure that the report's failures never explain."""
    if trial.state.name == "FAIL" and "error" not in trial.user_attrs:
        return "interrupted"
    return trial.state.name.lower()


def _failures(doc: Document, frame: pd.DataFrame) -> None:
    if "error" not in frame or frame["error"].isna().all():
        return
    errors = frame.dropna(subset=["error"]).drop_duplicates("trial")
    doc.heading("Failed trials")
    doc.table(["trial", "error"], [[str(r["trial"]), r["error"]] for _, r in errors.iterrows()])


def _space(param) -> str:
    if param.type == "categorical":
        return f"in {param.choices}"
    shown = f"{param.type} {param.low:g}…{param.high:g}"
    shown += f" in steps of {param.step:g}" if param.step is not None else ""
    return shown + (" (log)" if param.log else "")


def _plots(study, folder: Path, doc: Document, metric: str) -> None:
    import optuna

    plots = folder / "plots"
    plots.mkdir(exist_ok=True)
    # rc_context: Optuna's plots call plt.style.use("ggplot"), which would restyle every
    # later figure of the process
    with warnings.catch_warnings(), matplotlib.rc_context():
        warnings.simplefilter("ignore")  # optuna marks its matplotlib plots experimental
        target = f"validation {metric}"
        ax = optuna.visualization.matplotlib.plot_optimization_history(study, target_name=target)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # whole trials
        _save(ax, plots / "optimization_history.png", doc, "optimisation history")
        # Optuna draws equal bars, as if every field mattered alike, when it has nothing to
        # explain: fewer than two finished trials, or finished trials that all scored the same
        finished = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
        values = [t.value for t in finished]
        if len(values) < 2:
            doc.text(
                f"Parameter importances need at least 2 finished trials ({len(values)} so far)."
            )
            return
        if len(set(values)) == 1:
            doc.text(
                f"No parameter importances: every finished trial scored {values[0]:g}, so no "
                "field explains a difference."
            )
            return
        # PED-ANOVA groups trials by each field's distribution, which it hashes: one over
        # choices that are lists (the modules a method targets) or mappings (method
        # variants) cannot be
        lists = sorted(
            {
                field
                for t in finished
                for field, d in t.distributions.items()
                if any(isinstance(c, list | dict) for c in getattr(d, "choices", ()))
            }
        )
        params = sorted({f for t in finished for f in t.distributions} - set(lists))
        if lists:
            doc.text(
                f"No importance for {', '.join(f'`{f}`' for f in lists)}: PED-ANOVA cannot "
                "compare choices that are lists or mappings."
            )
        if not params:
            return
        # named, not Optuna's default, which changed (4.x fANOVA, 5.x PED-ANOVA); PED-ANOVA
        # also keeps a field whose bounds a resume moved, which fANOVA leaves out
        evaluator = optuna.importance.PedAnovaImportanceEvaluator()
        try:
            raw = evaluator.evaluate(study, params=params)
        except (RuntimeError, ValueError) as error:
            doc.text(f"Parameter importances could not be computed ({error}).")
            return
        if not any(raw.values()):  # Optuna would draw equal bars for them
            doc.text(
                f"Parameter importances cannot be computed yet from {len(values)} finished "
                "trials: PED-ANOVA compares trials sampled from the same bounds, and needs 2 "
                "of them (a resume that moved a field's bounds starts that count again), so "
                "it gives every field 0."
            )
            return
        few = len(values) < FEW_TRIALS
        doc.text(
            "Parameter importances (PED-ANOVA: how much each field matters for a score in "
            f"the top 10% of finished trials) rest on {len(values)} finished trials; pruned "
            "trials are left out."
            + (
                f" With fewer than {FEW_TRIALS} they are mostly noise: a hint, not a finding."
                if few
                else ""
            )
        )
        try:
            ax = optuna.visualization.matplotlib.plot_param_importances(
                study, evaluator=evaluator, params=params, target_name=target
            )
            _save(ax, plots / "param_importances.png", doc, "parameter importances")
        except (RuntimeError, ValueError) as error:
            doc.text(f"Parameter importances could not be computed ({error}).")


def _with_interval(split: dict, name: str) -> str:
    low_high = split["ci95"].get(name)  # runs from before the loss had one: none
    return f"{split[name]:.4f}" + (f" {format_interval(*low_high)}" if low_high else "")


def _save(ax, path: Path, doc: Document, alt: str) -> None:
    fig = ax.figure if hasattr(ax, "figure") else ax.flat[0].figure
    fig.set_size_inches(7, 4)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    doc.image(path, alt)


def _track(spec: SweepSpec, base: dict, folder: Path, source: str, files: list[Path]) -> None:
    config = trial_config(base, {}, spec, folder, 0, source)
    if not config.tracking.mlflow:
        return
    from fintune.tracking import log_summary, summary_of

    run_name, tags = summary_of("sweep", spec.name)
    try:
        log_summary(config, run_name, folder, files, tags)
    except Exception as error:  # noqa: BLE001
        console.print(
            f"[yellow]warning:[/] MLflow logging of the report failed ({shown_error(error)})"
        )
