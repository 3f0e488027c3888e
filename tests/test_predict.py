"""Predictor precisions: bf16 and int8 work for every method, stay close to fp32 and
really change the computation; precisions a device can't serve well are refused."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

import fintune.predict as predict
from fintune.cli import app
from fintune.errors import FintuneError
from fintune.predict import Predictor, prepare_all
from fintune.recipes.classification import run
from tests.conftest import make_sentences, tiny_run_config

METHODS = ["full", "lora", "dora", "ia3", "prefix", "prompt", "adapter"]
NATIVE_BF16 = predict.cpu_has_native_bf16()


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_bert) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("precision")
    data = folder / "sentences.csv"
    make_sentences().to_csv(data, index=False)
    return {
        method: run(tiny_run_config(tiny_bert, data, folder / "runs", method={"name": method}))
        for method in [*METHODS, "qlora"]
    }


def _texts(run_dir: Path) -> list[str]:
    return list(pd.read_csv(run_dir / "predictions_test.csv")["text"])


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("precision", ["bf16", "int8"])
def test_precision_serves_every_method_close_to_fp32(runs, method, precision, monkeypatch):
    if precision == "bf16" and not NATIVE_BF16:
        monkeypatch.setattr(predict, "cpu_has_native_bf16", lambda: True)  # slow, still right
    texts = _texts(runs[method])
    exact = Predictor.from_run(runs[method], device="cpu")(texts)
    other = Predictor.from_run(runs[method], device="cpu", precision=precision)(texts)
    assert [r["label"] for r in other] == [r["label"] for r in exact]
    for got, want in zip(other, exact, strict=True):
        assert got["scores"] == pytest.approx(want["scores"], abs=5e-3)


def test_bf16_computes_the_matrix_products_in_bf16(runs, monkeypatch):
    monkeypatch.setattr(predict, "cpu_has_native_bf16", lambda: True)
    predictor = Predictor.from_run(runs["full"], device="cpu", precision="bf16")
    seen = []
    first_linear = next(m for m in predictor.model.modules() if isinstance(m, torch.nn.Linear))
    first_linear.register_forward_hook(lambda _m, _i, out: seen.append(out.dtype))
    result = predictor(["sales rose"])[0]
    assert seen == [torch.bfloat16]
    assert sum(result["scores"].values()) == pytest.approx(1, abs=1e-5)


@pytest.mark.parametrize("method", ["full", "lora", "ia3", "adapter"])
def test_int8_quantises_linear_layers(runs, method):
    model = Predictor.from_run(runs[method], device="cpu", precision="int8").model
    int8 = [m for m in model.modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)]
    # the tiny BERT has 6 linear layers per block, 2 blocks; adapters keep at most 3 float
    assert len(int8) >= 6


def test_int8_on_gpt2s_conv1d_layers_is_refused(tiny_gpt2):
    """GPT-2's layers are transformers' Conv1D, not nn.Linear: int8 quantised only the head
    while /model said int8."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_gpt2)
    with pytest.raises(FintuneError, match=r"int8: this model's layers are Conv1D .*fp32"):
        predict._quantize_int8(model, "full")


def test_a_predictor_takes_an_empty_list_and_refuses_a_bare_string(runs):
    """[] was an IndexError inside the tokenizer; "Sales rose." was read as 11 one-character
    texts ('text 6 of 11 is empty')."""
    predictor = Predictor.from_run(runs["full"], device="cpu")
    assert predictor([]) == []
    with pytest.raises(FintuneError, match=r"a list of texts; give one text as \[text\]"):
        predictor("Sales rose.")
    for size in (-1, 0, 2.0, True):  # -1 gave {} for every text, silently
        with pytest.raises(FintuneError, match="batch_size must be a whole number of at least"):
            predictor(["Sales rose."], batch_size=size)


def test_a_predictor_takes_any_sequence_of_texts_and_names_one_that_is_not_a_string(runs):
    """A pandas Series or an array was 'truth value ... is ambiguous'; a generator, read
    twice, reached the tokenizer empty (IndexError); None was an AttributeError."""
    predictor = Predictor.from_run(runs["full"], device="cpu")
    texts = ["sales rose", "profit fell"]
    expected = predictor(texts)
    assert predictor(pd.Series(texts)) == expected
    assert predictor(np.array(texts)) == expected
    assert predictor(t for t in texts) == expected
    with pytest.raises(FintuneError, match=r"text 2 of 2 is a NoneType \(None\), not a string"):
        predictor(["sales rose", None])


