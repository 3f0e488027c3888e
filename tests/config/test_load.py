"""Loading configs: `--set` overrides, defaults filled in, and the resolved config (as a run
writes it) loading back to the same experiment."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from fintune.config import apply_override, load_config, read_yaml, validate_config
from fintune.config.load import override_base
from fintune.config.schema import (
    FullMethod,
    LoraMethod,
    PrefixMethod,
    QLoraMethod,
)
from fintune.errors import FintuneError
from fintune.run_dir import write_config

QUICKSTART = Path(__file__).resolve().parents[2] / "examples" / "quickstart.yaml"


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def lora_yaml(tmp_path) -> Path:
    return _yaml(tmp_path, "name: t\ndata:\n  path: d.csv\nmethod: lora\n")


# --------------------------------------------------------------------------- overrides


def test_set_learning_rate_in_e_notation_is_a_float(lora_yaml):
    config = load_config(lora_yaml, ["training.learning_rate=3e-4"])
    assert config.training.learning_rate == pytest.approx(0.0003)
    assert isinstance(config.training.learning_rate, float)


def test_set_values_are_parsed_as_yaml(lora_yaml):
    config = load_config(
        lora_yaml,
        [
            "training.epochs=2",
            "training.load_best_model=false",
            "data.labels=[neg, pos]",
            "evaluation.bootstrap_samples=500",
            "seed=7",
        ],
    )
    assert config.training.epochs == 2.0
    assert config.training.load_best_model is False
    assert config.data.labels == ["neg", "pos"]
    assert config.evaluation.bootstrap_samples == 500
    assert config.seed == 7


def test_set_on_method_shorthand(lora_yaml):
    config = load_config(lora_yaml, ["method.r=16", "method.alpha=32"])
    assert isinstance(config.method, LoraMethod)
    assert (config.method.name, config.method.r, config.method.alpha) == ("lora", 16, 32)
    assert config.method.dropout == 0.1  # other defaults kept


def test_set_replaces_the_method(lora_yaml):
    config = load_config(lora_yaml, ["method=qlora", "method.quant_type=fp4"])
    assert isinstance(config.method, QLoraMethod) and config.method.quant_type == "fp4"
    config = load_config(lora_yaml, ["method.name=prefix", "method.num_virtual_tokens=5"])
    assert isinstance(config.method, PrefixMethod) and config.method.num_virtual_tokens == 5


def test_set_creates_a_nested_section(lora_yaml):
    assert "training" not in read_yaml(lora_yaml)
    config = load_config(
        lora_yaml,
        ["data.cleaning.lowercase=true", "data.split.test=0.3", "training.batch_size=4"],
    )
    assert config.data.cleaning.lowercase is True
    assert config.data.cleaning.strip_html is False
    assert config.data.split.test == 0.3 and config.data.split.validation == 0.1
    assert config.training.batch_size == 4


def test_later_set_wins(lora_yaml):
    config = load_config(lora_yaml, ["seed=1", "seed=2"])
    assert config.seed == 2


@pytest.fixture
def sections_yaml(tmp_path) -> Path:
    return _yaml(
        tmp_path,
        "name: t\ndata:\n  path: d.csv\n"
        "method: {name: lora, r: 4, alpha: 32}\n"
        "training: {epochs: 1, learning_rate: 1.0e-3}\n",
    )


def test_a_section_given_whole_is_merged_into_the_files_section(sections_yaml):
    config = load_config(sections_yaml, ["training={epochs: 2}", "method={name: dora}"])
    assert (config.training.epochs, config.training.learning_rate) == (2.0, 1e-3)
    assert (config.method.name, config.method.r, config.method.alpha) == ("dora", 4, 32)


def test_a_method_name_given_whole_keeps_the_files_method_options(sections_yaml):
    config = load_config(sections_yaml, ["method=dora"])
    assert (config.method.name, config.method.r, config.method.alpha) == ("dora", 4, 32)
    config = load_config(sections_yaml, ["method=lora", "method.r=2"])
    assert (config.method.r, config.method.alpha) == (2, 32)


@pytest.mark.parametrize("item", ["method=full", "method={name: full}", "method.name=full"])
def test_a_method_switch_drops_only_the_options_the_new_method_lacks(tmp_path, item):
    """A full baseline from a lora file: r and alpha mean nothing to full (refused since the
    merge); an option the file's own method lacks (a typo) is still an error."""
    path = _yaml(tmp_path, "data: {path: d.csv}\nmethod: {name: lora, r: 4, alpha: 32}\n")
    assert load_config(path, [item]).method == FullMethod()
    ia3 = load_config(path, ["method=ia3"]).method
    assert ia3.name == "ia3" and ia3.target_modules == "auto"
    # LoRA's dropout (on its input) was an adapter's (in its bottleneck, default 0.0)
    path.write_text("data: {path: d.csv}\nmethod: {name: lora, dropout: 0.3}\n")
    assert load_config(path, ["method=adapter"]).method.dropout == 0.0
    assert load_config(path, ["method=adapter", "method.dropout=0.2"]).method.dropout == 0.2
    assert load_config(path, ["method=dora"]).method.dropout == 0.3  # the same dropout
    path.write_text("data: {path: d.csv}\nmethod: {name: lora, r: 4, rr: 8}\n")
    with pytest.raises(FintuneError, match=r"method\.rr: unknown key\. Allowed here: name$"):
        load_config(path, [item])
    with pytest.raises(FintuneError, match=r"method\.r: unknown key.*\[from --set\]"):
        load_config(path, ["method=full", "method.r=2"])
    for items in (["method=full", "method.r=2"], ["method.r=2", "method=full"]):
        with pytest.raises(FintuneError, match=r"method\.r: unknown key.*\[from --set\]"):
            load_config(path, items)  # in either order: a --set is never dropped silently


