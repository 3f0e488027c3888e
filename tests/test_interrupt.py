import signal

from fintune import interrupt


def test_an_ignored_ctrl_c_stays_ignored():
    """A process started with SIGINT ignored (a script's `fintune sweep --worker &`, which a
    shell without job control starts so; nohup-like wrappers) must not be stopped by the
    terminal's Ctrl+C: Python keeps such a SIG_IGN, and so must fintune."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with interrupt.remembered():
            assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_with_ctrl_c_ignored_a_dropped_sigterm_still_stops_the_command_and_is_forgotten():
    """Started with SIGINT ignored (`fintune sweep --worker &`), remembered() did nothing: a
    SIGTERM dropped after the last training step let the command end 0, and the SIGTERM
    stayed remembered, so every later run in the process stopped at its first step (55
    tests failed so when the suite was started in the background)."""
    import contextlib
    import os

    import pytest

    from fintune.cli import _terminate_as_exit

    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        # suppressed: as Python drops a SystemExit raised in a gc callback
        dropped = contextlib.suppress(SystemExit)
        with pytest.raises(SystemExit) as stopped, _terminate_as_exit(), dropped:
            os.kill(os.getpid(), signal.SIGTERM)
        assert stopped.value.code == 128 + signal.SIGTERM
        interrupt.check()  # forgotten once the command it stopped has ended
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, previous)


def test_ctrl_c_is_remembered_within_and_the_handler_put_back():
    # as a terminal starts it: the suite itself may run with SIGINT ignored (`make test &`)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with interrupt.remembered():
            assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_sigterm_dropped_in_garbage_collection_still_stops_the_command():
    """A scheduler's SIGTERM raised SystemExit wherever the main thread was; in a garbage
    collection callback or a __del__ (Optuna collects after every trial) Python printed it
    as 'Exception ignored' and went on: a sweep ran to its end and exited 0. It is now
    remembered, as Ctrl+C is, and raised again at the next safe point."""
    import contextlib
    import os

    import pytest

    from fintune.cli import _terminate_as_exit

    with pytest.raises(SystemExit) as stopped, _terminate_as_exit():
        with contextlib.suppress(SystemExit):  # as Python drops one raised in a gc callback
            os.kill(os.getpid(), signal.SIGTERM)
        interrupt.check()
    assert stopped.value.code == 128 + signal.SIGTERM


def test_a_ctrl_c_dropped_in_a_del_stops_without_a_traceback():
    """Python printed a Ctrl+C raised in a __del__ or gc callback as 'Exception ignored ...
    Traceback ... KeyboardInterrupt' before fintune raised it again: a traceback for a plain
    Ctrl+C. It is now dropped silently; other such errors are still printed."""
    import subprocess
    import sys

    code = (
        "import os, signal\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from fintune import interrupt\n"
        "class Dropper:\n"
        "    def __del__(self):\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "        for _ in range(1000): pass\n"
        "class Broken:\n"
        "    def __del__(self):\n"
        "        raise ValueError('other')\n"
        "try:\n"
        "    with interrupt.remembered():\n"
        "        Broken()\n"
        "        Dropper()\n"
        "except KeyboardInterrupt:\n"
        "    raise SystemExit(130)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 130
    assert "ValueError: other" in done.stderr
    assert "KeyboardInterrupt" not in done.stderr, done.stderr


def test_a_ctrl_c_dropped_after_training_says_the_run_finished(make_config, tmp_path):
    """Raised again once the run had written metrics.json, it exited 130 with no word: the
    folder looked stopped, and 'Finished. Report: ...' was never printed."""
    import yaml

    from tests.conftest import interrupted_in_garbage_collection

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(make_config().model_dump(mode="json")))
    done = interrupted_in_garbage_collection("run", str(path), at="on_train_end")
    assert done.returncode == 130, done.stderr[-3000:]
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert (run_dir / "metrics.json").is_file()
    assert f"stopped: {run_dir} is finished (metrics.json written)" in done.stderr.replace("\n", "")
