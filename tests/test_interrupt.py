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


def test_ctrl_c_is_remembered_within_and_the_handler_put_back():
    before = signal.getsignal(signal.SIGINT)
    with interrupt.remembered():
        assert signal.getsignal(signal.SIGINT) is not before
    assert signal.getsignal(signal.SIGINT) is before


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