@pytest.mark.parametrize("value", ["[dora]", "{x: 1}"])
def test_a_method_name_that_is_a_list_or_mapping_is_a_config_error(lora_yaml, value):
    """It was a TypeError traceback (unhashable type) from the method-switch check."""
    with pytest.raises(FintuneError, match=r"method.* \[from --set\]"):
        load_config(lora_yaml, [f"method.name={value}"])


def test_a_whole_number_in_exponent_form_says_yaml_read_it_as_text(lora_yaml):
    """It said 'unable to parse string as an integer' of a number the user wrote."""
    with pytest.raises(FintuneError, match=r"a whole number; YAML read '2e4' .*: write 20000 "):
        load_config(lora_yaml, ["evaluation.bootstrap_samples=2e4"])
    with pytest.raises(FintuneError, match=r"'1.5e0' .*: it is 1.5, not whole"):
        load_config(lora_yaml, ["evaluation.bootstrap_samples=1.5e0"])


def test_a_value_that_is_a_mapping_is_replaced_not_merged(tmp_path):
    path = _yaml(
        tmp_path,
        "data:\n  files: {train: a.csv, validation: b.csv}\n"
        "tracking: {tags: {team: credit, desk: rates}}\n",
    )
    config = load_config(path, ["data.files={train: c.csv}", "tracking={tags: {team: fx}}"])
    assert config.data.files == {"train": "c.csv"}
    assert config.tracking.tags == {"team": "fx"}


def test_set_value_may_contain_equals_and_be_empty():
    raw: dict = {}
    apply_override(raw, "name=a=b")
    apply_override(raw, "data.path=")
    apply_override(raw, " model.name = tiny")
    assert raw == {"name": "a=b", "data": {"path": ""}, "model": {"name": "tiny"}}


@pytest.mark.parametrize(
    ("item", "value"),
    [
        ("ticket=#123", "#123"),
        ("dir= ~", "~"),
        # a '#' after a space began a comment: cut to 'tiny' and 'Sentiment of', silently
        ("name=tiny #2", "tiny #2"),
        ("init_text=Sentiment of #AAPL news:", "Sentiment of #AAPL news:"),
    ],
)
def test_set_value_that_yaml_reads_as_a_comment_or_null_is_kept_as_text(item, value):
    """YAML reads '#123' as a comment and '~' as null: `--set tracking.tags.ticket=#123`
    and `--set output.dir=~` (the README's home folder) failed with 'got None'."""
    raw: dict = {}
    apply_override(raw, item)
    assert raw == {item.partition("=")[0]: value}
    apply_override(raw, "dir=null")
    assert raw["dir"] is None


def test_set_unparsable_yaml_is_kept_as_text():
    raw: dict = {}
    apply_override(raw, "data.path=[runs")
    assert raw == {"data": {"path": "[runs"}}


@pytest.mark.parametrize("item", [".seed=3", "training.=3", "training..epochs=3"])
def test_set_with_an_empty_part_in_the_field_is_an_error_naming_it(item):
    with pytest.raises(FintuneError, match=r"--set .*: a field name is empty in "):
        apply_override({}, item)


@pytest.mark.parametrize("item", ["training.learning_rate", "=3", "  =x"])
def test_set_needs_field_and_value(item):
    with pytest.raises(FintuneError, match="expected FIELD=VALUE"):
        apply_override({}, item)


def test_set_unknown_field_is_an_error_with_a_suggestion(lora_yaml):
    with pytest.raises(FintuneError, match=r"method\.rr: unknown key; did you mean 'r'\?"):
        load_config(lora_yaml, ["method.rr=16"])


@pytest.mark.parametrize(
    ("item", "named"),
    [
        ("labels[0]=x", r"labels\[0\]: unknown key"),
        ("data.labels[0]=x", r"data\.labels\[0\]: unknown key"),
        ("method.r[1]=4", r"method\.r\[1\]: unknown key"),
        ("int=3", r"int: unknown key"),
    ],
)
def test_an_unknown_key_that_looks_like_a_pydantic_tag_is_named(lora_yaml, item, named):
    """Parts of an error's location holding '[' or named 'str' or 'int' were dropped as
    pydantic's union tags, user keys too: labels[0] crashed with an IndexError, and
    data.labels[0] was reported as 'data: unknown key'."""
    with pytest.raises(FintuneError, match=named):
        load_config(lora_yaml, [item])


def test_a_list_item_set_by_index_says_to_give_the_whole_list(lora_yaml):
    with pytest.raises(FintuneError, match=r"give the whole list: --set data\.labels=\[a, b\]"):
        load_config(lora_yaml, ["data.labels[0]=x"])


def test_overrides_do_not_touch_the_file(lora_yaml):
    before = lora_yaml.read_text()
    load_config(lora_yaml, ["method.r=4"])
    assert lora_yaml.read_text() == before


# --------------------------------------------------------------------------- defaults


def test_defaults_are_filled_in(tmp_path):
    config = load_config(_yaml(tmp_path, "data:\n  path: d.csv\n"))
    assert config.name == "experiment" and config.task == "classification" and config.seed == 42
    assert config.model.name == "all-minilm-l6-v2" and config.model.max_length == 128
    assert isinstance(config.method, FullMethod)
    assert config.training.learning_rate == 5e-5 and config.training.batch_size == 16
    assert config.training.eval_strategy == "epoch" and config.training.best_metric == "f1_macro"
    assert config.data.text_column == "text" and config.data.label_column == "label"
    assert config.data.split.test == 0.2 and config.data.split.validation == 0.1
    assert config.data.split.stratify and config.data.split.use_given
    assert config.data.duplicates == "keep" and config.data.conflicts == "keep"
    assert config.data.labels is None and config.data.split_names == {}
    assert config.evaluation.bootstrap_samples == 1000
    assert config.output.dir == "runs" and config.output.save_model


