from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from fintune import interrupt, tracking
from fintune.recipes import classification


def ctrl_c_while_logging(monkeypatch, command: Callable[[], object]) -> None:
    """Run `command` (a study, a sweep) as from a terminal, with Ctrl+C typed once, as the
    first finished run is logged to MLflow; it must end with the KeyboardInterrupt."""
    real = tracking._log_files
    pressed = []

    def ctrl_c_once(*args, **kwargs):
        if not pressed:
            pressed.append(True)
            os.kill(os.getpid(), signal.SIGINT)  # through remembered()'s handler, as typed
        return real(*args, **kwargs)

    monkeypatch.setattr(tracking, "_log_files", ctrl_c_once)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(KeyboardInterrupt), interrupt.remembered():
            command()
    finally:
        signal.signal(signal.SIGINT, before)
        monkeypatch.setattr(tracking, "_log_files", real)


@pytest.fixture
def interrupt_run(monkeypatch):
    """`restore = interrupt_run(n)`: the n-th run raises KeyboardInterrupt, as Ctrl+C would;
    `restore()` puts the real recipe back."""
    real = classification.run

    def arm(n: int):
        calls = []

        def run(config, **kwargs):
            calls.append(config.name)
            if len(calls) == n:
                raise KeyboardInterrupt
            return real(config, **kwargs)

        monkeypatch.setattr(classification, "run", run)
        return lambda: monkeypatch.setattr(classification, "run", real)

    return arm


SPACE = {
    "training.learning_rate": {"type": "log_uniform", "low": 1e-3, "high": 1e-2},
    "training.batch_size": {"type": "categorical", "choices": [8, 16]},
}


@pytest.fixture
def sweep_file(tmp_path, make_config):
    def write(**changes) -> Path:
        spec = {
            "name": "tiny-sweep",
            "base": make_config(training={"epochs": 2}).model_dump(mode="json"),
            "space": SPACE,
            "trials": 3,
            "pruner": "none",
            "startup_trials": 1,
            "output": str(tmp_path / "sweeps"),
            **changes,
        }
        path = tmp_path / "sweep.yaml"
        path.write_text(yaml.safe_dump(spec))
        return path

    return write
