"""`fintune sweep SWEEP.yaml`: Optuna over config fields, each trial an ordinary run (the
sweep file and the checks of its space: sweep_spec.py).

The study is stored in `<output>/<name>/optuna.db` (SQLite) unless `storage` names another
SQLAlchemy URL; a rerun resumes it, and `fintune sweep FILE --worker` in more processes
(or machines, with a shared database) works the same study. Trials are pruned on the
per-evaluation validation metric. At the end a final model is trained with the best
parameters and evaluated on test.
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import socket
import time
import warnings
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.markup import escape
from transformers import TrainerCallback

from fintune import interrupt
from fintune.config.schema import ExperimentConfig
from fintune.errors import FintuneError
from fintune.models.registry import weights_fingerprint
from fintune.run_dir import check_writable
from fintune.study.compare import drop_killed_checkpoints
from fintune.study.sweep_resume import (
    INPUTS,
    base_record,
    check_stored_base,
    check_stored_metric,
    check_stored_search,
    check_stored_space,
    check_trial_inputs,
    run_inputs,
    search_settings,
    store_settings,
)
from fintune.study.sweep_spec import (
    SweepSpec,
    _at,
    _points,
    check_space_architectures,
    check_space_data,
    console,
    data_of,
    load_sweep,
    trial_config,
    warn_space_warmup,
)
from fintune.tracking import (
    open_summary,
    redact,
    reopen_summary,
    shown_error,
    sqlite_uri,
    stop_summary,
)

COUNTED = ("COMPLETE", "PRUNED")
KEPT = "kept_epoch"  # a finished trial's user attribute: the epoch of its kept checkpoint
MAX_FAILURES_IN_A_ROW = 3
POLL_SECONDS = 10.0  # how often the reporting process looks at other workers' trials
pause = time.sleep
RACES = ("UNIQUE constraint", "already exists", "database is locked")


def sweep_dir(spec: SweepSpec) -> Path:
    return Path(spec.output) / spec.name


def open_storage(spec: SweepSpec, folder: Path):
    """The study's storage, and its URL as messages show it (without a password)."""
    import optuna

    url = spec.storage or sqlite_uri(folder / "optuna.db")
    shown = redact(url)
    for attempt in range(5):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # heartbeats are marked experimental
                # a worker killed mid-trial stops beating; its trial is failed and re-queued
                storage = optuna.storages.RDBStorage(
                    url,
                    engine_kwargs={"connect_args": {"timeout": 60}}
                    if url.startswith("sqlite")
                    else {},
                    heartbeat_interval=30,
                    grace_period=120,
                    heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                        max_retry=1
                    ),
                )
            break
        except Exception as error:  # noqa: BLE001 - driver missing, host down, bad path ...
            first = str(error).replace(url, shown).splitlines()[0][:240]
            if attempt < 4 and any(s in first for s in RACES):
                time.sleep(0.5 + attempt)  # another worker is creating the tables
                continue
            raise FintuneError(
                f"storage: cannot open {shown}: {type(error).__name__}: {first}"
            ) from None
    return storage, shown


class BudgetReached(Exception):
    """Raised at the start of a trial another worker's trials already paid for."""


class PointDropped(Exception):
    """Raised at the start of a queued trial whose point this sweep file would not run."""


class PruneOnValidation(TrainerCallback):
    """Reports the validation metric to Optuna after each evaluation; stops a bad trial."""

    def __init__(self, trial, metric: str, folder: Path):
        self.trial, self.key, self.folder, self.evaluations = trial, f"eval_{metric}", folder, 0

    def on_train_begin(self, args, state, control, **kwargs):
        run_dir = Path(args.output_dir).parent
        self.trial.set_user_attr("run_dir", str(run_dir.relative_to(self.folder)))
        self.trial.set_user_attr(INPUTS, run_inputs(run_dir))  # a resume checks them

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        import optuna

        from fintune.study.sweep_report import per_epoch

        self.evaluations += 1
        # the report's epoch rows, for a report written on another machine than this trial's
        if rows := per_epoch(state.log_history, self.key.removeprefix("eval_")):
            kept = latest_that_fit(rows)
            self.trial.set_user_attr("epochs", kept)
            if len(kept) < len(rows):  # the report says the others are left out
                self.trial.set_user_attr(EVALUATIONS, len(rows))
        if metrics and self.key in metrics:
            self.trial.report(float(metrics[self.key]), self.evaluations)
            finished = state.global_step >= state.max_steps  # nothing left to save
            if not finished and self.trial.should_prune():
                raise optuna.TrialPruned(f"pruned after evaluation {self.evaluations}")


