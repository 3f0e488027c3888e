"""`fintune compare STUDY.yaml`: run every cell as an ordinary run, resumably, then report.

The study lives in `<output>/<name>/`: `runs/` (one run directory per cell), `cells.json`
(each cell's status, run directory or error), `errors/` (tracebacks) and the report.
A cell counts as done when its run finished with the same resolved config on the same
data and (a local model) the same model files, and its run directory still holds its
results; otherwise it runs again in a new run directory, and nothing earlier is
overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from fintune import interrupt

try:
    import fcntl
except ImportError:  # Windows: a takeover left by a killed process is known by its age
    fcntl = None  # type: ignore[assignment]
from fintune.config.schema import escape_variables
from fintune.errors import FintuneError
from fintune.evaluation.metrics import check_bootstrap_memory
from fintune.models.registry import weights_fingerprint
from fintune.recipes import RECIPES
from fintune.run_dir import check_writable, drop_checkpoints, write_json
from fintune.study.adopt import finished_run, log_finished, same_inputs, whole_metrics
from fintune.study.spec import Cell, StudySpec, load_study, report_row
from fintune.tracking import (
    check_tracking,
    experiment_name,
    log_summary,
    open_summary,
    shown_error,
    stop_summary,
    store_in,
    summary_of,
    tracked_runs,
    tracking_uri,
)
from fintune.training.trainer import warmup_note

console = Console(stderr=True, soft_wrap=True)
# a finished cell's status once its data, or its local model's weights, are seen to differ
DATA_CHANGED, MODEL_CHANGED = "data changed", "model changed"
CHANGED = (DATA_CHANGED, MODEL_CHANGED)


def study_dir(spec: StudySpec) -> Path:
    return Path(spec.output) / spec.name


def check_cells(cells: list[Cell], spec: StudySpec) -> dict[str, tuple[str, str | None]]:
    """Every check a cell's run would make first (data, model and method, the study's
    tracking store), once per distinct input. Returns each cell's data fingerprint and its
    local model's (None: a hub model)."""
    seen: dict[str, tuple[str, int, int]] = {}  # fingerprint, training texts, labels
    weights: dict[tuple[str, str | None], str | None] = {}
    shas: dict[str, tuple[str, str | None]] = {}
    labels = 0
    for cell in cells:
        cfg = cell_config(cell, spec, study_dir(spec))
        checked = {
            "model": True,
            "method": True,
            # setup checks the precision, and a prefix projection's load_best_model, too
            "training": {"device", "precision", "load_best_model"},
            "data": True,
            "seed": True,
            "tracking": {"mlflow", "uri", "experiment"},
            "evaluation": {"bootstrap_samples"},  # setup checks the memory it needs
        }
        key = json.dumps(cfg.model_dump(mode="json", include=checked), sort_keys=True)
        if key not in seen:
            try:
                data, _ = RECIPES[cfg.task].setup(cfg, warn_warmup=False)
            except FintuneError as error:
                raise FintuneError(f"cell {cell.id}: {error}") from None
            seen[key] = data.fingerprint["sha256"], len(data.splits["train"]), len(data.labels)
        data_sha, examples, k = seen[key]
        model = cfg.model.name, cfg.model.gguf_file
        if model not in weights:  # setup has resolved it
            weights[model] = weights_fingerprint(*model)
        shas[cell.id] = data_sha, weights[model]
        labels = max(labels, k)
        # per cell, not per key: an axis over max_steps, epochs or warmup_steps shares a key
        if note := warmup_note(cfg.training, examples):
            console.print(f"[yellow]warning:[/] cell {escape(cell.id)}: {escape(note)}")
    # the paired test of a row resamples its seeds' and their baselines' predictions at once
    seeds = max(Counter(report_row(c, spec) for c in cells).values(), default=1)
    check_bootstrap_memory(spec.bootstrap_samples, labels, 2 * seeds, field="bootstrap_samples")
    return shas


