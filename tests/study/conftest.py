from __future__ import annotations

import pytest

from fintune.recipes import classification


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
