"""Bad inputs through the real CLI: each one exits with status 2, prints one message that
names the field, file or row at fault and what is allowed, shows no traceback, and fails
before any model loads (quickly, without touching the model code)."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from fintune.cli import app
from tests.conftest import terminated_at_first_save

LABELS = ["negative", "neutral", "positive"]
FAST_S = 1.0  # each bad input must be rejected well within this


@pytest.fixture(scope="module", autouse=True)
def _warm_imports():
    """Import the heavy modules once, so each case's timing is the check itself."""
    import transformers.models.bert.modeling_bert  # noqa: F401 - the default model's code

    import fintune.predict  # noqa: F401
    import fintune.recipes  # noqa: F401


@pytest.fixture
def no_model(monkeypatch):
    """Any attempt to load a model (or create a run directory) fails the test."""
    import fintune.recipes.classification as classification

    def forbidden(*args, **kwargs):
        raise AssertionError("a model was loaded (or a run started) for a bad input")

    monkeypatch.setattr(classification, "load_classifier", forbidden)
    monkeypatch.setattr(classification, "create_run_dir", forbidden)


# --------------------------------------------------------------------------- helpers


def _rows(n_per_label: int = 20) -> list[dict]:
    return [
        {"text": f"{label} sentence number {i}", "label": label}
        for i in range(n_per_label)
        for label in LABELS
    ]


def _csv(tmp: Path, rows: list[dict] | None = None, name: str = "data.csv") -> Path:
    path = tmp / name
    pd.DataFrame(rows if rows is not None else _rows()).to_csv(path, index=False)
    return path


