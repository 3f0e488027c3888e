"""Log a run directory to MLflow: parameters, per-step metrics, final metrics, artifacts.

The run directory stays the source of truth; MLflow is a view of it. Logging reads the
files the recipe wrote, so a pruned or failed run (no metrics.json yet) is logged too.
By default the store is embedded (`sqlite:///<output.dir>/mlflow.db`, no server);
`tracking.uri` or MLFLOW_TRACKING_URI sends it to a server instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import socket
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit
from urllib.request import url2pathname

import psutil
from filelock import FileLock
from rich.console import Console
from rich.markup import escape

from fintune.config.schema import ExperimentConfig, escape_variables
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
SKIP_HISTORY_KEYS = {"step", "epoch", "time", "total_flos"}
LOGGED_BY = "fintune.logged_by"  # pid@machine of the process logging a run's files
LOGGER_STARTED = "fintune.logged_by_started"  # when it started: its pid can come again
# which run folder a record is of, wherever the folder has moved and whatever the record is
# called in MLflow's UI: two runs may share a folder name (started in one second, into two
# output folders), never a metrics.json
RUN_KEY = "fintune.metrics_sha256"
QUICK_REQUESTS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5"}
PAGE = 1000  # runs per search request
console = Console(stderr=True, soft_wrap=True)


def tracking_uri(config: ExperimentConfig) -> str:
    if config.tracking.uri:
        return config.tracking.uri
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    return sqlite_uri(Path(config.output.dir) / "mlflow.db")


def sqlite_uri(path: Path) -> str:
    """SQLAlchemy's URL for a SQLite file: it reads the path percent-decoded and up to a `?`,
    so those two are quoted in a folder named `q?x` or `a%20b` (and nothing else)."""
    return "sqlite:///" + _sqlite_quoted(str(path.resolve()))


def _sqlite_quoted(path: str) -> str:
    return path.replace("%", "%25").replace("?", "%3F")


def sqlite_path(uri: str) -> Path | None:
    """The file of a `sqlite:///` URI as SQLAlchemy reads it; None for other stores."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(unquote(uri.removeprefix("sqlite:///").partition("?")[0]))


def store_in(config: ExperimentConfig, folder: Path) -> None:
    """Studies and sweeps keep one embedded store for all their runs, in their folder."""
    if not config.tracking.uri and not os.environ.get("MLFLOW_TRACKING_URI"):
        config.tracking.uri = escape_variables(sqlite_uri(folder / "mlflow.db"))
        config.tracking._uri_from = "output"  # the study's or sweep's field, not the user's URI


def unused_tracking_note(tracking) -> str | None:
    """Tracking settings given with tracking.mlflow off, which were dropped without a word.
    Said by `fintune run` and `validate` (a study or sweep fills them in for its runs)."""
    if tracking.mlflow:
        return None
    given = {"uri": tracking.uri, "experiment": tracking.experiment, "tags": tracking.tags}
    if unused := [f"tracking.{name}" for name, value in given.items() if value]:
        verb = "is" if len(unused) == 1 else "are"
        return f"{', '.join(unused)} {verb} not used: tracking.mlflow is false"
    return None


def check_tracking(config: ExperimentConfig) -> None:
    """Fail before training when the tracking store cannot be used (a server that cannot be
    reached, a URI MLflow does not take), or when the run's experiment was deleted (MLflow
    would refuse the run after training)."""
    if not config.tracking.mlflow:
        return
    uri = tracking_uri(config)
    store = sqlite_path(uri)
    if store is not None:
        _check_store_writable(store, config)
        if not store.is_file():
            return  # a new store: nothing was deleted, nothing to reach
    from mlflow import MlflowClient

    try:
        # a local store is locked against concurrent writers; a server is asked with short
        # timeouts (the logging after training keeps MLflow's patient defaults)
        local = store is not None
        with (
            FileLock(f"{store}.lock", timeout=300) if local else quick_requests(),
            _no_stray_folder(uri) if local else nullcontext(),
        ):
            experiment = MlflowClient(uri).get_experiment_by_name(experiment_name(config))
    except Exception as error:  # noqa: BLE001 - any failure means unusable
        source = uri_source(config)
        shown = redact(uri)  # MLflow's message may quote the URI too
        first = gist(str(error).replace(uri, shown).strip().splitlines()[0])
        answered = re.search(r"error code (\d{3})", str(error))  # MLflow's for an HTTP status
        if answered and int(answered[1]) in (401, 403):
            problem, fixes = "use the MLflow server at", "Check the user and password or token,"
        elif answered:  # reached, but no MLflow API there: a wrong port or path prefix
            problem = "use the server at"
            fixes = (
                f"It answered HTTP {answered[1]} to MLflow's API: is it an MLflow server, and "
                "are the URI's port and path right? Fix the URI,"
            )
        elif uri.startswith(("http://", "https://")):
            problem, fixes = "reach the MLflow server at", "Start it, fix the URI,"
        elif source in ("output.dir", "output"):
            problem, fixes = "use", "Move that file away, give tracking.uri,"
        else:
            problem, fixes = "use", "Fix the URI"
        raise FintuneError(
            f"{source}: cannot {problem} {shown} ({first}). {fixes} or set tracking.mlflow: false"
        ) from None
    _refuse_deleted(experiment)
    if store is not None and experiment is not None:
        _check_artifact_folder(store, experiment, config)