def test_a_prefix_projection_size_without_the_projection_is_an_error(lora_yaml):
    with pytest.raises(FintuneError, match="method: encoder_hidden_size is read only with"):
        load_config(lora_yaml, ["method={name: prefix, encoder_hidden_size: 64}"])
    config = load_config(
        lora_yaml, ["method={name: prefix, encoder_hidden_size: 64, prefix_projection: true}"]
    )
    assert config.method.encoder_hidden_size == 64


def test_method_shorthand_gets_method_defaults(lora_yaml):
    method = load_config(lora_yaml).method
    assert isinstance(method, LoraMethod)
    assert (method.r, method.alpha, method.target_modules, method.bias) == (8, 16, "auto", "none")


def test_model_shorthand_is_the_same_config_as_its_section(tmp_path):
    short = load_config(_yaml(tmp_path, "data:\n  path: d.csv\nmodel: tiny-bert\n"))
    whole = load_config(_yaml(tmp_path, "data:\n  path: d.csv\nmodel:\n  name: tiny-bert\n"))
    assert short.model.name == "tiny-bert"
    assert short.model_dump() == whole.model_dump()  # so the same hashes


def test_set_on_model_shorthand_and_set_model_keeps_the_files_options(tmp_path):
    path = _yaml(tmp_path, "data:\n  path: d.csv\nmodel: tiny-bert\n")
    config = load_config(path, ["model.max_length=64"])
    assert (config.model.name, config.model.max_length) == ("tiny-bert", 64)
    path = _yaml(tmp_path, "data:\n  path: d.csv\nmodel: {name: a, max_length: 64}\n")
    config = load_config(path, ["model=b"])  # as `method=dora` means `method.name=dora`
    assert (config.model.name, config.model.max_length) == ("b", 64)


def test_yaml_e_notation_without_a_dot_is_a_float(tmp_path):
    """PyYAML reads `5e-5` as a string; the schema must still give a float."""
    path = _yaml(tmp_path, "data:\n  path: d.csv\ntraining:\n  learning_rate: 5e-5\n")
    assert load_config(path).training.learning_rate == pytest.approx(5e-5)


def test_quickstart_example_loads():
    config = load_config(QUICKSTART)
    assert config.name == "quickstart"
    assert config.data.labels == ["negative", "neutral", "positive"]
    assert config.training.warmup_ratio == 0.1


# --------------------------------------------------------------------------- round trip


def _round_trip(config, tmp_path):
    path = tmp_path / "resolved.yaml"
    write_config(path, config)
    return path, load_config(path)


def _with_absolute_paths(config):
    """What a run records: the same config with its local paths absolute."""
    raw = config.model_dump(mode="json")
    if raw["data"]["path"]:
        raw["data"]["path"] = os.path.abspath(raw["data"]["path"])
    raw["output"]["dir"] = os.path.abspath(raw["output"]["dir"])
    return validate_config(raw)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["method=lora", "method.r=16", "method.target_modules=[query, value]"],
        ["method=prompt", "method.init_text=Classify the sentiment"],
        ["method=adapter", "data.cleaning.lowercase=true", "data.labels=[a, b]"],
        [
            "data.split_names={test: validation}",
            "training.eval_strategy=steps",
            "training.eval_steps=5",
        ],
    ],
)
def test_resolved_config_round_trips(lora_yaml, tmp_path, overrides):
    config = load_config(lora_yaml, overrides)
    path, again = _round_trip(config, tmp_path)
    assert again == _with_absolute_paths(config)
    assert again.data.path == os.path.abspath("d.csv")
    # every field is written out, defaults included
    resolved = yaml.safe_load(path.read_text())
    assert set(resolved) == {
        "name",
        "task",
        "seed",
        "model",
        "data",
        "method",
        "training",
        "evaluation",
        "output",
        "tracking",
    }
    assert resolved["training"]["learning_rate"] == 5e-5
    assert resolved["method"]["name"] == config.method.name


def test_quickstart_round_trips(tmp_path):
    config = load_config(QUICKSTART)
    assert _round_trip(config, tmp_path)[1] == _with_absolute_paths(config)


def test_validate_config_accepts_a_dumped_config():
    config = validate_config({"data": {"dataset": "banking77"}, "method": "dora"})
    assert validate_config(config.model_dump(mode="json")) == config


# --------------------------------------------------------------------------- known bugs


def test_numeric_subset_is_accepted(tmp_path):
    path = _yaml(tmp_path, "data:\n  dataset: financial_phrasebank\n  subset: 50\n")
    assert load_config(path).data.subset == "50"


@pytest.mark.parametrize("other", ["files: {train: a.csv}", "hub_id: org/other"])
def test_dataset_with_another_source_is_rejected(tmp_path, other):
    path = _yaml(tmp_path, f"data:\n  dataset: banking77\n  {other}\n")
    with pytest.raises(FintuneError, match="data"):
        load_config(path)


def test_the_resolved_config_reruns_from_any_folder(tmp_path, monkeypatch):
    (tmp_path / "project" / "data").mkdir(parents=True)
    (tmp_path / "project" / "data" / "d.csv").write_text("text,label\na,x\nb,y\n")
    monkeypatch.chdir(tmp_path / "project")
    config = validate_config({"data": {"files": {"train": "data/d.csv"}}, "output": {"dir": "out"}})
    write_config(tmp_path / "config.yaml", config)
    monkeypatch.chdir(tmp_path)
    again = load_config(tmp_path / "config.yaml")
    assert again.data.files == {"train": str(tmp_path / "project" / "data" / "d.csv")}
    assert again.output.dir == str(tmp_path / "project" / "out")
    assert again.model.name == "all-minilm-l6-v2"  # a packaged name stays a name