def test_int8_on_a_4bit_run_is_refused(runs):
    with pytest.raises(FintuneError, match="already 4-bit"):
        Predictor.from_run(runs["qlora"], device="cpu", precision="int8")


def test_bf16_on_a_cpu_without_native_bf16_is_refused_before_loading(runs, monkeypatch):
    monkeypatch.setattr(predict, "cpu_has_native_bf16", lambda: False)
    monkeypatch.setattr(predict, "load_saved_classifier", _forbidden)
    with pytest.raises(FintuneError, match="no native bfloat16"):
        Predictor.from_run(runs["full"], device="cpu", precision="bf16")


def test_unknown_precision_is_refused_before_loading(runs, monkeypatch):
    monkeypatch.setattr(predict, "load_saved_classifier", _forbidden)
    with pytest.raises(FintuneError, match="one of fp32, bf16, int8, not 'fp16'"):
        Predictor.from_run(runs["full"], device="cpu", precision="fp16")


def test_serve_command_rejects_a_bad_precision_and_micro_batch(runs, monkeypatch):
    monkeypatch.setattr(predict, "load_saved_classifier", _forbidden)
    result = CliRunner().invoke(app, ["serve", str(runs["full"]), "--precision", "fp16"])
    assert result.exit_code == 2
    assert "precision must be one of fp32, bf16, int8" in result.output
    for option, value in (
        ("--micro-batch", "0"),
        ("--max-batch", "0"),
        ("--max-chars", "-1"),
        ("--port", "70000"),
        ("--max-queue", "0"),
        ("--max-queue", "63"),
    ):
        result = CliRunner().invoke(app, ["serve", str(runs["full"]), option, value])
        assert result.exit_code == 2
        assert option in result.output


def test_serve_refuses_a_port_in_use_before_the_model_loads(runs, monkeypatch):
    monkeypatch.setattr(predict, "load_saved_classifier", _forbidden)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["serve", str(runs["full"]), "--port", str(port)])
    assert result.exit_code == 2
    assert f"--port {port}: cannot listen on 127.0.0.1:{port}" in result.output


def test_serve_refuses_an_empty_api_key_before_the_model_loads(runs, monkeypatch):
    """Set but empty, it served the API to anyone, without a word."""
    monkeypatch.setattr(predict, "load_saved_classifier", _forbidden)
    monkeypatch.setenv("FINTUNE_API_KEY", " ")
    result = CliRunner().invoke(app, ["serve", str(runs["full"]), "--port", "0"])
    assert result.exit_code == 2
    assert "FINTUNE_API_KEY is set but empty" in result.output


def test_predict_command_refuses_an_empty_text_before_the_model_loads(runs, monkeypatch):
    monkeypatch.setattr("fintune.predict.load_saved_classifier", _forbidden)
    result = CliRunner().invoke(app, ["predict", str(runs["full"]), "sales rose", "  "])
    assert result.exit_code == 2
    assert "text 2 of 2 is empty" in result.output


def _forbidden(*args, **kwargs):
    raise AssertionError("the model was loaded")


def test_texts_are_stripped_as_training_stripped_them(runs):
    """Decoders classify from the last token, so a trailing newline would change the input."""
    predictor = Predictor.from_run(runs["full"], device="cpu")
    seen, tokenizer = [], predictor.tokenizer

    class Recording:
        def __call__(self, texts, **kwargs):
            seen.extend(texts)
            return tokenizer(texts, **kwargs)

        def pad(self, *args, **kwargs):
            return tokenizer.pad(*args, **kwargs)

        padding_side = tokenizer.padding_side

    predictor.tokenizer = Recording()
    predictor([" profit rose\n", "bank fell \r\n"])
    assert seen == ["profit rose", "bank fell"]