def _check_artifact_folder(store: Path, experiment, config: ExperimentConfig) -> None:
    """An embedded store's experiment keeps the artifact location it was made with: a store
    copied or moved from another folder (machine, user), or an experiment made elsewhere
    (MLflow's Python API, `mlflow ui`), sends artifacts there, and where they cannot go,
    logging fails after training."""
    from fintune.run_dir import unwritable  # run_dir imports this module

    location = experiment.artifact_location
    here = (store.absolute().parent / "mlartifacts").as_uri()
    scheme = urlsplit(location).scheme
    if location == here:
        return
    told = f"the MLflow store {store.absolute()}'s experiment {experiment.name!r}"
    if scheme == "mlflow-artifacts":  # an experiment made in `mlflow ui` or `mlflow server`
        raise FintuneError(
            f"{uri_source(config)}: {told} keeps its artifacts at {location}, which only an "
            "MLflow server stores. Log through that server (tracking.uri: http://...), name "
            "another experiment (tracking.experiment), or set tracking.mlflow: false"
        )
    if scheme == "file":
        folder = Path(url2pathname(urlsplit(location).path))
    elif len(scheme) <= 1:  # a plain path (a Windows drive letter reads as a scheme)
        folder = Path(location)
    else:  # s3:, gs:, ...: the credentials are the store's user's to check
        return
    told = f"{told} keeps its artifacts in {folder}"
    if why := unwritable(folder):
        raise FintuneError(
            f"{uri_source(config)}: {told}, which cannot be made here ({why}). Name another "
            "experiment (tracking.experiment) or set tracking.mlflow: false"
        )
    console.print(
        f"[yellow]warning:[/] {escape(told)}, not beside the store; name another experiment "
        "(tracking.experiment) to keep them here"
    )


def _check_store_writable(store: Path, config: ExperimentConfig) -> None:
    """MLflow writes the SQLite store only after training (and makes a new one there): the
    store, and its folder (SQLite's journal goes beside it), must be writable now."""
    from fintune.run_dir import unwritable, why_denied  # run_dir imports this module

    path = store.absolute()
    if path.is_dir():
        why = "it is a directory"
    elif path.is_file() and not os.access(path, os.R_OK | os.W_OK):
        why = f"cannot write {path} ({why_denied(path)})"
    else:
        why = unwritable(path.parent)
    if why is None:
        return
    action = "write" if path.is_file() else "create"
    raise FintuneError(
        f"{uri_source(config)}: cannot {action} the MLflow store {path}: {why}. "
        "Fix the URI or set tracking.mlflow: false"
    )


# a string in urllib3's repr of its errors, and the connection it names first
_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_CONNECTION = re.compile(r"^(?:<[^>]*>|\w+\([^)]*\)): ")


