"""MLflow logging of a whole run to a temporary embedded store, and a remote tracking
server that cannot be reached failing before training."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import psutil
import pytest
import yaml
from mlflow import MlflowClient

from fintune import tracking
from fintune.errors import FintuneError
from fintune.recipes import classification
from fintune.tracking import check_tracking, unused_tracking_note


def test_a_run_is_logged_with_params_step_metrics_final_metrics_and_artifacts(make_config):
    config = make_config(
        tracking={"mlflow": True, "tags": {"team": "research"}}, evaluation={"confidence": 0.9}
    )
    run_dir = classification.run(config)
    store = run_dir.parent / "mlflow.db"
    assert store.is_file()  # embedded, inside output.dir
    client = MlflowClient(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("tiny")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    assert run.data.tags["team"] == "research" and "tracking.tags.team" not in run.data.params
    assert run.data.params["training.learning_rate"] == "0.001"
    assert run.data.params["method.name"] == "full"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["test"]["accuracy"])
    assert run.data.metrics["test_accuracy_ci95_low"] == pytest.approx(
        metrics["test"]["ci95"]["accuracy"][0]
    )
    history = [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in losses] == [r["step"] for r in history if "loss" in r]
    assert len(losses) > 1
    # when things happened: the run's span covers its training, each point has its time
    assert run.info.start_time <= losses[0].timestamp <= losses[-1].timestamp <= run.info.end_time
    assert [m.timestamp for m in losses] == [int(r["time"] * 1000) for r in history if "loss" in r]
    assert run.info.end_time - run.info.start_time >= 1000 * metrics["train"]["runtime_s"]
    assert run.data.metrics["test_accuracy_ci90_low"] == metrics["test"]["ci"]["accuracy"][0]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"report.md", "loss.png", "confusion.png", "metrics.json", "config.yaml"} <= artifacts


def _bare_run_dir(tmp_path: Path) -> Path:
    """A run folder with only its config: enough for log_run."""
    run_dir = tmp_path / "20260101-000000-tiny"
    run_dir.mkdir()
    (run_dir / "config.yaml").write_text("name: tiny\n")
    return run_dir


def test_tracking_uri_from_the_environment(make_config, tmp_path, monkeypatch):
    uri = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    run_dir = classification.run(make_config(tracking={"mlflow": True}))
    assert not (run_dir.parent / "mlflow.db").exists()
    runs = MlflowClient(uri).search_runs(
        [MlflowClient(uri).get_experiment_by_name("tiny").experiment_id]
    )
    assert len(runs) == 1
    # config.yaml holds no URI then: the run's record says which store it went to, and why
    environment = json.loads((run_dir / "environment.json").read_text())
    assert environment["tracking"] == {"uri": uri, "from": "MLFLOW_TRACKING_URI"}


def test_the_recorded_store_has_no_password(make_config, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "postgresql://me:secret@db/mlflow")
    record = tracking.store_record(make_config(tracking={"mlflow": True}))
    assert record == {"uri": "postgresql://me:***@db/mlflow", "from": "MLFLOW_TRACKING_URI"}
    assert tracking.store_record(make_config()) is None  # tracking.mlflow off: no store


def test_an_unreachable_tracking_server_fails_before_training(make_config, monkeypatch):
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("loaded"))
    config = make_config(tracking={"mlflow": True, "uri": "http://127.0.0.1:9/"})
    with pytest.raises(FintuneError, match=r"tracking.uri: cannot reach the MLflow server"):
        classification.run(config)
    assert not Path(config.output.dir).exists()


@pytest.mark.parametrize(
    ("status", "said"),
    [
        (404, r"cannot use the server at .*It answered HTTP 404 to MLflow's API: is it an "),
        (401, r"cannot use the MLflow server at .*Check the user and password or token"),
    ],
)
def test_a_server_that_answers_but_not_as_mlflow_is_not_called_unreachable(
    make_config, status, said
):
    """A plain web server on the port (or a wrong path prefix) answered 404, and the
    message said 'cannot reach the MLflow server ... Start it' (found in review)."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Answer(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"<!DOCTYPE HTML><p>no</p>")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        uri = f"http://127.0.0.1:{server.server_port}"
        with pytest.raises(FintuneError, match=said) as error:
            check_tracking(make_config(tracking={"mlflow": True, "uri": uri}))
        assert "cannot reach" not in str(error.value)
    finally:
        server.shutdown()


def test_an_unreachable_server_error_gives_the_reason_not_a_cut_quote(make_config):
    config = make_config(tracking={"mlflow": True, "uri": "http://127.0.0.1:9/"})
    with pytest.raises(FintuneError) as error:
        check_tracking(config)
    message = str(error.value)
    assert "Connection refused" in message  # MLflow's 400-character line ends with it
    assert message.count("(") == message.count(")")  # no quote cut in the middle


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        (
            "API request to http://h:1/api/2.0/x failed with exception HTTPConnectionPool("
            "host='h', port=1): Max retries exceeded with url: /api/2.0/x?experiment_name=a "
            "(Caused by NameResolutionError(\"HTTPConnection(host='h', port=1): Failed to "
            "resolve 'h' ([Errno -2] Name or service not known)\"))",
            "NameResolutionError: Failed to resolve 'h' ([Errno -2] Name or service not known)",
        ),
        (  # a TLS failure (a self-signed or intercepting proxy's certificate)
            "API request to https://h:1/api/2.0/mlflow/experiments/get-by-name failed with "
            "exception HTTPSConnectionPool(host='h', port=1): Max retries exceeded with url: "
            "/api/2.0/mlflow/experiments/get-by-name?experiment_name=a (Caused by SSLError("
            "SSLCertVerificationError(1, '[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
            "failed: self-signed certificate in certificate chain (_ssl.c:1006)')))",
            "SSLError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: self-signed "
            "certificate in certificate chain (_ssl.c:1006)",
        ),
        (  # HTTP_PROXY names a proxy that is down
            "API request to http://h:1/api/2.0/mlflow/experiments/get-by-name failed with "
            "exception HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded with "
            "url: http://h:1/api/2.0/mlflow/experiments/get-by-name?experiment_name=a (Caused "
            "by ProxyError('Unable to connect to proxy', NewConnectionError(\"HTTPConnection("
            "host='127.0.0.1', port=9): Failed to establish a new connection: [Errno 111] "
            'Connection refused")))',
            "ProxyError: Unable to connect to proxy: Failed to establish a new connection: "
            "[Errno 111] Connection refused",
        ),
        (  # urllib3 before 2.3 names the connection by its repr
            "API request to http://h:1/x failed with exception HTTPConnectionPool(host='h', "
            "port=1): Max retries exceeded with url: /x (Caused by NewConnectionError('<urllib3"
            ".connection.HTTPConnection object at 0x7f3a>: Failed to establish a new "
            "connection: [Errno 111] Connection refused'))",
            "NewConnectionError: Failed to establish a new connection: [Errno 111] Connection "
            "refused",
        ),
        ("short and plain", "short and plain"),
        ("word " * 100, "word " * 59 + "word…"),
        (  # MLflow 3's refusal of a file store: its way out is its last sentence
            "The filesystem tracking backend (e.g., './mlruns') is in maintenance mode and will "
            "not receive further updates. Please migrate to a database backend (e.g., "
            "'sqlite:///mlflow.db') to access the latest MLflow features. The `mlflow "
            "migrate-filestore` tool migrates your existing data losslessly. See "
            "https://mlflow.org/docs/latest/self-hosting/migrate-from-file-store for migration "
            "guidance. If the filesystem backend is required for your workflow, set "
            "`MLFLOW_ALLOW_FILE_STORE=true` to opt out of this exception.",
            "The filesystem tracking backend (e.g., './mlruns') is in maintenance mode and will "
            "not receive further updates. … If the filesystem backend is required for your "
            "workflow, set `MLFLOW_ALLOW_FILE_STORE=true` to opt out of this exception.",
        ),
    ],
)
def test_mlflow_errors_are_shortened_to_their_reason_or_cut_at_a_word(raw, shown):
    assert tracking.gist(raw) == shown


