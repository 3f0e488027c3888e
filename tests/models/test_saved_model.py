"""A run's saved model loads with plain transformers / PEFT (fintune blocked from import)
and predicts what the run recorded; `fintune predict` agrees too."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from fintune.cli import app
from fintune.errors import FintuneError
from fintune.predict import Predictor
from fintune.recipes.classification import run
from tests.conftest import make_sentences

PLAIN_LOADER = r"""
import json, sys
sys.modules["fintune"] = None  # prove that nothing of fintune is needed
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
folder, method, texts = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
one_by_one = len(sys.argv) > 4  # a decoder: one text at a time, nothing padded
tokenizer = AutoTokenizer.from_pretrained(folder)
info = json.load(open(folder + "/fintune_model.json"))
if method == "full":
    model = AutoModelForSequenceClassification.from_pretrained(folder)
elif method == "adapter":  # the folder's own loader, fintune_bottleneck.py
    model = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
else:
    from peft import PeftConfig, PeftModel
    adapter = PeftConfig.from_pretrained(folder)
    kwargs = {} if info["dtype"] == "auto" else {"dtype": getattr(torch, info["dtype"])}
    if info["gguf_file"]:
        kwargs["gguf_file"] = info["gguf_file"]
    if info["method"] == "qlora":
        from transformers import BitsAndBytesConfig
        settings = info["method_settings"]
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type=settings["quant_type"],
            bnb_4bit_use_double_quant=settings["double_quant"],
            bnb_4bit_compute_dtype=torch.float32,  # compute_dtype auto, on a CPU
            llm_int8_skip_modules=[r"(?:.*\.)?" + name for name in (
                "classifier", "score", "pooler", "pre_classifier", "classification_head",
                "sequence_summary", "logits_proj")] + ["head"])
    labels = info["labels"]
    base = AutoModelForSequenceClassification.from_pretrained(
        adapter.base_model_name_or_path, revision=adapter.revision,
        num_labels=len(labels), id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)}, ignore_mismatched_sizes=True,
        **kwargs)
    if info["method"] == "qlora":
        from peft import prepare_model_for_kbit_training
        for module in base.modules():
            if hasattr(module, "support_avx512bf16_for_cpu"):
                module.support_avx512bf16_for_cpu = False
        base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=False)
    base.config.pad_token_id = tokenizer.pad_token_id
    model = PeftModel.from_pretrained(base, folder)
model.eval()
half = next(model.parameters()).dtype  # bfloat16 or float16 weights: autocast in it
half = half if half in (torch.bfloat16, torch.float16) else None
with torch.no_grad(), torch.autocast("cpu", half or torch.bfloat16, enabled=half is not None):
    batches = [[t] for t in texts] if one_by_one else [texts]
    probs = []
    for batch in batches:
        # no max_length: the saved tokenizer cuts where the run did
        enc = tokenizer(batch, padding=True, truncation=True, return_tensors="pt")
        probs.extend(torch.softmax(model(**enc).logits.float(), -1))
labels = [model.config.id2label[i] for i in range(len(info["labels"]))]  # as the README reads
print(json.dumps([[labels[int(p.argmax())], float(p.max())] for p in probs]))
"""


# One process imports torch, transformers and peft (never fintune) once, then forks a child
# per plain load, which runs PLAIN_LOADER as a fresh process would: those imports took 7 of
# each load's 8 seconds. A child shares nothing of another's: each is a fork of a process
# that has loaded no model. Request: one JSON line [argv, stdout file, stderr file]; reply:
# the child's exit code.
FORK_SERVER = r"""
import json, os, sys, traceback
sys.modules["fintune"] = None
import torch, transformers, peft
from transformers import AutoModelForSequenceClassification, AutoTokenizer
loader = compile(sys.argv[1], "<plain loader>", "exec")
for line in sys.stdin:
    argv, out, err = json.loads(line)
    pid = os.fork()
    if pid == 0:
        for fd, path in ((1, out), (2, err)):
            os.dup2(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), fd)
        sys.argv = ["-c", *argv]
        code = 0
        try:
            exec(loader, {"__name__": "__main__"})
        except BaseException:
            traceback.print_exc()
            code = 1
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""
_SERVER: list[subprocess.Popen] = []