def gist(message: str, limit: int = 300) -> str:
    """MLflow's message, short: for a request that failed, urllib3's cause and reasons (after
    the request URL and its retries: a refused connection, a certificate, a proxy), else the
    message cut at a word, marked with '…', keeping a short last sentence (where MLflow puts
    its way out, such as "set `MLFLOW_ALLOW_FILE_STORE=true`")."""
    cause = re.search(r"\(Caused by (\w+)\((.*)\)\)\s*$", message, re.DOTALL)
    reasons = [_CONNECTION.sub("", q[1:-1]) for q in _QUOTED.findall(cause[2])] if cause else []
    if cause and reasons:
        message = f"{cause[1]}: {': '.join(reasons)}"
    if len(message) <= limit:
        return message
    sentences = re.split(r"(?<=[.!?])\s+(?=[A-Z])", message.strip())
    last = sentences[-1] if len(sentences) > 1 and len(sentences[-1]) <= limit // 2 else ""
    room = limit - len(last) - 1 if last else limit
    head = message[:room]
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s+[A-Z])", head)] if last else []
    if ends:  # whole sentences, then the last one
        return f"{head[: ends[-1]]} … {last}"
    cut = head.rsplit(" ", 1)[0] if " " in head else head
    return cut.rstrip() + "…" + (f" {last}" if last else "")


def uri_source(config: ExperimentConfig) -> str:
    """The setting `tracking_uri` took the URI from, as errors name it."""
    if config.tracking.uri:
        return config.tracking._uri_from or "tracking.uri"
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return "MLFLOW_TRACKING_URI"
    return "output.dir"  # the default store, its mlflow.db


def store_record(config: ExperimentConfig) -> dict[str, str] | None:
    """The store a run logs to and the setting that named it, for environment.json:
    config.yaml holds no URI when MLFLOW_TRACKING_URI gave it. None with tracking off."""
    if not config.tracking.mlflow:
        return None
    return {"uri": redact(absolute_uri(tracking_uri(config))), "from": uri_source(config)}


@contextmanager
def quick_requests():
    """MLflow's requests to a server: one try, a 5 s timeout (its defaults retry for minutes)."""
    saved = {key: os.environ.get(key) for key in QUICK_REQUESTS}
    os.environ.update(QUICK_REQUESTS)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _refuse_deleted(experiment) -> None:
    if experiment is not None and experiment.lifecycle_stage == "deleted":
        raise FintuneError(
            f"tracking.experiment: the MLflow experiment {experiment.name!r} was deleted; "
            f"restore it (mlflow experiments restore --experiment-id "
            f"{experiment.experiment_id}) or name another experiment"
        )


def experiment_name(config: ExperimentConfig) -> str:
    return config.tracking.experiment or config.name


def _client(config: ExperimentConfig):
    uri = tracking_uri(config)
    store = sqlite_path(uri)
    if store is None:
        return _open_experiment(config, uri)
    # MLflow builds a new SQLite store by migrating it step by step; two processes doing that
    # at once (two sweep workers' first runs) break it, one of them for good. One at a time:
    with FileLock(f"{store}.lock", timeout=300), _no_stray_folder(uri):
        if not store.is_file():
            _build_store(store)
        return _open_experiment(config, uri)


@contextmanager
def _no_stray_folder(uri: str):
    """MLflow makes a SQLite store's folder from its URI's path as written, not as SQLite
    reads it: beside `q?x/mlflow.db`, an empty `q%3Fx/`. The folders it so made are removed."""
    written = Path(uri.removeprefix("sqlite:///")).parent.absolute()
    if written == sqlite_path(uri).parent.absolute():
        yield
        return
    new = [written, *written.parents]
    new = new[: next(i for i, folder in enumerate(new) if folder.exists())]  # none may exist
    try:
        yield
    finally:
        for folder in new:  # the deepest first
            try:
                folder.rmdir()  # only if empty
            except OSError:
                break


def _build_store(store: Path) -> None:
    """Build a new SQLite store aside and rename it into place: MLflow's migrations take
    seconds (5 s measured), and a process stopped among them (Ctrl+C, SIGTERM, SIGKILL)
    left a half-built store that MLflow then refused for every later run."""
    from mlflow import MlflowClient
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    for stopped in store.parent.glob(f"{store.name}.new-*"):  # under the lock: theirs is dead
        stopped.unlink(missing_ok=True)
    # a name of its own: MLflow keeps an engine per URI, a retry must not reuse one
    building = store.with_name(f"{store.name}.new-{os.getpid()}-{time.monotonic_ns()}")
    uri = sqlite_uri(building)
    try:
        MlflowClient(uri).search_experiments(max_results=1)  # builds and migrates it
        engine = getattr(SqlAlchemyStore, "_engine_map", {}).pop(uri, None)
        if engine is not None:
            engine.dispose()  # no connection left open on the file renamed below
        os.replace(building, store)
    finally:
        building.unlink(missing_ok=True)