def test_a_proxy_that_is_down_is_named_with_its_reason(make_config, monkeypatch):
    """Behind a proxy (HTTP_PROXY) that refuses, the message used to end '(Caused by…)'."""
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    config = make_config(tracking={"mlflow": True, "uri": "http://mlflow.invalid:5000"})
    with pytest.raises(FintuneError) as error:
        check_tracking(config)
    assert "ProxyError: Unable to connect to proxy: Failed to establish" in str(error.value)


@pytest.mark.parametrize("where", ["a file", "a folder"])
def test_a_new_sqlite_store_that_cannot_be_made_is_refused_before_training(
    make_config, tmp_path, where
):
    """A new store was not checked at all: a run whose tracking.uri put it under a file
    (or at a folder) trained to the end, then warned that MLflow logging failed."""
    (tmp_path / "notes.txt").write_text("x")
    store = tmp_path / "notes.txt" / "mlflow.db" if where == "a file" else tmp_path
    config = make_config(tracking={"mlflow": True, "uri": f"sqlite:///{store}"})
    with pytest.raises(FintuneError) as error:
        check_tracking(config)
    assert f"tracking.uri: cannot create the MLflow store {store}" in str(error.value)


@pytest.mark.parametrize("denied", ["store", "folder"])
def test_an_existing_sqlite_store_this_user_cannot_write_is_refused_before_training(
    make_config, tmp_path, monkeypatch, denied
):
    """A store (or its folder, where SQLite writes its journal) this user may only read passed
    the check: the run trained to the end, then MLflow failed with tracebacks."""
    store = tmp_path / "shared" / "mlflow.db"
    store.parent.mkdir()
    MlflowClient(f"sqlite:///{store}").search_experiments()  # builds it
    locked = store if denied == "store" else store.parent
    real_access = os.access
    monkeypatch.setattr(  # tests run as root, whom file modes do not stop
        os,
        "access",
        lambda p, mode: not (Path(p) == locked and mode & os.W_OK) and real_access(p, mode),
    )
    config = make_config(tracking={"mlflow": True, "uri": f"sqlite:///{store}"})
    with pytest.raises(FintuneError) as error:
        check_tracking(config)
    assert str(error.value) == (
        f"tracking.uri: cannot write the MLflow store {store}: cannot write in {locked} "
        "(permission denied). Fix the URI or set tracking.mlflow: false"
        if denied == "folder"
        else f"tracking.uri: cannot write the MLflow store {store}: cannot write {store} "
        "(permission denied). Fix the URI or set tracking.mlflow: false"
    )


def test_an_unreachable_server_check_leaves_mlflows_request_settings_alone(
    make_config, monkeypatch
):
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    with pytest.raises(FintuneError):
        check_tracking(make_config(tracking={"mlflow": True, "uri": "http://127.0.0.1:9/"}))
    assert "MLFLOW_HTTP_REQUEST_TIMEOUT" not in os.environ  # the real logging is patient
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ


def test_a_deleted_experiment_fails_before_training(make_config, monkeypatch):
    config = make_config(tracking={"mlflow": True, "experiment": "desk"})
    store = Path(config.output.dir) / "mlflow.db"
    store.parent.mkdir(parents=True)
    client = MlflowClient(f"sqlite:///{store}")
    client.delete_experiment(client.create_experiment("desk"))
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(FintuneError, match="tracking.experiment: the MLflow experiment 'desk' was"):
        classification.run(config)


def test_an_experiment_mlflow_will_not_create_is_named_with_its_reason(make_config, monkeypatch):
    """A failure to create the experiment (a server refusing permission) was read as another
    process having made it first, and the lookup after it failed with 'NoneType' object has
    no attribute 'experiment_id', hiding the reason (the run's logging warning showed that)."""

    def refuse(self, name, **_):
        raise PermissionError(f"user may not create experiment {name!r}")

    monkeypatch.setattr(MlflowClient, "create_experiment", refuse)
    config = make_config(tracking={"mlflow": True, "experiment": "desk"})
    with pytest.raises(PermissionError, match="may not create experiment 'desk'"):
        tracking._client(config)


def test_a_copied_store_whose_artifact_folder_cannot_be_made_is_refused_before_training(
    make_config, tmp_path, monkeypatch
):
    """An embedded store keeps the absolute artifact folder it was made with. Copied to
    another machine or user (here: that folder lies under a file), a run trained fully, then
    logging failed and MLflow marked it FAILED."""
    config = make_config(tracking={"mlflow": True, "experiment": "desk"})
    store = Path(config.output.dir) / "mlflow.db"
    store.parent.mkdir(parents=True)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the old output folder was")
    MlflowClient(f"sqlite:///{store}").create_experiment(
        "desk", artifact_location=(blocker / "mlartifacts").as_uri()
    )
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(FintuneError, match=r"experiment 'desk' keeps its artifacts in .*blocker"):
        classification.run(config)


def test_a_copied_store_warns_where_its_artifacts_go(make_config, tmp_path, capsys):
    config = make_config(tracking={"mlflow": True, "experiment": "desk"})
    store = Path(config.output.dir) / "mlflow.db"
    store.parent.mkdir(parents=True)
    old = tmp_path / "old-output" / "mlartifacts"
    MlflowClient(f"sqlite:///{store}").create_experiment("desk", artifact_location=old.as_uri())
    check_tracking(config)
    err = " ".join(capsys.readouterr().err.split())
    assert f"experiment 'desk' keeps its artifacts in {old}" in err


def test_an_experiment_made_by_an_mlflow_server_is_refused_before_training(
    make_config, monkeypatch
):
    """`mlflow ui` on the store serves artifacts: an experiment made in its page keeps them
    at mlflow-artifacts:/N, which a run logging to the SQLite file cannot write. The run
    trained fully, then MLflow marked it FAILED with no report or plots."""
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    config = make_config(tracking={"mlflow": True, "experiment": "desk"})
    store = Path(config.output.dir) / "mlflow.db"
    store.parent.mkdir(parents=True)
    SqlAlchemyStore(f"sqlite:///{store}", "mlflow-artifacts:/").create_experiment("desk")
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("loaded"))
    with pytest.raises(FintuneError, match=r"'desk' keeps its artifacts at mlflow-artifacts:/"):
        classification.run(config)