def _config(tmp: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp / name
    path.write_text(text, encoding="utf-8")
    return path


def _base(tmp: Path, data: str | None = None, extra: str = "", labels: bool = True) -> Path:
    """A valid config (unless `extra`/`data` break it); `data` replaces the data source."""
    data = data if data is not None else f"  path: {_csv(tmp)}\n"
    if labels:
        data += f"  labels: [{', '.join(LABELS)}]\n"
    return _config(tmp, f"name: t\ndata:\n{data}output:\n  dir: {tmp / 'runs'}\n{extra}")


Case = Callable[[Path], tuple[list[str], list[str]]]
"""tmp_path -> (arguments after the command, substrings the message must contain)."""


def case_unknown_top_level_key(tmp):
    cfg = _base(tmp, extra="trainig:\n  epochs: 1\n")
    return [str(cfg)], ["trainig: unknown key", "did you mean 'training'?", "Allowed here:"]


def case_unknown_nested_key(tmp):
    cfg = _base(tmp, extra="training:\n  learning_rat: 0.001\n")
    return [str(cfg)], [
        "training.learning_rat: unknown key",
        "did you mean 'learning_rate'?",
        "warmup_ratio",
    ]


def case_wrong_type(tmp):
    cfg = _base(tmp, extra="training:\n  batch_size: sixteen\n")
    return [str(cfg)], ["training.batch_size", "valid integer", "'sixteen'"]


def case_unknown_method(tmp):
    cfg = _base(tmp, extra="method: lorra\n")
    return [str(cfg)], ["method: unknown method 'lorra'", "allowed: full, lora", "adapter"]


def case_unknown_method_in_mapping(tmp):
    cfg = _base(tmp, extra="method:\n  name: soft_prompt\n  num_virtual_tokens: 4\n")
    return [str(cfg)], ["unknown method 'soft_prompt'", "prompt", "prefix"]


def case_option_of_another_method(tmp):
    cfg = _base(tmp, extra="method:\n  name: prefix\n  r: 8\n")
    return [str(cfg)], ["method.r: unknown key", "num_virtual_tokens", "prefix_projection"]


def case_unknown_task(tmp):
    cfg = _base(tmp, extra="task: regression\n")
    return [str(cfg)], ["task: 'regression' is not allowed", "expected 'classification'"]


def case_unknown_choice(tmp):
    cfg = _base(tmp, extra="model:\n  dtype: fp8\n")
    return [str(cfg)], ["model.dtype: 'fp8' is not allowed", "'bfloat16'", "'float32'"]


def case_invalid_yaml(tmp):
    cfg = _config(tmp, "name: t\ndata:\n  path: [unclosed\n  labels: a\n")
    return [str(cfg)], [f"{cfg}: not valid YAML", "line"]


def case_yaml_not_a_mapping(tmp):
    cfg = _config(tmp, "- data\n- training\n")
    return [str(cfg)], [str(cfg), "expected a mapping of sections"]


def case_config_not_found(tmp):
    return [str(tmp / "nope.yaml")], ["config file not found", "nope.yaml"]


def case_empty_config(tmp):
    cfg = _config(tmp, "# nothing here yet\n\n")
    return [str(cfg)], [f"{cfg}: the file is empty"]


def case_missing_data_section(tmp):
    cfg = _config(tmp, "name: t\ntraining:\n  epochs: 1\n")
    return [str(cfg)], ["data: required field is missing"]


def case_no_data_source(tmp):
    cfg = _config(tmp, "data:\n  text_column: text\n")
    return [str(cfg)], ["data: name a data source", "dataset, path, hub_id or files"]


def case_set_without_equals(tmp):
    return [str(_base(tmp)), "--set", "training.learning_rate"], [
        "--set 'training.learning_rate'",
        "expected FIELD=VALUE",
    ]


def case_set_unknown_field(tmp):
    return [str(_base(tmp)), "--set", "training.learnin_rate=3e-4"], [
        "training.learnin_rate: unknown key",
        "did you mean 'learning_rate'?",
    ]


def case_set_below_a_value(tmp):
    return [str(_base(tmp)), "--set", "name.value=3"], ["'name' is a value, not a section"]


def case_missing_data_file(tmp):
    cfg = _base(tmp, data=f"  path: {tmp / 'missing.csv'}\n")
    return [str(cfg)], ["data.path", "not found", "missing.csv"]


def case_missing_relative_data_file(tmp):
    cfg = _base(tmp, data="  path: no/such/data.csv\n")
    return [str(cfg)], ["data.path", "no/such/data.csv (relative paths are read from the current"]


def case_tab_separated_file_named_csv(tmp):
    path = tmp / "news.csv"
    path.write_text("text\tlabel\nprofits rose\tpositive\n", encoding="utf-8")
    cfg = _base(tmp, data=f"  path: {path}\n")
    return [str(cfg)], ["news.csv, line 1: the header is one csv field that holds tabs", "tsv"]


def case_header_without_rows(tmp):
    path = tmp / "empty.csv"
    path.write_text("text,label\n", encoding="utf-8")
    return [str(_base(tmp, data=f"  path: {path}\n"))], [
        "the training data has no examples (source ",
        "empty.csv",
    ]


def case_empty_parquet_with_integer_labels(tmp):
    """An IndexError traceback: the typed label column held integers, and no row."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp / "empty.parquet"
    table = pa.table({"text": pa.array([], pa.string()), "label": pa.array([], pa.int64())})
    pq.write_table(table, path)
    return [str(_base(tmp, data=f"  path: {path}\n", labels=False))], [
        "the training data has no examples (source ",
        "empty.parquet",
    ]


def case_empty_jsonl_split_file(tmp):
    """Blamed on data.text_column ('column 'text' not in ...; columns are: .')."""
    train = tmp / "train.jsonl"
    train.write_text('{"text": "profits rose", "label": "positive"}\n', encoding="utf-8")
    (tmp / "validation.jsonl").write_text("\n", encoding="utf-8")
    data = f"  files:\n    train: {train}\n    validation: {tmp / 'validation.jsonl'}\n"
    return [str(_base(tmp, data=data))], ["validation.jsonl: the file is empty (no JSON lines)"]


def case_missing_split_file(tmp):
    data = f"  files:\n    train: {_csv(tmp)}\n    test: {tmp / 'test_missing.csv'}\n"
    return [str(_base(tmp, data=data))], ["data.files.test", "file not found", "test_missing.csv"]


def case_missing_file_with_brackets_in_its_path(tmp):
    """Square brackets in a path are text, not console markup that would drop them."""
    (tmp / "data[v2]").mkdir()
    cfg = _base(tmp, data=f"  path: '{tmp / 'data[v2]' / 'missing.csv'}'\n")
    return [str(cfg)], ["data.path", "data[v2]/missing.csv"]


def case_config_not_found_with_markup_in_its_path(tmp):
    return [str(tmp / "[/]" / "exp.yaml")], ["config file not found", "[/]/exp.yaml"]


def case_true_for_a_number(tmp):
    cfg = _base(tmp, extra="seed: true\n")
    return [str(cfg)], ["seed: expected a number, got true"]


def case_max_length_beyond_the_position_table(tmp):
    cfg = _base(tmp, extra="model:\n  max_length: 1024\n")
    return [str(cfg)], ["model.max_length: 1024 is more than all-minilm-l6-v2 takes (512"]


def case_misspelt_target_module(tmp):
    cfg = _base(tmp, extra="method:\n  name: lora\n  target_modules: [query, valeu]\n")
    return [str(cfg)], [
        "method.target_modules: 'valeu' is not a module of all-minilm-l6-v2 (did you mean 'value'?)"
    ]


def case_unknown_suffix(tmp):
    path = tmp / "data.xlsx"
    path.write_text("text,label\n", encoding="utf-8")
    cfg = _base(tmp, data=f"  path: {path}\n")
    return [str(cfg)], ["data.xlsx", "cannot tell the format", "set data.format", ".jsonl"]


def case_unknown_known_dataset(tmp):
    cfg = _base(tmp, data="  dataset: financial_phrase\n", labels=False)
    return [str(cfg)], [
        "data.dataset: unknown dataset 'financial_phrase' (did you mean 'financial_phrasebank'?)",
        "banking77, financial_phrasebank, twitter_financial_news_sentiment",
    ]


def case_unknown_subset(tmp):
    cfg = _base(tmp, data=f"  dataset: financial_phrasebank\n  subset: '60'\n  path: {tmp}\n")
    return [str(cfg)], ["data.subset", "no subset '60'", "50, 66, 75, all"]


def case_text_column_missing(tmp):
    data = f"  path: {_csv(tmp)}\n  text_column: sentence\n"
    return [str(_base(tmp, data=data))], [
        "data.text_column: column 'sentence' not in",
        "data.csv",
        "columns are: 'text', 'label'",
    ]


def case_label_column_missing(tmp):
    data = f"  path: {_csv(tmp)}\n  label_column: sentiment\n"
    return [str(_base(tmp, data=data))], [
        "data.label_column: column 'sentiment' not in",
        "columns are: 'text', 'label'",
    ]


def case_label_not_in_labels(tmp):
    rows = _rows()
    rows[2]["label"] = "positve"
    path = _csv(tmp, rows)
    return [str(_base(tmp, data=f"  path: {path}\n"))], [
        "row 3",
        "label 'positve' is not in the label map",
        "'negative', 'neutral', 'positive'",
        "add it to data.labels, or correct the row",
    ]


def case_label_id_out_of_range(tmp):
    rows = [{"text": f"sentence {i}", "label": i % 3} for i in range(30)]
    rows[4]["label"] = 3
    path = _csv(tmp, rows)
    return [str(_base(tmp, data=f"  path: {path}\n"))], [
        "row 5",
        "label id 3 is not in the label map",
        "integer labels are positions in data.labels, which names 3",
    ]


def case_empty_text(tmp):
    rows = _rows()
    rows[1]["text"] = "   "
    path = _csv(tmp, rows)
    return [str(_base(tmp, data=f"  path: {path}\n"))], ["row 2", "empty text"]


def case_empty_split_by_ratio(tmp):
    path = _csv(tmp, _rows(2))  # 6 examples: 6 * 0.05 rounds to 0
    cfg = _base(tmp, data=f"  path: {path}\n  split: {{test: 0.05, stratify: false}}\n")
    return [str(cfg)], ["data.split.test", "leaves 0 for test", "the split would be empty"]


def case_zero_ratio_without_given_split(tmp):
    cfg = _base(tmp, data=f"  path: {_csv(tmp)}\n  split: {{validation: 0}}\n")
    return [str(cfg)], ["data.split.validation: is 0", "no validation split"]


def case_empty_given_split(tmp):
    folder = tmp / "splits"
    folder.mkdir()
    _csv(folder, _rows(), "train.csv")
    _csv(folder, _rows(2), "test.csv")
    (folder / "validation.csv").write_text("text,label\n", encoding="utf-8")
    return [str(_base(tmp, data=f"  path: {folder}\n"))], [
        "the validation split is empty",
        "data.split_names.validation",
    ]


def case_too_small_to_stratify(tmp):
    rows = [*_rows(), {"text": "the only rare one", "label": "rare"}]
    path = _csv(tmp, rows)
    cfg = _base(tmp, data=f"  path: {path}\n  labels: [{', '.join(LABELS)}, rare]\n", labels=False)
    return [str(cfg)], [
        "data.split.test: cannot stratify",
        "label 'rare' has only 1 example",
        "data.split.stratify: false",
    ]


def case_split_names_unknown_split(tmp):
    cfg = _base(tmp, data=f"  path: {_csv(tmp)}\n  split_names: {{test: dev}}\n")
    return [str(cfg)], ["data.split_names.test", "no split 'dev'", "it has: train"]


def case_bad_csv_row(tmp):
    path = tmp / "data.csv"
    path.write_text("text,label\ngood,positive\nbad,negative,extra\n", encoding="utf-8")
    return [str(_base(tmp, data=f"  path: {path}\n"))], [
        "data.csv",
        "line 3: 3 fields, but the header has 2",
    ]


def case_bad_jsonl_line(tmp):
    path = tmp / "data.jsonl"
    lines = [json.dumps(r) for r in _rows(2)]
    lines[2] = '{"text": "unterminated, "label": "neutral"'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return [str(_base(tmp, data=f"  path: {path}\n"))], [
        "data.jsonl, line 3",
        "not valid JSON",
    ]


def case_jsonl_line_not_an_object(tmp):
    path = tmp / "data.jsonl"
    path.write_text('{"text": "a", "label": "neutral"}\n["b", "neutral"]\n', encoding="utf-8")
    return [str(_base(tmp, data=f"  path: {path}\n"))], [
        "data.jsonl, line 2",
        "expected a JSON object per line",
    ]


def case_fpb_line_without_at(tmp):
    path = tmp / "Sentences.txt"
    path.write_bytes(
        b"Sales rose .@positive\r\nNo label on this line\r\nProfit fell .@negative\r\n"
    )
    cfg = _base(tmp, data=f"  path: {path}\n  format: fpb\n")
    return [str(cfg)], [
        "Sentences.txt, line 2",
        "expected 'sentence@label'",
        "No label on this line",
    ]


def case_warmup_steps_and_ratio(tmp):
    cfg = _base(tmp, extra="training:\n  warmup_steps: 10\n  warmup_ratio: 0.1\n")
    return [str(cfg)], ["training: give warmup_steps or warmup_ratio, not both"]


def case_eval_steps_missing(tmp):
    cfg = _base(tmp, extra="training:\n  eval_strategy: steps\n")
    return [str(cfg)], ["training: eval_strategy 'steps' needs eval_steps"]


def case_negative_learning_rate(tmp):
    cfg = _base(tmp, extra="training:\n  learning_rate: -0.001\n")
    return [str(cfg)], ["training.learning_rate", "greater than 0", "-0.001"]


def case_negative_lora_rank(tmp):
    cfg = _base(tmp, extra="method:\n  name: lora\n  r: 0\n")
    return [str(cfg)], ["method.r", "greater than 0"]


def case_duplicate_labels(tmp):
    data = f"  path: {_csv(tmp)}\n  labels: [negative, positive, negative]\n"
    return [str(_base(tmp, data=data, labels=False))], [
        "data: labels must be distinct",
        "'negative', 'positive', 'negative'",
    ]


def case_bad_run_name(tmp):
    cfg = _config(tmp, f"name: my run\ndata:\n  path: {_csv(tmp)}\n")
    return [str(cfg)], ["name: letters, digits, '.', '_' and '-' only", "'my run'"]


def case_a_section_given_a_number(tmp):
    return [str(_base(tmp)), "--set", "training=1"], [
        "training: expected a section of keys (training: {key: value}), got 1"
    ]


def case_missing_label_in_a_row(tmp):
    rows = _rows()
    rows[7]["label"] = None
    return [str(_base(tmp, data=f"  path: {_csv(tmp, rows)}\n", labels=False))], [
        "row 8",
        "empty or missing label",
    ]


def case_unknown_encoding(tmp):
    data = f"  path: {_csv(tmp)}\n  encoding: utf-99\n"
    return [str(_base(tmp, data=data))], ["data.encoding", "unknown encoding 'utf-99'"]


def case_two_roles_one_source(tmp):
    data = f"  path: {_csv(tmp)}\n  split_names: {{train: train, test: train}}\n"
    return [str(_base(tmp, data=data))], ["data.split_names", "cannot play two roles"]


def case_unknown_model(tmp):
    cfg = _base(tmp, extra="model:\n  name: ./no/such/model\n")
    return [str(cfg)], ["model.name", "directory not found"]


def case_method_without_name(tmp):
    cfg = _base(tmp, extra="method:\n  r: 8\n")
    return [str(cfg)], ["method.name: missing", "lora"]


def case_method_not_a_mapping(tmp):
    return [str(_base(tmp)), "--set", "method=3"], ["method: expected a method name", "(got 3)"]


def case_output_dir_is_a_file(tmp):
    taken = tmp / "results"
    taken.write_text("not a folder")
    cfg = _base(tmp)
    cfg.write_text(cfg.read_text().replace(str(tmp / "runs"), str(taken / "runs")))
    return [str(cfg)], ["output.dir:", "results is a file, not a directory"]


def case_output_dir_is_a_broken_link(tmp):
    """A `runs` link to a scratch mount that is not there passed validate; run loaded the
    model, then failed in mkdir with a FileExistsError traceback."""
    (tmp / "runs").symlink_to(tmp / "scratch" / "runs")
    return [str(_base(tmp))], ["output.dir:", "runs is a broken link", "scratch/runs"]


def case_empty_label_list(tmp):
    data = f"  path: {_csv(tmp)}\n  labels: []\n"
    return [str(_base(tmp, data=data, labels=False))], ["data.labels", "at least 2"]


def case_subset_without_a_known_dataset(tmp):
    cfg = _base(tmp, data=f"  path: {_csv(tmp)}\n  subset: '75'\n")
    return [str(cfg)], ["data: subset is read only with dataset"]


def case_format_with_a_known_dataset(tmp):
    """Ignored without a word: the folder was read as the dataset's own files."""
    data = f"  dataset: financial_phrasebank\n  path: {tmp}\n  format: csv\n"
    return [str(_base(tmp, data=data, labels=False))], [
        "data: format is not read with dataset",
        "name them in path or files",
    ]


def case_columns_with_a_known_dataset(tmp):
    """The known dataset's loader names its columns text and label: the error listed those,
    not the file's own (banking77's train.csv holds text and category)."""
    data = f"  dataset: banking77\n  path: {tmp}\n  label_column: category\n"
    return [str(_base(tmp, data=data, labels=False))], [
        "data: label_column is not read with dataset",
        "own format and columns",
    ]


def case_encoding_with_a_hub_dataset(tmp):
    """Dropped without a word (format and quoting too): a latin-1 download then failed as
    'Offline?', and a wrong format passed."""
    data = f"  hub_id: {tmp}\n  encoding: latin-1\n"
    return [str(_base(tmp, data=data, labels=False))], [
        "data: encoding is not read with hub_id",
        "the datasets library reads a hub dataset's files itself",
    ]


def case_hub_config_without_hub_id(tmp):
    cfg = _base(tmp, data=f"  path: {_csv(tmp)}\n  hub_config: sentences_75agree\n")
    return [str(cfg)], ["data: hub_config is read only with hub_id"]


def case_hub_revision_without_hub_id(tmp):
    cfg = _base(tmp, data=f"  path: {_csv(tmp)}\n  hub_revision: main\n")
    return [str(cfg)], ["data: hub_revision is read only with hub_id"]


def case_gguf_file_with_a_packaged_model(tmp):
    cfg = _base(tmp, extra="model:\n  name: all-minilm-l6-v2\n  gguf_file: other.gguf\n")
    return [str(cfg)], ["model.gguf_file", "all-minilm-l6-v2", "packaged"]


def case_bootstrap_samples_beyond_memory(tmp):
    """A slip of a few zeros needed 50 GB on Banking77's 77 labels, and failed after the
    whole training, before the model was saved."""
    return [str(_base(tmp)), "--set", "evaluation.bootstrap_samples=10000000000"], [
        "evaluation.bootstrap_samples: 10,000,000,000 resamples of 3 labels need about",
        "GiB free",
    ]


def case_negative_seed(tmp):
    """NumPy and scikit-learn take seeds 0 to 2**32 - 1: -1 was a traceback from the split."""
    return [str(_base(tmp)), "--set", "seed=-1"], ["seed:", "greater than or equal to 0"]


def case_split_seed_beyond_2_to_the_32(tmp):
    cfg = _base(tmp, extra="")
    return [str(cfg), "--set", "data.split.seed=4294967296"], [
        "data.split.seed:",
        "less than or equal to 4294967295",
    ]


VALIDATE_CASES: dict[str, Case] = {
    name.removeprefix("case_"): fn for name, fn in globals().items() if name.startswith("case_")
}
RUN_CASES = [
    "unknown_top_level_key",
    "set_unknown_field",
    "missing_data_file",
    "label_not_in_labels",
    "too_small_to_stratify",
    "warmup_steps_and_ratio",
    "fpb_line_without_at",
    "unknown_model",
    "output_dir_is_a_file",
    "output_dir_is_a_broken_link",
    "bootstrap_samples_beyond_memory",
    "negative_seed",
]


def _check(result, expected: list[str], elapsed: float) -> None:
    output = result.output
    assert result.exit_code == 2, (result.exit_code, output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception  # not a crash
    assert "Traceback" not in output
    assert "error:" in result.stderr  # the message goes to stderr
    message = result.stderr.split("error:", 1)[1]
    for text in expected:
        assert text in message, f"{text!r} not in {message!r}"
    assert elapsed < FAST_S, f"took {elapsed:.2f}s"


def _invoke(args: list[str]):
    start = time.perf_counter()
    result = CliRunner().invoke(app, args)
    return result, time.perf_counter() - start


def test_at_least_eighteen_distinct_cases():
    assert len(VALIDATE_CASES) >= 18


def test_valid_config_passes(tmp_path):
    result, elapsed = _invoke(["validate", str(_base(tmp_path))])
    assert result.exit_code == 0, result.output
    assert "ok" in result.stdout and "3 labels" in result.stdout
    assert elapsed < FAST_S


def test_validate_warns_of_texts_cut_at_max_length_as_a_run_would(tmp_path):
    rows = [{**row, "text": row["text"] + " in the quarterly report"} for row in _rows()]
    config = _base(tmp_path, data=f"  path: {_csv(tmp_path, rows)}\n")
    result, _ = _invoke(["validate", str(config), "--set", "model.max_length=8"])
    assert result.exit_code == 0, result.output
    warning = " ".join(result.stderr.split())
    assert "texts are longer than model.max_length (8 tokens)" in warning
    assert "raise model.max_length" in warning
    result, _ = _invoke(["validate", str(config)])  # 32 tokens: nothing cut
    assert "longer than model.max_length" not in result.stderr


@pytest.mark.parametrize("name", sorted(VALIDATE_CASES))
def test_validate_rejects(name, tmp_path, no_model):
    args, expected = VALIDATE_CASES[name](tmp_path)
    result, elapsed = _invoke(["validate", *args])
    _check(result, expected, elapsed)


@pytest.mark.parametrize("name", RUN_CASES)
def test_run_rejects_before_loading_a_model(name, tmp_path, no_model):
    args, expected = VALIDATE_CASES[name](tmp_path)
    result, elapsed = _invoke(["run", *args])
    _check(result, expected, elapsed)
    assert not (tmp_path / "runs").exists()  # no run directory was created


def test_predict_on_a_directory_that_is_not_a_run(tmp_path):
    (tmp_path / "config.yaml").write_text("name: t\n", encoding="utf-8")
    result, elapsed = _invoke(["predict", str(tmp_path), "Sales rose."])
    _check(result, [str(tmp_path), "no model/ folder", "not a finished run"], elapsed)


def test_predict_on_a_missing_directory(tmp_path):
    result, elapsed = _invoke(["predict", str(tmp_path / "nope"), "Sales rose."])
    _check(result, ["run directory not found", "nope"], elapsed)


# --------------------------------------------------------------------------- known bugs


def test_label_column_missing_without_labels(tmp_path):
    data = f"  path: {_csv(tmp_path)}\n  label_column: sentiment\n"
    result, elapsed = _invoke(["validate", str(_base(tmp_path, data=data, labels=False))])
    _check(result, ["data.label_column: column 'sentiment' not in", "columns are"], elapsed)


def test_config_not_utf8(tmp_path):
    cfg = tmp_path / "config.yaml"
    text = f"# r\xe9sum\xe9 (saved as latin-1)\ndata:\n  path: {_csv(tmp_path)}\n"
    cfg.write_bytes(text.encode("latin-1"))
    result, elapsed = _invoke(["validate", str(cfg)])
    _check(result, [str(cfg), "UTF-8"], elapsed)


def test_config_that_cannot_be_read(tmp_path, monkeypatch):
    cfg = _base(tmp_path)

    def refuse(self, *args, **kwargs):  # as chmod 000 does for anyone but root
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_text", refuse)
    result, elapsed = _invoke(["validate", str(cfg)])
    _check(result, [f"{cfg}: cannot read it (Permission denied)"], elapsed)


# --------------------------------------------------------------------------- warnings


def _leaky_splits(tmp: Path) -> Path:
    """Given splits: two test texts repeat train texts, and 'mixed' occurs only in test."""
    folder = tmp / "splits"
    folder.mkdir()
    train = _rows(10)
    _csv(folder, train, "train.csv")
    _csv(folder, _rows(3), "validation.csv")
    test = [
        *train[:2],
        *({"text": f"test sentence {i}", "label": LABELS[i % 3]} for i in range(9)),
        {"text": "a mixed quarter", "label": "mixed"},
    ]
    _csv(folder, test, "test.csv")
    return _base(tmp, data=f"  path: {folder}\n", labels=False)


@pytest.mark.parametrize("command", ["validate", "run"])
def test_leakage_and_labels_without_training_examples_are_warned_about(command, tmp_path, no_model):
    result, _ = _invoke([command, str(_leaky_splits(tmp_path))])
    if command == "validate":
        assert result.exit_code == 0, result.output
    else:  # stopped by no_model: the warnings come before any model loads
        assert isinstance(result.exception, AssertionError)
    warnings = " ".join(result.stderr.split())
    assert (
        "warning: 2 texts are in both the train and the test split: test scores are inflated "
        "(leakage); data.duplicates: drop removes them" in warnings
    )
    assert "in both the train and the validation split" in warnings  # _rows(3) is in _rows(10)
    assert "warning: label 'mixed' has no training example (1 in test)" in warnings


def test_each_command_s_summary_in_help_is_one_line():
    """`fintune --help` prints a command's first paragraph with its line breaks kept: a
    summary wrapped in the source broke mid-sentence there."""
    import inspect

    for command in app.registered_commands:
        summary = inspect.getdoc(command.callback).split("\n\n")[0]
        assert "\n" not in summary, command.callback.__name__


@pytest.mark.parametrize("command", ["serve", "compare", "sweep"])
def test_a_command_s_help_prints_each_paragraph_unbroken(command):
    """A command's --help keeps the line breaks of every paragraph after the first, so a
    description wrapped in the source read 'has paired' / 'tests against the baseline'."""
    import inspect

    callback = next(c.callback for c in app.registered_commands if c.callback.__name__ == command)
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    for paragraph in inspect.getdoc(callback).split("\n\n")[1:]:
        assert " ".join(paragraph.split()) in lines, (paragraph, result.output)


def test_every_positional_argument_has_help_text():
    """`fintune run --help` listed `config <path> [required]` and no more: what file, which
    folder (a run's directory or its model/?) was left to guess."""
    command = typer.main.get_command(app)
    arguments = [
        (name, param)
        for name, sub in command.commands.items()
        for param in sub.params
        if param.param_type_name == "argument"
    ]
    assert len(arguments) == 8  # config twice, run_dir three times, texts, study, sweep
    for name, param in arguments:
        assert param.help, (name, param.name)


def test_sweep_trials_help_says_the_budget_is_a_total_not_more_trials():
    """--trials said only 'Override the trial budget.': `--trials 5` on a resumed sweep of
    3 trials runs 2 more, not 5, as the budget counts every worker's and resume's trials."""
    result = CliRunner().invoke(app, ["sweep", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "finished or pruned trials in all, over every worker and resume (not N more)" in text


@pytest.mark.parametrize(
    ("command", "says", "never"),
    [
        ("compare", "Give it again on each rerun.", "worker"),
        ("sweep", "Give it again on each rerun and each worker.", None),
    ],
)
def test_set_help_says_what_applies_to_each_command(command, says, never):
    """compare's --set help said "Give it again on each rerun (and sweep worker)", a text
    shared with sweep: compare has no workers."""
    result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.replace("│", " ").split())  # a wrapped cell's two lines
    assert says in text, text
    assert never is None or never not in text, text


@pytest.mark.parametrize("host", ["", "  "])
def test_serve_with_an_empty_host_is_refused_not_served_on_every_interface(tmp_path, host):
    """--host '' listened on every interface and printed 'http://:8000'."""
    result = CliRunner().invoke(app, ["serve", str(tmp_path), "--host", host])
    assert result.exit_code == 2, result.output
    assert "--host is empty" in result.output and "0.0.0.0" in result.output


def test_serve_on_an_address_this_machine_lacks_names_the_host_not_the_port(tmp_path):
    """192.0.2.1 (TEST-NET-1) is no address of this machine: it was blamed on --port, with
    'is another server there? Choose another --port'."""
    result = CliRunner().invoke(app, ["serve", str(tmp_path), "--host", "192.0.2.1"])
    assert result.exit_code == 2
    assert "--host 192.0.2.1: cannot listen on 192.0.2.1:8000" in result.output
    assert "--port" not in result.output and "another server" not in result.output


def test_serve_takes_an_ipv6_host_in_brackets_as_its_own_line_writes_it(tmp_path):
    """--host [::1] was refused as 'not an address of this machine'."""
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    result = CliRunner().invoke(app, ["serve", str(tmp_path), "--host", "[::1]", "--port", "0"])
    assert result.exit_code == 2 and "--host" not in result.output, result.output
    assert str(tmp_path) in result.output  # past the address: the folder is no run


def test_sweep_names_both_reports_as_compare_does(tmp_path, monkeypatch):
    """`fintune sweep` printed only report.md, though it writes report.html beside it."""
    import fintune.study.sweep as sweep

    monkeypatch.setattr(sweep, "run_sweep", lambda *args, **kwargs: tmp_path / "report.md")
    result = CliRunner().invoke(app, ["sweep", "s.yaml"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    assert f"{tmp_path / 'report.md'} and {tmp_path / 'report.html'}" in result.output


def test_a_terminated_run_removes_its_checkpoints(tmp_path, tiny_bert, sentences_csv):
    """A batch scheduler stops a job with SIGTERM, which by default ends Python at once:
    `fintune run` left checkpoints/ (a full copy of the model per kept checkpoint) in the
    run folder. It now stops as on Ctrl+C, removing them; exit status 128 + 15."""

    import yaml

    config = tmp_path / "exp.yaml"
    raw = {
        "name": "term",
        "model": {"name": str(tiny_bert), "max_length": 32},
        "data": {"path": str(sentences_csv), "labels": LABELS},
        "method": "full",
        "training": {"epochs": 2, "num_threads": 1},
        "output": {"dir": str(tmp_path / "runs")},
        "tracking": {"mlflow": False},
    }
    config.write_text(yaml.safe_dump(raw), encoding="utf-8")
    done = terminated_at_first_save("run", str(config))
    (run_dir,) = (tmp_path / "runs").iterdir()
    assert not (run_dir / "checkpoints").exists() and not (run_dir / "metrics.json").exists()
    assert done.returncode == 128 + 15
    # it said so: the folder looked like a run still in progress (found by a review)
    assert f"stopped: {run_dir} is incomplete (no metrics.json)" in done.stderr


def test_an_ignored_sigterm_stays_ignored_through_a_run():
    """A parent that ignores SIGTERM for its job (nohup-like wrappers) had it replaced by
    fintune's handler: the SIGTERM meant to pass the job by stopped the run."""
    import signal

    from fintune.cli import _terminate_as_exit

    previous = signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        with _terminate_as_exit():
            assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGTERM, previous)
