"""The README's annotated config is a valid config, and its quick start names the commands."""

import re
from pathlib import Path

import yaml

from fintune.config import validate_config

README = Path(__file__).resolve().parent.parent / "README.md"


def test_annotated_example_validates():
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)
    config = validate_config(yaml.safe_load(blocks[0]), source="README.md")
    assert config.method.name == "lora" and config.data.dataset == "financial_phrasebank"


def test_quick_start_has_the_two_commands():
    text = README.read_text()
    assert "make run" in text and "make test" in text


def test_study_and_sweep_examples_are_valid_files(monkeypatch):
    from fintune.study.spec import StudySpec, expand
    from fintune.study.sweep import SweepSpec

    monkeypatch.chdir(README.parent)  # the examples name files from the repository root

    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)]
    studies = [b for b in blocks if "axes" in b]
    sweeps = [b for b in blocks if "space" in b]
    assert studies and sweeps
    for block in studies:
        assert expand(StudySpec.model_validate(block), "README.md")  # cells and baselines
    for block in sweeps:
        SweepSpec.model_validate(block)