def test_an_experiment_with_a_plain_artifact_path_is_checked_too(make_config, tmp_path):
    """MLflow's Python API records an artifact location given as a path as it is: it was
    not checked, and logging failed after training ('Not a directory')."""
    config = make_config(tracking={"mlflow": True, "experiment": "desk"})
    store = Path(config.output.dir) / "mlflow.db"
    store.parent.mkdir(parents=True)
    blocker = tmp_path / "blocker"
    blocker.write_text("a file")
    client = MlflowClient(f"sqlite:///{store}")
    client.create_experiment("desk", artifact_location=str(blocker / "mlruns"))
    with pytest.raises(FintuneError, match=r"'desk' keeps its artifacts in .*blocker"):
        check_tracking(config)


@pytest.mark.parametrize(
    "name", ["mlflow.runName", "mlflow.parentRunId", "fintune.run_dir", "fintune.status"]
)
def test_a_tag_name_fintune_sets_is_a_config_error(make_config, name):
    """A user's mlflow.runName clashed with the run name fintune gives: MLflow refused the
    run after training, and nothing was logged. A fintune.status was overwritten without a
    word, and a fintune.run_dir stood in for the run's own folder."""
    with pytest.raises(FintuneError, match=f"tracking.tags: tag name '{name}' is set by fintune"):
        make_config(tracking={"mlflow": True, "tags": {name: "x"}})


def test_the_step_where_training_diverged_is_logged_as_nan(make_config, tmp_path):
    """history.jsonl writes a NaN or infinite loss as null: that step, the one a diverged
    run's reader looks for, was left out of MLflow's curves. Flags are not metrics."""
    config = make_config(tracking={"mlflow": True, "uri": f"sqlite:///{tmp_path / 'm.db'}"})
    run_dir = _bare_run_dir(tmp_path)
    lines = [{"step": 1, "loss": 1.1, "flag": True}, {"step": 2, "loss": None}]
    (run_dir / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    run = client.get_run(tracking.log_run(run_dir, config))
    losses = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in losses] == [1, 2] and str(losses[1].value) == "nan"
    assert "flag" not in run.data.metrics


@pytest.mark.parametrize("name", ["owner@team", "/lead", "a//b", "dir/", "../up"])
def test_a_tag_name_mlflow_refuses_is_a_config_error(make_config, name):
    with pytest.raises(FintuneError, match=f"tracking.tags: tag name '{name}': MLflow takes"):
        make_config(tracking={"mlflow": True, "tags": {name: "x"}})


def test_tag_names_mlflow_takes_are_taken(make_config):
    tags = {"team:owner": "x", "a/b.c-d e_f": "y"}
    assert make_config(tracking={"mlflow": True, "tags": tags}).tracking.tags == tags


