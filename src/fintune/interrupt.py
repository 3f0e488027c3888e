"""Ctrl+C that is never lost. Python raises KeyboardInterrupt wherever the main thread is
when SIGINT arrives; inside a garbage collection callback or a __del__ (Optuna collects
after every trial) the exception is printed as 'Exception ignored' and dropped, and the
command would run on. The request is remembered, and raised again at the next safe
point: a training step, a trial, a cell, the command's end."""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_requested = threading.Event()
_terminated: list[int] = []  # the SIGTERM received, whose SystemExit may have been dropped too


def _interrupt(signum: int, frame: Any) -> None:
    _requested.set()
    raise KeyboardInterrupt


def terminate(signum: int, frame: Any) -> None:
    """SIGTERM (a batch scheduler's stop) as SystemExit, remembered like Ctrl+C."""
    _terminated[:] = [signum]
    raise SystemExit(128 + signum)


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl+C was pressed and its exception was swallowed, or
    SystemExit for such a SIGTERM."""
    if _terminated:
        raise SystemExit(128 + _terminated[0])
    if _requested.is_set():
        raise KeyboardInterrupt


def pending() -> bool:
    """Whether a Ctrl+C or SIGTERM was received within `remembered()` and not yet raised
    again: a stop that a finished piece of work may hold back to the next safe point."""
    return _requested.is_set() or bool(_terminated)


_held: dict[int, Any] = {}  # the handlers hold() replaced


def hold() -> None:
    """Until release(): a Ctrl+C or SIGTERM is remembered, not raised, while finished work
    is recorded (a sweep trial's value, until Optuna has stored it); the caller's next
    check() raises it. Only within remembered() (the commands): elsewhere nothing would
    clear the stop once raised, and a handler not ours (the default) is left alone."""
    if threading.current_thread() is not threading.main_thread() or _held:
        return
    for signum, ours in ((signal.SIGINT, _interrupt), (signal.SIGTERM, terminate)):
        if signal.getsignal(signum) is ours:
            _held[signum] = signal.signal(signum, _remember)


def _remember(signum: int, frame: Any) -> None:
    if signum == signal.SIGTERM:
        _terminated[:] = [signum]
    else:
        _requested.set()


def release() -> None:
    """End hold() (none held: nothing to do)."""
    while _held:
        signum, handler = _held.popitem()
        signal.signal(signum, handler)


@contextmanager
def remembered() -> Iterator[None]:
    """Within: Ctrl+C is remembered as well as raised; a swallowed one is raised at the end."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # started with SIGINT ignored (a script's `cmd &`), the terminal's Ctrl+C is not for this
    # process, as Python itself keeps it; a dropped SIGTERM is still raised again
    ignored = signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    _requested.clear()
    _terminated.clear()
    previous = None if ignored else signal.signal(signal.SIGINT, _interrupt)
    hook = sys.unraisablehook
    sys.unraisablehook = lambda args: _quiet(args, hook)
    try:
        yield
        check()
    finally:
        _requested.clear()
        _terminated.clear()
        sys.unraisablehook = hook
        if not ignored:
            handler = signal.default_int_handler if previous is None else previous
            signal.signal(signal.SIGINT, handler)


def _quiet(args: Any, hook: Any) -> None:
    """Python's 'Exception ignored ... Traceback' for our own stop, dropped where it was
    raised (it is raised again at the next safe point): no traceback for a plain Ctrl+C."""
    stop = isinstance(args.exc_value, KeyboardInterrupt) and _requested.is_set()
    if not (stop or (isinstance(args.exc_value, SystemExit) and _terminated)):
        hook(args)