def cell_config(cell: Cell, spec: StudySpec, folder: Path):
    config = cell.config.model_copy(deep=True)
    config.output.dir = escape_variables(str(folder / "runs"))
    config.tracking.experiment = config.tracking.experiment or spec.name
    store_in(config, folder)
    config.tracking.tags = {
        **config.tracking.tags,
        "fintune.study": spec.name,
        "fintune.cell": cell.id,
    }
    return config


def read_state(folder: Path) -> dict[str, Any]:
    path = folder / "cells.json"
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text())
    except ValueError as error:
        why = f"not valid JSON ({error})"
    else:
        why = _state_shape(state)
        if why is None:
            return state
    raise FintuneError(
        f"{path}: {why}; it was changed by hand. Restore it, or delete it: the finished runs "
        f"in {folder / 'runs'} are then taken back as done where a cell is configured as its "
        "run was (delete that folder too to run every cell again)"
    )


def _state_shape(state: Any) -> str | None:
    """What is wrong with a cells.json's content; None if it is a mapping of cell ids to
    entries whose status and run_dir, where given, are text, a done one's run_dir and a
    failed one's error and traceback given."""
    if not isinstance(state, dict):
        return f"not a mapping of cell ids to entries but a {type(state).__name__}"
    for cell_id, entry in state.items():
        if not isinstance(entry, dict):
            return f"the entry of cell {cell_id!r} is not a mapping"
        for field in ("status", "run_dir"):
            if field in entry and not isinstance(entry[field], str):
                return f"the {field} of cell {cell_id!r} is not text"
        # what the study and its report read of a done or a failed cell
        for field in _NEEDED.get(entry.get("status"), ()):
            if not isinstance(entry.get(field), str):
                return f"the {entry['status']} cell {cell_id!r} has no {field} (text)"
    return None


_NEEDED = {"done": ("run_dir",), "failed": ("error", "traceback")}
_NEEDED |= {changed: ("run_dir",) for changed in CHANGED}  # done on inputs since changed


def write_state(folder: Path, state: dict[str, Any]) -> None:
    write_json(folder / "cells.json", state)  # atomic: an interruption leaves no half file


def cells_to_run(
    cells: list[Cell],
    state: dict[str, Any],
    folder: Path,
    inputs: dict[str, tuple[str, str | None]],
) -> tuple[list[Cell], dict[str, str]]:
    """The cells not finished with their config on the inputs they read now (`inputs`: data
    and model fingerprints), and those among them that did finish on inputs since changed
    (a corrected file, a model trained again into its folder), each with the change
    (DATA_CHANGED or MODEL_CHANGED). A cell so marked whose inputs are back as it ran on
    them is done again (in `state`)."""
    todo, stale = [], {}
    for cell in cells:
        entry = state.get(cell.id)
        if entry and entry.get("status") in CHANGED:
            entry = {**entry, "status": "done"}
        metrics = finished_metrics(entry, folder) if cell.made(entry) else None
        data_sha, model_sha = inputs[cell.id]
        if metrics is not None and same_inputs(metrics, data_sha, model_sha):
            state[cell.id] = entry  # an edit put back before the cell ran again
            continue
        todo.append(cell)
        if metrics is not None:
            same_data = metrics.get("data_sha256") == data_sha
            stale[cell.id] = MODEL_CHANGED if same_data else DATA_CHANGED
    return todo, stale


def finished_metrics(entry: dict[str, Any] | None, folder: Path) -> dict[str, Any] | None:
    """A done cell's metrics; None when its run directory no longer holds the metrics and
    all its test predictions, which the report reads (deleted, damaged by hand, or cut
    short): it runs again."""
    if not entry or entry.get("status") != "done":
        return None
    return whole_metrics(folder / entry["run_dir"])