# --------------------------------------------------------------------------- YAML as meant


def test_a_repeated_key_is_an_error_naming_both_lines(tmp_path):
    path = _yaml(
        tmp_path, "data: {path: d.csv}\ntraining: {epochs: 1}\nseed: 3\ntraining: {batch_size: 8}\n"
    )
    with pytest.raises(FintuneError, match=r"key 'training' appears twice \(first on line 2\)"):
        load_config(path)


def test_text_fields_keep_what_yaml_1_1_would_turn_into_booleans_dates_or_octal(tmp_path):
    path = _yaml(
        tmp_path,
        "name: 2024\ndata: {dataset: financial_phrasebank, labels: [no, yes], subset: 075}\n"
        "tracking: {tags: {date: 2024-06-30, build: 7}}\n",
    )
    config = load_config(path, ["model.revision=1234567", "tracking.experiment=0"])
    assert config.name == "2024"
    assert config.data.labels == ["no", "yes"] and config.data.subset == "075"
    assert config.tracking.tags == {"date": "2024-06-30", "build": "7"}
    assert config.model.revision == "1234567" and config.tracking.experiment == "0"
    # booleans and numbers where the schema wants them still read as before
    config = load_config(path, ["output.save_model=false", "seed=0", "training.epochs=1_000"])
    assert config.output.save_model is False and config.seed == 0
    assert config.training.epochs == 1000


def test_digits_with_underscores_stay_as_written_in_text_fields(tmp_path):
    # YAML 1.2 has no `1_000` integers: a name or a label keeps its underscore
    path = _yaml(tmp_path, "name: 2024_06\ndata: {dataset: banking77, labels: [1_0, 2_0]}\n")
    config = load_config(path, ["data.subset=5_0"])
    assert config.name == "2024_06" and config.data.subset == "5_0"
    assert config.data.labels == ["1_0", "2_0"]
    # a number field still reads them as numbers
    config = load_config(path, ["evaluation.bootstrap_samples=10_000", "seed=1_2"])
    assert config.evaluation.bootstrap_samples == 10_000 and config.seed == 12


@pytest.mark.parametrize(
    "field", ["model.name", "output.dir", "tracking.uri", "data.encoding", "model.revision"]
)
def test_an_empty_text_is_refused_not_read_as_the_default_or_this_folder(lora_yaml, field):
    for value in ("", "'  '"):
        with pytest.raises(FintuneError, match=rf"{field}: expected text \(leave the field out"):
            load_config(lora_yaml, [f"{field}={value}"])


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("tracking.experiment=" + "e" * 501, "tracking.experiment: .*at most 500 characters"),
        ("tracking.tags.note=" + "n" * 8001, "tracking.tags: tag 'note' has 8,001 characters"),
    ],
)
def test_mlflow_length_limits_are_checked_before_training(lora_yaml, setting, message):
    """MLflow refuses an experiment name over 500 characters and a tag value over 8,000;
    both were accepted, and logging failed after training (for the name, with an unrelated
    'NoneType' message)."""
    with pytest.raises(FintuneError, match=message):
        load_config(lora_yaml, [setting])


def test_a_decimal_number_in_a_text_field_asks_for_quotes(lora_yaml):
    with pytest.raises(
        FintuneError,
        match=r"tracking.tags.v: expected text, but YAML read a "
        r"number \(1.1\); quote it .* \[from --set\]",
    ):
        load_config(lora_yaml, ["tracking.tags.v=1.10"])


@pytest.mark.parametrize("value", ["yes", "off", "n", "1", "'true'"])
def test_a_switch_takes_only_true_or_false(lora_yaml, value):
    with pytest.raises(FintuneError, match="output.save_model: expected true or false, got"):
        load_config(lora_yaml, [f"output.save_model={value}"])


def test_true_or_false_for_a_number_is_refused_not_read_as_1_or_0(lora_yaml):
    lora_yaml.write_text(lora_yaml.read_text() + "seed: true\n")
    with pytest.raises(FintuneError) as error:
        load_config(lora_yaml, ["training.learning_rate=false"])
    assert "seed: expected a number, got true\n" in str(error.value)
    assert "training.learning_rate: expected a number, got false [from --set]" in str(error.value)
    # a switch still takes them, and a number still takes a number
    config = load_config(lora_yaml, ["seed=1", "output.save_model=false"])
    assert config.seed == 1 and config.output.save_model is False


@pytest.mark.parametrize("value", [".inf", "-.inf", ".nan"])
def test_infinity_and_nan_are_refused(lora_yaml, value):
    with pytest.raises(FintuneError, match="training.epochs: Input should be a finite number"):
        load_config(lora_yaml, [f"training.epochs={value}"])


def test_a_section_with_every_key_commented_out_means_its_defaults(tmp_path):
    path = _yaml(tmp_path, "data: {path: d.csv}\ntraining:\n  # epochs: 5\nmethod:\n")
    assert load_config(path).training.epochs == 3
    assert load_config(path).method.name == "full"
    assert load_config(path, ["training.epochs=1"]).training.epochs == 1


def test_a_mapping_with_every_key_commented_out_means_its_default(tmp_path):
    path = _yaml(
        tmp_path,
        "data:\n  path: d.csv\n  split_names:\n    # test: validation\n"
        "tracking:\n  tags:\n    # team: credit\n",
    )
    config = load_config(path)
    assert config.data.split_names == {} and config.tracking.tags == {}


