"""Load a finished run and classify texts the way the run saw them (same cleaning,
same truncation)."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from fintune.config.schema import CleaningConfig
from fintune.data.clean import make_cleaner
from fintune.errors import FintuneError
from fintune.evaluation.inference import length_sorted_batches
from fintune.models import load_saved_classifier, pick_device


class Predictor:
    def __init__(self, model, tokenizer, labels, max_length, cleaner=None, device="cpu"):
        self.model, self.tokenizer = model, tokenizer
        self.labels, self.max_length = labels, max_length
        self.cleaner, self.device = cleaner, device

    @classmethod
    def from_run(cls, run_dir: Path, device: str = "auto", int8: bool = False) -> Predictor:
        """`int8`: quantise the linear layers to int8 for CPU serving (faster, and the
        outputs differ slightly from the evaluated model's; measure agreement first)."""
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise FintuneError(f"run directory not found: {run_dir}")
        if not (run_dir / "model").is_dir():
            raise FintuneError(
                f"{run_dir}: no model/ folder (not a finished run, or save_model off)"
            )
        device = pick_device(device)
        model, tokenizer, info = load_saved_classifier(run_dir / "model", device)
        if int8:
            if device != "cpu":
                raise FintuneError("--int8 is for CPU serving; on a GPU serve the model as is")
            model = torch.ao.quantization.quantize_dynamic(
                model, {torch.nn.Linear}, dtype=torch.qint8
            )
        cleaning = {}
        if (run_dir / "config.yaml").is_file():
            config = yaml.safe_load((run_dir / "config.yaml").read_text())
            cleaning = config.get("data", {}).get("cleaning", {})
        cleaner = make_cleaner(CleaningConfig(**cleaning))
        return cls(model, tokenizer, info.labels, info.max_length, cleaner, device)

    @torch.inference_mode()
    def __call__(self, texts: list[str], batch_size: int = 8) -> list[dict]:
        """Texts are sorted by length and run in small batches, so little compute goes to
        padding (on 2 CPU cores, batches of 8 similar lengths ran 1.7x faster than 32
        mixed ones); results come back in input order."""
        if self.cleaner:
            texts = [self.cleaner(t) for t in texts]
        encoded = self.tokenizer(texts, truncation=True, max_length=self.max_length)
        results: list[dict] = [{} for _ in texts]
        lengths = [len(ids) for ids in encoded["input_ids"]]
        for rows in length_sorted_batches(lengths, batch_size):
            batch = self.tokenizer.pad(
                {key: [encoded[key][i] for i in rows] for key in encoded},
                return_tensors="pt",
            ).to(self.device)
            probs = torch.softmax(self.model(**batch).logits.float(), dim=-1).cpu()
            for i, row in zip(rows, probs, strict=True):
                best = int(row.argmax())
                results[i] = {
                    "label": self.labels[best],
                    "confidence": float(row[best]),
                    "scores": {name: float(p) for name, p in zip(self.labels, row, strict=True)},
                }
        return results
