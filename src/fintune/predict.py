"""Load a finished run and classify texts the way the run saw them (same cleaning,
same truncation)."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from fintune.config.schema import CleaningConfig
from fintune.data.clean import make_cleaner
from fintune.errors import FintuneError
from fintune.models import load_saved_classifier, pick_device


class Predictor:
    def __init__(self, model, tokenizer, labels, max_length, cleaner=None, device="cpu"):
        self.model, self.tokenizer = model, tokenizer
        self.labels, self.max_length = labels, max_length
        self.cleaner, self.device = cleaner, device

    @classmethod
    def from_run(cls, run_dir: Path, device: str = "auto") -> Predictor:
        run_dir = Path(run_dir)
        if not run_dir.is_dir():
            raise FintuneError(f"run directory not found: {run_dir}")
        if not (run_dir / "model").is_dir():
            raise FintuneError(
                f"{run_dir}: no model/ folder (not a finished run, or save_model off)"
            )
        device = pick_device(device)
        model, tokenizer, info = load_saved_classifier(run_dir / "model", device)
        cleaning = {}
        if (run_dir / "config.yaml").is_file():
            config = yaml.safe_load((run_dir / "config.yaml").read_text())
            cleaning = config.get("data", {}).get("cleaning", {})
        cleaner = make_cleaner(CleaningConfig(**cleaning))
        return cls(model, tokenizer, info.labels, info.max_length, cleaner, device)

    @torch.inference_mode()
    def __call__(self, texts: list[str], batch_size: int = 32) -> list[dict]:
        results = []
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            if self.cleaner:
                batch = [self.cleaner(t) for t in batch]
            encoded = self.tokenizer(
                batch,
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            ).to(self.device)
            probs = torch.softmax(self.model(**encoded).logits.float(), dim=-1).cpu()
            for row in probs:
                best = int(row.argmax())
                results.append(
                    {
                        "label": self.labels[best],
                        "confidence": float(row[best]),
                        "scores": {
                            name: float(p) for name, p in zip(self.labels, row, strict=True)
                        },
                    }
                )
        return results