def test_errors_from_set_are_marked_and_the_files_are_not(lora_yaml):
    lora_yaml.write_text(lora_yaml.read_text() + "training: {epochs: -2}\n")
    with pytest.raises(FintuneError) as error:
        load_config(lora_yaml, ["training.batch_size=0"])
    assert "training.batch_size: Input should be greater than 0 (got 0) [from --set]" in str(
        error.value
    )
    assert "training.epochs: Input should be greater than 0 (got -2)\n" in str(error.value)


def test_home_is_expanded_in_data_and_output_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    config = validate_config({"data": {"files": {"train": "~/a.csv"}}, "output": {"dir": "~/runs"}})
    assert config.data.files["train"] == str(tmp_path / "a.csv")
    assert config.output.dir == str(tmp_path / "runs")
    assert validate_config({"data": {"path": "~/d.csv"}}).data.path == str(tmp_path / "d.csv")


def test_yaml_merge_keys_still_work_and_may_be_overridden(tmp_path):
    path = _yaml(
        tmp_path,
        "defaults: &d {epochs: 2, batch_size: 8}\n"
        "data: {path: d.csv}\ntraining:\n  <<: *d\n  epochs: 4\n",
    )
    raw = read_yaml(path)
    del raw["defaults"]
    config = validate_config(raw)
    assert config.training.epochs == 4 and config.training.batch_size == 8


def test_the_text_and_label_column_must_differ(tmp_path):
    data = {"path": str(tmp_path / "d.csv"), "text_column": "label"}
    with pytest.raises(
        FintuneError,
        match="data: text_column and label_column are both 'label'; the texts and the labels "
        "must be two different columns",
    ):
        validate_config({"name": "t", "data": data})


@pytest.mark.parametrize(
    "uri",
    [
        "postgresql://quant:s3cret@db.example:5432/mlflow",
        "postgresql://db.example:5432/mlflow?user=quant&password=s3cret",
        "https://mlflow.example/?token=s3cret",
    ],
)
def test_a_recorded_config_with_its_password_left_out_is_refused_naming_why(tmp_path, uri):
    """config.yaml writes `***` for a password or token in tracking.uri; rerunning it must
    not send `***` as the password (a token was written as it was)."""
    config = validate_config({"data": {"path": "d.csv"}, "tracking": {"uri": uri}})
    write_config(tmp_path / "config.yaml", config)
    assert "s3cret" not in (tmp_path / "config.yaml").read_text()
    with pytest.raises(FintuneError) as error:
        load_config(tmp_path / "config.yaml")
    what = "token=" if "token" in uri else "the password"
    assert f"tracking.uri: {what} is '***'" in str(error.value)
    assert "placeholder" in str(error.value) and "MLFLOW_TRACKING_URI" in str(error.value)
    real = load_config(tmp_path / "config.yaml", [f"tracking.uri={uri}"])
    assert real.tracking.uri == uri


@pytest.mark.parametrize("method", ["lora", "dora", "qlora", "ia3"])
def test_an_empty_list_of_target_modules_is_refused(method):
    """PEFT stops with a traceback (NoMatchingPeftModuleError) once the model has loaded."""
    data = {"path": "d.csv"}
    with pytest.raises(FintuneError, match=r"method\.target_modules: .*empty.* auto"):
        validate_config({"data": data, "method": {"name": method, "target_modules": []}})
    ia3 = {"name": "ia3", "target_modules": ["key"], "feedforward_modules": []}
    assert validate_config({"data": data, "method": ia3}).method.feedforward_modules == []


def test_a_config_from_a_pipe_is_read_not_called_missing(tmp_path):
    """`fintune run <(envsubst < exp.yaml)` hands over /dev/fd/N, a pipe: it was refused as
    'config file not found'."""
    import threading

    fifo = tmp_path / "exp.yaml"
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_text, args=("data: {path: d.csv}\nseed: 3\n",))
    writer.start()  # blocks until the config is opened for reading
    try:
        assert load_config(fifo).seed == 3
    finally:
        if writer.is_alive():  # never opened: let the writer go
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
        writer.join(5)


def test_an_unknown_section_made_by_set_is_marked_as_from_set(lora_yaml):
    """`--set tracking.tag.team=fx` makes the unknown key tracking.tag, which the file lacks."""
    with pytest.raises(FintuneError) as error:
        load_config(lora_yaml, ["tracking.tag.team=fx"])
    line = next(x for x in str(error.value).splitlines() if "tracking.tag:" in x)
    assert "did you mean 'tags'?" in line and line.endswith("[from --set]")


def test_a_key_written_twice_in_a_set_value_is_refused_naming_it(lora_yaml):
    """It was taken for text: 'training: expected a section of keys, got "{epochs: 1, ...}"',
    or for a text field, kept as that text."""
    with pytest.raises(FintuneError, match=r"--set 'training=\{epochs: 1, epochs: 2\}': key "):
        load_config(lora_yaml, ["training={epochs: 1, epochs: 2}"])
    with pytest.raises(FintuneError, match="key 'a' appears twice"):
        load_config(lora_yaml, ["tracking.experiment={a: 1, a: 2}"])


def test_an_integer_too_long_for_python_is_a_yaml_error_naming_its_line(tmp_path):
    """Python refuses to read an integer of over 4,300 digits: a seed pasted twice over
    ended `fintune validate` in a ValueError traceback."""
    path = tmp_path / "exp.yaml"
    path.write_text("name: x\nseed: " + "9" * 5000 + "\n")
    with pytest.raises(FintuneError) as error:
        read_yaml(path)
    assert f"{path}: not valid YAML" in str(error.value)
    assert "line 2" in str(error.value)


