"""Benchmark lever for issue #3: domain-adaptive masked-LM pretraining of MiniLM.

Continues MiniLM's pretraining (masked-LM, 15% masking) on financial text that no test or
validation set contains: the training splits of FPB 50Agree and TFNS, exactly as the
benchmark configs split them, plus TAT-QA's financial-report paragraphs. The result is a
plain BertModel folder (with MiniLM's own pooler) to use as `model.name` in a
classification config; it gets a fresh head there.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/dapt_minilm.py    # about 31 min on 2 cores

all-MiniLM-L6-v2 ships without a masked-LM head, so the head is first trained alone
(encoder frozen) before the encoder is unfrozen; otherwise a random head's gradients would
scramble the encoder in the first steps. Reads ../shared/data (not in the repo). Prints what
it measured: corpus size, held-out masked-LM loss before and after, wall time, hardware.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import torch
from datasets import Dataset
from transformers import (
    AutoTokenizer,
    BertForMaskedLM,
    BertModel,
    DataCollatorForLanguageModeling,
    Trainer,
    TrainingArguments,
    set_seed,
)

from fintune.config import load_config
from fintune.data import prepare_data
from fintune.models.registry import resolve_model
from fintune.run_dir import hardware, package_versions

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = [
    ROOT / "benchmarks/configs/fpb_minilm.yaml",
    ROOT / "benchmarks/configs/tfns_minilm.yaml",
]
TATQA = ROOT.parent / "shared/data/tatqa"
OUT = ROOT / "benchmarks/out/dapt"


def corpus() -> tuple[list[str], dict[str, int]]:
    """Training-split texts of both benchmarks and TAT-QA paragraphs, minus every text
    that appears in either benchmark's validation or test split."""
    texts: list[str] = []
    held_out: set[str] = set()
    counts: dict[str, int] = {}
    for path in CONFIGS:
        config = load_config(path)
        data = prepare_data(config.data, config.seed)
        train = data.splits["train"]["text"].tolist()
        texts += train
        counts[config.name + " train"] = len(train)
        for role in ("validation", "test"):
            held_out |= set(data.splits[role]["text"])
    for part in ("dev", "test_gold"):
        documents = json.loads((TATQA / f"tatqa_dataset_{part}.json").read_text())
        paragraphs = [p["text"] for doc in documents for p in doc["paragraphs"]]
        texts += paragraphs
        counts[f"tatqa {part} paragraphs"] = len(paragraphs)
    kept = [t for t in texts if t not in held_out]
    counts["dropped as held-out texts"] = len(texts) - len(kept)
    return kept, counts


def blocks(texts: list[str], tokenizer, size: int, seed: int) -> Dataset:
    """Shuffle the texts, tokenize, concatenate and cut into `size`-token blocks."""
    order = torch.randperm(len(texts), generator=torch.Generator().manual_seed(seed)).tolist()
    ids: list[int] = []
    for i in order:
        ids += tokenizer(texts[i], truncation=True, max_length=512)["input_ids"]
    chunks = [ids[i : i + size] for i in range(0, len(ids) - size + 1, size)]
    return Dataset.from_dict({"input_ids": chunks})


class MaskedPositionsOnly(torch.nn.Module):
    """BertForMaskedLM's loss, with the 30k-word output layer run on masked positions
    only (about 15% of them): most of a step's time otherwise goes to that layer."""

    def __init__(self, model: BertForMaskedLM) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids, attention_mask=None, token_type_ids=None, labels=None):
        hidden = self.model.bert(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
        ).last_hidden_state
        masked = labels != -100
        logits = self.model.cls(hidden[masked])
        return {"loss": torch.nn.functional.cross_entropy(logits, labels[masked])}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=float, default=4)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--head-steps", type=int, default=200)
    parser.add_argument("--block", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--out", type=Path, default=OUT / "minilm-fin")
    args = parser.parse_args(argv)
    if args.out.exists():  # fpb_dapt.yaml and tfns_dapt.yaml fine-tune its model/
        raise SystemExit(f"{args.out} exists; move it away or give another --out")
    set_seed(args.seed)
    started = time.perf_counter()

    source = resolve_model("all-minilm-l6-v2")
    tokenizer = AutoTokenizer.from_pretrained(source.name_or_path)
    texts, counts = corpus()
    data = blocks(texts, tokenizer, args.block, args.seed).train_test_split(
        test_size=0.05, seed=args.seed
    )
    print("corpus:", json.dumps(counts), f"-> {len(texts)} texts,", end=" ")
    print(f"{len(data['train'])} train / {len(data['test'])} held-out blocks of {args.block}")

    model = BertForMaskedLM.from_pretrained(source.name_or_path)  # head: random init
    collator = DataCollatorForLanguageModeling(tokenizer, mlm_probability=0.15, seed=args.seed)

    def trainer(output: str, **kwargs) -> Trainer:
        arguments = TrainingArguments(
            output_dir=str(args.out / output),
            per_device_train_batch_size=args.batch_size,
            per_device_eval_batch_size=64,
            weight_decay=0.01,
            logging_steps=50,
            save_strategy="no",
            report_to=[],
            seed=args.seed,
            use_cpu=not torch.cuda.is_available(),
            **kwargs,
        )
        return Trainer(
            model=MaskedPositionsOnly(model),
            args=arguments,
            data_collator=collator,
            train_dataset=data["train"],
        )

    # 1. The masked-LM head alone; the decoder is tied to the (frozen) word embeddings.
    for name, parameter in model.named_parameters():
        parameter.requires_grad = name.startswith("cls.")
    head = trainer("head", max_steps=args.head_steps, learning_rate=1e-3, warmup_steps=0.1)
    loss_random_head = head.evaluate(data["test"])["eval_loss"]
    head.train()
    loss_before = head.evaluate(data["test"])["eval_loss"]

    # 2. Everything.
    for parameter in model.parameters():
        parameter.requires_grad = True
    full = trainer(
        "full", num_train_epochs=args.epochs, learning_rate=args.learning_rate, warmup_steps=0.06
    )
    full.train()
    loss_after = full.evaluate(data["test"])["eval_loss"]

    # Save a plain BertModel with MiniLM's pooler (the masked-LM model has none).
    encoder = BertModel.from_pretrained(source.name_or_path)
    missing = encoder.load_state_dict(model.bert.state_dict(), strict=False)
    assert all(k.startswith("pooler.") for k in missing.missing_keys), missing
    encoder.save_pretrained(args.out / "model")
    tokenizer.save_pretrained(args.out / "model")
    wall = time.perf_counter() - started
    summary = {
        "corpus": counts,
        "blocks": {"train": len(data["train"]), "held_out": len(data["test"]), "size": args.block},
        "held_out_mlm_loss": {
            "random_head": loss_random_head,
            "trained_head_before": loss_before,
            "after": loss_after,
            "perplexity_before": math.exp(loss_before),
            "perplexity_after": math.exp(loss_after),
        },
        "args": {k: str(v) for k, v in vars(args).items()},
        "wall_s": round(wall, 1),
        "hardware": hardware("cuda" if torch.cuda.is_available() else "cpu"),
        "versions": package_versions(),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary["held_out_mlm_loss"], indent=2), f"\nwall {wall / 60:.1f} min")
    hw = summary["hardware"]
    print(
        f"hardware: {hw['cpu']}, {hw['cpu_cores_usable']} cores, {hw['ram_gib']} GiB RAM, "
        f"device {hw['device']}, torch threads {hw['torch_threads']}; seed {args.seed}"
    )
    print(f"model: {args.out / 'model'}")


if __name__ == "__main__":
    main()
