"""Benchmark lever for issue #3: distil a larger fine-tuned classifier into MiniLM.

The teacher is a finished fintune run, such as Gemma-3-270M with LoRA on FPB 50Agree
(benchmarks/configs/fpb_gemma_lora.yaml). Its class probabilities on the training split are
soft targets for the student, all-MiniLM-L6-v2 (22.7M), which minimises

    alpha * CE(student, label) + (1 - alpha) * T^2 * KL(teacher_T || student_T)

loaded and trained as `fintune run` loads and trains a config's model (its method must be
full; every training setting applies but class weights and gradient accumulation), so with
alpha = 1 it is that run. The student is selected on validation by training.best_metric
and read once on test. Its split must be the teacher's (the data fingerprints
are compared), so its test predictions pair sentence by sentence with any run on that split
(benchmarks/paired_runs.py). Writes a plain transformers model folder, predictions_*.csv
and summary.json; prints what it measured.

    .venv/bin/python benchmarks/distil.py --config benchmarks/configs/fpb_distil.yaml \\
        --teacher benchmarks/out/runs/<teacher run> --out benchmarks/out/distil/fpb
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    EarlyStoppingCallback,
    set_seed,
)

from fintune.config import load_config
from fintune.data import prepare_data
from fintune.data.clean import make_cleaner
from fintune.evaluation.inference import predict_logits
from fintune.evaluation.metrics import evaluate_predictions
from fintune.models import load_classifier
from fintune.models.registry import resolve_model
from fintune.predict import Predictor, prepare
from fintune.recipes.classification import write_predictions
from fintune.run_dir import hardware, package_versions
from fintune.training.trainer import SelectingTrainer, compute_metrics, training_arguments

ROOT = Path(__file__).resolve().parent.parent


UNLABELLED = -100


def report_sentences(paragraphs: list[str], letters: float = 0.6) -> list[str]:
    """Sentences of 6-80 words, at least `letters` of them words of letters (table rows
    are not)."""
    sentences = []
    for paragraph in paragraphs:
        for sentence in re.split(r"(?<=[.!?])\s+", paragraph):
            words = sentence.split()
            if 6 <= len(words) <= 80 and sum(w.isalpha() for w in words) >= letters * len(words):
                sentences.append(" ".join(words))
    return sentences


def transfer_texts(
    tatqa: Path | None,
    tweets: int,
    exclude: set[str],
    seed: int,
    configs: tuple[Path, ...] = (),
    financebench: Path | None = None,
    cleaner=None,
) -> list[str]:
    """Unlabelled financial texts for the teacher to label: every TAT-QA report sentence of
    6-80 words; `tweets` tweets drawn from TFNS's training split (as tfns_minilm.yaml cuts
    it); every text of each fintune data config in `configs` (all splits, labels dropped);
    and FinanceBench's evidence-page sentences (as report_sentences picks them). Each is
    cleaned as the student's data is (`cleaner`, its data.cleaning); texts of the student's
    data, and texts cleaning empties, are left out."""
    texts: list[str] = []
    if tatqa is not None:  # every sentence, as round 6 took them: no share of letters asked
        paragraphs = [
            paragraph["text"]
            for part in sorted(tatqa.glob("tatqa_dataset_*.json"))
            for document in json.loads(part.read_text())
            for paragraph in document["paragraphs"]
        ]
        texts += report_sentences(paragraphs, letters=0)
    if tweets:
        texts += tweet_pool().sample(n=tweets, random_state=seed).tolist()
    for path in configs:
        config = load_config(path)
        for frame in prepare_data(config.data, config.seed).splits.values():
            texts += frame["text"].tolist()
    if financebench is not None:
        with open(financebench / "financebench_open_source.jsonl", encoding="utf-8") as lines:
            pages = [
                evidence["evidence_text_full_page"] or ""
                for line in lines
                for evidence in json.loads(line)["evidence"]
            ]
        texts += report_sentences(pages)
    cleaned = (prepare(t, cleaner) for t in texts)
    return [t for t in dict.fromkeys(cleaned) if t and t not in exclude]


REPLACE_SHARE = 0.25  # of a text's replaceable words, in each variant (rounded; one at least)
TOP_K = 20  # the language model's likeliest next tokens a replacement is drawn from


WORD_JOINERS = "'\u2019-"  # a word goes on past these


def _whole_word(text: str, start: int, end: int) -> tuple[int, str] | None:
    """Where the token at text[start:end] (its leading space included or not) begins and
    its word, if it is a whole word of letters; None for part of a word, numbers, marks."""
    begin = start + len(text[start:end]) - len(text[start:end].lstrip())
    word = text[begin:end]
    if not word.isalpha() or (begin and not text[begin - 1].isspace()):
        return None  # "based" of UK-based, "t" of isn't
    if end < len(text) and (text[end].isalnum() or text[end] in WORD_JOINERS):
        return None  # "isn" of isn't, "year" of year-on-year
    if re.match(r"[:./][\w/]", text[end : end + 2]):
        return None  # "https" of https://t.co, "www" of www.x.com, "U" of U.S., "and" of and/or
    return begin, word


def lm_variants(
    texts: list[str],
    lm,
    tokenizer,
    variants: int,
    seed: int,
    exclude: set[str] = frozenset(),
    known_words: set[str] | None = None,
    batch_size: int = 16,
) -> list[tuple[str, int]]:
    """`variants` new texts per text: in each, REPLACE_SHARE of its replaceable words
    (rounded, one at least) are replaced by a word the language model `lm` finds likely
    after the text's words before it, drawn in proportion from those of its TOP_K next
    tokens that start a word and are, whole, a word of `known_words` (lower case; by
    default the words of `texts`), so never a piece such as "Rev" of "Revenue". A
    replaceable word is one token of letters only: words of several tokens, numbers,
    marks and parts of "isn't" or "year-on-year" stay. Variants equal to a text of
    `texts` or of `exclude`, or to each other, are left out. Returns (variant, index of
    its text) pairs. The teacher labels them, so a replaced verb ("rose" to "fell") is a
    new example, not a wrong one."""
    rng = np.random.default_rng(seed)
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    marked = any(p.startswith(("\u2581", "\u0120")) for p in pieces if p)  # SentencePiece, BPE

    if known_words is None:
        known_words = {w.lower() for text in texts for w in text.split() if w.isalpha()}

    def as_word(token_id: int) -> str | None:
        if token_id >= len(pieces):  # an embedding row past the vocabulary (padded to 64s)
            return None
        piece = pieces[token_id] or ""
        if piece.startswith("##") or (marked and not piece.startswith(("\u2581", "\u0120"))):
            return None  # continues a word
        word = tokenizer.decode([token_id]).strip()
        return word if word.isalpha() and word.lower() in known_words else None

    words: dict[int, str | None] = {}
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    made: dict[str, int] = {}
    for first in range(0, len(texts), batch_size):
        chunk = texts[first : first + batch_size]
        encoded = tokenizer(
            chunk, return_offsets_mapping=True, padding=True, truncation=True,
            max_length=128, return_tensors="pt",
        )  # fmt: skip
        offsets = encoded.pop("offset_mapping")
        found = []  # (row, position, begin, word, end) of each replaceable word
        for row, text in enumerate(chunk):
            for position in range(1, int(encoded["attention_mask"][row].sum())):
                start, end = offsets[row, position].tolist()
                if (whole := _whole_word(text, start, end)) is not None:
                    found.append((row, position, *whole, end))
        spots = [[] for _ in chunk]  # per text: (begin, end, words, their chances)
        if found:
            rows = [row for row, *_ in found]
            before = [position - 1 for _, position, *_ in found]  # predicts the word
            logits = next_token_logits(lm, encoded, rows, before)
            top = logits.topk(min(TOP_K, logits.shape[-1]), dim=-1)  # [found, k]
            chances, candidates = top.values.softmax(-1).numpy(), top.indices.numpy()
            for (row, _, begin, original, end), ids, odds in zip(
                found, candidates, chances, strict=True
            ):
                options = []
                for token_id, chance in zip(ids, odds, strict=True):
                    if token_id not in words:
                        words[token_id] = as_word(int(token_id))
                    word = words[token_id]
                    if word and word.lower() != original.lower() and chance > 0:
                        options.append((word, chance))
                if options:
                    names, weights = zip(*options, strict=True)
                    spots[row].append((begin, end, names, np.array(weights) / sum(weights)))
        for row, text in enumerate(chunk):
            count = max(1, round(REPLACE_SHARE * len(spots[row])))
            for _ in range(variants if spots[row] else 0):
                new = text
                picked = rng.choice(len(spots[row]), count, replace=False)
                for spot in sorted(picked, reverse=True):  # from the end: offsets hold
                    begin, end, names, weights = spots[row][spot]
                    new = new[:begin] + names[rng.choice(len(names), p=weights)] + new[end:]
                made.setdefault(new, first + row)
    seen = set(texts) | set(exclude)
    return [(text, source) for text, source in made.items() if text not in seen]


def next_token_logits(lm, encoded, rows: list[int], positions: list[int]) -> torch.Tensor:
    """The causal LM's logits for the token after each (row, position) of the batch
    `encoded`, its output layer run at those positions only: Gemma's 262k-token output
    layer costs more than the rest of the model, at every position it runs. Gemma's final
    soft-capping is applied as its forward does; a model that scales its logits otherwise
    (Cohere's logit_scale, Granite's logits_scaling) would differ from its own forward."""
    with torch.inference_mode():
        hidden = lm.get_decoder()(**encoded, use_cache=False).last_hidden_state
        logits = lm.get_output_embeddings()(hidden[rows, positions]).float()
    text_config = lm.config.get_text_config()  # a multimodal model's holds the cap
    if cap := getattr(text_config, "final_logit_softcapping", None):  # as Gemma's forward
        logits = torch.tanh(logits / cap) * cap
    return logits


def load_lm(name: str):
    """A causal language model and its tokenizer by fintune's model.name (a packaged
    name such as gemma3-270m, a folder or a hub id), on the CPU in float32."""
    source = resolve_model(name)
    kwargs = {"gguf_file": source.gguf_file} if source.gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(source.name_or_path, **kwargs)
    lm = AutoModelForCausalLM.from_pretrained(source.name_or_path, dtype=torch.float32, **kwargs)
    return lm.eval(), tokenizer


def load_teacher(run: Path, labels: list[str], device: str = "cpu") -> Predictor:
    """The teacher's predictor for texts already cleaned as the student's data (its split
    is the teacher's, so is its cleaning): they are not cleaned a second time."""
    teacher = Predictor.from_run(run, device=device)
    if teacher.labels != labels:
        raise SystemExit(f"label order differs: teacher {teacher.labels}, data {labels}")
    teacher.cleaner = None
    return teacher


class Distiller(SelectingTrainer):
    """Hard-label cross-entropy mixed with the KL divergence to the teacher at temperature
    T. Evaluation batches carry no teacher: their loss is the plain cross-entropy."""

    def __init__(self, *args, temperature: float, alpha: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.temperature, self.alpha = temperature, alpha

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = dict(inputs)
        teacher = inputs.pop("teacher", None)
        labels = inputs.pop("labels")
        outputs = model(**inputs)
        labelled = labels != UNLABELLED  # transfer texts have the teacher's targets only
        loss = F.cross_entropy(outputs.logits[labelled], labels[labelled]) if labelled.any() else 0
        if teacher is not None:
            t = self.temperature
            soft = F.kl_div(
                F.log_softmax(outputs.logits / t, dim=-1),
                F.log_softmax(teacher / t, dim=-1),
                log_target=True,
                reduction="batchmean",
            )
            loss = self.alpha * loss + (1 - self.alpha) * t * t * soft
        return (loss, outputs) if return_outputs else loss


def refuse_unsupported(config, path: Path) -> None:
    """Settings this script's loss and output cannot honour stop it before any work."""
    if config.method.name != "full":
        raise SystemExit(
            f"{path}: method.name is {config.method.name}; distil.py trains every weight of "
            "the student and saves a plain transformers model: use method full"
        )
    if config.training.class_weights:
        raise SystemExit(f"{path}: training.class_weights is not applied by the distil loss")
    if config.training.gradient_accumulation_steps != 1:
        raise SystemExit(
            f"{path}: training.gradient_accumulation_steps must be 1 for distil.py "
            "(its loss is a mean per batch)"
        )


@functools.cache  # read once for the argument check, once more for the texts
def tweet_pool() -> pd.Series:
    """TFNS's training split as tfns_minilm.yaml cuts it: where transfer tweets come from."""
    config = load_config(ROOT / "benchmarks/configs/tfns_minilm.yaml")
    return prepare_data(config.data, config.seed).splits["train"]["text"]


def refuse_bad_arguments(args: argparse.Namespace) -> None:
    """Arguments that would train on a nonsense loss, be silently ignored, or fail only
    after the teacher has labelled the training split stop it first, named."""
    if not 0 <= args.alpha <= 1:
        raise SystemExit(
            f"--alpha must be between 0 and 1 (the hard labels' weight), not {args.alpha}"
        )
    if not (args.temperature > 0 and math.isfinite(args.temperature)):
        raise SystemExit(f"--temperature must be a number above 0, not {args.temperature}")
    # 0 used to mean the config's epochs
    if args.epochs is not None and not (args.epochs > 0 and math.isfinite(args.epochs)):
        raise SystemExit(
            f"--epochs must be a number above 0, not {args.epochs} (leave it out for the config's)"
        )
    if args.augment < 0:
        raise SystemExit(f"--augment must be 0 or more, not {args.augment}")
    if args.transfer_tweets < 0:
        raise SystemExit(f"--transfer-tweets must be 0 or more, not {args.transfer_tweets}")
    if args.transfer_tweets and args.transfer_tweets > (pool := len(tweet_pool())):
        raise SystemExit(
            f"--transfer-tweets {args.transfer_tweets}: TFNS's training split has {pool} tweets"
        )
    if args.transfer_tatqa is not None and not list(
        args.transfer_tatqa.glob("tatqa_dataset_*.json")
    ):
        raise SystemExit(f"--transfer-tatqa {args.transfer_tatqa}: no tatqa_dataset_*.json there")
    bench = args.transfer_financebench
    if bench is not None and not (bench / "financebench_open_source.jsonl").is_file():
        raise SystemExit(
            f"--transfer-financebench {bench}: no financebench_open_source.jsonl there"
        )
    for path in args.transfer_config:
        if not path.is_file():
            raise SystemExit(f"--transfer-config {path}: no such file")
        load_config(path)  # its schema errors now, not after the teacher's labelling


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, required=True, help="the student's settings")
    parser.add_argument("--teacher", type=Path, required=True, help="a finished run folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--temperature", type=float, default=2.0)
    parser.add_argument("--alpha", type=float, default=0.5, help="weight of the hard labels")
    parser.add_argument("--epochs", type=float, help="instead of the config's")
    parser.add_argument("--transfer-tatqa", type=Path, help="TAT-QA folder: its sentences")
    parser.add_argument("--transfer-tweets", type=int, default=0, help="TFNS training tweets")
    parser.add_argument(
        "--transfer-config",
        type=Path,
        action="append",
        default=[],
        help="a fintune config: every text of its data (repeatable)",
    )
    parser.add_argument("--transfer-financebench", type=Path, help="FinanceBench folder")
    parser.add_argument(
        "--augment",
        type=int,
        default=0,
        help="variants of each training text, words replaced by --augment-lm's choices",
    )
    parser.add_argument(
        "--augment-lm", default="gemma3-270m", help="a causal LM by fintune's model.name"
    )
    parser.add_argument(
        "--seed",
        type=int,
        help="instead of the config's: the student's start, data order, sampled transfer "
        "tweets and variants (a split keeps the config's data.split.seed where it sets one)",
    )
    args = parser.parse_args(argv)
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; a new result never overwrites an earlier one")
    refuse_bad_arguments(args)
    started = time.perf_counter()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    config = load_config(args.config, [f"seed={args.seed}"] if args.seed is not None else None)
    training = config.training
    refuse_unsupported(config, args.config)
    for needed in ("data.json", "metrics.json", "model"):
        if not (args.teacher / needed).exists():
            raise SystemExit(f"{args.teacher}: no {needed}; the teacher is a finished run folder")
    set_seed(config.seed)

    data = prepare_data(config.data, config.seed)
    teacher_data = json.loads((args.teacher / "data.json").read_text())
    if teacher_data["fingerprint"]["sha256"] != data.fingerprint["sha256"]:
        raise SystemExit(f"{args.teacher} was trained and tested on another split of the data")
    teacher = load_teacher(args.teacher, data.labels, device)
    train = data.splits["train"]
    clock = time.perf_counter()
    scored = teacher(train["text"].tolist(), batch_size=32)
    soft = np.log([[max(r["scores"][name], 1e-12) for name in data.labels] for r in scored])
    teacher_train_accuracy = float(np.mean(soft.argmax(1) == train["label"].to_numpy()))
    print(
        f"teacher on train: accuracy {teacher_train_accuracy:.4f}, n {len(train)}, "
        f"{time.perf_counter() - clock:.0f} s",
        flush=True,
    )
    everything = {t for frame in data.splits.values() for t in frame["text"]}
    cleaner = make_cleaner(config.data.cleaning)
    extra = transfer_texts(
        args.transfer_tatqa,
        args.transfer_tweets,
        everything,
        config.seed,
        tuple(args.transfer_config),
        args.transfer_financebench,
        cleaner,
    )
    augmented = 0
    if args.augment:
        clock = time.perf_counter()
        lm, lm_tokenizer = load_lm(args.augment_lm)
        texts = train["text"].tolist()
        vocabulary = {w.lower() for text in texts + extra for w in text.split() if w.isalpha()}
        variants = lm_variants(
            texts, lm, lm_tokenizer, args.augment, config.seed, known_words=vocabulary
        )
        del lm
        known = everything | set(extra)  # as cleaned: checked after cleaning the variants
        sources: dict[str, int] = {}  # each new text, and the training row it came from
        for text, source in variants:
            text = prepare(text, cleaner)
            if text and text not in known:
                sources.setdefault(text, source)
        augmented = len(sources)
        extra += list(sources)
        print(
            f"augmented texts: {augmented} ({args.augment} per training text asked, "
            f"{args.augment_lm}), made in {time.perf_counter() - clock:.0f} s",
            flush=True,
        )
    if extra:
        clock = time.perf_counter()
        scored = teacher(extra, batch_size=32)
        extra_soft = [[max(r["scores"][name], 1e-12) for name in data.labels] for r in scored]
        train = pd.concat([train, pd.DataFrame({"text": extra, "label": UNLABELLED})])
        soft = np.concatenate([soft, np.log(extra_soft)])
        shares = np.bincount(np.argmax(extra_soft, 1), minlength=len(data.labels)) / len(extra)
        shown = dict(zip(data.labels, shares.round(3).tolist(), strict=True))
        print(
            f"transfer texts: {len(extra)}, scored in {time.perf_counter() - clock:.0f} s; "
            f"the teacher's labels: {shown}",
            flush=True,
        )
        if augmented:
            own = soft[list(sources.values())].argmax(1)  # the teacher's label of the source
            changed = float(np.mean(np.argmax(extra_soft[-augmented:], 1) != own))
            print(f"augmented texts the teacher labels unlike their source: {changed:.3f}")

    set_seed(config.seed)  # the student starts as fintune's run of this config starts
    model, tokenizer, _ = load_classifier(config, data.labels, device)

    def dataset(frame: pd.DataFrame, teacher_logits=None) -> Dataset:
        columns = dict(
            tokenizer(frame["text"].tolist(), truncation=True, max_length=config.model.max_length)
        )
        columns["labels"] = frame["label"].tolist()
        if teacher_logits is not None:
            columns["teacher"] = teacher_logits.tolist()
        return Dataset.from_dict(columns)

    def collate(rows: list[dict]) -> dict:
        targets = [k for k in ("labels", "teacher") if k in rows[0]]
        tokens = [{k: v for k, v in r.items() if k not in targets} for r in rows]
        batch = tokenizer.pad(tokens, return_tensors="pt")
        return {**batch, **{k: torch.tensor([r[k] for r in rows]) for k in targets}}

    # fintune's own training arguments: checkpoint choice on training.best_metric, warm-up,
    # steps, precision; the teacher's column must reach the loss
    if args.epochs is not None:
        training = training.model_copy(update={"epochs": args.epochs})
    arguments = training_arguments(training, args.out / "checkpoints", config.seed, device)
    arguments.remove_unused_columns = False
    patience = training.early_stopping_patience
    trainer = Distiller(
        model=model,
        args=arguments,
        train_dataset=dataset(train, soft),
        eval_dataset=dataset(data.splits["validation"]),
        data_collator=collate,
        compute_metrics=compute_metrics(len(data.labels)),
        callbacks=[EarlyStoppingCallback(patience)] if patience else None,
        temperature=args.temperature,
        alpha=args.alpha,
    )
    trainer.train()
    shutil.rmtree(args.out / "checkpoints", ignore_errors=True)  # the model is saved below

    results = {}
    for role in ("validation", "test"):
        frame = data.splits[role]
        # not trainer.predict: its loader is length-grouped like training, so permuted
        logits = predict_logits(
            trainer.model, tokenizer, dataset(frame), training.eval_batch_size, device
        )
        results[role] = evaluate_predictions(
            frame["label"].to_numpy(), logits.argmax(-1), data.labels, samples=2000
        )
        write_predictions(args.out / f"predictions_{role}.csv", data, role, logits)
    trainer.model.save_pretrained(args.out / "model")
    tokenizer.save_pretrained(args.out / "model")

    # The saved folder alone (plain transformers) gives the recorded test labels.
    plain = AutoModelForSequenceClassification.from_pretrained(args.out / "model").eval()
    recorded = pd.read_csv(args.out / "predictions_test.csv", dtype=str, keep_default_na=False)
    with torch.inference_mode():
        again = [
            plain.config.id2label[int(row.argmax())]
            for i in range(0, len(recorded), 64)
            for row in plain(
                **tokenizer(
                    recorded.get("cleaned_text", recorded["text"])[i : i + 64].tolist(),
                    truncation=True,
                    max_length=config.model.max_length,
                    padding=True,
                    return_tensors="pt",
                )
            ).logits
        ]
    same = int((recorded["predicted"] == again).sum())

    teacher_metrics = json.loads((args.teacher / "metrics.json").read_text())
    summary = {
        "student": {"config": str(args.config), "model": config.model.name},
        "teacher": {
            "run": str(args.teacher),
            "train_accuracy": teacher_train_accuracy,
            **{r: {"accuracy": teacher_metrics[r]["accuracy"]} for r in ("validation", "test")},
        },
        "seed": config.seed,
        "epochs": training.epochs,
        "transfer": {
            "tatqa": str(args.transfer_tatqa),
            "tweets": args.transfer_tweets,
            "configs": [str(c) for c in args.transfer_config],
            "financebench": str(args.transfer_financebench),
            "texts": len(extra),
            "augment": {"per_text": args.augment, "lm": args.augment_lm, "texts": augmented},
        },
        "temperature": args.temperature,
        "alpha": args.alpha,
        **{
            role: {k: m[k] for k in ("n", "accuracy", "f1_macro")} | {"ci95": m["ci95"]}
            for role, m in results.items()
        },
        "plain_reload_same_test_labels": f"{same}/{len(recorded)}",
        "wall_s": round(time.perf_counter() - started, 1),
        "hardware": hardware(device),
        "versions": package_versions(),
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))
    for role, m in results.items():
        low, high = m["ci95"]["accuracy"]
        print(f"{role}: accuracy {m['accuracy']:.4f} [{low:.3f}, {high:.3f}], n {m['n']}")
    print(f"plain reload: {same}/{len(recorded)} test labels as recorded")
    hw = summary["hardware"]
    print(
        f"hardware: {hw['cpu']}, {hw['cpu_cores_usable']} cores, {hw['ram_gib']} GiB RAM, "
        f"device {hw['device']}, torch threads {hw['torch_threads']}; seed {config.seed}"
    )
    print(f"wall {summary['wall_s'] / 60:.1f} min; {args.out}")


if __name__ == "__main__":
    main()