def test_num_threads_past_what_torch_takes_is_refused_naming_the_field(lora_yaml):
    # torch.set_num_threads overflowed on it after the model loaded
    with pytest.raises(FintuneError, match=r"training\.num_threads: .*less than or equal"):
        load_config(lora_yaml, ["training.num_threads=1000000000000"])
    assert load_config(lora_yaml, ["training.num_threads=4096"]).training.num_threads == 4096


LONG = "a" * 256


@pytest.mark.parametrize(
    ("setting", "field"),
    [
        ("output.dir=runs/a\0b", r"output\.dir"),
        ("data.path=a\0b.csv", r"data\.path"),
        ("data.files.train=a\0b.csv", r"data\.files: train"),
        ("model.name=a\0b", r"model\.name"),
        ("model.gguf_file=a\0b.gguf", r"model\.gguf_file"),
        (f"output.dir=runs/{LONG}", r"output\.dir"),
        (f"data.path={LONG}.csv", r"data\.path"),
        (f"data.files.train=x/{LONG}.csv", r"data\.files: train"),
        (f"model.name=./{LONG}", r"model\.name"),
        (f"model.gguf_file={LONG}.gguf", r"model\.gguf_file"),
    ],
)
def test_a_path_with_a_nul_byte_or_an_overlong_name_is_refused_naming_the_field(
    tmp_path, setting, field
):
    """A NUL byte passed validate and crashed later ('embedded null byte'); a file name over
    255 bytes ended validate in an OSError traceback ('File name too long')."""
    config = _yaml(tmp_path, "name: t\ndata:\n  path: d.csv\n")
    if setting.startswith("data.files"):
        config = _yaml(tmp_path, "name: t\ndata:\n  dataset: null\n")
    with pytest.raises(FintuneError, match=rf"{field}: .*(NUL byte|over the 255)"):
        load_config(config, [setting])


def test_yaml_nested_too_deep_is_an_error_naming_the_file_not_a_recursion_traceback(
    tmp_path, lora_yaml
):
    # 2,000 brackets deep ended validate and run in a RecursionError traceback
    path = tmp_path / "deep.yaml"
    path.write_text("name: x\ntags: " + "[" * 2000 + "]" * 2000 + "\n")
    with pytest.raises(FintuneError, match=rf"{path}: not valid YAML: nested too deep"):
        read_yaml(path)
    with pytest.raises(FintuneError, match=r"--set tracking.tags: the value is nested too deep"):
        load_config(lora_yaml, ["tracking.tags=" + "[" * 2000 + "]" * 2000])


@pytest.mark.parametrize("switch", ["model=b", "model.name=b", "model={name: b}"])
def test_set_switching_the_model_drops_the_files_revision_and_gguf_file(tmp_path, switch):
    """They name a commit and a file of the file's model: kept, the run loaded model b at
    a's commit (or a's file name inside b), or failed confusingly after validating."""
    path = _yaml(
        tmp_path,
        "data:\n  path: d.csv\nmodel: {name: a, revision: abc123, gguf_file: a.gguf, "
        "max_length: 64}\n",
    )
    config = load_config(path, [switch])
    assert (config.model.name, config.model.revision, config.model.gguf_file) == ("b", None, None)
    assert config.model.max_length == 64  # options of any model stay
    # given with the switch, in either order, they stay; the same name is no switch
    config = load_config(path, ["model.revision=v2", switch, "model.gguf_file=b.gguf"])
    assert (config.model.revision, config.model.gguf_file) == ("v2", "b.gguf")
    config = load_config(path, ["model.name=a"])
    assert (config.model.revision, config.model.gguf_file) == ("abc123", "a.gguf")


def test_a_cross_field_error_a_set_made_is_marked_as_from_set(tmp_path):
    """'training: eval_steps is read only with eval_strategy 'steps'' was left unmarked,
    as if the file were at fault; a study's or sweep's base dropped it as not its own."""
    path = _yaml(
        tmp_path, "data: {path: d.csv}\ntraining: {eval_strategy: steps, eval_steps: 50}\n"
    )
    with pytest.raises(FintuneError) as error:
        load_config(path, ["training.eval_strategy=epoch"])
    assert (
        "training: eval_steps is read only with eval_strategy 'steps'; set both [from --set]"
        in (str(error.value))
    )
    base = {"data": {"path": "d.csv"}, "training": {"eval_strategy": "steps", "eval_steps": 50}}
    with pytest.raises(FintuneError, match=r"--set: invalid config\n.*\[from --set\]"):
        override_base(base, ["training.eval_strategy=epoch"], {})


def test_a_files_own_cross_field_error_is_not_blamed_on_a_set_in_its_section(tmp_path):
    path = _yaml(
        tmp_path, "data: {path: d.csv}\ntraining: {eval_strategy: epoch, eval_steps: 50}\n"
    )
    with pytest.raises(FintuneError) as error:
        load_config(path, ["training.learning_rate=0.001"])
    assert "read only with eval_strategy 'steps'; set both\n" in str(error.value) + "\n"
    assert "[from --set]" not in str(error.value)
    base = {"data": {"path": "d.csv"}, "training": {"eval_strategy": "epoch", "eval_steps": 50}}
    assert override_base(base, ["training.learning_rate=0.001"], {})["training"]["eval_steps"] == 50


