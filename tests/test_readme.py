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


def test_annotated_example_shows_the_built_in_defaults():
    """Every value in the example is the default, but for the ones the text says are the
    example's own: the name, the data source and those commented `(default)`."""
    from fintune.config.load import parse_yaml

    block = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)[0]
    own = {"name", "data.dataset", "data.subset", "data.path"}
    own |= {
        f"data.{key}"
        for key, line in re.findall(r"^  (\w+): (.*)$", block, flags=re.M)
        if "(default)" in line
    }
    shown = validate_config(parse_yaml(block), source="README.md").model_dump()
    method = shown["method"]["name"]
    defaults = validate_config({"data": {"path": "d.csv"}, "method": method}).model_dump()

    def differences(a: dict, b: dict, prefix: str = "") -> list[str]:
        out = []
        for key in a:
            if isinstance(a[key], dict) and a[key] and f"{prefix}{key}" not in own:
                out += differences(a[key], b[key], f"{prefix}{key}.")
            elif a[key] != b[key] and f"{prefix}{key}" not in own:
                out.append(f"{prefix}{key}: {a[key]!r}, default {b[key]!r}")
        return out

    assert own >= {"data.duplicates", "data.conflicts"}
    assert differences(shown, defaults) == []


def test_quick_start_has_the_two_commands():
    text = README.read_text()
    assert "make run" in text and "make test" in text


def test_study_and_sweep_examples_are_valid_files(monkeypatch):
    from fintune.study.spec import StudySpec, expand
    from fintune.study.sweep_spec import SweepSpec

    monkeypatch.chdir(README.parent)  # the examples name files from the repository root

    blocks = [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", README.read_text(), re.S)]
    studies = [b for b in blocks if "axes" in b]
    sweeps = [b for b in blocks if "space" in b]
    assert studies and sweeps
    for block in studies:
        assert expand(StudySpec.model_validate(block), "README.md")  # cells and baselines
    for block in sweeps:
        SweepSpec.model_validate(block)


def _section(title: str) -> str:
    return README.read_text().split(f"\n## {title}\n")[1].split("\n## ")[0]


def test_the_commands_table_names_only_options_the_commands_have():
    import typer

    from fintune.cli import app

    commands = typer.main.get_command(app).commands
    rows = re.findall(r"^\| `fintune (\w+)([^`]*)` \|", _section("Commands"), flags=re.M)
    assert {name for name, _ in rows} == set(commands)
    for name, usage in rows:
        have = {opt for param in commands[name].params for opt in param.opts}
        assert set(re.findall(r"--[\w-]+", usage)) <= have, name


def test_the_api_table_lists_the_routes_the_server_has():
    from fintune.serve.app import ServeSettings, create_app

    section = _section("Serving a model")
    listed = set(re.findall(r"^\| `(GET|POST|HEAD) (/\S*)` \|", section, flags=re.M))
    summary = {"run": "r", "backbone": "b", "method": "m"}
    schema = create_app(lambda texts: [], summary, ServeSettings()).openapi()
    assert listed == {(verb.upper(), path) for path, ops in schema["paths"].items() for verb in ops}


def test_the_adapter_loading_snippet_loads_the_base_at_its_revision():
    """The text said to load a pinned hub base at its revision, which adapter_config.json
    records, but the snippet loaded base_model_name_or_path alone: the main branch."""
    snippet = next(
        block
        for block in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
        if "PeftModel.from_pretrained" in block
    )
    load = r"AutoModelForSequenceClassification\.from_pretrained\((.*?)\)\s"
    base = re.search(load, snippet, flags=re.S)
    assert base and "revision=" in base[1]


def test_the_config_error_example_is_what_the_code_prints():
    """The README listed `trainig` before `method.r`; the code prints them the other way
    round (a section's field errors before unknown top-level keys)."""
    import pytest

    from fintune.errors import FintuneError

    pattern = r"```\nerror: exp.yaml: invalid config\n(.*?)\nerror: "
    block = re.search(pattern, README.read_text(), re.S)
    shown = [line.split("...")[0].rstrip() for line in block.group(1).splitlines()]
    raw = {"data": {"path": "d.csv"}, "trainig": {"epochs": 1}, "method": {"name": "ia3", "r": 8}}
    with pytest.raises(FintuneError) as caught:
        validate_config(raw, source="exp.yaml")
    printed = str(caught.value).splitlines()[1:]
    assert len(printed) == len(shown), printed
    for readme_line, code_line in zip(shown, printed, strict=True):
        assert code_line.startswith(readme_line), (readme_line, code_line)


def test_the_default_split_names_are_all_listed():
    """The README's default split names left out `training`, which the code also takes."""
    from fintune.data.sources import SPLIT_STEMS

    named = re.search(r"# by default splits named (.*?test)\b", README.read_text(), re.S)
    listed = set(re.findall(r"\w+", named.group(1)))
    assert listed == set(SPLIT_STEMS), sorted(set(SPLIT_STEMS) ^ listed)


def test_the_tracking_section_names_the_files_the_default_store_leaves():
    """`<output.dir>/mlflow.db.lock` stays beside the store after every run, and the README
    did not say what it is."""
    import inspect

    from fintune import tracking

    assert 'FileLock(f"{store}.lock"' in inspect.getsource(tracking)
    section = README.read_text().split("By default the store is embedded:")[1][:600]
    for name in ("`<output.dir>/mlflow.db`", "`mlflow.db.lock`", "`<output.dir>/mlartifacts/`"):
        assert name in section, name
