"""Loading a backbone: what must be refused before training, with a message that names
the field."""

from __future__ import annotations

import shutil

import pytest

from fintune.errors import FintuneError
from fintune.models.load import load_tokenizer
from fintune.models.registry import resolve_model


def test_a_model_folder_without_tokenizer_files_is_refused(make_config, tiny_bert, tmp_path):
    """transformers builds a BERT tokenizer with no vocabulary from config.json alone:
    every word became [UNK], and the run trained on nothing without a word said."""
    folder = tmp_path / "weights-only"
    folder.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_bert / name, folder)
    config = make_config(model={"name": str(folder)})
    with pytest.raises(FintuneError, match=r"model.name: .*weights-only.* no vocabulary"):
        load_tokenizer(resolve_model(config.model.name), config)