def test_loading_an_adapter_run_does_not_warn_of_an_untrained_head(tiny_bert, tmp_path):
    """A base without a classification head (as MiniLM ships) loads, and the adapter then
    brings the run's trained head: transformers' "newly initialized" report would mislead."""
    from transformers import AutoModel, AutoTokenizer

    base = tmp_path / "headless"
    AutoModel.from_pretrained(tiny_bert).save_pretrained(base)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(base)
    data = tmp_path / "sentences.csv"
    make_sentences().to_csv(data, index=False)
    config = tiny_run_config(
        base, data, tmp_path / "runs", method={"name": "lora"}, training={"max_steps": 1}
    )
    run_dir = run(config)
    load = f"from fintune.predict import Predictor; Predictor.from_run({str(run_dir)!r})"
    loaded = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True)
    assert loaded.returncode == 0, loaded.stderr
    assert "LOAD REPORT" not in loaded.stderr and "MISSING" not in loaded.stderr
    # nor, as silencing that report made transformers check a tensor-parallel plan, a
    # 1,500-character list of every layer "not sharded" (on every predict and serve)
    assert "not sharded" not in loaded.stderr, loaded.stderr


@pytest.mark.parametrize(
    ("label", "text", "printed"),
    [
        ("up\thausse\nnow", "sales rose", "up\\thausse\\nnow\t0.5000\tsales rose\n"),
        (
            "down",
            "profit \x1b[31mfell\x07\x7f\x9b é",
            "down\t0.5000\tprofit \\x1b[31mfell\\x07\\x7f\\x9b é\n",
        ),
    ],
)
def test_predict_command_prints_each_text_as_one_line_of_three_fields(
    monkeypatch, label, text, printed
):
    """One line of three tab-separated fields per text, whatever a label holds, and the text
    as classified: an escape sequence was written raw, so a terminal ran it (colours, a
    cleared screen) and a pipe lost it."""
    monkeypatch.setattr(predict, "run_cleaner", lambda run_dir: None)
    answer = [{"label": label, "confidence": 0.5}]
    monkeypatch.setattr(predict.Predictor, "from_run", lambda run_dir, **_: lambda texts: answer)
    result = CliRunner().invoke(app, ["predict", "some-run", text])
    assert result.exit_code == 0, result.output
    assert result.stdout == printed


def test_predict_command_warns_of_a_text_cut_at_max_length(monkeypatch):
    """The output gave no sign that the model read only the beginning of a long text."""
    monkeypatch.setattr(predict, "run_cleaner", lambda run_dir: None)

    class Cutting:
        max_length = 32

        def __call__(self, texts):
            return [
                {"label": "up", "confidence": 0.5, "truncated": t.startswith("long")} for t in texts
            ]

    monkeypatch.setattr(predict.Predictor, "from_run", lambda run_dir, **_: Cutting())
    texts = ["short", "long one", "short again", "long two"]
    result = CliRunner().invoke(app, ["predict", "some-run", *texts])
    assert result.exit_code == 0, result.output
    assert result.stdout == "".join(f"up\t0.5000\t{t}\n" for t in texts)
    assert "texts 2 and 4" in result.stderr and "(32 tokens)" in result.stderr
    assert "beginning" in result.stderr
    # a file of long texts: a count and the first few, not a line of every number
    many = [f"long {i}" for i in range(500)]
    result = CliRunner().invoke(app, ["predict", "some-run", *many], env={"COLUMNS": "300"})
    assert "500 of 500 texts (the first: 1, 2, 3, 4, 5) are longer" in result.stderr
    assert len(result.stderr) < 300


def test_predict_command_takes_the_same_precisions_as_serve(runs, monkeypatch):
    """`fintune predict` had no --precision: the labels it printed could not be checked
    against what `serve --precision int8` would answer."""
    result = CliRunner().invoke(
        app, ["predict", str(runs["full"]), "--precision", "int8", "sales rose"]
    )
    assert result.exit_code == 0, result.output
    label, confidence, text = result.stdout.rstrip("\n").split("\t")
    want = Predictor.from_run(runs["full"], device="cpu", precision="int8")(["sales rose"])[0]
    assert (label, confidence, text) == (want["label"], f"{want['confidence']:.4f}", "sales rose")
    monkeypatch.setattr(predict, "load_saved_classifier", _forbidden)
    result = CliRunner().invoke(app, ["predict", str(runs["full"]), "--precision", "fp16", "x"])
    assert result.exit_code == 2
    assert "precision must be one of fp32, bf16, int8, not 'fp16'" in result.output