@pytest.fixture(scope="module", autouse=True)
def _stop_the_fork_server():
    yield
    for server in _SERVER:
        server.stdin.close()
        server.wait(timeout=60)
    _SERVER.clear()


def _plain_predictions(
    folder, method: str, texts: list[str], one_by_one: bool = False, env: dict | None = None
) -> list:
    """[label, confidence] per text from PLAIN_LOADER, in a process without fintune;
    `env`: variables to set there (a hub cache, which huggingface_hub reads as it is
    imported: such a load runs in a process of its own)."""
    argv = [str(folder), method, json.dumps(texts)] + (["1"] if one_by_one else [])
    if env:
        out = subprocess.run(
            [sys.executable, "-c", PLAIN_LOADER, *argv],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, **env},
        ).stdout
    else:
        out = _forked(argv)
    return json.loads(out.strip().splitlines()[-1])


def _forked(argv: list[str]) -> str:
    """PLAIN_LOADER's stdout, run in a child of FORK_SERVER."""
    if not _SERVER:
        command = [sys.executable, "-c", FORK_SERVER, PLAIN_LOADER]
        pipes = {"stdin": subprocess.PIPE, "stdout": subprocess.PIPE, "text": True}
        _SERVER.append(subprocess.Popen(command, stderr=subprocess.DEVNULL, **pipes))
    server = _SERVER[0]
    with tempfile.TemporaryDirectory() as folder:
        out, err = Path(folder, "stdout"), Path(folder, "stderr")
        server.stdin.write(json.dumps([argv, str(out), str(err)]) + "\n")
        server.stdin.flush()
        reply = server.stdout.readline()
        if not reply:
            raise AssertionError(f"the fork server died (exit code {server.poll()})")
        if int(reply) != 0:
            raise AssertionError(f"the plain load failed:\n{err.read_text()}")
        return out.read_text()


@pytest.mark.parametrize("method", ["full", "lora", "dora", "ia3", "prefix", "adapter"])
def test_saved_model_loads_with_plain_libraries_and_predicts_the_same(make_config, method):
    run_dir = run(make_config(method={"name": method}, training={"epochs": 3}))
    recorded = pd.read_csv(run_dir / "predictions_test.csv").head(8)
    plain = _plain_predictions(run_dir / "model", method, list(recorded["text"]))
    assert [label for label, _ in plain] == list(recorded["predicted"])
    assert [c for _, c in plain] == pytest.approx(list(recorded["confidence"]), abs=1e-4)


@pytest.mark.parametrize(
    ("method", "dtype"),
    [("lora", "bfloat16"), ("qlora", "bfloat16"), ("adapter", "bfloat16")],
)
def test_a_half_precision_run_loads_with_plain_libraries_as_the_readme_says(
    make_config, method, dtype
):
    """The README loaded an adapter run's base without its dtype (float32, its confidences
    then 8e-5 off) and a QLoRA base without prepare_model_for_kbit_training (1e-3 off)."""
    if method == "qlora" and importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("no bitsandbytes")
    run_dir = run(make_config(method={"name": method}, model={"dtype": dtype}))
    recorded = pd.read_csv(run_dir / "predictions_test.csv").head(8)
    plain = _plain_predictions(run_dir / "model", method, list(recorded["text"]))
    assert [c for _, c in plain] == pytest.approx(list(recorded["confidence"]), abs=1e-5)


def test_a_float16_run_loads_with_plain_libraries_as_the_readme_says(make_config, tiny_llama):
    """A float16 run evaluated without autocast, its trained head kept in float32, which a
    plain load in float16 rounds: confidences 1.1e-4 off."""
    config = make_config(
        model={"name": str(tiny_llama), "dtype": "float16"},
        method={"name": "lora"},
        training={"epochs": 4, "learning_rate": 5e-3},
    )
    run_dir = run(config)
    recorded = pd.read_csv(run_dir / "predictions_test.csv").head(8)
    plain = _plain_predictions(run_dir / "model", "lora", list(recorded["text"]), one_by_one=True)
    assert [c for _, c in plain] == pytest.approx(list(recorded["confidence"]), abs=1e-5)