def test_a_top_level_cross_field_error_a_set_made_is_marked_as_from_set(tmp_path, monkeypatch):
    """A check across sections (on the whole config, '(top level)') that a --set made
    failed unmarked, as if the file were at fault, and a study's or sweep's base dropped
    it. No such check exists yet: one stands in (method full refuses model.dtype bfloat16)."""
    from pydantic import model_validator

    from fintune.config import load as config_load

    class Checked(config_load.ExperimentConfig):
        @model_validator(mode="after")
        def _full_in_float32(self):
            if self.method.name == "full" and self.model.dtype == "bfloat16":
                raise ValueError("method full trains in float32, not model.dtype bfloat16")
            return self

    monkeypatch.setattr(config_load, "ExperimentConfig", Checked)
    path = _yaml(tmp_path, "data: {path: d.csv}\nmodel: {dtype: bfloat16}\nmethod: lora\n")
    with pytest.raises(FintuneError) as error:
        load_config(path, ["method=full"])
    assert "(top level): method full trains in float32" in str(error.value)
    assert str(error.value).endswith("[from --set]")
    base = {"data": {"path": "d.csv"}, "model": {"dtype": "bfloat16"}, "method": "lora"}
    with pytest.raises(FintuneError, match=r"--set: invalid config\n.*\[from --set\]"):
        override_base(base, ["method=full"], {})
    # the file's own: unmarked, and not the base's --set's to report
    path = _yaml(tmp_path, "data: {path: d.csv}\nmodel: {dtype: bfloat16}\n")
    with pytest.raises(FintuneError) as error:
        load_config(path, ["training.epochs=2"])
    assert "(top level): method full" in str(error.value)
    assert "[from --set]" not in str(error.value)


def _laughs(levels: int) -> list[str]:
    """Nested aliases: level i is ten aliases of level i - 1 (10**levels values)."""
    return ["&a0 [x, x, x, x, x, x, x, x, x, x]"] + [
        f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels + 1)
    ]


def test_a_yaml_alias_bomb_is_refused_quickly_naming_the_file(tmp_path):
    """A 700-byte study file whose axis held nine levels of ten nested aliases (10**10
    values) ran for minutes (killed after 60 s, out of memory under a 4 GiB limit) while
    the study's cell labels were written out; it is refused as it is read."""
    import time

    path = tmp_path / "study.yaml"
    path.write_text(
        "name: s\nbase: {data: {path: d.csv}}\nbaseline: {seed: 1}\n"
        "axes:\n  training.learning_rate:\n" + "".join(f"  - {x}\n" for x in _laughs(9))
    )
    started = time.perf_counter()
    with pytest.raises(FintuneError, match=r"study.yaml: not valid YAML: .*aliases .* expand"):
        read_yaml(path)
    assert time.perf_counter() - started < 2
    with pytest.raises(FintuneError, match=r"--set tracking.tags: its aliases .* expand"):
        apply_override({}, f"tracking.tags={{a: [{', '.join(_laughs(9))}]}}")
    path.write_text("a: &a [1, *a]\n")
    with pytest.raises(FintuneError, match=r"not valid YAML: an alias refers to a node that"):
        read_yaml(path)


