"""Benchmark diagnostic for issue #3: how far do several finished runs get together?

An ensemble averages the class probabilities of finished runs. It has N times the
parameters, so it is no answer to "the best 22M configuration"; its accuracy is a rough
ceiling for what soups, distillation or better selection among such runs could reach.

    .venv/bin/python benchmarks/ensemble.py RUN [RUN ...] [--fpb-agreement DIR]

Prints each run's and the ensemble's validation and test accuracy, test with its bootstrap
95% CI. With --fpb-agreement (the Financial PhraseBank folder) it also splits test accuracy
by how many annotators agreed on each sentence's label.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fintune.data.sources import read_table
from fintune.evaluation.metrics import bootstrap_ci
from fintune.models.load import pick_device
from fintune.predict import Predictor
from fintune.run_dir import hardware

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling, as a script or not
from paired_runs import read_predictions, refuse_repeats  # noqa: E402

# Financial PhraseBank's nested subsets, most agreement first: a sentence's level is the
# first file that holds it.
AGREEMENT_FILES = {
    "100%": "Sentences_AllAgree.txt",
    "75-99%": "Sentences_75Agree.txt",
    "66-74%": "Sentences_66Agree.txt",
    "50-65%": "Sentences_50Agree.txt",
}


def probabilities(run: Path, texts: list[str]) -> tuple[np.ndarray, list[str]]:
    """Class probabilities for texts as the run's model read them (`model_inputs`): they
    are not cleaned a second time."""
    predictor = Predictor.from_run(run)
    predictor.cleaner = None
    results = predictor(texts, batch_size=64)
    labels = list(results[0]["scores"])
    return np.array([[r["scores"][label] for label in labels] for r in results]), labels


def model_inputs(frame: pd.DataFrame) -> list[str]:
    """The texts a run's model read: its predictions' cleaned_text after data.cleaning
    (text holds the data's own), else text."""
    return frame.get("cleaned_text", frame["text"]).tolist()


def agreement_levels(folder: Path, texts: list[str]) -> list[str]:
    sentences = {
        level: set(read_table(folder / name, "fpb")["text"])
        for level, name in AGREEMENT_FILES.items()
    }
    levels = []
    for text in texts:
        level = next((lvl for lvl, s in sentences.items() if text.strip() in s), None)
        if level is None:
            raise SystemExit(f"not a Financial PhraseBank sentence: {text[:80]!r}")
        levels.append(level)
    return levels


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--fpb-agreement", type=Path, help="the Financial PhraseBank folder")
    args = parser.parse_args(argv)
    refuse_repeats(args.runs)
    torch.manual_seed(0)
    hw = hardware(pick_device("auto"))  # Predictor.from_run's device
    print(f"{len(args.runs)} runs; torch threads {torch.get_num_threads()}")
    print(
        f"hardware: {hw['cpu']}, {hw['cpu_cores_usable']} cores, {hw['ram_gib']} GiB RAM, "
        f"device {hw['device']}" + (f" ({hw['gpu']})" if "gpu" in hw else "")
    )

    frames = {(r, s): read_predictions(r, s) for r in args.runs for s in ("validation", "test")}
    for split in ("validation", "test"):
        frame = frames[args.runs[0], split]
        texts, truth = frame["text"].tolist(), frame["label"].to_numpy()
        print(f"{split}: n = {len(texts)}")
        members = []
        for run in args.runs:
            other = frames[run, split]
            if not other["text"].equals(frame["text"]):
                raise SystemExit(f"{run}: its {split} examples differ from {args.runs[0]}'s")
            if not other["label"].equals(frame["label"]):
                raise SystemExit(f"{run}: its {split} labels differ from {args.runs[0]}'s")
            probs, labels = probabilities(run, model_inputs(other))
            if members and labels != members[0][1]:
                raise SystemExit(f"{run}: label order {labels} differs from the first run's")
            members.append((probs, labels))
            accuracy = np.mean(np.array(labels)[probs.argmax(1)] == truth)
            print(f"  {accuracy:.4f}  {run}", flush=True)
        labels = members[0][1]
        predicted = np.array(labels)[np.mean([m[0] for m in members], axis=0).argmax(1)]
        correct = predicted == truth
        line = f"  {correct.mean():.4f}  ensemble of {len(members)}"
        if split == "test":
            index = {label: i for i, label in enumerate(labels)}
            y, p = (np.array([index[v] for v in a]) for a in (truth, predicted))
            low, high = bootstrap_ci(y, p, len(labels))["accuracy"]
            line += f"  95% CI [{low:.4f}, {high:.4f}]"
        print(line)

    if args.fpb_agreement:
        print("test accuracy by annotator agreement (ensemble; then each run):")
        levels = np.array(agreement_levels(args.fpb_agreement, texts))
        runs_correct = [np.array(m[1])[m[0].argmax(1)] == truth for m in members]
        for level in AGREEMENT_FILES:
            mask = levels == level
            if not mask.any():  # a test set without this level: no accuracy to show
                print(f"  {level:>7}  n =    0")
                continue
            each = " ".join(f"{c[mask].mean():.3f}" for c in runs_correct)
            print(f"  {level:>7}  n = {mask.sum():4d}  {correct[mask].mean():.3f}  ({each})")


if __name__ == "__main__":
    main()