# A trial's stored epoch rows, as JSON: MySQL's TEXT column holds 65,535 bytes, and a longer
# value is a storage error that fails the trial (a trial evaluated every few steps: ~450 rows)
EPOCHS_ATTR_CHARS = 60_000
EVALUATIONS = "evaluations"  # a trial's user attribute: its evaluations, where not all fit


def latest_that_fit(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The latest of `rows` whose JSON fits EPOCHS_ATTR_CHARS (the last evaluation always)."""
    size = len(json.dumps(rows))
    while size > EPOCHS_ATTR_CHARS and len(rows) > 1:
        rows = rows[-max(len(rows) * EPOCHS_ATTR_CHARS // size, 1) :]
        size = len(json.dumps(rows))
    return rows


class QuietInterruption(logging.Filter):
    """Optuna logs a trial stopped by Ctrl+C as failed: the interruption's whole traceback,
    then 'Trial N failed with value None.' Both are dropped; the trial is recorded as
    interrupted (failed without an error), and the user pressed the keys."""

    def __init__(self) -> None:
        super().__init__()
        self.stopped: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        trial = re.match(r"Trial (\d+) failed with ", record.getMessage())
        if record.exc_info and isinstance(record.exc_info[1], KeyboardInterrupt) and trial:
            self.stopped.add(trial[1])
            return False
        return not (trial and trial[1] in self.stopped)


def make_sampler(spec: SweepSpec, seed: int):
    """TPE or random sampling, seeded again before each trial from the base config's `seed`
    and the trial's number: the same sweep file proposes the same points, and workers on
    one study do not (Optuna's own seed gives each process one sequence: two workers drew
    the same startup points), nor does a resume repeat the points of the first trials."""
    import numpy as np
    import optuna

    kind = optuna.samplers.TPESampler if spec.sampler == "tpe" else optuna.samplers.RandomSampler

    class PerTrialSeed(kind):
        def before_trial(self, study, trial) -> None:
            state = int(np.random.SeedSequence([seed, trial.number]).generate_state(1)[0])
            # TPE's own generator, and that of the random sampler it starts with
            for sampler in (self, getattr(self, "_random_sampler", None)):
                if sampler is not None:
                    sampler._rng.rng.seed(state)
            super().before_trial(study, trial)

    options = {"n_startup_trials": spec.startup_trials} if spec.sampler == "tpe" else {}
    return PerTrialSeed(seed=seed, **options)


def make_pruner(spec: SweepSpec):
    """Median pruning: a trial stops when its latest validation value is worse than the
    median of earlier trials at the same evaluation (evaluations are counted from 1)."""
    import optuna

    if spec.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(
        n_startup_trials=spec.startup_trials, n_warmup_steps=spec.prune_after
    )


def make_objective(spec: SweepSpec, base: dict[str, Any], folder: Path, source: str):
    import optuna

    from fintune.recipes import classification

    def objective(trial: optuna.Trial) -> float:
        trials = trial.study.get_trials(deepcopy=False)
        me = next(t for t in trials if t.number == trial.number)
        ahead = [
            t for t in trials if started(t) < started(me) and t.state.name in (*COUNTED, "RUNNING")
        ]
        if len(ahead) >= spec.trials:
            trial.set_user_attr("skipped", "trial budget already used")
            trial.study.stop()
            raise BudgetReached
        if why := dropped(me, spec):
            trial.set_user_attr("skipped", why)
            console.print(f"trial {trial.number} not run: {escape(why)}")
            raise PointDropped(why)
        # Any error is recorded on the trial: the report lists it, and the sweep stops after
        # MAX_FAILURES_IN_A_ROW instead of sampling failing trials for ever.
        trial.set_user_attr("search", search_settings(spec))  # a resume may change them
        try:
            params = {field: p.suggest(trial, field) for field, p in spec.space.items()}
            config = trial_config(base, params, spec, folder, trial.number, source=source)
            console.rule(f"trial {trial.number}")
            console.print(params, markup=False)  # whole, not cut to the rule's width
            run_dir = classification.run(
                config, callbacks=[PruneOnValidation(trial, spec.metric, folder)]
            )
            # finished: a stop from here is raised once Optuna has the value (in `enough`),
            # or the trial is failed and its finished run trained again in another's place
            interrupt.hold()
            trial.set_user_attr("run_dir", str(run_dir.relative_to(folder)))
            metrics = json.loads((run_dir / "metrics.json").read_text())
            value = float(metrics["validation"][spec.metric])
            # value_at's epoch, for a report written on another machine than this trial's
            trial.set_user_attr(KEPT, (metrics.get("train") or {}).get("best_checkpoint_epoch"))
            console.print(f"trial {trial.number}: validation {spec.metric} {value:.4f}")
            return value
        except optuna.TrialPruned as pruned:
            run_dir = folder / trial.user_attrs["run_dir"]
            shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # logged by the recipe
            side = "above" if spec.direction == "minimize" else "below"  # worse than it
            console.print(
                f"trial {trial.number} {pruned}: validation {spec.metric} {side} the median "
                "of earlier trials there"
            )
            raise
        except SystemExit:  # SIGTERM; Optuna fails a trial only on an exception or Ctrl+C
            trial.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            raise
        except Exception as error:
            trial.set_user_attr("error", f"{type(error).__name__}: {error}".splitlines()[0])
            raise

    return objective


def started(trial) -> tuple[float, int]:
    """The order in which trials took their budget slots: by start, the number breaking
    ties. Not by number alone: a queued trial (an `enqueue` point, a dead worker's trial
    queued again) has its number from when it was queued, and may start after a newer one."""
    at = trial.datetime_start
    return (at.timestamp() if at else -math.inf, trial.number)


def dropped(trial, spec: SweepSpec) -> str | None:
    """Why a queued trial's point is not run, or None: an `enqueue` point the file no longer
    lists, or a point (a dead worker's trial queued again, too) outside the space now. Each
    process judges by its own file when it takes the trial, so none drops another's."""
    system_attrs = trial.system_attrs
    point = system_attrs.get("fixed_params")
    if point is None and "failed_trial" in system_attrs:
        point = trial.params  # Optuna queues a sampled point again with its params set
    if not point:
        return None
    for field, value in point.items():
        problem = spec.space[field].problem_with(value) if field in spec.space else "not searched"
        if problem:
            return f"its queued point {point} is outside the space ({field}: {problem})"
    if "failed_trial" not in system_attrs and point not in spec.enqueue:
        return f"its queued point {point} is no longer in the sweep file's enqueue"
    return None


def enqueue_new_points(study, spec: SweepSpec) -> None:
    """Queue each `enqueue` point that no trial holds yet. A trial that was interrupted or
    skipped for the budget does not hold its point; one that failed with an error does."""
    holders = [
        {**t.params, **t.system_attrs.get("fixed_params", {})}
        for t in study.get_trials(deepcopy=False)
        if t.state.name != "FAIL" or "error" in t.user_attrs
    ]
    for point in spec.enqueue:
        if not any(all(k in held and held[k] == v for k, v in point.items()) for held in holders):
            study.enqueue_trial(point)


def fail_stale(study) -> None:
    """Mark the trials of workers that stopped beating as failed (and queue them again)."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # marked experimental, stable since optuna 2.9
        optuna.storages.fail_stale_trials(study)


def drop_failed_checkpoints(study, folder: Path) -> None:
    """The checkpoints of failed trials' runs that never finished: a worker killed mid-trial
    (SIGKILL, a lost node) could not remove them; its trial is failed for good (a retry
    runs in a new folder), so no live process writes them."""
    for trial in study.get_trials(deepcopy=False):
        run_dir = trial.user_attrs.get("run_dir")
        if not run_dir or trial.state.name != "FAIL":
            continue
        drop_killed_checkpoints(folder / run_dir, run_dir, f"trial {trial.number}")


def counted_trials(study) -> int:
    return sum(t.state.name in COUNTED for t in study.get_trials(deepcopy=False))


def taken_slots(study) -> int:
    """Budget slots held by finished, pruned or running trials."""
    return sum(t.state.name in (*COUNTED, "RUNNING") for t in study.get_trials(deepcopy=False))


def refresh_table(study, spec: SweepSpec, folder: Path) -> None:
    """trials.csv after each trial this process ends, for whoever watches a long sweep (or
    one that is killed); the report and final model come at the end."""
    from fintune.study.sweep_report import write_trials_csv

    try:
        write_trials_csv(study, folder, spec.metric)
    except (OSError, ValueError) as error:  # a full disk, a broken history: the end tells
        console.print(f"[yellow]warning:[/] trials.csv not updated ({escape(str(error))})")


def run_sweep(
    path: str | Path,
    worker: bool = False,
    trials: int | None = None,
    timeout_minutes: float | None = None,
    report_only: bool = False,
    overrides: list[str] | None = None,
) -> Path:
    import optuna

    if worker and report_only:
        raise FintuneError(
            "--worker and --report-only do not go together: a worker only runs trials, and "
            "--report-only runs none; drop --worker to write the report"
        )
    spec, base = load_sweep(path, overrides)
    options = {"trials": trials, "timeout_minutes": timeout_minutes}
    for name, value in options.items():
        if value is not None:
            try:
                setattr(spec, name, value)
            except ValidationError as error:
                option = "--" + name.replace("_", "-")
                raise FintuneError(f"{option} {value}: {error.errors()[0]['msg']}") from None
    folder = sweep_dir(spec)
    check_writable(folder, f"{path}: output")  # before the trials' output.dir names it
    from fintune.recipes import classification

    first = trial_config(base, {}, spec, folder, 0, source=str(path))
    data, _ = classification.setup(first)  # data and model checks before any trial
    check_space_architectures(spec, base, str(path))
    examples = check_space_data(spec, base, str(path))
    examples[data_of(first)] = len(data.splits["train"])
    for point in _points(spec):  # a precision the device lacks, chosen in the space
        config = trial_config(base, point, spec, folder, 0, str(path))
        _at(point, classification.check_device, config)
    warn_space_warmup(spec, base, first, examples, str(path))
    if report_only and spec.storage is None and not (folder / "optuna.db").is_file():
        raise FintuneError(
            f"--report-only: {folder} holds no trials of sweep {spec.name!r} yet; run it "
            "without --report-only first"
        )
    if spec.storage is None:  # the default store lives in the folder; another is checked first
        folder.mkdir(parents=True, exist_ok=True)
    storage, url = open_storage(spec, folder)
    if report_only and spec.name not in {s.study_name for s in storage.get_all_studies()}:
        raise FintuneError(
            f"--report-only: {url} holds no study {spec.name!r} yet; run the sweep without "
            "--report-only first (or check `name` and `storage`)"
        )
    folder.mkdir(parents=True, exist_ok=True)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    optimize_log = logging.getLogger("optuna.study._optimize")
    if not any(isinstance(f, QuietInterruption) for f in optimize_log.filters):
        optimize_log.addFilter(QuietInterruption())
    study = optuna.create_study(
        study_name=spec.name,
        storage=storage,
        direction=spec.direction,
        sampler=make_sampler(spec, first.seed),
        pruner=make_pruner(spec),
        load_if_exists=True,
    )
    check_stored_metric(study, spec, url)
    check_stored_space(study, spec, url)
    check_stored_search(study, spec, url, report_only)
    model_sha = weights_fingerprint(first.model.name, first.model.gguf_file)
    record = base_record(first, data.fingerprint["sha256"], model_sha)
    check_stored_base(study, record, url, report_only)
    check_trial_inputs(study, spec, base, folder, str(path), url, report_only, first, record)
    if not report_only:  # --report-only runs no trial; its base may be the final model's
        store_settings(study, spec, record)

    # ran: trials this process ran; out_of_time: a slot was open when its time had run out
    failures, ran, out_of_time = [], [], []

    def enough(study, trial) -> None:
        ran.append(trial.number)
        interrupt.release()
        refresh_table(study, spec, folder)
        interrupt.check()  # a stop held since the run finished, or one Optuna's gc dropped
        if taken_slots(study) >= spec.trials:
            study.stop()
        failed = trial.state.name == "FAIL" and "error" in trial.user_attrs
        failures[:] = [*failures, trial.number] if failed else []
        if len(failures) >= MAX_FAILURES_IN_A_ROW:  # a broken setup, not bad luck
            console.print(
                f"[red]{len(failures)} trials in a row failed[/] (last: "
                f"{escape(trial.user_attrs['error'])}); stopping this worker"
            )
            study.stop()

    fail_stale(study)  # a dead worker's trial must not hold a slot of the budget
    drop_failed_checkpoints(study, folder)
    if counted_trials(study) < spec.trials and not report_only and not worker:
        enqueue_new_points(study, spec)
    deadline = time.monotonic() + spec.timeout_minutes * 60 if spec.timeout_minutes else None

    def may_start_trials() -> bool:
        """A trial may start if the budget has a slot no finished or running trial holds."""
        in_time = deadline is None or time.monotonic() < deadline
        broken = len(failures) >= MAX_FAILURES_IN_A_ROW
        open_slot = taken_slots(study) < spec.trials
        if open_slot and not in_time and not broken:
            out_of_time[:] = [True]
        return open_slot and in_time and not broken

    done = counted_trials(study)
    if done >= spec.trials and not report_only and not worker:
        console.print(
            f"Sweep {escape(spec.name)}: {done} of {spec.trials} trials already done; raise "
            "trials (or --trials N) to search more"
        )
    # made before the trials: they are its children
    summary = None
    try:
        if not report_only:
            summary = open_summary(first, "sweep", spec.name)
        if not report_only and not worker:  # one process: two would log a trial twice
            log_untracked(study, spec, base, folder, str(path))
        waiting_said = False
        while not report_only:
            if may_start_trials():
                console.print(
                    f"Sweep {escape(spec.name)}: {counted_trials(study)} of {spec.trials} trials "
                    f"done; storage {escape(url)}"
                )
                try:
                    study.optimize(
                        make_objective(spec, base, folder, str(path)),
                        timeout=None if deadline is None else max(deadline - time.monotonic(), 0),
                        callbacks=[enough],
                        catch=(BudgetReached, Exception),
                        gc_after_trial=True,
                    )
                finally:
                    interrupt.release()  # a trial's record that failed before `enough`
            if worker:
                break
            # The report and final model wait for other workers' trials. A killed worker's trial
            # turns stale after the heartbeat grace period; it is failed and queued again, and
            # this process runs it if the budget still needs it (as it runs another trial when
            # another worker's last trial failed).
            fail_stale(study)
            if may_start_trials():
                continue
            trials = study.get_trials(deepcopy=False)
            running = [t.number for t in trials if t.state.name == "RUNNING"]
            if not running:
                break
            if not waiting_said:
                console.print(
                    f"Waiting for other workers' trials {running} before the report (Ctrl+C, "
                    "then `fintune sweep FILE --report-only`, reports without them)"
                )
                waiting_said = True
            pause(POLL_SECONDS)
        late = _said_late(spec) if out_of_time and not ran else None
        if worker:
            end_summary_if_last(study, first, summary, None, folder)
            _refuse_if_nothing_finished(study, None, late)
            return folder
        fail_stale(study)
        # the last worker may have ended it KILLED while this process waited for its trial
        reopen_summary(first, summary)
        from fintune.study.sweep_report import finish_sweep

        report = finish_sweep(study, spec, base, folder, str(path))
        _refuse_if_nothing_finished(study, report, late)
        return report
    except BaseException as error:  # not left RUNNING: the report (--report-only) ends it
        if worker:  # the others, and the report, may go on under it
            end_summary_if_last(study, first, summary, error, folder)
        else:
            stop_summary(first, summary, error)
        raise


def end_summary_if_last(study, first: ExperimentConfig, summary, error, folder: Path) -> None:
    """A worker opens the report's run too (its trials are children of it), but writes no
    report: the last worker to end, with no trial of another process running, ends it
    KILLED (FAILED on an error), as a sweep stopped before its report does, not RUNNING for
    ever; the report of a later run without --worker ends it FINISHED."""
    if summary is None:
        return
    try:
        running = any(t.state.name == "RUNNING" for t in study.get_trials(deepcopy=False))
    except Exception:  # noqa: BLE001 - the storage is gone: the stop's own error is the one
        return
    if not running and not _final_in_training(folder):
        stop_summary(first, summary, error)


def _final_in_training(folder: Path) -> bool:
    """Whether final.lock names a process that may be training the final model now (one of
    another machine, or being started, cannot be known dead): its report run is in use."""
    from fintune.study.compare import _alive

    lock = folder / "final.lock"
    try:
        text, age = lock.read_text().strip(), time.time() - lock.stat().st_mtime
    except OSError:
        return False
    pid, _, host = text.partition(" ")
    if not pid.isdigit():  # its pid is being written (as owner_lock reads it)
        return not text and age < 10
    return host not in ("", socket.gethostname()) or _alive(int(pid))


def log_untracked(study, spec: SweepSpec, base: dict[str, Any], folder: Path, source: str):
    """Log the finished and pruned trials, and the final model, that MLflow lacks: tracking
    is no part of their config, so those that ran with it off are reused when it is switched
    on; and those whose logging was cut short. Once each, as a study logs its cells."""
    from fintune.study.adopt import log_finished
    from fintune.tracking import tracked_runs

    first = trial_config(base, {}, spec, folder, 0, source)
    if not first.tracking.mlflow:
        return
    runs = [
        (
            trial_config(base, t.params, spec, folder, t.number, source),
            t.user_attrs["run_dir"],
            t.state.name == "PRUNED",
        )
        for t in study.get_trials(deepcopy=False)
        if t.state.name in COUNTED and "run_dir" in t.user_attrs
    ]
    try:
        final = json.loads((folder / "final.json").read_text())
        runs.append(
            (
                trial_config(base, final["params"], spec, folder, final["trial"], source, "final"),
                final["run_dir"],
                False,
            )
        )
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no final model yet, or a record it trains again
    try:
        records = [r for r in tracked_runs(first) if r.data.tags.get("fintune.sweep") == spec.name]
        for config, run_dir, pruned in runs:
            # a pruned trial has no metrics.json; no folder here when another machine ran it
            done = "config.yaml" if pruned else "metrics.json"
            whole = (folder / run_dir / done).is_file()
            if whole and log_finished(folder / run_dir, config, records, pruned):
                console.print(f"Logged {escape(run_dir)} to MLflow (it was not, or not whole)")
    except Exception as error:  # noqa: BLE001 - the trials' results on disk are intact
        console.print(
            f"[yellow]warning:[/] MLflow logging of finished trials failed ({shown_error(error)})"
        )


def _said_late(spec: SweepSpec) -> str:
    """The line for a process whose time ran out before it started a trial."""
    late = (
        f"timeout_minutes {spec.timeout_minutes:g} ran out before this process started a "
        "trial (it counts from the end of the checks)"
    )
    console.print(f"Sweep {escape(spec.name)}: no trial ran: {escape(late)}")
    return late


def _refuse_if_nothing_finished(study, report: Path | None, late: str | None = None) -> None:
    """A sweep whose trials all failed did not succeed: say so with a non-zero exit, as when
    its time ran out before any trial (`late`). A trial interrupted, or skipped because the
    budget was taken, is no failure of the setup."""
    trials = study.get_trials(deepcopy=False)
    where = f"; report: {report}" if report else ""
    if any(t.state.name == "COMPLETE" for t in trials):
        return
    failed = [t for t in trials if t.state.name == "FAIL" and "error" in t.user_attrs]
    if failed:
        last = failed[-1].user_attrs["error"]
        raise FintuneError(
            f"no trial finished: {len(failed)} failed (the last, trial {failed[-1].number}: "
            f"{last}){where}"
        )
    if late and not any(t.state.name in ("PRUNED", "RUNNING") for t in trials):
        raise FintuneError(f"no trial finished: {late}{where}")
