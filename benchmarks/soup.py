"""Benchmark lever for issue #3: a weight-averaged "soup" of finished runs.

Runs fine-tuned from the same pretrained model on the same data usually lie in one basin,
so the average of their weights is itself a good model, often better than each of them
(Wortsman et al., 2022, "Model soups"). Unlike an ensemble it is one model of the same
size. Ingredients are full, LoRA, DoRA or IA3 runs of one base model and one label order;
adapters are merged into the base first. Students of benchmarks/distil.py (a plain
transformers folder beside summary.json) are ingredients too: full fine-tunes of the model
their config names.

    .venv/bin/python benchmarks/soup.py RUN [RUN ...] --out benchmarks/out/soups/NAME

Ingredients are ranked by validation accuracy. The greedy soup adds each in turn and keeps
it only if validation accuracy does not drop; the uniform soup takes them all. Selection
sees validation only. Test is read once per model at the end and printed with its bootstrap
95% CI. The greedy soup is saved as a run-like folder (model/, config.yaml, metrics.json,
predictions_*.csv, soup.json) that `fintune serve` and benchmarks/paired_runs.py accept;
the uniform soup likewise in its uniform/ folder.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import functools
import json
import sys
from pathlib import Path

import numpy as np
import torch
import yaml
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from fintune.config import load_config
from fintune.evaluation.metrics import bootstrap_ci, evaluate_predictions
from fintune.models import load_classifier, load_saved_classifier
from fintune.models.load import MODEL_INFO, ModelInfo, save_classifier
from fintune.predict import Predictor
from fintune.run_dir import hardware, package_versions

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling, as a script or not
from paired_runs import read_predictions, refuse_repeats  # noqa: E402

# Methods whose weights fold into the plain model, so runs of them can be averaged.
MERGEABLE = ("full", "lora", "dora", "ia3")
ROOT = Path(__file__).resolve().parent.parent  # distil.py records its config from here


def student_config(run: Path) -> Path | None:
    """The config of a benchmarks/distil.py student, or None for a fintune run."""
    summary = run / "summary.json"
    if (run / "model" / MODEL_INFO).is_file() or not summary.is_file():
        return None
    student = json.loads(summary.read_text()).get("student")
    return None if student is None else ROOT / student["config"]


@functools.cache  # a student's is made by loading its base: once per run
def model_info(run: Path) -> dict:
    """What fintune saved beside a run's model; for a distil.py student (a plain folder),
    what fintune makes for the student's config: it was fully fine-tuned from that model."""
    config = student_config(run)
    if config is None:
        path = run / "model" / MODEL_INFO
        if not path.is_file():
            raise SystemExit(f"{run}: no saved model ({path} is missing)")
        return json.loads(path.read_text())
    saved = json.loads((run / "model" / "config.json").read_text())
    labels = [saved["id2label"][str(i)] for i in range(len(saved["id2label"]))]
    _, _, info = load_classifier(load_config(config), labels, "cpu")
    return dataclasses.asdict(info)


def check_ingredients(runs: list[Path]) -> None:
    """Before any run's weights load: each run has a saved model of a method that folds
    into the plain model, and all were fine-tuned from the same base for the same labels
    (weights of different bases have nothing to average)."""
    infos = [model_info(run) for run in runs]
    first = infos[0]
    for run, info in zip(runs, infos, strict=True):
        if info["method"] not in MERGEABLE:
            raise SystemExit(
                f"{run}: method {info['method']} does not fold into the model's weights; "
                f"a soup takes runs of {', '.join(MERGEABLE)}"
            )
        for key in ("base", "gguf_file", "revision", "labels"):
            what = "labels" if key == "labels" else "base model"
            ours, theirs = info.get(key), first.get(key)
            if key == "base":  # a packaged or hub base is the same wherever it is stored
                ours, theirs = info.get("hub_id") or ours, first.get("hub_id") or theirs
            if ours != theirs:
                raise SystemExit(
                    f"{run}: its {what} ({ours}) differs from {runs[0]}'s ({theirs}); "
                    "a soup averages runs fine-tuned from one base for the same labels"
                )


def load(run: Path):
    if student_config(run) is not None:
        model = AutoModelForSequenceClassification.from_pretrained(run / "model").eval()
        tokenizer = AutoTokenizer.from_pretrained(run / "model")
        return model, tokenizer, ModelInfo(**model_info(run))
    model, tokenizer, info = load_saved_classifier(run / "model")
    if hasattr(model, "merge_and_unload"):  # LoRA/DoRA: fold the adapter into the weights
        model = model.merge_and_unload()
    return model, tokenizer, info


def predict(predictor: Predictor, texts: list[str]) -> list[str]:
    return [r["label"] for r in predictor(texts, batch_size=64)]