@pytest.mark.parametrize("command", ["predict", "serve"])
def test_device_chooses_where_the_model_runs(runs, monkeypatch, command):
    """On a GPU machine the model always went to the GPU: a server could not be kept off a
    GPU that training needs, and int8 (CPU only) was refused with no way out."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a machine with a GPU
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    loaded_on = []

    def load(folder, device):
        loaded_on.append(device)
        raise FintuneError("stop here")

    monkeypatch.setattr(predict, "load_saved_classifier", load)
    tail = ["sales rose"] if command == "predict" else ["--port", "0"]
    for options, device in (([], "cuda"), (["--device", "cpu", "--precision", "int8"], "cpu")):
        result = CliRunner().invoke(app, [command, str(runs["full"]), *options, *tail])
        assert "stop here" in result.output, result.output
        assert loaded_on.pop() == device
    result = CliRunner().invoke(app, [command, str(runs["full"]), "--device", "gpu", *tail])
    assert result.exit_code == 2
    assert "device must be one of auto, cpu, cuda or cuda:N, not 'gpu'" in result.output
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    result = CliRunner().invoke(app, [command, str(runs["full"]), "--device", "cuda:2", *tail])
    assert "device cuda:2: only 2 GPU(s) visible, counted from 0" in result.output
    assert not loaded_on
    result = CliRunner().invoke(app, [command, str(runs["full"]), "--device", "cuda:1", *tail])
    assert loaded_on == ["cuda:1"], result.output


def test_device_cuda_without_a_gpu_is_refused_before_loading(runs, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(predict, "load_saved_classifier", _forbidden)
    result = CliRunner().invoke(app, ["predict", str(runs["full"]), "--device", "cuda", "x"])
    assert result.exit_code == 2
    assert "device cuda: no CUDA GPU is visible; use --device cpu or auto" in result.output
    with pytest.raises(FintuneError, match="no CUDA GPU is visible"):
        Predictor.from_run(runs["full"], device="cuda")


def test_int8_loads_without_torchs_deprecation_warnings(runs):
    """torch 2.13 warns, on every int8 start, that its eager quantisation is deprecated
    (a UserWarning users saw, naming internal functions); the README says what it means."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        Predictor.from_run(runs["full"], device="cpu", precision="int8")(["sales rose"])
    messages = [str(w.message) for w in caught]
    assert not [m for m in messages if "deprecated" in m and "quantiz" in m], messages


DAMAGE = {
    "empty config": ("config.yaml", "", "config.yaml: not a run's config"),
    "config not YAML": ("config.yaml", "data: [1", "config.yaml: not valid YAML"),
    "config not UTF-8": ("config.yaml", lambda text: b"\xff" + text, "config.yaml: not valid UTF"),
    "unknown cleaning key": (
        "config.yaml",
        "data:\n  cleaning:\n    bogus: 1\n",
        "config.yaml: data.cleaning.bogus: Extra inputs are not permitted",
    ),
    "weights missing": (
        "model/model.safetensors",
        None,
        "model: the saved model is incomplete: model.safetensors is missing",
    ),
    "model info damaged": (
        "model/fintune_model.json",
        "{",
        "model/fintune_model.json: cannot read the saved model's description",
    ),
    "model info wrong": (
        "model/fintune_model.json",
        '{"method": "full"}',
        "model/fintune_model.json: not a saved model's description (needs base, gguf_file",
    ),
    "model info missing": (
        "model/fintune_model.json",
        None,
        "model: no saved model here (missing fintune_model.json)",
    ),
    "weights cut short": (  # safetensors' own error, neither an OSError nor a ValueError
        "model/model.safetensors",
        lambda weights: weights[:1000],
        "model: cannot load the saved model (is the run complete?): SafetensorError",
    ),
    # valid JSON of another shape: transformers' KeyError and AttributeError got through
    "tokenizer edited": (
        "model/tokenizer.json",
        "{}",
        "model: cannot load the saved model (is the run complete?): KeyError",
    ),
    "model config edited": (
        "model/config.json",
        "[]",
        "model: cannot load the saved model (is the run complete?): AttributeError",
    ),
}


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
def test_predict_on_a_damaged_run_names_the_file_without_a_traceback(runs, tmp_path, damage):
    """An empty or hand-edited config.yaml, or a model folder cut short (a run killed while
    saving, a partial copy), ended `fintune predict` in a Python traceback."""
    name, content, words = damage
    run_dir = tmp_path / "run"
    shutil.copytree(runs["full"], run_dir)
    if content is None:
        (run_dir / name).unlink()
    elif callable(content):
        (run_dir / name).write_bytes(content((run_dir / name).read_bytes()))
    else:
        (run_dir / name).write_text(content)
    result = CliRunner().invoke(app, ["predict", str(run_dir), "sales rose"])
    assert result.exit_code == 2, result.output
    assert f"{run_dir}/{words}" in result.output.replace("\n", ""), result.output
    assert "Traceback" not in result.output


