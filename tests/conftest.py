"""Shared fixtures: tiny random-initialised models (2 layers, hidden 64) with a word-level
tokenizer built here, and a small, perfectly learnable data set. No downloads."""

from __future__ import annotations

import gc
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import (
    AutoModelForSequenceClassification,
    BertConfig,
    GPT2Config,
    LlamaConfig,
    PreTrainedTokenizerFast,
)

from fintune.config import validate_config

UP = ["rose", "grew", "jumped", "climbed", "improved", "beat"]
DOWN = ["fell", "dropped", "slumped", "declined", "missed", "shrank"]
FLAT = ["reported", "announced", "published", "scheduled", "listed", "filed"]
SUBJECTS = ["sales", "profit", "revenue", "margin", "orders", "earnings", "volume", "income"]
FILLER = ["the", "quarter", "in", "this", "year", "company", "group", "bank"]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[EOS]"]


def _tokenizer(decoder: bool) -> PreTrainedTokenizerFast:
    words = SPECIALS + sorted(set(UP + DOWN + FLAT + SUBJECTS + FILLER))
    core = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    if decoder:
        return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="[EOS]", unk_token="[UNK]")
    core.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
    )


def _save_tiny(folder: Path, decoder: bool, absolute_positions: bool = False) -> Path:
    tokenizer = _tokenizer(decoder)
    size = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
    if absolute_positions:  # GPT-2: learned positions, which left padding shifts
        config = GPT2Config(
            vocab_size=len(tokenizer),
            n_embd=64,
            n_layer=2,
            n_head=2,
            n_positions=64,
            eos_token_id=4,
            bos_token_id=4,
        )
    elif decoder:  # no pad token, as in real decoders: fintune must handle it
        config = LlamaConfig(
            vocab_size=len(tokenizer), num_key_value_heads=2, eos_token_id=4, **size
        )
    else:
        config = BertConfig(vocab_size=len(tokenizer), max_position_embeddings=64, **size)
    torch.manual_seed(0)  # the same tiny backbone in every session: thresholds stay fair
    AutoModelForSequenceClassification.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def tiny_multimodal_gemma3(vision_width: int = 32):
    """A random Gemma-3 classifier with an image encoder: text width 32, one layer each."""
    from transformers import Gemma3Config

    text = {"num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1}
    text |= {"vocab_size": 64, "hidden_size": 32, "intermediate_size": 64, "head_dim": 16}
    vision = {"hidden_size": vision_width, "intermediate_size": 64, "num_hidden_layers": 1}
    vision |= {"num_attention_heads": 2, "image_size": 28, "patch_size": 14}
    config = Gemma3Config(
        text_config=text, vision_config=vision, mm_tokens_per_image=4, image_token_index=63
    )
    return AutoModelForSequenceClassification.from_config(config)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Every test module is imported now, and with it torch, transformers, MLflow and
    Optuna: their objects live for the whole session, so the collector stops walking them.
    Each full collection (the Trainer's at every training start, Optuna's after each trial)
    took about 0.5 s here, walking them; now a few ms."""
    gc.collect()
    gc.freeze()


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return _save_tiny(tmp_path_factory.mktemp("tiny-bert"), decoder=False)


@pytest.fixture
def offline_hub(tiny_bert, tmp_path, monkeypatch):
    """A hub cache holding tiny_bert as org/tiny-bert, read offline: it stands in for the
    hub. `offline_hub(commit, refs)` puts the weights at `commit`, which each ref names."""
    import huggingface_hub.constants

    def cache(commit: str, refs: tuple[str, ...] = ("main",)) -> Path:
        repo = tmp_path / "hub" / "models--org--tiny-bert"
        shutil.copytree(tiny_bert, repo / "snapshots" / commit)
        (repo / "refs").mkdir(exist_ok=True)
        for ref in refs:
            (repo / "refs" / ref).write_text(commit)
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
        return repo

    return cache


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    return _save_tiny(tmp_path_factory.mktemp("tiny-llama"), decoder=True)


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    return _save_tiny(tmp_path_factory.mktemp("tiny-gpt2"), decoder=True, absolute_positions=True)


def _write_tiny_gguf(path: Path) -> Path:
    """A 2-layer Llama (hidden 32, float32 tensors) as llama.cpp writes a GGUF file: a
    byte-level BPE tokenizer in its metadata, no pad token, no head."""
    import gguf
    import numpy as np
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    tokens = ["<|endoftext|>", *bytes_to_unicode().values(), "\u0120f", "ro"]
    hidden, layers, ffn = 32, 2, 64
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("tiny")
    writer.add_context_length(128)
    writer.add_embedding_length(hidden)
    writer.add_block_count(layers)
    writer.add_feed_forward_length(ffn)
    writer.add_head_count(2)
    writer.add_head_count_kv(2)
    writer.add_rope_dimension_count(hidden // 2)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3] + [1] * (len(tokens) - 1))  # 3: control
    writer.add_token_merges(["\u0120 f", "r o"])
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)
    rng = np.random.default_rng(0)
    shapes = {"attn_q": (hidden, hidden), "attn_k": (hidden, hidden)}
    shapes |= {"attn_v": (hidden, hidden), "attn_output": (hidden, hidden)}
    shapes |= {"ffn_gate": (ffn, hidden), "ffn_up": (ffn, hidden), "ffn_down": (hidden, ffn)}
    weights = {"token_embd.weight": (len(tokens), hidden)}
    weights |= {f"blk.{i}.{n}.weight": s for i in range(layers) for n, s in shapes.items()}
    for name, shape in weights.items():
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.1).astype(np.float32))
    norms = [f"blk.{i}.{n}_norm.weight" for i in range(layers) for n in ("attn", "ffn")]
    for name in [*norms, "output_norm.weight"]:
        writer.add_tensor(name, np.ones(hidden, np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="session")
def tiny_gguf(tmp_path_factory) -> Path:
    """The path of a tiny Llama GGUF file (model.name takes it as it is)."""
    return _write_tiny_gguf(tmp_path_factory.mktemp("tiny-gguf") / "tiny.gguf")


def make_sentences(n_per_label: int = 40, seed: int = 0) -> pd.DataFrame:
    """Three labels a model can learn perfectly: the verb decides."""
    rng = random.Random(seed)
    rows = []
    for label, verbs in (("positive", UP), ("negative", DOWN), ("neutral", FLAT)):
        for _ in range(n_per_label):
            words = [rng.choice(SUBJECTS), rng.choice(verbs)] + rng.sample(
                FILLER, rng.randint(1, 5)
            )
            rng.shuffle(words)
            rows.append({"text": " ".join(words), "label": label})
    rng.shuffle(rows)
    return pd.DataFrame(rows)


def terminated_at_first_save(*command: str) -> subprocess.CompletedProcess:
    """`fintune COMMAND...` in a process that sends itself SIGTERM (as a batch scheduler
    does) when the Trainer first saves a checkpoint."""
    code = (
        "import os, signal, sys\n"
        "from transformers import TrainerCallback\n"
        "import fintune.recipes.classification as recipe\n"
        "from fintune.cli import app\n"
        "class Terminate(TrainerCallback):\n"
        "    def on_save(self, *args, **kwargs):\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "build = recipe.build_trainer\n"
        "recipe.build_trainer = lambda *args: build(*args[:8], [*(args[8] or []), Terminate()])\n"
        "app(sys.argv[1:])\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *command], timeout=300, capture_output=True, text=True
    )


def interrupted_in_garbage_collection(
    *command: str, at: str = "on_train_begin"
) -> subprocess.CompletedProcess:
    """`fintune COMMAND...` in a process that gets SIGINT (Ctrl+C) inside a garbage
    collection callback, once, after the first run's training `at` (a TrainerCallback
    event): Python reports a KeyboardInterrupt raised there as 'Exception ignored' and
    goes on."""
    code = (
        "import gc, os, signal, sys\n"
        # as from a terminal: a test run started in the background inherits SIGINT ignored
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
        "from transformers import TrainerCallback\n"
        "import fintune.recipes.classification as recipe\n"
        "from fintune.cli import app\n"
        "armed = []\n"
        "class Arm(TrainerCallback):\n"
        f"    def {at}(self, *args, **kwargs):\n"
        "        armed.append(True)\n"
        "def interrupt(phase, info):\n"
        "    if armed == [True] and phase == 'start':\n"
        "        armed.append(False)\n"
        "        os.kill(os.getpid(), signal.SIGINT)\n"
        "gc.callbacks.append(interrupt)\n"
        "build = recipe.build_trainer\n"
        "recipe.build_trainer = lambda *args: build(*args[:8], [*(args[8] or []), Arm()])\n"
        "app(sys.argv[1:])\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *command], timeout=300, capture_output=True, text=True
    )


@pytest.fixture
def sentences_csv(tmp_path) -> Path:
    path = tmp_path / "sentences.csv"
    make_sentences().to_csv(path, index=False)
    return path


def tiny_run_config(model_dir: Path, data_file: Path, output: Path, **sections):
    """An ExperimentConfig for a seconds-long run; keyword sections override defaults."""
    raw = {
        "name": "tiny",
        "seed": 7,
        "model": {"name": str(model_dir), "max_length": 32},
        "data": {"path": str(data_file), "labels": ["negative", "neutral", "positive"]},
        "method": {"name": "full"},
        "training": {
            "learning_rate": 1e-3,
            "epochs": 1,
            "batch_size": 16,
            "logging_steps": 2,
            # one thread: on a shared or busy machine a second one stalls each tiny op
            "num_threads": 1,
        },
        "evaluation": {"bootstrap_samples": 200},
        "output": {"dir": str(output)},
        "tracking": {"mlflow": False},  # tests that check MLflow switch it on
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return validate_config(raw)


@pytest.fixture
def make_config(tmp_path, sentences_csv, tiny_bert):
    def build(**sections):
        return tiny_run_config(tiny_bert, sentences_csv, tmp_path / "runs", **sections)

    return build
