"""BENCHMARKS.md's Reproduce commands name scripts, flags and configs that exist."""

from __future__ import annotations

import re

from tests.benchmarks.conftest import BENCHMARKS

ROOT = BENCHMARKS.parent
DOC = (ROOT / "BENCHMARKS.md").read_text(encoding="utf-8")


def test_every_script_and_config_it_names_exists():
    scripts = set(re.findall(r"benchmarks/(\w+\.py)", DOC))
    configs = set(re.findall(r"(\w+\.yaml)", DOC))
    assert scripts and configs
    assert {s for s in scripts if not (BENCHMARKS / s).is_file()} == set()
    assert {c for c in configs if not (BENCHMARKS / "configs" / c).is_file()} == set()


def test_every_flag_it_uses_is_one_a_script_or_the_cli_takes():
    sources = [p.read_text() for p in BENCHMARKS.glob("*.py")]
    sources.append((ROOT / "src/fintune/cli.py").read_text())
    flags = set(re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*)", DOC))
    unknown = {
        flag
        for flag in flags
        if not any(f'"--{flag}"' in s or flag.replace("-", "_") in s for s in sources)
    }
    assert unknown == set()


def test_each_command_passes_the_flags_of_the_script_it_runs():
    """`benchmarks/X.py --flag ...` in one command: --flag is X's own."""
    for command in re.findall(r"`([^`]*benchmarks/\w+\.py[^`]*)`", DOC):
        script = re.search(r"benchmarks/(\w+\.py)", command).group(1)
        source = (BENCHMARKS / script).read_text()
        for flag in re.findall(r"(?<![\w-])--([a-z][a-z0-9-]*)", command):
            assert f'"--{flag}"' in source, f"{command}: {script} has no --{flag}"