def adopt_finished(
    cells: list[Cell],
    spec: StudySpec,
    folder: Path,
    state: dict,
    inputs: dict[str, tuple[str, str | None]],
) -> list[str]:
    """The cells among `cells` whose run finished, on the inputs they read now, though the
    study stopped before cells.json named it (a stop while it was logged to MLflow): each
    is marked done with that run rather than trained again. Under the study lock."""
    taken = {Path(e["run_dir"]).name for e in state.values() if e.get("run_dir")}
    adopted, written = [], {}
    for cell in cells:
        config = cell_config(cell, spec, folder)
        run_dir = finished_run(config, *inputs[cell.id], taken, written)
        if run_dir is None:
            continue
        started = datetime.fromtimestamp((run_dir / "config.yaml").stat().st_mtime)
        state[cell.id] = {
            "config_sha": cell.config_sha,
            "coords": cell.coords,
            "started": started.isoformat(timespec="seconds"),
            "status": "done",
            "run_dir": str(run_dir.relative_to(folder)),
        }
        taken.add(run_dir.name)
        adopted.append(cell.id)
    return adopted


class LockHeld(FintuneError):
    """Another live process holds the lock: wait for it."""


@contextmanager
def study_lock(folder: Path) -> Iterator[None]:
    """One `fintune compare` per study at a time."""
    with owner_lock(folder / ".lock", str(folder), "run"):
        yield


@contextmanager
def owner_lock(lock: Path, what: str, doing: str) -> Iterator[None]:
    """One process at a time does `what`; a lock left by a dead process of this machine is
    taken. The lock names its machine too: on a folder shared between machines, another
    one's processes cannot be seen from here."""
    here = socket.gethostname()
    for _ in range(3):  # a lock released, or a dead one's taken by another, meanwhile
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                text, seen = lock.read_text().strip(), lock.stat()
            except FileNotFoundError:  # released since: try again
                continue
            age = time.time() - seen.st_mtime
        if not text and age < 10:  # its pid is being written
            raise LockHeld(f"{what} is being started by another process")
        pid, _, host = text.partition(" ")  # host: absent in locks of earlier versions
        elsewhere = host not in ("", here)
        if pid.isdigit() and (elsewhere or _alive(int(pid))):
            raise LockHeld(
                f"{what} is being {doing} by process {pid}"
                + (f" on {host}" if host else "")
                + f" now; wait for it or stop it (if it is gone, delete {lock})"
            )
        _remove_dead(lock, text, (seen.st_ino, seen.st_mtime_ns))
    else:
        raise LockHeld(f"{what} is being started by another process")
    os.write(fd, f"{os.getpid()} {here}".encode())
    os.close(fd)
    # A batch scheduler stops a job with SIGTERM, which by default ends Python without
    # cleaning up: as an exception, it releases the lock, so the study resumes anywhere.
    # An ignored SIGTERM (a parent's nohup-like choice) stays ignored.
    catch = threading.current_thread() is threading.main_thread()
    catch = catch and signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN
    previous = signal.signal(signal.SIGTERM, interrupt.terminate) if catch else None
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)
        if catch:  # None: a handler not set from Python, which cannot be put back
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _remove_dead(lock: Path, text: str, seen: tuple[int, int]) -> None:
    """Remove `lock` if it is still the file found dead (`seen`: its inode and mtime) and
    holds `text`, the dead holder's. One process at a time (its own O_EXCL file): two that
    both found the holder dead would otherwise each remove the lock, the second the one the
    first had just taken, and both go on. The file's identity, not only its text: a holder
    killed before writing its pid left an empty lock, as empty as the next one's at first."""
    guard = lock.with_name(f"{lock.name}.takeover")
    fd = _take_guard(guard)
    if fd is None:
        time.sleep(0.2)  # another is taking it over: see what it left
        return
    try:
        try:
            now = lock.stat()
            if (now.st_ino, now.st_mtime_ns) == seen and lock.read_text().strip() == text:
                lock.unlink()
        except FileNotFoundError:
            pass
    finally:
        guard.unlink(missing_ok=True)  # before its flock goes: whoever gets that sees it gone
        os.close(fd)


