"""benchmarks/serve_load.py and serve_report.py against `fintune serve` on a tiny run."""

from __future__ import annotations

import time

import pytest

from tests.benchmarks.conftest import load_script

serve_load = load_script("serve_load")


def test_a_server_that_cannot_start_says_why_at_once(tmp_path, monkeypatch):
    """A stand-in for `python -m fintune.cli serve` that fails as it would on a wrong run."""
    python = tmp_path / "python"
    python.write_text("#!/bin/sh\necho 'error: run directory not found: no-run' >&2\nexit 2\n")
    python.chmod(0o755)
    monkeypatch.setattr(serve_load.sys, "executable", str(python))
    started = time.perf_counter()
    with pytest.raises(RuntimeError, match="did not start: error: run directory not found"):
        serve_load.start_server(tmp_path / "no-run", serve_load.free_port(), "fp32")
    assert time.perf_counter() - started < 10  # not after its 300 polls