@pytest.mark.parametrize("method", ["adapter", "prefix"])
def test_predictor_reproduces_recorded_predictions(make_config, method):
    run_dir = run(make_config(method={"name": method}, training={"epochs": 2}))
    recorded = pd.read_csv(run_dir / "predictions_test.csv").head(8)
    results = Predictor.from_run(run_dir, device="cpu")(list(recorded["text"]))
    assert [r["label"] for r in results] == list(recorded["predicted"])
    assert [r["confidence"] for r in results] == pytest.approx(
        list(recorded["confidence"]), abs=1e-4
    )
    assert all(abs(sum(r["scores"].values()) - 1) < 1e-5 for r in results)


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="no bitsandbytes")
def test_a_qlora_runs_frozen_base_stays_as_loaded_and_its_model_predicts_the_same(
    make_config, tiny_llama
):
    """On a CPU with AVX512-BF16, bitsandbytes repacked 4-bit layers with bfloat16 scales
    whenever they ran in eval mode, and re-quantized them on the way back: the frozen base
    changed at every validation, and the saved model predicted other confidences."""
    config = make_config(model={"name": str(tiny_llama)}, method={"name": "qlora"})
    run_dir = run(
        config.model_copy(update={"training": config.training.model_copy(update={"epochs": 3})})
    )
    recorded = pd.read_csv(run_dir / "predictions_test.csv")
    results = Predictor.from_run(run_dir, device="cpu")(list(recorded["text"]))
    assert [r["label"] for r in results] == list(recorded["predicted"])
    assert [r["confidence"] for r in results] == pytest.approx(
        list(recorded["confidence"]), abs=1e-6
    )


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="no bitsandbytes")
def test_a_qlora_run_in_bfloat16_predicts_what_it_recorded(make_config):
    """Training casts a 4-bit base's other weights (norms, embeddings, head) to float32
    (prepare_model_for_kbit_training), so evaluation ran without autocast; a saved run
    rebuilt them in bfloat16 and predicted confidences up to 6.5e-4 away."""
    config = make_config(
        method={"name": "qlora"}, model={"dtype": "bfloat16"}, training={"epochs": 2}
    )
    run_dir = run(config)
    recorded = pd.read_csv(run_dir / "predictions_test.csv")
    results = Predictor.from_run(run_dir, device="cpu")(list(recorded["text"]))
    assert [r["confidence"] for r in results] == pytest.approx(
        list(recorded["confidence"]), abs=1e-5
    )


def test_an_adapter_run_rebuilds_its_base_in_the_runs_dtype(make_config):
    config = make_config(
        method={"name": "lora"}, model={"dtype": "bfloat16"}, training={"epochs": 3}
    )
    run_dir = run(config)
    info = json.loads((run_dir / "model" / "fintune_model.json").read_text())
    assert (info["dtype"], info["revision"], info["trust_remote_code"]) == ("bfloat16", None, False)
    predictor = Predictor.from_run(run_dir, device="cpu")
    assert next(predictor.model.parameters()).dtype == torch.bfloat16
    recorded = pd.read_csv(run_dir / "predictions_test.csv")
    results = predictor(list(recorded["text"]))
    # computed as evaluation did: matrix products in bf16, norms and softmax in fp32
    assert [r["confidence"] for r in results] == pytest.approx(
        list(recorded["confidence"]), abs=1e-5
    )
    int8 = Predictor.from_run(run_dir, device="cpu", precision="int8")(list(recorded["text"]))
    assert [r["label"] for r in int8] and all(
        abs(sum(r["scores"].values()) - 1) < 1e-5 for r in int8
    )


def test_predict_command_prints_label_and_confidence(make_config):
    run_dir = run(make_config(training={"epochs": 2}))
    recorded = pd.read_csv(run_dir / "predictions_test.csv").head(1)
    result = CliRunner().invoke(app, ["predict", str(run_dir), recorded["text"][0]])
    assert result.exit_code == 0, result.output
    label, confidence, _ = result.stdout.strip().splitlines()[-1].split("\t")
    assert label == recorded["predicted"][0]
    assert float(confidence) == pytest.approx(recorded["confidence"][0], abs=1e-4)
    texts = ["sales rose\nin Q3", "profit\tfell\\", "up\u2028again\x0c"]
    odd = CliRunner().invoke(app, ["predict", str(run_dir), *texts])
    lines = odd.stdout.strip().splitlines()[-3:]
    assert [line.split("\t")[2] for line in lines] == [
        "sales rose\\nin Q3",
        "profit\\tfell\\\\",
        "up\\u2028again\\x0c",
    ]