def _take_guard(guard: Path) -> int | None:
    """The takeover's file, this process's (its descriptor), or None if another's. It is
    named `pid host` only once its flock is held, which the kernel releases with its
    process: a named one whose flock is free was left by a process killed in it."""
    here = socket.gethostname()
    try:
        fd = os.open(guard, os.O_CREAT | os.O_EXCL | os.O_RDWR)
    except FileExistsError:
        return _take_dead_guard(guard, here)
    if _flock(fd, wait=True):  # waits only for one that looked at it while it was empty
        os.write(fd, f"{os.getpid()} {here}".encode())
    return fd


def _take_dead_guard(guard: Path, here: str) -> int | None:
    """`guard` if its process is provably gone (a machine's flock speaks for that machine
    only), else None; one whose state cannot be known is stale after 60 s, as before."""
    try:
        fd = os.open(guard, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        held = _flock(fd, wait=False)
        age = time.time() - os.fstat(fd).st_mtime
        # not removed meanwhile: the path may name another process's new, live one now
        same = os.fstat(fd).st_ino == os.stat(guard).st_ino
        if held and same:
            text = os.read(fd, 300).decode(errors="replace")
            # empty: its process died before naming it, or an earlier version's
            if text.partition(" ")[2] == here or (not text and age > 60):
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()} {here}".encode(), 0)
                return fd
        if same and held is not False and age > 60:  # not held by a live process here
            guard.unlink(missing_ok=True)
    except OSError:
        pass
    os.close(fd)
    return None


def _flock(fd: int, wait: bool) -> bool | None:
    """True: this process holds `fd`'s file lock now; False: another does; None: this
    system or file system has no such locks."""
    if fcntl is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        return False
    except OSError:  # ENOLCK: a network file system without locks
        return None
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def adopt_renamed_cells(state: dict[str, Any], cells: list) -> dict[str, Any]:
    """A cell whose name changed but whose config did not keeps its result: fintune before
    YAML 1.2 named a `seed: 01` cell `seed=1`. (A switch written `yes` is now refused:
    write `true`, which names the cell as before.)"""
    ids = {cell.id for cell in cells}
    orphans = {key: entry for key, entry in state.items() if key not in ids}
    for cell in cells:
        if cell.id in state:
            continue
        matches = [key for key, entry in orphans.items() if cell.made(entry)]
        if len(matches) == 1:
            state[cell.id] = state.pop(matches[0])
            del orphans[matches[0]]
    return state


def _refuse_other_configs(cells: list[Cell], state: dict[str, Any], folder: Path) -> None:
    """--report-only where no cell that ran has the config it ran with: a report of
    nothing but outdated cells would replace the study's, most likely for a --set the
    cells ran with and this command left out."""
    ran = [c for c in cells if state.get(c.id, {}).get("status") == "done"]
    if ran and not any(c.made(state[c.id]) for c in ran):
        raise FintuneError(
            f"--report-only: none of the {len(ran)} finished cells in {folder} ran with "
            "the config this command makes (a --set they ran with, left out now?); give "
            "the same --set items. The report was not rewritten"
        )