def test_a_files_ordinary_aliases_still_load(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(f"data: &d {{path: d.csv}}\nvalidation: *d\nnotes: [{', '.join(_laughs(3))}]\n")
    raw = read_yaml(path)
    assert raw["validation"] == raw["data"] == {"path": "d.csv"}
    assert len(raw["notes"][3][9][9]) == 10


@pytest.mark.parametrize(
    ("training", "says"),
    [
        (
            {"scheduler": "cosine_with_restarts"},
            "scheduler 'cosine_with_restarts' with cycles 1 is 'cosine'",
        ),
        ({"cycles": 3}, "cycles is read only with scheduler 'cosine_with_restarts'"),
        (  # transformers raised ValueError only once training started, after the model
            {"scheduler": "polynomial", "learning_rate": 1e-7},
            "learning_rate (1e-07) with scheduler 'polynomial', which decays to 1e-07",
        ),
    ],
)
def test_a_schedule_that_cannot_run_as_written_is_refused_before_training(training, says):
    with pytest.raises(FintuneError, match=re.escape(says)):
        validate_config({"name": "t", "data": {"path": "d.csv"}, "training": training})


def test_cycles_at_its_default_leaves_older_results_hashes_alone():
    from fintune.study.spec import hashed_fields

    config = validate_config({"name": "t", "data": {"path": "d.csv"}})
    assert "cycles" not in hashed_fields(config)["training"]
    restarts = {"scheduler": "cosine_with_restarts", "cycles": 2}
    config = validate_config({"name": "t", "data": {"path": "d.csv"}, "training": restarts})
    assert hashed_fields(config)["training"]["cycles"] == 2


def test_a_method_section_made_by_set_without_a_name_is_marked_from_set(tmp_path):
    """`--set method.r=4` on a file with no method section: 'method.name: missing' read as
    the file's mistake, though the file never names a method."""
    plain = _yaml(tmp_path, "name: t\ndata:\n  path: d.csv\n")
    with pytest.raises(FintuneError, match=r"method\.name: missing.*\[from --set\]"):
        load_config(plain, ["method.r=4"])
    nameless = _yaml(tmp_path, "name: t\ndata:\n  path: d.csv\nmethod:\n  r: 8\n")
    with pytest.raises(FintuneError) as error:  # the file's own mistake, not the --set's
        load_config(nameless, ["method.r=4"])
    assert "method.name: missing" in str(error.value) and "[from --set]" not in str(error.value)


@pytest.mark.parametrize(
    ("item", "line"),
    [
        ("method.name=null", "method: unknown method None"),
        ("tracking.tags.desk.team=fx", "tracking.tags.desk: a tag's value is text, not a mapping"),
    ],
)
def test_an_error_a_set_made_above_its_field_is_marked_from_set(lora_yaml, item, line):
    """The error sits above the field --set gave (`method`, `tracking.tags.desk`), and
    read as the file's."""
    with pytest.raises(FintuneError) as error:
        load_config(lora_yaml, [item])
    marked = next(x for x in str(error.value).splitlines() if line in x)
    assert marked.endswith("[from --set]")


def test_variables_and_home_are_expanded_in_model_name(tmp_path, monkeypatch):
    """`model.name: $MODELS/finbert` was taken for a hub id named `$MODELS/finbert` and
    failed after the hub's retries."""
    monkeypatch.setenv("MODELS", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    data = {"path": "d.csv"}
    for given in ("$MODELS/finbert", "${MODELS}/finbert", "~/finbert"):
        config = validate_config({"data": data, "model": {"name": given}})
        assert config.model.name == str(tmp_path / "finbert")
    assert validate_config({"data": data, "model": "ProsusAI/finbert"}).model.name == (
        "ProsusAI/finbert"
    )
    monkeypatch.delenv("MODELS")
    with pytest.raises(FintuneError, match=r"model\.name: .*\$MODELS is not set"):
        validate_config({"data": data, "model": {"name": "$MODELS/finbert"}})


@pytest.mark.parametrize("item", ["training=null", "model=null", "method=Null", "data.split=NULL"])
def test_set_of_a_section_to_null_is_refused_not_a_silent_reset(lora_yaml, item):
    """`--set training=null` put every training field back to its default without a word."""
    with pytest.raises(FintuneError, match=r"is a section, which null would put back"):
        load_config(lora_yaml, [item])


@pytest.mark.parametrize("field", ["batch_size", "eval_batch_size", "gradient_accumulation_steps"])
def test_a_batch_too_large_for_any_machine_is_refused_before_the_model_loads(field):
    """batch_size=10**20 passed validate and stopped the first step with islice's
    ValueError, after the model had loaded and the run folder was made."""
    with pytest.raises(FintuneError, match=rf"training\.{field}: .*less than or equal to"):
        validate_config({"data": {"path": "d.csv"}, "training": {field: 10**20}})


@pytest.mark.parametrize(
    ("key", "value", "nested"),
    [
        ("training.learning_rate", "1.0e-4", "`training:` with `learning_rate:`"),
        ("data.path", "x.csv", "`data:` with `path:`"),
    ],
)
def test_a_dotted_key_in_the_file_says_yaml_does_not_nest_it(tmp_path, key, value, nested):
    """`training.learning_rate: 1e-4` in a file was "unknown key; did you mean
    'training'?", and with --set of the same field it was even marked [from --set]."""
    path = _yaml(tmp_path, f"name: t\ndata:\n  path: d.csv\n{key}: {value}\n")
    for items in ([], [f"{key}={value}"]):
        with pytest.raises(FintuneError) as err:
            load_config(path, items)
        line = next(x for x in str(err.value).splitlines() if f"{key}:" in x)
        assert "a dot in a YAML key does not nest it" in line
        assert f"write {nested} indented under it" in line
        assert "did you mean" not in line
        assert "[from --set]" not in line


@pytest.mark.parametrize("method", ["lora", "dora", "qlora", "ia3"])
def test_module_names_yaml_reads_as_numbers_are_names(method):
    """`target_modules: [0, 1]` (the layers of an nn.Sequential) was refused as not text,
    while every other list of names (labels: [0, 1]) took them as text."""
    fields = {"target_modules": [0, 1]}
    if method == "ia3":
        fields["feedforward_modules"] = [1]
    config = validate_config({"data": {"path": "d.csv"}, "method": {"name": method, **fields}})
    assert config.method.target_modules == ["0", "1"]
    if method == "ia3":
        assert config.method.feedforward_modules == ["1"]


def test_a_dotted_tag_name_from_set_gets_the_way_to_give_it(lora_yaml):
    """--set splits its field on dots, so a tag named mlflow.note.content became a mapping
    and the error was pydantic's 'Input should be a valid string'."""
    with pytest.raises(FintuneError) as error:
        load_config(lora_yaml, ["tracking.tags.mlflow.note.content=x"])
    hint = "give the tags whole, --set 'tracking.tags={mlflow.note.content: x}'"
    assert "tracking.tags.mlflow: a tag's value is text, not a mapping; " in str(error.value)
    assert hint in str(error.value)
    given = load_config(lora_yaml, ["tracking.tags={mlflow.note.content: x}"])
    assert given.tracking.tags == {"mlflow.note.content": "x"}


@pytest.mark.parametrize(
    "raw, line",
    [
        ({"true": 3}, "true: a key must be text; YAML read this key as true or false: quote it"),
        (
            {"tracking": {"tags": {"false": "a"}}},
            "tracking.tags.false: a key must be text; YAML read this key as true or false",
        ),
    ],
)
def test_a_key_yaml_reads_as_a_switch_is_named_as_written(tmp_path, raw, line):
    """A top-level `true:` was named '1: Keys should be strings (got True)', and a tag named
    false got pydantic's 'Input should be a valid string'."""
    path = tmp_path / "x.yaml"
    text = yaml.safe_dump({"name": "x", "data": {"path": "d.csv"}, **raw})
    path.write_text(text.replace("'true'", "true").replace("'false'", "false"))
    with pytest.raises(FintuneError) as error:
        load_config(path)
    assert line in str(error.value)


def test_a_whole_number_tag_name_is_its_text():
    """`tags: {2024: q4}` was refused as not text, though a whole number is text elsewhere."""
    config = validate_config(
        {"name": "x", "data": {"path": "d.csv"}, "tracking": {"tags": {2024: "q4"}}}
    )
    assert config.tracking.tags == {"2024": "q4"}
