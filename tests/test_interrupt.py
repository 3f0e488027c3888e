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