def test_a_logging_failure_ends_the_mlflow_run_as_failed(make_config, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("artifact store is full")

    monkeypatch.setattr(tracking, "_log_files", broken)
    config = make_config(tracking={"mlflow": True})
    run_dir = classification.run(config)  # the finished run is kept; logging only warns
    assert (run_dir / "metrics.json").is_file()
    client = MlflowClient(f"sqlite:///{run_dir.parent / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.info.status == "FAILED"


OOM = (
    "CUDA out of memory. Tried to allocate 2.00 GiB. GPU 0 has a total capacity of 79.19 GiB "
    "of which 1.02 GiB is free. Including non-PyTorch memory, this process has 78.16 GiB memory "
    "in use. Of the allocated memory 75.40 GiB is allocated by PyTorch, and 2.10 GiB is "
    "reserved by PyTorch but unallocated. If reserved but unallocated memory is large try "
    "setting PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True to avoid fragmentation.  See "
    "documentation for Memory Management  (https://pytorch.org/docs/stable/notes/cuda.html#"
    "environment-variables)"
)


@pytest.mark.parametrize(
    ("error", "status", "tag", "value"),
    [
        (
            RuntimeError("CUDA out of memory"),
            "FAILED",
            "fintune.error",
            "RuntimeError: CUDA out of memory",
        ),
        (optuna.TrialPruned(), "KILLED", "fintune.pruned", "true"),
        # Ctrl+C, or a scheduler's SIGTERM (raised as SystemExit): the run was not logged
        (KeyboardInterrupt(), "KILLED", "fintune.interrupted", "KeyboardInterrupt"),
        (SystemExit(143), "KILLED", "fintune.interrupted", "SystemExit"),
        (  # torch's own message, 600 characters: it was cut at 500, mid-word, without a mark
            RuntimeError(OOM),
            "FAILED",
            "fintune.error",
            f"RuntimeError: {OOM}",
        ),
    ],
)
def test_a_run_that_fails_or_is_pruned_after_training_starts_is_logged(
    make_config, monkeypatch, error, status, tag, value
):
    def stop(*args, **kwargs):
        raise error

    monkeypatch.setattr(classification, "predict_logits", stop)  # after training, before metrics
    config = make_config(tracking={"mlflow": True})
    with pytest.raises(type(error)):
        classification.run(config)
    store = Path(config.output.dir) / "mlflow.db"
    client = MlflowClient(f"sqlite:///{store}")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.info.status == status and run.data.tags[tag] == value
    assert run.data.params["method.name"] == "full"
    assert len(client.get_metric_history(run.info.run_id, "loss")) > 1  # the history so far


@pytest.mark.parametrize("error", [KeyboardInterrupt(), SystemExit(143), RuntimeError("x")])
def test_an_interrupted_run_is_logged_without_mlflows_patient_retries(
    make_config, monkeypatch, error
):
    # a server gone since the check held Ctrl+C for 253 s (MLflow's retries) before it stopped
    seen = {}

    def log_run(*args, **kwargs):
        seen.update({key: os.environ.get(key) for key in tracking.QUICK_REQUESTS})

    def stop(*args, **kwargs):
        raise error

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_TIMEOUT", raising=False)
    monkeypatch.setattr(classification, "log_run", log_run)
    monkeypatch.setattr(classification, "predict_logits", stop)
    with pytest.raises(type(error)):
        classification.run(make_config(tracking={"mlflow": True}))
    if isinstance(error, Exception):  # a failed run: MLflow's own settings, patient
        assert seen == dict.fromkeys(tracking.QUICK_REQUESTS)
    else:  # the user or the scheduler is waiting for it to stop: one quick try
        assert seen == tracking.QUICK_REQUESTS
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ  # and put back


OPEN_AT = """
import sys, time
from fintune.config.schema import ExperimentConfig
from fintune.tracking import _client
uri = "sqlite:///" + sys.argv[1]
config = ExperimentConfig.model_validate(
    {"name": "r", "data": {"path": "x.csv"}, "tracking": {"mlflow": True, "uri": uri}}
)
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
_client(config)
"""


def test_two_processes_creating_one_store_at_once_both_succeed(tmp_path):
    """MLflow migrates a new SQLite store step by step; two processes doing it at the same
    moment (two sweep workers) failed one of them and could leave the store half-built."""
    store = tmp_path / "mlflow.db"
    start = str(time.time() + 8)  # both past their imports, then open together
    workers = [
        subprocess.Popen([sys.executable, "-c", OPEN_AT, str(store), start], stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    errors = [w.communicate(timeout=120)[1].decode() for w in workers]
    assert [w.returncode for w in workers] == [0, 0], errors
    client = MlflowClient(f"sqlite:///{store}")
    assert client.get_experiment_by_name("r") is not None


def test_a_relative_sqlite_uri_is_logged_to(make_config, tmp_path, monkeypatch):
    """`sqlite:///mlflow.db`, as MLflow's docs write it, is relative to the working folder;
    its artifact folder must be too (a relative path has no file URI)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///tracked/mlflow.db")
    classification.run(make_config(tracking={"mlflow": True}))
    client = MlflowClient(f"sqlite:///{tmp_path / 'tracked' / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.info.status == "FINISHED" and "test_accuracy" in run.data.metrics
    assert (tmp_path / "tracked" / "mlartifacts").is_dir()


def test_a_home_folder_in_a_sqlite_tracking_uri_is_the_home_folder(
    make_config, tmp_path, monkeypatch
):
    """`sqlite:///~/runs.db` is the home folder's file, as `~` is in paths, not a folder
    named `~` in the working folder."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home").mkdir()
    classification.run(make_config(tracking={"mlflow": True, "uri": "sqlite:///~/runs.db"}))
    assert not (tmp_path / "~").exists()
    client = MlflowClient(f"sqlite:///{tmp_path / 'home' / 'runs.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.info.status == "FINISHED"


@pytest.mark.parametrize(
    ("uri", "expanded"),
    [
        ("sqlite:///$STORES/a.db?mode=rw", "sqlite:///{stores}/a.db?mode=rw"),
        ("~/mlruns", "{home}/mlruns"),
        ("file:${STORES}/mlruns", "file:{stores}/mlruns"),
        ("postgresql://me:pa$STORES@db/mlflow", "postgresql://me:pa$STORES@db/mlflow"),
        ("http://~host:5000", "http://~host:5000"),
    ],
)
def test_home_and_variables_are_expanded_in_a_local_store_s_path_only(
    make_config, tmp_path, monkeypatch, uri, expanded
):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("STORES", str(tmp_path / "q?s"))  # `?` ends a sqlite path: quoted
    config = make_config(tracking={"uri": uri})
    stores = f"{tmp_path}/q%3Fs" if uri.startswith("sqlite") else f"{tmp_path}/q?s"
    assert config.tracking.uri == expanded.format(home=tmp_path / "home", stores=stores)


def test_an_unset_variable_in_a_tracking_uri_is_named(make_config, monkeypatch):
    monkeypatch.delenv("NO_SUCH_STORE", raising=False)
    with pytest.raises(Exception, match=r"\$NO_SUCH_STORE is not set"):
        make_config(tracking={"uri": "sqlite:///$NO_SUCH_STORE/mlflow.db"})


@pytest.mark.parametrize("uri", ["htp://127.0.0.1:5000", "127.0.0.1:5000", "sqlite:///not.db"])
def test_a_tracking_uri_mlflow_cannot_use_fails_before_training(
    make_config, monkeypatch, tmp_path, uri
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not.db").write_text("a text file, not a database")
    monkeypatch.setattr(classification, "load_classifier", lambda *a, **k: pytest.fail("loaded"))
    config = make_config(tracking={"mlflow": True, "uri": uri})
    with pytest.raises(FintuneError, match=re.escape(f"tracking.uri: cannot use {uri} (")):
        classification.run(config)


def test_a_bad_uri_from_the_environment_is_named_as_such(make_config, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "htp://127.0.0.1:5000")
    with pytest.raises(FintuneError, match="MLFLOW_TRACKING_URI: cannot use htp://"):
        check_tracking(make_config(tracking={"mlflow": True}))


def test_a_password_in_the_tracking_uri_is_never_logged(make_config, tmp_path):
    """Everyone who can read the tracking server reads a run's parameters and config.yaml."""
    from fintune.run_dir import write_config

    uri = "postgresql://quant:s3cret@db.example:5432/mlflow"
    config = make_config(tracking={"mlflow": True, "uri": uri})
    params = tracking.run_params(config)
    assert params["tracking.uri"] == "postgresql://quant:***@db.example:5432/mlflow"
    assert not any("s3cret" in value for value in params.values())
    write_config(tmp_path / "config.yaml", config)
    assert "s3cret" not in (tmp_path / "config.yaml").read_text()
    assert tracking.redact("http://host:5000") == "http://host:5000"
    assert tracking.redact("http://[abc") == "http://[abc"  # not a URL: shown as it is


@pytest.mark.parametrize(
    ("uri", "shown"),
    [  # the sweep's storage URL hid these already; tracking.uri is the same kind of URL
        (
            "postgresql://db.example/mlflow?user=quant&password=s3cret",
            "postgresql://db.example/mlflow?user=quant&password=***",
        ),
        ("postgresql//quant:s3cret@db.example/mlflow", "quant:***@db.example/mlflow"),
        ("https://mlflow.example/?token=s3cret&x=1", "https://mlflow.example/?token=***&x=1"),
        ("https://blob.example/m?sv=1&sig=s3cret", "https://blob.example/m?sv=1&sig=***"),
    ],
)
def test_a_password_in_the_uri_s_query_or_a_malformed_uri_is_never_logged(
    make_config, tmp_path, uri, shown
):
    from fintune.run_dir import write_config

    config = make_config(tracking={"mlflow": True, "uri": uri})
    assert tracking.run_params(config)["tracking.uri"].endswith(shown)  # a path: absolute
    write_config(tmp_path / "config.yaml", config)
    assert "s3cret" not in (tmp_path / "config.yaml").read_text()


@pytest.mark.parametrize(
    ("uri", "shown"),
    [  # SQLAlchemy takes a password up to its "@", "/" and "?" included (as "pa/ss")
        (
            "postgresql://quant:pa/ss@db.example:5432/mlflow",
            "postgresql://quant:***@db.example:5432/mlflow",
        ),
        (
            "mysql+pymysql://quant:pa/ss?x@db.example/mlflow?charset=utf8",
            "mysql+pymysql://quant:***@db.example/mlflow?charset=utf8",
        ),
    ],
)
def test_a_password_holding_a_slash_is_never_logged(make_config, tmp_path, monkeypatch, uri, shown):
    from sqlalchemy.engine import make_url

    from fintune.run_dir import write_config

    assert make_url(uri).password.startswith("pa/ss")  # a URI the store takes as it is
    config = make_config(tracking={"mlflow": True, "uri": uri})
    assert tracking.run_params(config)["tracking.uri"] == shown
    write_config(tmp_path / "config.yaml", config)
    assert "pa/ss" not in (tmp_path / "config.yaml").read_text()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # environment.json's record of it
    assert tracking.store_record(make_config(tracking={"mlflow": True}))["uri"] == shown


def test_the_error_for_an_unusable_uri_shows_no_password(make_config):
    config = make_config(tracking={"mlflow": True, "uri": "htp://me:s3cret@127.0.0.1:5000"})
    with pytest.raises(FintuneError, match=r"cannot use htp://me:\*\*\*@127") as error:
        check_tracking(config)
    assert "s3cret" not in str(error.value)


def test_a_damaged_default_store_is_not_blamed_on_a_setting_left_unset(make_config, monkeypatch):
    """No tracking.uri and no MLFLOW_TRACKING_URI: the store is output.dir's mlflow.db."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = make_config(tracking={"mlflow": True})
    store = Path(config.output.dir) / "mlflow.db"
    store.parent.mkdir(parents=True)
    store.write_text("a text file, not a database")
    with pytest.raises(FintuneError, match=r"^output\.dir: cannot use sqlite:///.*mlflow\.db"):
        check_tracking(config)


def test_a_summary_runs_report_finds_its_plots_among_the_artifacts(make_config, tmp_path):
    """A study's report.md shows plots/x.png; the plots were logged at the top of the
    artifacts, so the logged report's images were broken links."""
    folder = tmp_path / "study"
    (folder / "plots").mkdir(parents=True)
    (folder / "report.md").write_text("![metrics](plots/metrics.png)\n")
    (folder / "plots" / "metrics.png").write_bytes(b"png")
    config = make_config(tracking={"mlflow": True, "uri": f"sqlite:///{tmp_path / 'm.db'}"})
    files = [folder / "report.md", folder / "plots" / "metrics.png"]
    run_id = tracking.log_summary(config, "study-x", folder, files, {"fintune.study": "x"})
    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    assert [a.path for a in client.list_artifacts(run_id, "plots")] == ["plots/metrics.png"]
    assert "report.md" in {a.path for a in client.list_artifacts(run_id)}


@pytest.mark.parametrize("folder", ["q?x=1", "a%20b", "h#1 two"])
def test_an_output_folder_with_uri_characters_keeps_its_store_in_it(make_config, tmp_path, folder):
    """The embedded store's URI was `sqlite:///` + the path: a `?` began a query (the store
    went to a file named after the path's start), `%20` was read as a space (no store)."""
    out = tmp_path / folder / "runs"
    config = make_config(tracking={"mlflow": True})
    config.output.dir = str(out)
    run_dir = classification.run(config)
    assert [p.name for p in tmp_path.iterdir() if p.is_file()] == ["sentences.csv"]
    assert (out / "mlflow.db").is_file() and (out / "mlartifacts").is_dir()
    client = MlflowClient(tracking.tracking_uri(config))
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    assert "report.md" in {a.path for a in client.list_artifacts(run.info.run_id)}
    check_tracking(config)  # the existing store is found and opened, not a new one made
    # MLflow makes the store's folder from the URI as written: an empty q%3Fx=1/ beside it
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [folder]


def test_a_rerun_summary_holds_only_the_current_reports_files(make_config, tmp_path):
    """A rerun updates the report's run: a plot the new report no longer has (a group that
    left the study) stayed among its artifacts, beside the report that does not show it."""
    folder = tmp_path / "study"
    (folder / "plots").mkdir(parents=True)
    config = make_config(tracking={"mlflow": True, "uri": f"sqlite:///{tmp_path / 'm.db'}"})
    files = [folder / "report.md", folder / "plots" / "a.png", folder / "plots" / "b.png"]
    for path in files:
        path.write_text("first")
    first = tracking.log_summary(config, "study-x", folder, files, {"fintune.study": "x"})
    (folder / "plots" / "b.png").unlink()
    (folder / "report.md").write_text("second")
    again = tracking.log_summary(config, "study-x", folder, files, {"fintune.study": "x"})
    assert again == first
    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    assert [a.path for a in client.list_artifacts(first, "plots")] == ["plots/a.png"]
    assert {a.path for a in client.list_artifacts(first)} == {"plots", "report.md"}
    assert Path(client.download_artifacts(first, "report.md", str(tmp_path))).read_text() == (
        "second"
    )


def test_logging_stopped_by_ctrl_c_ends_the_mlflow_run_as_killed(make_config, tmp_path):
    """Ctrl+C while a run's files were being logged ended its MLflow run as FAILED, which
    reads as an error in the run; it was stopped."""
    run_dir = _bare_run_dir(tmp_path)
    config = make_config(tracking={"mlflow": True, "uri": f"sqlite:///{tmp_path / 'm.db'}"})

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tracking, "_log_files", interrupted)
        with pytest.raises(KeyboardInterrupt):
            tracking.log_run(run_dir, config)
    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.info.status == "KILLED"


def test_a_summary_whose_logging_fails_is_not_left_running(make_config, tmp_path, monkeypatch):
    folder = tmp_path / "study"
    folder.mkdir()
    (folder / "report.md").write_text("report")
    config = make_config(tracking={"mlflow": True, "uri": f"sqlite:///{tmp_path / 'm.db'}"})

    def full(*args, **kwargs):
        raise OSError("artifact store is full")

    monkeypatch.setattr(MlflowClient, "log_artifact", full)
    with pytest.raises(OSError, match="full"):
        tracking.log_summary(config, "study-x", folder, [folder / "report.md"], {"a": "x"})
    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.info.status == "FAILED"


def test_a_parameter_longer_than_mlflows_limit_is_marked_as_cut(make_config):
    """The whole value is in config.yaml, logged beside the parameters."""
    labels = [f"label_number_{i:05d}" for i in range(400)]  # 400 * 22 characters
    params = tracking.run_params(make_config(data={"labels": labels}))
    whole = str(labels)
    assert len(whole) > 6000
    assert len(params["data.labels"]) == 6000 and params["data.labels"].endswith("…")
    assert whole.startswith(params["data.labels"][:-1])
    assert params["training.learning_rate"] == "0.001"  # a short value stays whole


def test_a_store_whose_creation_was_interrupted_is_created_again(make_config, tmp_path):
    """MLflow builds a new SQLite store in about 5 s of migrations; a run stopped then (Ctrl+C,
    SIGTERM or SIGKILL in its first logging) left a half-built mlflow.db that every later run
    refused: 'cannot use ... (table webhooks already exists)'."""
    from alembic import command

    store = tmp_path / "m.db"
    config = make_config(tracking={"mlflow": True, "uri": f"sqlite:///{store}"})
    upgrade = command.upgrade

    def interrupted(alembic_config, revision):  # stopped inside a migration, as measured
        upgrade(alembic_config, "de4033877273")
        alembic_config.attributes["connection"].exec_driver_sql("CREATE TABLE webhooks (id INT)")
        raise KeyboardInterrupt

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(command, "upgrade", interrupted)
        with pytest.raises(KeyboardInterrupt):
            tracking._client(config)
    check_tracking(config)
    client, experiment_id = tracking._client(config)
    assert client.get_experiment(experiment_id).name == "tiny"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("m.db")) == [
        "m.db",
        "m.db.lock",
    ]


@pytest.mark.parametrize(
    "uri", ["sqlite:///runs/a:b@c/mlflow.db", "file:///data/a:b@c/mlruns", "sqlite:///x:y@z.db"]
)
def test_a_local_store_whose_path_holds_a_colon_and_an_at_is_not_redacted(
    make_config, tmp_path, uri
):
    """A path is no password: `sqlite:///a:b@c.db` was recorded as `sqlite:///a:***@c.db`,
    so config.yaml named another store, and rerunning it logged there."""
    from fintune.run_dir import write_config

    assert tracking.redact(uri) == uri
    config = make_config(tracking={"mlflow": True, "uri": uri})
    write_config(tmp_path / "config.yaml", config)
    assert "***" not in (tmp_path / "config.yaml").read_text()
    assert "***" not in tracking.run_params(config)["tracking.uri"]


def test_a_store_a_study_or_sweep_fills_in_is_recorded_as_its_outputs(make_config, monkeypatch):
    """store_in sets tracking.uri to the study's own mlflow.db; environment.json then said
    `from: tracking.uri`, and a damaged store was blamed on that setting, which the user
    never gave."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    config = make_config(tracking={"mlflow": True})
    folder = Path(config.output.dir).parent / "study"
    tracking.store_in(config, folder)
    config = config.model_copy(deep=True)  # as a cell's config is copied
    assert tracking.store_record(config)["from"] == "output"
    folder.mkdir()
    (folder / "mlflow.db").write_text("a text file, not a database")
    with pytest.raises(FintuneError, match=r"^output: cannot use sqlite:///.*Move that file"):
        check_tracking(config)
    given = make_config(tracking={"mlflow": True, "uri": "sqlite:///x.db"})
    tracking.store_in(given, folder)  # the user's URI is kept, and named as theirs
    assert tracking.store_record(given)["from"] == "tracking.uri"


def test_a_stale_artifact_that_cannot_be_deleted_leaves_the_report_run_finished(
    make_config, tmp_path, monkeypatch, capsys
):
    """The rerun's report was logged whole; an old plot the artifact store would not delete
    (a store that keeps what it holds) ended the run FAILED, as if the report were missing."""
    from mlflow.store.artifact.local_artifact_repo import LocalArtifactRepository

    folder = tmp_path / "study"
    (folder / "plots").mkdir(parents=True)
    config = make_config(tracking={"mlflow": True, "uri": f"sqlite:///{tmp_path / 'm.db'}"})
    files = [folder / "report.md", folder / "plots" / "a.png", folder / "plots" / "b.png"]
    for path in files:
        path.write_text("first")
    first = tracking.log_summary(config, "study-x", folder, files, {"fintune.study": "x"})
    (folder / "plots" / "b.png").unlink()

    def refused(self, path=None):
        raise PermissionError("this store deletes nothing")

    monkeypatch.setattr(LocalArtifactRepository, "delete_artifacts", refused)
    again = tracking.log_summary(config, "study-x", folder, files, {"fintune.study": "x"})
    assert again == first
    run = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}").get_run(first)
    assert run.info.status == "FINISHED"
    err = capsys.readouterr().err
    assert "plots/b.png" in err and "this store deletes nothing" in err


def test_cells_and_trials_are_children_of_their_study_or_sweep_report_run(make_config, tmp_path):
    """They were tied to it by tags only: MLflow's UI listed every cell beside the report's
    run instead of nesting them under it (mlflow.parentRunId)."""
    run_dir = _bare_run_dir(tmp_path)
    (tmp_path / "report.md").write_text("report")
    config = make_config(tracking={"mlflow": True, "uri": f"sqlite:///{tmp_path / 'm.db'}"})
    for kind in ("study", "sweep"):
        parent = tracking.open_summary(config, kind, "x")
        assert tracking.open_summary(config, kind, "x") == parent  # found again, not a second
        config.tracking.tags = {f"fintune.{kind}": "x", "fintune.cell": "c"}
        child = tracking.log_run(run_dir, config)
        client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
        assert client.get_run(child).data.tags["mlflow.parentRunId"] == parent
        name, tags = tracking.summary_of(kind, "x")
        assert tracking.log_summary(config, name, tmp_path, [tmp_path / "report.md"], tags) == (
            parent
        )
        assert client.get_run(parent).info.status == "FINISHED"
    config.tracking.tags = {}
    plain = tracking.log_run(run_dir, config)  # a run of no study has no parent
    assert "mlflow.parentRunId" not in client.get_run(plain).data.tags


@pytest.mark.parametrize("stop", [KeyboardInterrupt, SystemExit])
def test_a_report_run_made_as_the_command_is_stopped_is_not_left_running(
    make_config, tmp_path, monkeypatch, stop
):
    """A Ctrl+C (or SIGTERM) that arrived once open_summary had made the report's run, but
    before the caller held its id (here as the store's lock is released), left the run
    RUNNING for ever: no one knew it to end it."""
    from contextlib import contextmanager

    real, uses = tracking.FileLock, []

    @contextmanager
    def stopped_at_release(*args, **kwargs):
        uses.append(args)
        with real(*args, **kwargs):
            yield
        if len(uses) == 2:  # the first opens the store, the second guards the report run
            raise stop

    config = make_config(tracking={"mlflow": True, "uri": f"sqlite:///{tmp_path / 'm.db'}"})
    monkeypatch.setattr(tracking, "FileLock", stopped_at_release)
    with pytest.raises(stop):
        tracking.open_summary(config, "study", "x")
    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.info.status == "KILLED"


def test_a_run_whose_logging_process_died_is_ended_as_killed_by_the_next(make_config, tmp_path):
    """A run SIGKILLed while its files were being logged stayed RUNNING in MLflow for ever.
    The next run logged to the store ends it, if its process was of this machine."""
    uri = f"sqlite:///{tmp_path / 'm.db'}"
    config = make_config(tracking={"mlflow": True, "uri": uri})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    here = socket.gethostname()
    client, experiment_id = tracking._client(config)
    loggers = [f"{dead.pid}@{here}", f"{os.getpid()}@{here}", f"{dead.pid}@elsewhere", ""]
    runs = {
        who: client.create_run(experiment_id, tags={tracking.LOGGED_BY: who}).info.run_id
        for who in loggers
    }
    run_dir = _bare_run_dir(tmp_path)
    logged = tracking.log_run(run_dir, config)
    statuses = [client.get_run(runs[who]).info.status for who in loggers]
    assert statuses == ["KILLED", "RUNNING", "RUNNING", "RUNNING"]
    assert client.get_run(runs[loggers[0]]).data.tags["fintune.status"] == "KILLED"
    assert client.get_run(logged).data.tags[tracking.LOGGED_BY] == f"{os.getpid()}@{here}"


def test_a_run_whose_logging_pid_was_taken_by_a_new_process_is_ended_as_killed(
    make_config, tmp_path
):
    """A pid comes again: in a container restarted, fintune is pid 1 (or the same low pid)
    again, so a killed run's pid was alive and the run stayed RUNNING for ever."""
    config = make_config(tracking={"mlflow": True, "uri": f"sqlite:///{tmp_path / 'm.db'}"})
    client, experiment_id = tracking._client(config)
    here, started = socket.gethostname(), psutil.Process().create_time()
    tags = {tracking.LOGGED_BY: f"{os.getpid()}@{here}"}
    before = client.create_run(
        experiment_id, tags={**tags, tracking.LOGGER_STARTED: str(started - 3600)}
    ).info.run_id  # logged by a process of this pid an hour older than this one
    live = client.create_run(experiment_id, tags={**tags, tracking.LOGGER_STARTED: str(started)})
    run_dir = _bare_run_dir(tmp_path)
    logged = tracking.log_run(run_dir, config)
    assert client.get_run(before).info.status == "KILLED"
    assert client.get_run(live.info.run_id).info.status == "RUNNING"
    assert float(client.get_run(logged).data.tags[tracking.LOGGER_STARTED]) == started


def test_abandoned_runs_past_the_first_page_of_the_search_are_ended_too(
    make_config, tmp_path, monkeypatch
):
    """The search for RUNNING runs read one page (1,000 runs): an abandoned run past it
    stayed RUNNING for ever."""
    config = make_config(tracking={"mlflow": True, "uri": f"sqlite:///{tmp_path / 'm.db'}"})
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    client, experiment_id = tracking._client(config)
    tags = {tracking.LOGGED_BY: f"{dead.pid}@{socket.gethostname()}"}
    abandoned = [client.create_run(experiment_id, tags=tags).info.run_id for _ in range(5)]
    monkeypatch.setattr(tracking, "PAGE", 2)
    tracking.log_run(_bare_run_dir(tmp_path), config)
    assert {client.get_run(run).info.status for run in abandoned} == {"KILLED"}
    assert len(tracking.tracked_runs(config)) == 6


def test_a_logging_failure_after_training_does_not_print_the_trackers_password(
    make_config, tmp_path, monkeypatch, capsys
):
    """MLflow quotes the request URL, credentials and all: a server gone down during
    training printed 'http://bob:s3cret@host/api/...' in the warning, into CI logs."""
    from fintune.recipes import classification

    def down(*args, **kwargs):
        raise RuntimeError(
            "API request to http://bob:s3cret@127.0.0.1:5099/api/2.0/mlflow/experiments/"
            "get-by-name failed; also postgresql://me:pa/ss@db/mlflow?password=pw2"
        )

    monkeypatch.setattr(classification, "log_run", down)
    classification.track(tmp_path, make_config())
    err = " ".join(capsys.readouterr().err.split())
    assert "MLflow logging failed" in err and "http://bob:***@127.0.0.1:5099/api" in err
    assert "s3cret" not in err and "pa/ss" not in err and "pw2" not in err
    assert tracking.redact_text("sqlite:///a:b@c.db and file:///x:y@z") == (
        "sqlite:///a:b@c.db and file:///x:y@z"
    )


def test_the_logged_parameters_are_the_resolved_configs_paths_and_all(
    tiny_bert, tmp_path, monkeypatch
):
    """Only tracking.uri was made absolute: runs started from different folders on
    different data all showed data.path=sentences.csv in the MLflow UI, unlike config.yaml."""
    import yaml

    from fintune.run_dir import write_config
    from tests.conftest import tiny_run_config

    monkeypatch.chdir(tmp_path)
    model = os.path.relpath(tiny_bert, tmp_path)
    config = tiny_run_config(model, Path("sentences.csv"), Path("out"))
    write_config(tmp_path / "config.yaml", config)
    written = tracking.flatten(yaml.safe_load((tmp_path / "config.yaml").read_text()))
    params = tracking.run_params(config)
    assert params["data.path"] == written["data.path"] == str(tmp_path / "sentences.csv")
    assert params["output.dir"] == written["output.dir"] == str(tmp_path / "out")
    assert params["model.name"] == written["model.name"] == str(tiny_bert)


def test_tracking_settings_given_with_mlflow_off_are_said_to_be_unused(make_config, tmp_path):
    """`tracking.mlflow: false` with tags or an experiment dropped them without a word."""
    from typer.testing import CliRunner

    from fintune.cli import app

    config = make_config(tracking={"mlflow": False, "tags": {"desk": "rates"}})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    said = CliRunner().invoke(app, ["validate", str(path)])
    assert said.exit_code == 0, said.output
    assert "warning: tracking.tags is not used: tracking.mlflow is false" in said.output
    assert unused_tracking_note(make_config(tracking={"mlflow": False}).tracking) is None
    on = make_config(tracking={"mlflow": True, "tags": {"desk": "rates"}})
    assert unused_tracking_note(on.tracking) is None


def test_fintune_log_logs_a_finished_run_whose_logging_failed_or_was_off(
    make_config, tmp_path, monkeypatch
):
    """A plain run whose logging failed, was stopped, or was off had no way to be logged
    later: only sweeps and studies log their runs again when resumed."""
    import shutil

    from typer.testing import CliRunner

    from fintune.cli import app

    def broken(*args, **kwargs):
        raise RuntimeError("artifact store is full")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tracking, "_log_files", broken)
        run_dir = classification.run(make_config(tracking={"mlflow": True}))
    client = MlflowClient(f"sqlite:///{run_dir.parent / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tiny").experiment_id
    assert [r.info.status for r in client.search_runs([experiment])] == ["FAILED"]

    said = CliRunner().invoke(app, ["log", str(run_dir)])
    assert said.exit_code == 0, said.output
    assert said.output.startswith(f"Logged {run_dir} to sqlite:///")
    (run,) = client.search_runs([experiment])  # the cut-short record replaced, not added to
    assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
    assert "test_accuracy" in run.data.metrics
    again = CliRunner().invoke(app, ["log", str(run_dir)])
    assert again.exit_code == 0 and "already: nothing to do" in again.output
    assert len(client.search_runs([experiment])) == 1

    # tracking off, and the folder moved since: logged to a store beside where it is now
    untracked = classification.run(make_config(name="off", tracking={"mlflow": False}))
    moved = tmp_path / "moved" / untracked.name
    shutil.copytree(untracked, moved)
    assert CliRunner().invoke(app, ["log", str(moved)]).exit_code == 0
    store = MlflowClient(f"sqlite:///{moved.parent / 'mlflow.db'}")
    (run,) = store.search_runs([store.get_experiment_by_name("off").experiment_id])
    assert run.data.tags["fintune.run_dir"] == str(moved.resolve())

    (moved / "predictions_test.csv").unlink()  # not a finished run: refused, named
    refused = CliRunner().invoke(app, ["log", str(moved)])
    assert refused.exit_code == 2
    assert f"{moved}: not a finished run" in refused.output.replace("\n", "")


@pytest.mark.parametrize(
    "item",
    ["training.learning_rate=0.5", "seed=123", "output.dir=/elsewhere", "method={name: lora}"],
)
def test_fintune_log_takes_only_tracking_settings(make_config, item):
    """`--set training.learning_rate=0.5` was logged as the run's parameter beside the
    metrics of the run that trained at 0.001, without a word."""
    from typer.testing import CliRunner

    from fintune.cli import app

    run_dir = classification.run(make_config(tracking={"mlflow": False}))
    said = CliRunner().invoke(app, ["log", str(run_dir), "--set", item])
    assert said.exit_code == 2
    field = item.partition("=")[0]
    assert (
        f"--set {field}: fintune log takes tracking settings only (tracking.uri, "
        "tracking.experiment, ...); a run is logged with the settings it ran with"
    ) in " ".join(said.output.split())
    assert not (run_dir.parent / "mlflow.db").exists()
    taken = CliRunner().invoke(app, ["log", str(run_dir), "--set", "tracking.experiment=other"])
    assert taken.exit_code == 0, taken.output


def test_fintune_log_names_a_set_without_field_and_value_as_run_does(make_config):
    """`--set ""` was 'fintune log takes tracking settings only', about a field of no name."""
    from typer.testing import CliRunner

    from fintune.cli import app

    run_dir = classification.run(make_config(tracking={"mlflow": False}))
    for item in ["", "tracking.uri"]:
        said = CliRunner().invoke(app, ["log", str(run_dir), "--set", item])
        assert said.exit_code == 2
        assert f"--set {item!r}: expected FIELD=VALUE" in said.output, said.output


def test_a_confidence_near_95_percent_is_logged_under_its_own_name_not_as_ci95():
    block = {
        "accuracy": 0.8,
        "ci95": {"accuracy": [0.7, 0.9]},
        "ci": {"accuracy": [0.69, 0.91]},
        "confidence": 0.9500001,
    }
    logged = tracking.final_metrics({"test": block})
    assert logged["test_accuracy_ci95_low"] == 0.7
    assert logged["test_accuracy_ci95.00001_low"] == 0.69
    plain = tracking.final_metrics({"test": {**block, "confidence": 0.9}})
    assert plain["test_accuracy_ci90_high"] == 0.91


def test_fintune_log_knows_a_run_by_its_metrics_not_its_folder_name(make_config, tmp_path):
    """Found in review: records were matched by run name, so (1) of two runs with one
    folder name (started in one second, into two output folders) logged to one store, the
    second was 'logged whole already: nothing to do'; (2) a record renamed in MLflow's UI
    was logged again beside it; (3) a moved folder's record cut short stayed beside the new
    one."""
    import shutil

    from typer.testing import CliRunner

    from fintune.cli import app

    uri = f"sqlite:///{tmp_path / 'shared.db'}"

    def run_into(folder: str, seed: int) -> Path:
        config = make_config(seed=seed)
        config.output.dir = str(tmp_path / folder)
        return classification.run(config)

    first, made = run_into("a", 1), run_into("b", 2)
    second = made.with_name(first.name)
    made.rename(second)

    def log(run_dir: Path) -> str:
        said = CliRunner().invoke(app, ["log", str(run_dir), "--set", f"tracking.uri={uri}"])
        assert said.exit_code == 0, said.output
        return said.output.replace("\n", "")

    client = MlflowClient(uri)
    assert log(first).startswith("Logged") and log(second).startswith("Logged")  # (1)
    experiment = client.get_experiment_by_name("tiny").experiment_id
    records = {r.data.tags["fintune.run_dir"]: r for r in client.search_runs([experiment])}
    assert sorted(records) == sorted([str(first.resolve()), str(second.resolve())])

    client.update_run(records[str(first.resolve())].info.run_id, name="baseline seed 1")
    assert "nothing to do" in log(first)  # (2)
    assert len(client.search_runs([experiment])) == 2

    cut_short = records[str(second.resolve())].info.run_id
    client.set_terminated(cut_short, status="KILLED")
    moved = tmp_path / "moved" / second.name
    shutil.move(second, moved)
    assert log(moved).startswith("Logged")  # (3)
    kept = {r.data.tags["fintune.run_dir"]: r.info.status for r in client.search_runs([experiment])}
    assert kept == {str(first.resolve()): "FINISHED", str(moved.resolve()): "FINISHED"}


def test_fintune_log_logs_a_run_without_test_and_keeps_its_tracking_setting(make_config):
    """(1) A finished run with evaluation.test off was refused as 'not a finished run' (no
    predictions_test.csv), though its own warning, when live logging failed, named
    `fintune log`. (2) A run that ran untracked was logged with the parameter
    tracking.mlflow True, unlike its config.yaml."""
    from typer.testing import CliRunner

    from fintune.cli import app

    config = make_config(tracking={"mlflow": False}, evaluation={"test": False})
    run_dir = classification.run(config)
    assert not (run_dir / "predictions_test.csv").exists()
    said = CliRunner().invoke(app, ["log", str(run_dir)])
    assert said.exit_code == 0, said.output
    client = MlflowClient(f"sqlite:///{run_dir.parent / 'mlflow.db'}")
    (run,) = client.search_runs([client.get_experiment_by_name("tiny").experiment_id])
    assert run.info.status == "FINISHED" and "validation_accuracy" in run.data.metrics
    assert run.data.params["tracking.mlflow"] == "False"  # as config.yaml says

    (run_dir / "predictions_validation.csv").unlink()  # now not whole: refused, named
    refused = CliRunner().invoke(app, ["log", str(run_dir)])
    assert refused.exit_code == 2
    assert "predictions_validation.csv" in refused.output.replace("\n", "")


def test_a_runs_end_is_never_before_its_last_logged_point(make_config, tmp_path):
    """The end was the newest file's mtime, from a coarser clock than the history's times:
    a failed run whose last file was history.jsonl ended 6 ms before its last loss."""
    import os

    config = make_config(tracking={"mlflow": True, "uri": f"sqlite:///{tmp_path / 'm.db'}"})
    run_dir = _bare_run_dir(tmp_path)
    written = (run_dir / "config.yaml").stat().st_mtime
    lines = [
        {"step": 1, "loss": 1.1, "time": written + 1.0},
        {"step": 2, "loss": None, "time": written + 2.0},
    ]
    (run_dir / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    os.utime(run_dir / "history.jsonl", (written + 1.994, written + 1.994))  # a coarse clock
    client = MlflowClient(f"sqlite:///{tmp_path / 'm.db'}")
    run = client.get_run(tracking.log_run(run_dir, config, "FAILED"))
    last = client.get_metric_history(run.info.run_id, "loss")[-1]
    assert last.timestamp == int((written + 2.0) * 1000) <= run.info.end_time


def test_fintune_log_refuses_a_config_yaml_cut_short(make_config):
    """The lost sections were read as their defaults and logged as the run's settings
    (learning_rate 5e-05 for a run at 0.001), its record then whole: no later log fixed it."""
    from typer.testing import CliRunner

    from fintune.cli import app

    run_dir = classification.run(make_config(tracking={"mlflow": False}))
    written = (run_dir / "config.yaml").read_text()
    (run_dir / "config.yaml").write_text(written[: written.index("\nmethod:")])
    said = CliRunner().invoke(app, ["log", str(run_dir)])
    assert said.exit_code == 2
    assert (
        "has no method, training, evaluation, output, tracking: not the whole file the run wrote"
    ) in " ".join(said.output.split())
    assert not (run_dir.parent / "mlflow.db").exists()
