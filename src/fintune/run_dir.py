"""Run directories: `<output.dir>/<timestamp>-<name>/`, created atomically so a new run
never reuses (or overwrites) an earlier one, and a record of how the run came to be.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import platform
import re
import secrets
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import psutil
import yaml

from fintune.config.schema import ExperimentConfig, escape_local_uri, escape_variables
from fintune.errors import FintuneError
from fintune.models.registry import PACKAGED
from fintune.models.registry import PACKAGES as MODEL_PACKAGES
from fintune.tracking import absolute_uri, redact
from fintune.training.resources import usable_cores

# a full disk or a folder the run may not write in: the user's to fix, not a traceback
WRITE_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS)
# bytes a run adds below output.dir: its folder (a stamp, a name of up to 80 characters of up
# to 4 bytes, '+N') and the deepest file in it, checkpoints/checkpoint-N/...
RUN_FILES_ROOM = 400

PACKAGES = (
    "fintune",
    "torch",
    "transformers",
    "peft",
    "accelerate",
    "datasets",
    "tokenizers",
    "safetensors",
    "bitsandbytes",
    "gguf",
    "sentencepiece",
    "simplemma",
    "scikit-learn",
    "scipy",
    "numpy",
    "pandas",
    "pydantic",
    "optuna",
    "mlflow",
    # a packaged model's weights: a new release of one changes every number
    *(package for packages in MODEL_PACKAGES.values() for package in packages),
)


def check_output_dir(config: ExperimentConfig) -> None:
    """output.dir must be a directory this process can create runs in; checked before
    training, without creating anything."""
    check_writable(Path(config.output.dir), "output.dir")
    hub = config.data.hub_id
    if hub and Path(hub).is_dir():  # a downloaded dataset's folder
        out, folder = Path(config.output.dir).resolve(), Path(hub).resolve()
        if out == folder or folder in out.parents:
            raise FintuneError(
                f"output.dir: {config.output.dir} is inside data.hub_id's folder {hub}, which "
                "is read with its subfolders: a run's predictions_*.csv would be read as data "
                "by the next run; choose an output.dir outside it"
            )


def check_writable(folder: Path, field: str) -> None:
    """`folder` (named by `field` in errors) is or can be made a writable directory."""
    if why := unwritable(folder):
        raise FintuneError(f"{field}: {why}")


def unwritable(folder: Path) -> str | None:
    """Why `folder` cannot be made (or is not) a writable directory; None if it can."""
    path = folder.absolute()
    limit = os.pathconf("/", "PC_PATH_MAX")
    if (size := len(os.fsencode(str(path)))) + RUN_FILES_ROOM > limit:
        return (
            f"the path is {size} bytes long; with a run's folder and files in it, it would "
            f"pass the {limit} bytes this system allows a path: choose a shorter one"
        )
    for existing in (path, *path.parents):  # the root exists: the loop always breaks
        if existing.exists():
            break
        if existing.is_symlink():  # mkdir would fail on it (a scratch mount not there)
            return f"{existing} is a broken link (to {os.readlink(existing)}, which does not exist)"
    if not existing.is_dir():
        return f"{existing} is a file, not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot write in {existing} ({why_denied(existing)})"
    return None


def why_denied(path: Path) -> str:
    """Why `path` cannot be written: a read-only mount (a snapshot, a container's image)
    is not fixed with permissions."""
    try:
        read_only = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        read_only = False
    return "the filesystem is mounted read-only" if read_only else "permission denied"


def create_run_dir(config: ExperimentConfig) -> Path:
    parent = Path(config.output.dir)
    stem = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{config.name}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, 1000):
            # "+" cannot occur in a name, so `exp+2` is never mistaken for a run of `exp-2`
            path = parent / (stem if attempt == 1 else f"{stem}+{attempt}")
            try:
                path.mkdir()  # fails if it exists: two runs never share a directory
                return path
            except FileExistsError:
                continue
    except OSError as error:  # checked before the model loaded; a disk can fill meanwhile
        if error.errno not in WRITE_ERRORS:
            raise
        raise FintuneError(
            f"output.dir: cannot create a run folder in {parent.absolute()}: "
            f"{os.strerror(error.errno)}; free space or fix the permissions, and run again"
        ) from error
    raise RuntimeError(f"could not create a new run directory under {parent}")


def drop_checkpoints(run_dir: Path) -> tuple[int, int | None, str | None]:
    """Remove the checkpoints/ (model copies, gigabytes with real models) of a run that
    never finished (no metrics.json) and that no live process writes: killed (SIGKILL, a
    lost node), it could not remove them itself. Nothing else of the run is touched, nor
    anything of a finished run. Returns the bytes freed and, where the folder could not
    be removed, the bytes still in it and the first error, with its file (else None)."""
    checkpoints = run_dir / "checkpoints"
    if (run_dir / "metrics.json").exists() or not checkpoints.is_dir():
        return 0, None, None
    size = _tree_size(checkpoints)
    causes: list[str] = []

    def failed(path: str, error: BaseException) -> None:
        if not isinstance(error, FileNotFoundError):  # removed meanwhile by another worker
            causes.append(f"{getattr(error, 'strerror', None) or error}: {path}")

    _remove_tree(checkpoints, failed)
    if not checkpoints.exists():
        return size, None, None
    left = _tree_size(checkpoints)  # a file it could not remove (permissions, a busy mount)
    return max(size - left, 0), left, causes[0] if causes else None


def _remove_tree(folder: Path, failed: Callable[[str, BaseException], None]) -> None:
    """shutil.rmtree, each error to `failed`: its `onerror` is deprecated from Python 3.12,
    whose `onexc` Python 3.11 lacks."""
    if sys.version_info >= (3, 12):
        shutil.rmtree(folder, onexc=lambda _function, path, error: failed(path, error))
    else:
        shutil.rmtree(folder, onerror=lambda _function, path, info: failed(path, info[1]))


def _tree_size(folder: Path) -> int:
    size = 0
    # os.walk passes over a folder removed meanwhile: two sweep workers starting at once
    # both drop a killed trial's checkpoints
    for parent, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                size += os.lstat(os.path.join(parent, name)).st_size
    return size


def write_json(path: Path, data: Any) -> None:
    """Whole or not at all: a file cut short (a full disk, a kill) would pass for a record,
    and metrics.json marks a finished run."""
    write_whole(path, to_json(data, indent=2) + "\n")


def write_whole(path: Path, text: str) -> None:
    """`text` to `path`, whole or not at all, through a file synced before its rename. The
    passing name is this writer's own: two processes writing one file at once (sweep
    workers) must not share it; it names the writer's process and machine, so that one
    killed meanwhile is known by the next, which removes its partial file."""
    writer = f"{os.getpid()}-{secrets.token_hex(4)}@{socket.gethostname()}"
    partial = path.with_name(f"{path.name}.{writer}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        _sync(partial)  # on disk before the rename names it: a power cut leaves no empty file
        os.replace(partial, path)
    except OSError as error:
        error.filename = str(path)  # the file the user knows, not its passing name
        raise
    finally:
        partial.unlink(missing_ok=True)
    _drop_stale_partials(path.parent)


# `<file>.<pid>-<random>[@<machine>].partial`: write_whole's; "@<machine>" since it names it
_PARTIAL = re.compile(r"\.(\d+)-[0-9a-f]{8}(?:@([^@/]+))?\.partial$")
STALE_PARTIAL_S = 86400  # a writer of another machine (or unnamed) is taken as gone after
# a dead pid of this machine's name, and this old: a container sharing the machine's name
# has pids of its own, and its live writer renames its file within milliseconds
DEAD_PARTIAL_S = 60


def _drop_stale_partials(folder: Path) -> None:
    """The partial files of writers killed (SIGKILL) before their rename, which would pile
    up: those of a dead process of this machine (a minute on), or older than a day."""
    here, now = socket.gethostname(), time.time()
    with contextlib.suppress(OSError):  # a record written whole is not failed by its tidying
        for entry in os.scandir(folder):
            if not (found := _PARTIAL.search(entry.name)):
                continue
            pid, host = int(found[1]), found[2]
            with contextlib.suppress(OSError):
                age = now - entry.stat().st_mtime
                gone = host == here and age > DEAD_PARTIAL_S and not psutil.pid_exists(pid)
                if gone or age > STALE_PARTIAL_S:
                    os.unlink(entry.path)


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDWR)  # Windows flushes only a file open for writing
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def to_json(data: Any, **kwargs) -> str:
    """Plain JSON: NaN and infinity, which JSON has no words for, are written as null."""
    return json.dumps(finite(data), allow_nan=False, default=str, **kwargs)


def finite(data: Any) -> Any:
    if isinstance(data, np.generic):  # numpy's numbers as JSON numbers, not str()'s text
        data = data.item()
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: finite(value) for key, value in data.items()}
    if isinstance(data, list | tuple):
        return [finite(value) for value in data]
    return data


def write_config(path: Path, config: ExperimentConfig) -> None:
    """The resolved config: every default filled in, overrides applied, and local paths
    (data, a hub dataset's local folder, output, a local model, a local tracking store)
    absolute, so that it reruns from any folder. A password in tracking.uri is left out:
    the file is logged to the tracking server."""
    path.write_text(yaml.safe_dump(written_config(config), sort_keys=False))


def written_config(config: ExperimentConfig) -> dict[str, Any]:
    """resolved_config with each `$` in a path that expands `$VARS` written `$$`, so that
    config.yaml reads back the same paths (a run made in a folder named `Q3$budget`)."""
    written = resolved_config(config)
    data = written["data"]
    data["path"] = data["path"] and escape_variables(data["path"])
    data["files"] = data["files"] and {
        role: escape_variables(file) for role, file in data["files"].items()
    }
    written["output"]["dir"] = escape_variables(written["output"]["dir"])
    written["model"]["name"] = escape_variables(written["model"]["name"])
    written["tracking"]["uri"] = escape_local_uri(written["tracking"]["uri"])
    return written


def resolved_config(config: ExperimentConfig) -> dict[str, Any]:
    """What write_config writes, as a mapping."""
    resolved = config.model_dump(mode="json")
    data = resolved["data"]
    if data["path"]:
        data["path"] = os.path.abspath(data["path"])
    if data["files"]:
        data["files"] = {role: os.path.abspath(file) for role, file in data["files"].items()}
    if data["hub_id"] and os.path.isdir(data["hub_id"]):  # a downloaded one, read as it is
        data["hub_id"] = os.path.abspath(data["hub_id"])
    resolved["output"]["dir"] = os.path.abspath(resolved["output"]["dir"])
    resolved["tracking"]["uri"] = redact(absolute_uri(resolved["tracking"]["uri"]))
    model = Path(resolved["model"]["name"]).expanduser()
    if resolved["model"]["name"] not in PACKAGED and model.exists():  # not a hub id
        resolved["model"]["name"] = os.path.abspath(model)
    return resolved


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def source_code(package: Path = Path(__file__).parent) -> dict[str, Any] | None:
    """The git commit of the fintune code that ran and whether its files differ from it,
    when they are tracked in a checkout (on PYTHONPATH, or installed editable): the
    installed version alone does not say which code that was. None without git or a
    checkout. A record only: it enters no hash."""

    def git(*args: str) -> str:
        done = subprocess.run(  # no index.lock: a git the user runs meanwhile would fail
            ["git", "--no-optional-locks", *args],
            cwd=package,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return done.stdout.strip()

    try:
        if not git("ls-files", "--", "__init__.py"):  # a venv inside some other checkout
            return None
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--", "."))
    except (OSError, subprocess.SubprocessError):
        return None
    return {"git_commit": commit, "git_dirty": dirty}


def hardware(device: str) -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "working_directory": os.getcwd(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": _cpu_name(),
        "cpu_cores_logical": os.cpu_count(),
        "cpu_cores_usable": usable_cores(),
        "torch_threads": torch.get_num_threads(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "device": device,
    }
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = props.name
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["cuda"] = torch.version.cuda
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