def run_study(
    path: str | Path,
    retry_failed: bool = False,
    report_only: bool = False,
    overrides: list[str] | None = None,
) -> tuple[Path, dict[str, Any]]:
    """Run what is not done yet, then write the report. Returns (study dir, cell state).
    `overrides`: `--set` items for the base config."""
    from fintune.study.report import write_study_report

    if retry_failed and report_only:
        raise FintuneError(
            "--retry-failed and --report-only do not go together: --report-only runs no "
            "cell; drop it to run the failed cells again"
        )
    spec, cells = load_study(path, overrides)
    check_writable(study_dir(spec), f"{path}: output")
    inputs = {} if report_only else check_cells(cells, spec)
    folder = study_dir(spec)
    if report_only and not (folder / "cells.json").is_file():
        raise FintuneError(
            f"--report-only: {folder} holds no cells of study {spec.name!r} yet; run it "
            "without --report-only first"
        )
    if report_only:  # check_cells checks the store otherwise; the report is logged with it
        check_tracking(cell_config(cells[0], spec, folder))
    folder.mkdir(parents=True, exist_ok=True)
    with study_lock(folder):
        state = adopt_renamed_cells(read_state(folder), cells)
        if report_only:
            _refuse_other_configs(cells, state, folder)
        summary = None  # the report's MLflow run, made before the cells it parents
        if not report_only:
            todo, stale = cells_to_run(cells, state, folder, inputs)
            named = {cell.id for cell in todo if cell.id in state}  # with another config
            adopted = adopt_finished(todo, spec, folder, state, inputs)
            if unnamed := [cell_id for cell_id in adopted if cell_id not in named]:
                console.print(
                    "These cells' runs finished, but cells.json does not name them (the "
                    "study was stopped before it did, or the file was deleted); they are "
                    f"taken as done, not run again: {escape(', '.join(unnamed))}"
                )
            if earlier := [cell_id for cell_id in adopted if cell_id in named]:
                console.print(
                    "These cells are configured as an earlier run of theirs was, on the same "
                    "inputs (an edit put back); that run is taken as done, not run again: "
                    f"{escape(', '.join(earlier))}"
                )
            todo = [c for c in todo if c.id not in adopted]
            _drop_abandoned_checkpoints(folder)
            stale = {cell_id: why for cell_id, why in stale.items() if cell_id not in adopted}
            for why, what in ((DATA_CHANGED, "the data"), (MODEL_CHANGED, "the model's files")):
                if ids := [cell_id for cell_id, change in stale.items() if change == why]:
                    console.print(
                        f"[yellow]warning:[/] {what} changed since these finished cells ran; "
                        f"they run again: {escape(', '.join(ids))}"
                    )
            # until each has run again, no report (interim, or after an interruption)
            # shows its result on the old inputs beside the new ones
            for cell_id, why in stale.items():
                state[cell_id] = {**state[cell_id], "status": why}
            write_state(folder, state)  # the marks, or those taken off
            if not retry_failed:
                todo = [c for c in todo if not _failed_same(state.get(c.id), c)]
        try:
            if not report_only:
                summary = open_summary(cell_config(cells[0], spec, folder), "study", spec.name)
                _log_untracked(folder, spec, [c for c in cells if c not in todo], state)
                console.print(
                    f"Study {escape(spec.name)}: {len(cells)} cells, {len(cells) - len(todo)} "
                    f"reused or skipped, {len(todo)} to run"
                )
                for i, cell in enumerate(todo, 1):
                    interrupt.check()  # a Ctrl+C dropped (in a __del__) as the last one ended
                    console.rule(f"cell {i}/{len(todo)}")
                    console.print(cell.id, markup=False)  # whole, not cut to the rule's width
                    state[cell.id] = run_cell(cell, spec, folder)
                    write_state(folder, state)
                    if i < len(todo):
                        _interim_report(folder, spec, cells, state)
                interrupt.check()  # a stop the last cell held back while it was logged
            report = write_study_report(folder, spec, cells, state)
        except BaseException as error:  # not left RUNNING: a rerun's report finishes it
            stop_summary(cell_config(cells[0], spec, folder), summary, error)
            raise
    if cells[0].config.tracking.mlflow:
        files = [report, report.with_suffix(".html"), *sorted((folder / "plots").glob("*.png"))]
        try:
            run_name, tags = summary_of("study", spec.name)
            log_summary(cell_config(cells[0], spec, folder), run_name, folder, files, tags)
        except Exception as error:  # noqa: BLE001
            console.print(
                f"[yellow]warning:[/] MLflow logging of the report failed ({shown_error(error)})"
            )
    return folder, {c.id: state[c.id] for c in cells if c.made(state.get(c.id))}