LONG = "the group reported that earnings climbed and margin improved in the quarter this year"


@pytest.mark.parametrize(
    ("backbone", "method"),
    [("tiny_gpt2", "full"), ("tiny_llama", "prefix"), ("tiny_llama", "prompt")],
)
def test_a_decoders_prediction_does_not_depend_on_the_batch(make_config, request, backbone, method):
    """Left padding shifts a text's positions (GPT-2's learned ones; the distance to prefix
    and prompt tokens): decoders are batched by equal length, never padded."""
    model = request.getfixturevalue(backbone)
    config = make_config(model={"name": str(model)}, method={"name": method})
    run_dir = run(config)
    predictor = Predictor.from_run(run_dir, device="cpu")
    texts = ["profit fell", "sales rose in the quarter", LONG]
    alone = [predictor([t])[0]["scores"] for t in texts]
    together = [r["scores"] for r in predictor(texts)]
    reversed_ = [r["scores"] for r in predictor(texts[::-1])][::-1]
    for a, b, c in zip(alone, together, reversed_, strict=True):
        assert list(b.values()) == pytest.approx(list(a.values()), abs=1e-6)
        assert list(c.values()) == pytest.approx(list(a.values()), abs=1e-6)
    recorded = pd.read_csv(run_dir / "predictions_test.csv")
    results = predictor(list(recorded["text"]))
    assert [r["confidence"] for r in results] == pytest.approx(
        list(recorded["confidence"]), abs=1e-5
    )


@pytest.mark.parametrize(
    ("backbone", "method"),
    [("tiny_gpt2", "full"), ("tiny_llama", "prompt"), ("tiny_gpt2", "adapter")],
)
def test_a_decoder_run_loads_with_plain_libraries_and_predicts_the_same(
    make_config, request, backbone, method
):
    model = request.getfixturevalue(backbone)
    run_dir = run(make_config(model={"name": str(model)}, method={"name": method}))
    folder = run_dir / "model"
    saved = json.loads((folder / "tokenizer_config.json").read_text())
    assert saved["padding_side"] == "left"  # a plain load pads as the run did
    recorded = pd.read_csv(run_dir / "predictions_test.csv").head(8)
    plain = _plain_predictions(folder, method, list(recorded["text"]), one_by_one=True)
    assert [label for label, _ in plain] == list(recorded["predicted"])
    assert [c for _, c in plain] == pytest.approx(list(recorded["confidence"]), abs=1e-5)


@pytest.mark.parametrize("method", ["full", "lora", "prompt", "adapter"])
def test_a_gguf_run_loads_with_plain_libraries_as_the_readme_says(make_config, tiny_gguf, method):
    """A GGUF base (the packaged SmolLM2, Gemma-3): the README's steps, with fintune_model.json's
    gguf_file and the tokenizer's pad token, give what the run recorded."""
    config = make_config(model={"name": str(tiny_gguf), "max_length": 96}, method=method)
    run_dir = run(config)
    info = json.loads((run_dir / "model" / "fintune_model.json").read_text())
    assert (info["base"], info["gguf_file"]) == (str(tiny_gguf.parent), "tiny.gguf")
    recorded = pd.read_csv(run_dir / "predictions_test.csv").head(8)
    texts = list(recorded["text"])
    plain = _plain_predictions(run_dir / "model", method, texts, one_by_one=True)
    assert [label for label, _ in plain] == list(recorded["predicted"])
    assert [c for _, c in plain] == pytest.approx(list(recorded["confidence"]), abs=1e-5)
    results = Predictor.from_run(run_dir, device="cpu")(texts)
    assert [r["confidence"] for r in results] == pytest.approx(
        list(recorded["confidence"]), abs=1e-5
    )


