"""Order-preserving batched inference for final evaluation.

The Trainer's eval loader is length-grouped when training is (transformers 5), which
permutes examples; here batches are formed over length-sorted indices for speed and the
logits are put back in dataset order.
"""

from __future__ import annotations

import numpy as np
import torch
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import DataCollatorWithPadding

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def length_sorted_batches(lengths: list[int], batch_size: int) -> list[list[int]]:
    """Indices grouped into batches of similar length, so little work goes to padding."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@torch.inference_mode()
def predict_logits(
    model, tokenizer, dataset: Dataset, batch_size: int, device: str, desc: str = "Predicting"
) -> np.ndarray:
    collate = DataCollatorWithPadding(tokenizer)
    columns = [c for c in MODEL_INPUTS if c in dataset.column_names]
    batches = length_sorted_batches([len(ids) for ids in dataset["input_ids"]], batch_size)
    model.eval()
    chunks = []
    for indices in tqdm(batches, desc=desc, unit="batch"):
        rows = dataset.select(indices)
        batch = collate([{c: row[c] for c in columns} for row in rows])
        batch = {k: v.to(device) for k, v in batch.items()}
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=_bf16(model)):
            chunks.append(model(**batch).logits.float().cpu().numpy())
    logits = np.concatenate(chunks)
    restored = np.empty_like(logits)
    restored[[i for batch in batches for i in batch]] = logits
    return restored


def _bf16(model) -> bool:
    return next(model.parameters()).dtype == torch.bfloat16