def _log_untracked(folder: Path, spec: StudySpec, cells: list[Cell], state: dict) -> None:
    """Log the finished cells MLflow lacks: tracking is no part of a cell's config, so cells
    that ran with it off are reused when it is switched on; and those whose logging was cut
    short (a stop). Once each: a cell's run is known by its run folder's name among the
    study's runs."""
    done = [c for c in cells if finished_metrics(state.get(c.id), folder) and c.made(state[c.id])]
    logged: dict[tuple, list] = {}  # the study's runs, per store and experiment
    try:
        for cell in done:
            config = cell_config(cell, spec, folder)
            if not config.tracking.mlflow:
                continue
            where = (tracking_uri(config), experiment_name(config))
            if where not in logged:
                logged[where] = [
                    run
                    for run in tracked_runs(config)
                    if run.data.tags.get("fintune.study") == spec.name
                ]
            run_dir = folder / state[cell.id]["run_dir"]
            if log_finished(run_dir, config, logged[where]):
                console.print(f"Logged cell {escape(cell.id)} to MLflow (it was not, or not whole)")
    except Exception as error:  # noqa: BLE001 - the cells' results on disk are intact
        console.print(
            f"[yellow]warning:[/] MLflow logging of finished cells failed ({shown_error(error)})"
        )


def _drop_abandoned_checkpoints(folder: Path) -> None:
    """The checkpoints of the study's runs that never finished: under the study lock, no
    live process writes any of them (a killed one could not remove its own); the cell
    runs again in a new run folder."""
    for checkpoints in sorted((folder / "runs").glob("*/checkpoints")):
        drop_killed_checkpoints(checkpoints.parent, f"runs/{checkpoints.parent.name}", "a run")


def drop_killed_checkpoints(run_dir: Path, shown: str, whose: str) -> None:
    """`drop_checkpoints`, said: `shown` names the run's folder, `whose` its run or trial."""
    freed, left, cause = drop_checkpoints(run_dir)
    if left is not None:
        console.print(
            f"[yellow]warning:[/] could not remove {escape(str(run_dir))}/checkpoints, those "
            f"of {escape(whose)}, killed before it finished ({left / 2**20:.1f} MiB left, "
            f"{freed / 2**20:.1f} MiB freed); remove it by hand"
            + (f" ({escape(cause)})" if cause else "")
        )
    elif freed:
        console.print(
            f"{escape(shown)}: removed the checkpoints of {escape(whose)}, killed before it "
            f"finished ({freed / 2**20:.1f} MiB)"
        )


def _interim_report(folder: Path, spec: StudySpec, cells: list[Cell], state: dict) -> None:
    """A report of the cells finished so far; its failure must not stop the study."""
    from fintune.study.report import write_study_report

    try:
        write_study_report(folder, spec, cells, state, interim=True)
    except Exception as error:  # noqa: BLE001
        console.print(f"[yellow]warning:[/] interim report failed ({escape(str(error))})")


def _failed_same(entry: dict[str, Any] | None, cell: Cell) -> bool:
    return bool(entry and entry.get("status") == "failed" and cell.made(entry))


def run_cell(cell: Cell, spec: StudySpec, folder: Path) -> dict[str, Any]:
    config = cell_config(cell, spec, folder)
    entry: dict[str, Any] = {
        "config_sha": cell.config_sha,
        "coords": cell.coords,
        "started": datetime.now().isoformat(timespec="seconds"),
    }
    try:
        run_dir = RECIPES[config.task].run(config)
    except Exception as error:  # noqa: BLE001 - a failed cell must not stop the study
        errors = folder / "errors"
        errors.mkdir(exist_ok=True)
        # a hash of the cell: two cells' names can clean to one ("a b", "a-b"); the time
        # keeps a retried cell's earlier traceback
        cell_hash = hashlib.sha256(cell.id.encode()).hexdigest()[:8]
        stamp = f"{cell_hash}-{datetime.now():%Y%m%d-%H%M%S}"
        trace = errors / f"{config.name}-{stamp}.txt"
        trace.write_text(traceback.format_exc())
        message = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        console.print(
            f"[red]cell {escape(cell.id)} failed:[/] {escape(message)} "
            f"(traceback: {escape(str(trace))})"
        )
        return {**entry, "status": "failed", "error": message, "traceback": str(trace)}
    return {**entry, "status": "done", "run_dir": str(run_dir.relative_to(folder))}
