"""Order-preserving batched inference for final evaluation.

The Trainer's eval loader is length-grouped when training is (transformers 5), which
permutes examples; here batches are formed over length-sorted indices for speed and the
logits are put back in dataset order.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def length_sorted_batches(
    lengths: list[int], batch_size: int, exact: bool = False
) -> list[list[int]]:
    """Indices grouped into batches of similar length, so little work goes to padding.
    `exact`: only equal lengths share a batch, so nothing is padded at all."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    if not exact:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    for i in order:
        if batches and len(batches[-1]) < batch_size and lengths[batches[-1][0]] == lengths[i]:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def pads_on_the_left(tokenizer) -> bool:
    """Decoders are padded on the left, which shifts the text's positions by the padding:
    absolute position embeddings (GPT-2) and virtual tokens (prefix and prompt tuning) then
    see a text differently next to a longer one. Their inference pads nothing instead, so a
    prediction never depends on the batch."""
    return tokenizer.padding_side == "left"


@torch.inference_mode()
def predict_logits(
    model, tokenizer, dataset: Dataset, batch_size: int, device: str, desc: str = "Predicting"
) -> np.ndarray:
    collate = DataCollatorWithPadding(tokenizer)
    columns = [c for c in MODEL_INPUTS if c in dataset.column_names]
    lengths = [len(ids) for ids in dataset["input_ids"]]
    batches = length_sorted_batches(lengths, batch_size, exact=pads_on_the_left(tokenizer))
    model.eval()
    chunks = []
    with computing_as_saved(model, device):
        for indices in tqdm(batches, desc=desc, unit="batch"):
            rows = dataset.select(indices)
            batch = collate([{c: row[c] for c in columns} for row in rows])
            batch = {k: v.to(device) for k, v in batch.items()}
            chunks.append(model(**batch).logits.float().cpu().numpy())
    logits = np.concatenate(chunks)
    restored = np.empty_like(logits)
    restored[[i for batch in batches for i in batch]] = logits
    return restored


def half_dtype(model) -> torch.dtype | None:
    """bfloat16 or float16, where most of a model's weights are: it runs under autocast in
    that dtype (norms and softmax in fp32; the head, kept in float32, computes as a plain
    load in that dtype does). None for float32 weights."""
    dtype = next(model.parameters()).dtype
    return dtype if dtype in (torch.bfloat16, torch.float16) else None


@contextmanager
def computing_as_saved(model, device: str) -> Iterator[None]:
    """Compute as the saved model does when loaded plainly: bfloat16 or float16 weights
    under autocast in their dtype, float32 weights in float32. Mixed-precision training
    (training.precision bf16 or fp16) wraps the model's forward in autocast (accelerate);
    the wrapper is set aside meanwhile, so validation during training and a run's recorded
    figures are the saved model's, not its float32 weights' in bfloat16."""
    original = model.__dict__.get("_original_forward")  # accelerate's, before its wrapper
    wrapped = model.__dict__.get("forward")
    if original is not None:
        model.forward = original
    try:
        kind, half = torch.device(device).type, half_dtype(model)
        with torch.autocast(kind, dtype=half or torch.bfloat16, enabled=half is not None):
            yield
    finally:
        if original is not None:
            model.forward = wrapped