def _open_experiment(config: ExperimentConfig, uri: str):
    from mlflow import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    client = MlflowClient(uri)
    name = experiment_name(config)
    experiment = client.get_experiment_by_name(name)
    _refuse_deleted(experiment)
    if experiment is not None:
        return client, experiment.experiment_id
    artifacts = None
    store = sqlite_path(uri)
    if store is not None:  # keep artifacts next to the embedded store
        artifacts = (store.absolute().parent / "mlartifacts").as_uri()  # sqlite:///a.db is relative
    try:
        return client, client.create_experiment(name, artifact_location=artifacts)
    except Exception:
        experiment = client.get_experiment_by_name(name)
        if experiment is None:  # not made by another process first: MLflow's reason stands
            raise
        return client, experiment.experiment_id


def tracked_runs(config: ExperimentConfig) -> list:
    """Every run in the config's experiment."""
    return _all_runs(*_client(config))


def _all_runs(client, experiment_id: str, filter_string: str = "") -> list:
    """Every run of the experiment that the filter keeps, over as many pages as it takes."""
    runs, token = [], None
    while True:
        page = client.search_runs(
            [experiment_id], filter_string, max_results=PAGE, page_token=token
        )
        runs += page
        token = page.token
        if not token:
            return runs


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
        block = metrics.get(split, {})
        intervals = [("ci95", block.get("ci95", {}))]
        if "ci" in block:  # evaluation.confidence other than 95%; 0.9500001 is not ci95
            intervals.append((f"ci{100 * block['confidence']:.10g}", block["ci"]))
        for name, bounds in intervals:
            for key, (low, high) in bounds.items():
                out[f"{split}_{key}_{name}_low"] = low
                out[f"{split}_{key}_{name}_high"] = high
    for section in ("train", "resources"):
        for key, value in metrics.get(section, {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                out[f"{section}_{key}"] = float(value)
    return out


def log_run(
    run_dir: Path, config: ExperimentConfig, status: str = "FINISHED", extra_tags=None
) -> str:
    """Log one run directory; returns the MLflow run id."""
    client, experiment_id = _client(config)
    _end_abandoned(client, experiment_id)
    tags = {"fintune.run_dir": str(run_dir.resolve()), **config.tracking.tags}
    tags.update(extra_tags or {})
    if key := run_key(run_dir):
        tags[RUN_KEY] = key
    tags[LOGGED_BY] = f"{os.getpid()}@{socket.gethostname()}"
    tags[LOGGER_STARTED] = str(psutil.Process().create_time())
    if parent := _parent_of(client, experiment_id, tags):
        tags["mlflow.parentRunId"] = parent  # MLflow's UI nests the run under its study's
    # the run began when its folder was made and ended with its last file written (logging
    # may come later: a study cell that ran with tracking off)
    started = int((run_dir / "config.yaml").stat().st_mtime * 1000)
    ended = int(max(path.stat().st_mtime for path in run_dir.iterdir()) * 1000)
    # file times come from a coarser clock than the history's: never end before its last point
    ended = max(ended, _last_history_time(run_dir))
    run = client.create_run(experiment_id, start_time=started, run_name=run_dir.name, tags=tags)
    run_id = run.info.run_id
    try:
        _log_files(client, run_id, run_dir, config, started)
    except BaseException as error:  # not left RUNNING
        client.set_terminated(run_id, status=_stopped(error), end_time=ended)
        raise
    client.set_tag(run_id, "fintune.status", status)
    client.set_terminated(run_id, status=status, end_time=ended)
    return run_id


def _last_history_time(run_dir: Path) -> int:
    """The time of history.jsonl's last record in ms (0: none, or no time in it)."""
    try:
        lines = (run_dir / "history.jsonl").read_text().splitlines()
        return int(json.loads(lines[-1])["time"] * 1000) if lines else 0
    except (OSError, ValueError, KeyError, TypeError):  # a record cut short: the files' time
        return 0


def run_key(run_dir: Path) -> str | None:
    """The sha256 of the run's metrics.json (RUN_KEY); None before it is written (a pruned
    trial)."""
    metrics = run_dir / "metrics.json"
    return hashlib.sha256(metrics.read_bytes()).hexdigest() if metrics.is_file() else None


def _end_abandoned(client, experiment_id: str) -> None:
    """Runs whose logging process died (SIGKILL, a power cut) before it could end them:
    KILLED, not RUNNING for ever. Only those logged by a process of this machine that is
    gone; a study's report run is not logged so (its rerun takes it up again)."""
    here = socket.gethostname()
    for run in _all_runs(client, experiment_id, "attributes.status = 'RUNNING'"):
        pid, _, host = run.data.tags.get(LOGGED_BY, "").partition("@")
        started = run.data.tags.get(LOGGER_STARTED)
        if host == here and pid.isdigit() and not _alive(int(pid), started):
            client.set_tag(run.info.run_id, "fintune.status", "KILLED")
            client.set_terminated(run.info.run_id, status="KILLED")


def _alive(pid: int, started: str | None) -> bool:
    """Whether process `pid` is still the one that started at `started` (unknown: any
    process of that pid). A pid comes again: in a container restarted, fintune is pid 1,
    or the same low pid, once more."""
    try:
        now = psutil.Process(pid).create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
    return started is None or abs(now - float(started)) < 1  # psutil's clock drifts a little


def _log_files(client, run_id: str, run_dir: Path, config: ExperimentConfig, started: int):
    from mlflow.entities import Metric, Param

    params = [Param(key, value) for key, value in run_params(config).items()]
    for start in range(0, len(params), 100):  # MLflow takes at most 100 params per batch
        client.log_batch(run_id, params=params[start : start + 100])

    points: list[Metric] = []
    history = run_dir / "history.jsonl"
    if history.is_file():
        for line in history.read_text().splitlines():
            record = json.loads(line)
            at = int(record["time"] * 1000) if "time" in record else started
            for key, value in record.items():
                if key in SKIP_HISTORY_KEYS or isinstance(value, bool):
                    continue
                if value is None:  # history.jsonl writes NaN and infinity so: a diverged step
                    value = math.nan
                if isinstance(value, int | float):
                    points.append(Metric(key, float(value), at, int(record["step"])))
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        metrics = json.loads(metrics_file.read_text())
        at = int(metrics_file.stat().st_mtime * 1000)
        points += [Metric(k, v, at, 0) for k, v in final_metrics(metrics).items() if v is not None]
    for start in range(0, len(points), 1000):
        client.log_batch(run_id, metrics=points[start : start + 1000])
    for name in ARTIFACTS:
        if (run_dir / name).is_file():
            client.log_artifact(run_id, str(run_dir / name))


def run_params(config: ExperimentConfig) -> dict[str, str]:
    """The resolved config as MLflow parameters, as config.yaml holds it (local paths
    absolute, the tracking password left out), less the tags (they are the run's tags)."""
    from fintune.run_dir import resolved_config  # run_dir imports this module

    fields = resolved_config(config)
    return {
        key: _param_value(str(value))
        for key, value in flatten(fields).items()
        if not key.startswith("tracking.tags")
    }


def _param_value(value: str, limit: int = 6000) -> str:
    """MLflow's limit; a value cut to it ends with '…' (the whole is in config.yaml)."""
    return value if len(value) <= limit else value[: limit - 1] + "…"


def error_tag(error: BaseException) -> str:
    """A failed run's `fintune.error` tag: the error whole up to MLflow's tag limit (8000
    characters; torch's out-of-memory message alone has 600), a longer one ending '…'."""
    return _param_value(f"{type(error).__name__}: {error}", 8000)


def absolute_uri(uri: str | None) -> str | None:
    """A local store's URI with its path absolute (`./mlruns`, `file:./mlruns`,
    `sqlite:///runs/mlflow.db`): relative, as data paths are, to the folder fintune runs in,
    so that a run's recorded config logs to the same store from any folder."""
    try:
        parts = urlsplit(uri or "")
    except ValueError:
        return uri
    if uri is None or uri == "databricks":  # MLflow's name for the Databricks workspace
        return uri
    if parts.scheme == "sqlite" and uri.startswith("sqlite:///"):
        path = uri.removeprefix("sqlite:///")
        if path and not path.startswith(("/", ":memory:")):  # the path as written: quoted
            return f"sqlite:///{os.path.normpath(os.path.join(_sqlite_quoted(os.getcwd()), path))}"
    elif parts.scheme == "file" and not parts.netloc and not parts.path.startswith("/"):
        return Path(parts.path).absolute().as_uri()
    elif not parts.scheme and not parts.netloc and not os.path.isabs(uri):
        return os.path.abspath(uri)
    return uri


# a query parameter that holds a secret: ?password=pw, &token=t, &access_token=t, &sig=s ...
_SECRET_PARAM = re.compile(
    r"(?i)((?<![^?&;\s])[\w.-]*(?:password|passwd|pwd|token|secret|api_?key|access_?key|sig|"
    r"signature)=)[^&;\s)]*"
)


def redact(uri: str | None) -> str | None:
    """The URI without its password (`postgresql://me:secret@db/mlflow`): a run's parameters
    and config.yaml can be read by everyone who reads the tracking server. Also the password
    of a URI too malformed to parse (postgresql//me:pw@host), and a password or token given
    as a query parameter (?password=pw, ?token=t)."""
    if uri is None:
        return None
    try:
        parts = urlsplit(uri)
        if parts.password is not None:
            userinfo, _, host = parts.netloc.rpartition("@")
            uri = urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{host}"))
    except ValueError:  # not a URL (http://[abc): using it fails with its own message
        pass
    # a database store's (SQLAlchemy's) reading: a password runs to its "@", a "/" or "?"
    # in it included, where urlsplit ends the host (postgresql://me:pa/ss@db/mlflow)
    found = re.match(r"(?!https?:)[\w+]+://[^:/]*:([^@]*)@", uri)
    if found and found[1] != "***":
        uri = uri[: found.start(1)] + "***" + uri[found.end(1) :]
    head, at, tail = uri.rpartition("@")
    user = head.rsplit("/", 1)[-1]
    # a local store's path holds no password: `sqlite:///a:b@c.db` is the file `a:b@c.db`
    local = uri.startswith(("sqlite:///", "file:///")) or re.match(r"file:/(?!/)", uri)
    if at and ":" in user and not user.endswith(":***") and not local:
        head = head.removesuffix(user) + user.split(":", 1)[0] + ":***"
    return _SECRET_PARAM.sub(r"\1***", head + at + tail)


# a URL's password in free text (MLflow quotes its request URLs): to the last '@' before a
# space, as a database URI's may hold '/'; a local path (sqlite:///a:b@c.db) has none
_URL_PASSWORD = re.compile(r"(\b[a-z][\w+.-]*://[^\s/@:]*:)[^\s@]*@", re.IGNORECASE)


def redact_text(text: str) -> str:
    """A message with every URL's password, and a password's or token's query parameter, as
    ***."""
    return _SECRET_PARAM.sub(r"\1***", _URL_PASSWORD.sub(r"\1***@", text))


def shown_error(error: BaseException) -> str:
    """A tracking error for the console: its password redacted, its markup escaped."""
    return escape(redact_text(str(error)))


def summary_of(kind: str, name: str) -> tuple[str, dict[str, str]]:
    """The name and tags of the run that holds a study's or sweep's (`kind`) report, and
    under which MLflow nests its cells or trials."""
    return f"{kind}-{name}", {f"fintune.{kind}": name, "fintune.kind": f"{kind} report"}


def open_summary(config: ExperimentConfig, kind: str, name: str) -> str | None:
    """The run of a study's or sweep's report, made now (RUNNING until the report is logged)
    if it is not there yet, so that its cells or trials are logged as its children. None
    with tracking off, or when MLflow fails: that costs only the nesting."""
    if not config.tracking.mlflow:
        return None
    run_name, tags = summary_of(kind, name)
    store = sqlite_path(tracking_uri(config))
    made = None
    try:
        client, experiment_id = _client(config)
        # two sweep workers starting at once must not make two (a server's store: they may)
        with FileLock(f"{store}.lock", timeout=300) if store else nullcontext():
            if found := _find_summary(client, experiment_id, run_name, tags):
                return found
            made = client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
            return made
    except Exception as error:  # noqa: BLE001 - each run's logging warns of it again
        console.print(f"[yellow]warning:[/] MLflow logging failed ({shown_error(error)})")
        return made
    except BaseException as error:  # a stop before the caller holds its id: ended here
        stop_summary(config, made, error)
        raise


def stop_summary(config: ExperimentConfig, run_id: str | None, error: BaseException | None) -> None:
    """A study or sweep stopped (Ctrl+C, an error; None: sweep workers that ended with no
    report to log) before its report was logged: the report's run `open_summary` made
    RUNNING ends KILLED (FAILED for an error), not RUNNING for ever; a rerun finds it, and
    its report ends it FINISHED. One that already holds an earlier report is left as it is."""
    if run_id is None:
        return
    try:
        client, _ = _client(config)
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, status="KILLED" if error is None else _stopped(error))
    except Exception:  # noqa: BLE001 - the stop's own error is the one to see
        pass


def reopen_summary(config: ExperimentConfig, run_id: str | None) -> None:
    """The report's run, RUNNING again while a run without --worker makes the report: the
    last worker to end (or an earlier stop) left it KILLED or FAILED, and an error now must
    end it FAILED, not leave that. One that holds an earlier report (FINISHED) stays so."""
    if run_id is None:
        return
    try:
        client, _ = _client(config)
        if client.get_run(run_id).info.status in ("KILLED", "FAILED"):
            client.update_run(run_id, status="RUNNING")
    except Exception:  # noqa: BLE001 - the report's own logging warns of a broken MLflow
        pass


def _find_summary(client, experiment_id: str, name: str, tags: dict[str, str]) -> str | None:
    same = " and ".join(f"tags.`{key}` = '{value}'" for key, value in tags.items())
    earlier = client.search_runs(
        [experiment_id], filter_string=f"attributes.run_name = '{name}' and {same}", max_results=1
    )
    return earlier[0].info.run_id if earlier else None


def _parent_of(client, experiment_id: str, tags: dict[str, str]) -> str | None:
    """The report run of the study or sweep whose cell or trial a run with `tags` is."""
    for kind in ("study", "sweep"):
        name = tags.get(f"fintune.{kind}")
        if name is not None and tags.get("fintune.kind") != f"{kind} report":
            return _find_summary(client, experiment_id, *summary_of(kind, name))
    return None


def log_summary(
    config: ExperimentConfig, name: str, folder: Path, files: list[Path], tags: dict
) -> str:
    """A run that holds a study's or sweep's report and plots, each at its place under
    `folder` (the report links plots/x.png). A rerun (a resume, or --report-only) updates
    the same run instead of adding another."""
    client, experiment_id = _client(config)
    run_id = _find_summary(client, experiment_id, name, tags)
    earlier = run_id is not None
    if run_id is None:
        run_id = client.create_run(experiment_id, run_name=name, tags=tags).info.run_id
    logged = set()
    try:
        for path in files:
            if path.is_file():
                under = path.parent.relative_to(folder).as_posix()
                client.log_artifact(run_id, str(path), None if under == "." else under)
                logged.add(path.relative_to(folder).as_posix())
        if earlier:  # an earlier report's plot that this one no longer has
            _drop_artifacts(client, config, run_id, logged)
    except BaseException as error:  # not left RUNNING
        client.set_terminated(run_id, status=_stopped(error))
        raise
    client.set_terminated(run_id)
    return run_id


def _stopped(error: BaseException) -> str:
    """The status of a run whose logging was cut short: Ctrl+C stopped it, it did not fail."""
    return "FAILED" if isinstance(error, Exception) else "KILLED"


def _drop_artifacts(client, config: ExperimentConfig, run_id: str, keep: set[str]) -> None:
    from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

    def files(under: str | None = None) -> list[str]:
        found = []
        for entry in client.list_artifacts(run_id, under):
            found += files(entry.path) if entry.is_dir else [entry.path]
        return found

    stale = [path for path in files() if path not in keep]
    if stale:
        uri = client.get_run(run_id).info.artifact_uri
        store = get_artifact_repository(uri, tracking_uri=tracking_uri(config))
        for path in stale:
            try:
                store.delete_artifacts(path)
            except Exception as error:  # noqa: BLE001 - the report itself is logged whole
                console.print(
                    f"[yellow]warning:[/] MLflow run {run_id}: the old artifact {escape(path)}, "
                    f"which the new report no longer has, could not be deleted "
                    f"({shown_error(error)}); delete it by hand"
                )