def average(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {
        k: torch.stack([s[k].float() for s in states]).mean(0).to(states[0][k].dtype)
        if states[0][k].is_floating_point()
        else states[0][k]
        for k in states[0]
    }


def save_soup(folder: Path, model, tokenizer, info, frames: dict, predicted: dict, best_run):
    """A soup saved like a run: model/, predictions_*.csv, config.yaml and metrics.json."""
    folder.mkdir(parents=True, exist_ok=True)
    # Merged LoRA is a plain model now: save it as `full` so it loads without PEFT.
    full = dataclasses.replace(info, method="full", method_settings={})
    save_classifier(model, tokenizer, full, folder / "model")
    for split, frame in frames.items():
        # cleaned_text too, when the runs had data.cleaning: it is what the soup read
        columns = [c for c in ("text", "cleaned_text", "label") if c in frame]
        frame[columns].assign(predicted=predicted[split]).to_csv(
            folder / f"predictions_{split}.csv", index=False, quoting=csv.QUOTE_NONNUMERIC
        )  # as a run writes them: a "\r" in a text stays in it
    # the best run's config (its data.cleaning is the soup's), named as the soup and saved
    # as full like its model; with metrics.json it is a run `fintune serve` takes
    config = yaml.safe_load((student_config(best_run) or best_run / "config.yaml").read_text())
    config.update(name=folder.name, method={"name": "full"})
    (folder / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    index = {label: i for i, label in enumerate(info.labels)}
    metrics = {
        split: evaluate_predictions(
            [index[v] for v in frame["label"]], [index[v] for v in predicted[split]], info.labels
        )
        for split, frame in frames.items()
    }
    (folder / "metrics.json").write_text(json.dumps({"labels": info.labels, **metrics}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.out.exists():
        raise SystemExit(f"{args.out} exists; a soup never overwrites an earlier one")
    refuse_repeats(args.runs)
    check_ingredients(args.runs)
    torch.manual_seed(0)

    frames = {s: read_predictions(args.runs[0], s) for s in ("validation", "test")}
    for run in args.runs[1:]:
        for split, frame in frames.items():
            other = read_predictions(run, split)
            if not other["text"].equals(frame["text"]):
                raise SystemExit(f"{run}: its {split} examples differ from {args.runs[0]}'s")
            if not other["label"].equals(frame["label"]):
                raise SystemExit(f"{run}: its {split} labels differ from {args.runs[0]}'s")
            if not other.get("cleaned_text", other["text"]).equals(
                frame.get("cleaned_text", frame["text"])
            ):
                raise SystemExit(
                    f"{run}: read its {split} texts cleaned otherwise than {args.runs[0]} "
                    "(data.cleaning differs); a soup is scored on one set of texts"
                )
    # what the models read: the cleaned text of a run with data.cleaning (no cleaner below)
    texts = {s: f.get("cleaned_text", f["text"]).tolist() for s, f in frames.items()}
    truth = {s: f["label"].to_numpy() for s, f in frames.items()}
    hw = hardware("cpu")  # the runs load on the CPU
    print(
        f"{len(args.runs)} runs; validation: n = {len(truth['validation'])}, "
        f"test: n = {len(truth['test'])}; hardware: {hw['cpu']}, {hw['cpu_cores_usable']} "
        f"cores, {hw['ram_gib']} GiB RAM, torch threads {hw['torch_threads']}",
        flush=True,
    )

    def accuracy(predictor: Predictor, split: str) -> float:
        return float(np.mean(np.array(predict(predictor, texts[split])) == truth[split]))

    ingredients = []
    for run in args.runs:
        model, tokenizer, info = load(run)
        predictor = Predictor(model, tokenizer, info.labels, info.max_length)
        ingredients.append((accuracy(predictor, "validation"), run, model.state_dict(), info))
        print(f"ingredient {run.name}: validation {ingredients[-1][0]:.4f}", flush=True)
    if len({tuple(i[3].labels) for i in ingredients}) > 1:
        raise SystemExit("the runs' label orders differ; their heads cannot be averaged")
    ingredients.sort(key=lambda i: -i[0])
    best_val, best_run, best_state, info = ingredients[0]

    soup_model, tokenizer, _ = load(best_run)
    soup = Predictor(soup_model, tokenizer, info.labels, info.max_length)
    chosen, chosen_val = [best_state], best_val
    kept = [best_run.name]
    for _, run, state, _ in ingredients[1:]:
        soup_model.load_state_dict(average(chosen + [state]))
        trial = accuracy(soup, "validation")
        print(f"greedy: + {run.name} -> validation {trial:.4f} (now {chosen_val:.4f})", flush=True)
        if trial >= chosen_val:
            chosen, chosen_val = chosen + [state], trial
            kept.append(run.name)

    results = {}
    args.out.mkdir(parents=True)
    # the greedy soup is the candidate; the uniform one is kept beside it for pairing
    soups = {"uniform": [i[2] for i in ingredients], "greedy": chosen}
    folders = {"uniform": args.out / "uniform", "greedy": args.out}
    for name, states in soups.items():
        soup_model.load_state_dict(average(states))
        labels = {s: np.array(predict(soup, texts[s])) for s in texts}
        results[name] = {s: float(np.mean(labels[s] == truth[s])) for s in ("validation", "test")}
        index = {label: i for i, label in enumerate(info.labels)}
        y, p = (np.array([index[v] for v in a]) for a in (truth["test"], labels["test"]))
        results[name]["test_ci95"] = bootstrap_ci(y, p, len(info.labels))["accuracy"]
        results[name]["ingredients"] = len(states)
        save_soup(folders[name], soup_model, tokenizer, info, frames, labels, best_run)
    results["best_ingredient"] = {"run": str(best_run), "validation": best_val}
    results["greedy_kept"] = kept
    results["runs"] = [str(r) for r in args.runs]
    results["n"] = {split: len(labels) for split, labels in truth.items()}
    results["hardware"], results["versions"] = hw, package_versions()
    (args.out / "soup.json").write_text(json.dumps(results, indent=2))
    print(json.dumps({k: results[k] for k in ("uniform", "greedy", "greedy_kept")}, indent=2))


if __name__ == "__main__":
    main()