def test_a_plain_load_cuts_long_texts_where_the_run_did(make_config, tiny_gpt2, tmp_path):
    """The saved tokenizer knew no limit (model_max_length 1e30): a plain load read a text
    past model.max_length whole, and a decoder's confidence moved by up to 0.13."""
    frame = make_sentences()
    frame.loc[::2, "text"] += " in the quarter this year the company group bank"
    frame.to_csv(tmp_path / "long.csv", index=False)
    config = make_config(
        model={"name": str(tiny_gpt2), "max_length": 8},
        data={"path": str(tmp_path / "long.csv")},
        training={"max_steps": 4},
    )
    run_dir = run(config)
    recorded = pd.read_csv(run_dir / "predictions_test.csv")
    recorded = recorded[recorded["text"].str.split().str.len() > 8].head(6)  # texts cut
    assert len(recorded) == 6
    texts = list(recorded["text"])
    plain = _plain_predictions(run_dir / "model", "full", texts, one_by_one=True)
    assert [c for _, c in plain] == pytest.approx(list(recorded["confidence"]), abs=1e-5)


@pytest.mark.parametrize("recorded_name", [True, False])
def test_an_adapter_run_finds_its_packaged_base_after_the_base_moved(
    make_config, tiny_bert, monkeypatch, recorded_name
):
    """A new virtualenv or another machine puts a packaged model elsewhere; runs saved
    before the short name was recorded are matched by the upstream hub id."""
    from fintune.models import registry
    from fintune.models.load import MODEL_INFO, load_saved_classifier
    from fintune.models.registry import ModelSource

    monkeypatch.setitem(registry.PACKAGED, "tiny", lambda: ModelSource(str(tiny_bert), None, "o/t"))
    run_dir = run(make_config(model={"name": "tiny"}, method={"name": "lora"}))
    info_path = run_dir / "model" / MODEL_INFO
    info = json.loads(info_path.read_text())
    assert info["packaged"] == "tiny" and info["base"] == str(tiny_bert)
    info["base"] = "/old-venv/site-packages/tiny/model"
    if not recorded_name:
        del info["packaged"]
    info_path.write_text(json.dumps(info))
    recorded = pd.read_csv(run_dir / "predictions_test.csv").head(8)
    results = Predictor.from_run(run_dir, device="cpu")(list(recorded["text"]))
    assert [r["confidence"] for r in results] == pytest.approx(
        list(recorded["confidence"]), abs=1e-5
    )
    monkeypatch.delitem(registry.PACKAGED, "tiny")  # not installed here any more
    with pytest.raises(FintuneError, match="base model /old-venv/site-packages/tiny/model is gone"):
        load_saved_classifier(run_dir / "model")


@pytest.mark.parametrize("method", ["full", "lora"])
def test_a_run_from_a_checkpoints_reordered_head_loads_with_its_own_label_names(
    make_config, tiny_bert, tmp_path, method
):
    """A base whose head was trained for the same labels in another order (FinBERT's
    positive, negative, neutral) keeps it, reordered. The README loaded an adapter run's base
    with its own id2label: a plain load named every prediction with the base's order."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    order = ["positive", "negative", "neutral"]
    base = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert, id2label=dict(enumerate(order)), ignore_mismatched_sizes=True
    )
    base.save_pretrained(tmp_path / "finbert")
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(tmp_path / "finbert")
    config = make_config(model={"name": str(tmp_path / "finbert")}, method={"name": method})
    run_dir = run(config)
    recorded = pd.read_csv(run_dir / "predictions_test.csv").head(12)
    plain = _plain_predictions(run_dir / "model", method, list(recorded["text"]))
    assert [label for label, _ in plain] == list(recorded["predicted"])


def test_a_gguf_adapter_run_finds_its_packaged_base_after_the_file_went(
    make_config, tiny_gguf, tmp_path, monkeypatch
):
    """gemma3-270m's GGUF file is joined into a cache folder: with the file deleted (a cache
    cleaned) and the folder still there, the run's model failed to load with 'cannot load
    the saved model (is the run complete?)' instead of joining the file again."""
    import shutil

    from fintune.models import registry
    from fintune.models.load import load_saved_classifier
    from fintune.models.registry import ModelSource

    cache = tmp_path / "cache"
    cache.mkdir()

    def joined() -> ModelSource:  # as _gemma3 does: the file written again where it is missing
        if not (cache / "g.gguf").is_file():
            shutil.copy(tiny_gguf, cache / "g.gguf")
        return ModelSource(str(cache), "g.gguf", "o/g")

    monkeypatch.setitem(registry.PACKAGED, "tinyg", joined)
    config = make_config(model={"name": "tinyg", "max_length": 96}, method={"name": "lora"})
    run_dir = run(
        config.model_copy(update={"training": config.training.model_copy(update={"max_steps": 2})})
    )
    recorded = pd.read_csv(run_dir / "predictions_test.csv").head(4)
    (cache / "g.gguf").unlink()
    results = Predictor.from_run(run_dir, device="cpu")(list(recorded["text"]))
    assert [r["confidence"] for r in results] == pytest.approx(
        list(recorded["confidence"]), abs=1e-5
    )
    (cache / "g.gguf").unlink()
    monkeypatch.delitem(registry.PACKAGED, "tinyg")  # not installed here any more
    with pytest.raises(FintuneError, match=rf"base model {cache}/g.gguf is gone"):
        load_saved_classifier(run_dir / "model")