def test_predict_refuses_a_run_stopped_before_its_evaluation_as_serve_does(
    runs, tmp_path, monkeypatch
):
    """A run stopped (SIGTERM) after saving its model but before writing metrics.json was
    refused by serve and taken by predict as a finished run."""
    monkeypatch.setattr(predict, "load_saved_classifier", _forbidden)
    run_dir = tmp_path / "run"
    shutil.copytree(runs["full"], run_dir)
    (run_dir / "metrics.json").unlink()
    result = CliRunner().invoke(app, ["predict", str(run_dir), "sales rose"])
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())
    assert "no metrics.json (not a finished run: a run writes it last" in output
    assert "before its evaluation?" not in output  # it may have stopped after it


def test_predict_on_a_file_says_it_is_a_file_not_that_it_is_missing(runs, monkeypatch):
    monkeypatch.setattr(predict, "load_saved_classifier", _forbidden)
    config = runs["full"] / "config.yaml"
    result = CliRunner().invoke(app, ["predict", str(config), "sales rose"])
    assert result.exit_code == 2
    assert f"{config} is a file; give a run directory" in result.output.replace("\n", "")
    result = CliRunner().invoke(app, ["predict", str(runs["full"] / "nowhere"), "sales rose"])
    assert "run directory not found" in result.output


def test_serve_on_port_0_says_which_port_it_listens_on(runs, monkeypatch):
    """--port 0 is allowed (any free port), but the start line said :0 and uvicorn, at
    log level warning, never says the port it got: the server could not be found."""
    from types import SimpleNamespace

    import fintune.serve.app as serve_app

    served = {}
    fake = SimpleNamespace(state=SimpleNamespace(device="cpu"))
    monkeypatch.setattr(serve_app, "app_for_run", lambda *args, **kwargs: fake)
    monkeypatch.setattr(
        serve_app,
        "serve_until_stopped",
        lambda _app, host, port, say: served.update(host=host, port=port),
    )
    result = CliRunner().invoke(app, ["serve", str(runs["full"]), "--port", "0"])
    assert result.exit_code == 0, result.output
    assert served["port"] > 0
    assert f"http://127.0.0.1:{served['port']}," in result.output


@pytest.mark.parametrize("key", ["sékret", "key\n", " key", "k\tey"])
def test_serve_refuses_an_api_key_no_client_can_send_before_the_model_loads(runs, monkeypatch, key):
    """A key with a non-ASCII character, a line break or an outer space could never match
    (curl sends it as UTF-8, a browser as Latin-1, HTTP strips outer spaces): every API call
    got 401 and the start line said a key was required, as if all were well."""
    monkeypatch.setattr(predict, "load_saved_classifier", _forbidden)
    monkeypatch.setenv("FINTUNE_API_KEY", key)
    result = CliRunner().invoke(app, ["serve", str(runs["full"]), "--port", "0"])
    assert result.exit_code == 2
    assert "FINTUNE_API_KEY: use printable ASCII" in result.output