def test_a_gone_local_base_is_not_matched_by_building_every_packaged_model(monkeypatch):
    """A run whose local, non-packaged base is gone can match no packaged model (it has no
    hub id to compare), yet each was built first: gemma3-270m joins a 270 MB file to do so."""
    from types import SimpleNamespace

    from fintune.models import registry
    from fintune.models.load import _packaged_again

    def joined():
        raise AssertionError("a packaged model was built")

    monkeypatch.setitem(registry.PACKAGED, "big", joined)
    info = SimpleNamespace(packaged=None, hub_id=None, gguf_file="model.gguf")
    assert _packaged_again(info) is None


def test_a_bfloat16_adapter_run_loads_plainly_to_fintunes_own_logits(make_config):
    """Without autocast too: the plain loader keeps the trained head in float32 as fintune
    does (its logits were up to 5e-3 away)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from fintune.models.load import load_saved_classifier

    folder = run(make_config(method={"name": "adapter"}, model={"dtype": "bfloat16"})) / "model"
    ours, tokenizer, _ = load_saved_classifier(folder)
    plain = AutoModelForSequenceClassification.from_pretrained(folder, trust_remote_code=True)
    assert plain.dtype == torch.bfloat16
    batch = AutoTokenizer.from_pretrained(folder)(
        ["profit rose", "costs went up sharply"], padding=True, return_tensors="pt"
    )
    with torch.no_grad():
        torch.testing.assert_close(plain(**batch).logits, ours(**batch).logits, rtol=0, atol=0)


@pytest.mark.parametrize("method", ["lora", "adapter"])
def test_a_plain_load_reads_an_unpinned_hub_base_at_the_commit_it_trained_on(
    make_config, offline_hub, tmp_path, method
):
    """adapter_config.json recorded model.revision (null for an unpinned base): once the
    hub's main moved on, a plain PEFT load read other base weights than the run trained
    on. (A hub cache made here stands in for the hub.)"""
    from transformers import AutoModelForSequenceClassification

    trained, moved = "c0ffee" * 6 + "c0ff", "dec0de" * 6 + "dec0"
    repo = offline_hub(trained)
    run_dir = run(make_config(model={"name": "org/tiny-bert"}, method={"name": method}))
    folder = run_dir / "model"
    recorded = pd.read_csv(run_dir / "predictions_test.csv").head(8)
    base = AutoModelForSequenceClassification.from_pretrained(repo / "snapshots" / trained)
    with torch.no_grad():
        for weight in base.parameters():
            weight.add_(torch.randn_like(weight))  # main moves to other weights
    base.save_pretrained(repo / "snapshots" / moved)
    (repo / "refs" / "main").write_text(moved)
    hub = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HUB_OFFLINE": "1"}
    plain = _plain_predictions(folder, method, list(recorded["text"]), env=hub)
    assert [c for _, c in plain] == pytest.approx(list(recorded["confidence"]), abs=1e-5)
    if method == "lora":
        assert json.loads((folder / "adapter_config.json").read_text())["revision"] == trained