def test_predict_in_a_model_folder_names_the_run_to_give(runs, monkeypatch):
    """From inside runs/<run>/model, `fintune predict . TEXT` said to give the run, "."."""
    monkeypatch.setattr(predict, "load_saved_classifier", _forbidden)
    monkeypatch.chdir(runs["full"] / "model")
    result = CliRunner().invoke(app, ["predict", ".", "sales rose"])
    assert result.exit_code == 2
    assert f"is a run's model folder; give the run, {runs['full']}" in result.output.replace(
        "\n", ""
    )


@pytest.mark.parametrize(
    ("host", "key", "loopback_only", "addresses_only"),
    [
        ("127.0.0.1", None, True, False),
        ("localhost", None, True, False),
        ("::1", None, True, False),
        ("127.0.0.1", "secret", False, False),
        ("0.0.0.0", None, False, True),
        ("0.0.0.0", "secret", False, False),
        ("gpu3.corp.example", None, False, True),
    ],
)
def test_serve_on_a_loopback_host_without_a_key_answers_only_loopback_names(
    runs, monkeypatch, host, key, loopback_only, addresses_only
):
    from types import SimpleNamespace

    import fintune.serve.app as serve_app

    given = {}
    fake = SimpleNamespace(state=SimpleNamespace(device="cpu"))
    monkeypatch.setattr(
        serve_app,
        "app_for_run",
        lambda _run, settings, **k: given.update(settings=settings) or fake,
    )
    monkeypatch.setattr(serve_app, "serve_until_stopped", lambda *args, **kwargs: None)
    if "." in host and not host[0].isdigit():  # a name this machine may not resolve
        import fintune.cli

        monkeypatch.setattr(fintune.cli, "_check_port", lambda _host, port: 8000)
    monkeypatch.setattr(socket, "getfqdn", lambda: "node7.corp.example")
    if key:
        monkeypatch.setenv("FINTUNE_API_KEY", key)
    else:
        monkeypatch.delenv("FINTUNE_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["serve", str(runs["full"]), "--host", host, "--port", "0"])
    assert result.exit_code == 0, result.output
    assert given["settings"].loopback_only is loopback_only
    assert given["settings"].addresses_only is addresses_only
    if addresses_only:  # the machine's full name, and the name it was told to listen on
        names = set(given["settings"].host_names)
        assert "node7.corp.example" in names and (host in names) is (host != "0.0.0.0")


def test_predict_command_prints_no_loading_weights_bar(runs):
    """transformers drew its "Loading weights: 100%|####| 41/41" bar on stderr at every
    predict, run and serve: noise in a log that reads like a problem."""
    result = CliRunner().invoke(app, ["predict", str(runs["full"]), "profit rose"])
    assert result.exit_code == 0, result.output
    assert "Loading weights" not in result.stderr, result.stderr
    assert result.stderr == ""


def test_a_run_config_whose_aliases_explode_is_refused_naming_the_file(tmp_path):
    """predict and serve read a run's config.yaml with yaml.safe_load, past the alias-bomb
    check every other YAML read has: a 444-byte config.yaml whose name held seven levels of
    ten nested aliases loaded in 3 ms, then serve's /model spent 15 s writing it out
    (580 MB) on each request, and nine levels ran out of memory. Deep nesting too."""
    levels = ["&a0 [x, x, x, x, x, x, x, x, x, x]"] + [
        f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)
    ]
    (tmp_path / "config.yaml").write_text(f"name: [{', '.join(levels)}]\ndata: {{}}\n")
    with pytest.raises(FintuneError, match=r"config.yaml: not valid YAML .*aliases .* expand"):
        predict.read_run_config(tmp_path)
    (tmp_path / "config.yaml").write_text("name: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(FintuneError, match=r"config.yaml: not valid YAML .*nested too deep"):
        predict.read_run_config(tmp_path)
    (tmp_path / "config.yaml").write_text("name: &n r\ndata: {labels: [no, yes], other: *n}\n")
    assert predict.read_run_config(tmp_path)["data"] == {"labels": ["no", "yes"], "other": "r"}


class _NanForLongTexts(torch.nn.Module):
    """The run's model, whose outputs for inputs of more than 5 tokens are NaN."""

    def __init__(self, model):
        super().__init__()
        self.inner = model

    def forward(self, **batch):
        out = self.inner(**batch)
        out.logits[batch["attention_mask"].sum(-1) > 5] = float("nan")
        return out


def test_texts_the_model_scores_nan_have_no_label_and_it_says_which(runs, monkeypatch):
    """NaN outputs came back as a label with confidence nan: `fintune predict` printed
    'up  nan', and serve answered 200 with the label and confidence null."""
    predictor = Predictor.from_run(runs["full"], device="cpu")
    texts = ["up", "profit rose sharply in the third quarter of the year", "down"]
    predictor.model = _NanForLongTexts(predictor.model)
    with pytest.raises(
        FintuneError, match=r"for 1 of 3 texts \(text 2\).*weights are finite"
    ) as error:
        predictor(texts)
    assert (error.value.rows, error.value.total) == ([1], 3)  # the server names texts[1]
    assert [r["label"] for r in predictor([texts[0], texts[2]])]  # the others still have one
    with torch.no_grad():
        next(predictor.model.parameters()).fill_(float("nan"))
    with pytest.raises(FintuneError, match=r"3 of 3 texts \(texts 1, 2 and 3\).*hold NaN"):
        predictor(texts)
    assert "7 of 9 texts (texts 1, 2, 3, 4, 5, ...)" in predict._broken_message([*range(7)], 9, "")
    monkeypatch.setattr(predict, "run_cleaner", lambda run_dir: None)
    monkeypatch.setattr(predict.Predictor, "from_run", lambda run_dir, **_: predictor)
    result = CliRunner().invoke(app, ["predict", "some-run", *texts])
    assert result.exit_code == 2 and result.stdout == ""
    assert "NaN or infinite for 3 of 3 texts" in result.stderr


def test_predict_command_names_a_text_that_is_not_utf8_before_the_model_loads(runs, monkeypatch):
    """A latin-1 byte in an argument (say from "$(cat notes.txt)") reached the tokenizer as
    a lone surrogate: a traceback and exit 1, and nothing printed for the other texts."""
    monkeypatch.setattr("fintune.predict.load_saved_classifier", _forbidden)
    texts = ["sales rose", "caf\udce9 profit fell"]  # how Python reads the byte 0xe9 of argv
    result = CliRunner().invoke(app, ["predict", str(runs["full"]), *texts])
    assert result.exit_code == 2
    assert "text 2 of 2 is not valid UTF-8: byte 0xe9 at character 4" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(
        FintuneError, match=r"text 1 of 1 .*: \\ud800 \(a lone surrogate, not a character\)"
    ):
        prepare_all(["\ud800"], None)


def test_serve_on_an_ipv6_host_prints_a_url_with_brackets(runs, monkeypatch):
    """--host ::1 printed http://::1:38061, which no browser or client takes."""
    from types import SimpleNamespace

    import fintune.serve.app as serve_app

    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback here")
    served = {}
    fake = SimpleNamespace(state=SimpleNamespace(device="cpu"))
    monkeypatch.setattr(serve_app, "app_for_run", lambda *args, **kwargs: fake)
    monkeypatch.setattr(
        serve_app,
        "serve_until_stopped",
        lambda _app, host, port, say: served.update(host=host, port=port),
    )
    result = CliRunner().invoke(app, ["serve", str(runs["full"]), "--host", "::1", "--port", "0"])
    assert result.exit_code == 0, result.output
    assert f"http://[::1]:{served['port']}," in result.output


def test_the_inputs_embeds_padding_warning_is_not_shown(monkeypatch):
    """predict and run on a prompt-tuned decoder printed transformers' "will not detect
    padding tokens in `inputs_embeds`", though left padding makes the pooled last position
    a real token (the predictions matched the recorded ones)."""
    import logging

    from fintune import cli

    logger = logging.getLogger("transformers.modeling_layers")
    monkeypatch.setattr(logger, "filters", list(logger.filters))  # the test's own, undone
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger.addHandler(handler)
    try:
        cli._quiet_libraries()
        cli._quiet_libraries()  # once, however often called
        logger.warning("LlamaForSequenceClassification will not detect padding tokens in "
                       "`inputs_embeds`. Results may be unexpected")  # fmt: skip
        logger.warning("something else")
    finally:
        logger.removeHandler(handler)
    assert seen == ["something else"]
    assert logger.filters.count(cli._not_the_inputs_embeds_warning) == 1
