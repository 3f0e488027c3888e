"""What does a recipe reach over seeds? Its runs at several seeds, on the same examples.

    .venv/bin/python benchmarks/seed_mean.py RUN [RUN ...] [--split test]

Prints each run's accuracy and macro-F1, their mean and standard deviation over the runs,
and two bootstrap 95% intervals of the mean:
- over test examples, for these runs (the examples resampled once for all runs, which share
  them: fintune's seed_mean_ci, as a study reports a cell of several seeds). It takes the
  trained runs as they are, so it leaves out the seeds' spread: three identical runs get
  one run's interval.
- for the recipe: the runs resampled too (N of N, with replacement), then the examples, so
  it holds both the test set's noise and training's. With 3 runs this is coarse (there
  are only 10 ways to draw them); read it with the std beside it.
A run is any folder with predictions_<split>.csv: a fintune run, a distil.py student, a soup.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from fintune.evaluation.metrics import confusion, metrics_from_confusion
from fintune.evaluation.paired import seed_mean_ci

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling, as a script or not
from paired_runs import read_predictions, refuse_repeats  # noqa: E402

METRICS = ("accuracy", "f1_macro")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        raise SystemExit("give the runs of at least two seeds: one run has no spread")
    refuse_repeats(args.runs)
    frames = [read_predictions(run, args.split) for run in args.runs]
    for run, frame in zip(args.runs[1:], frames[1:], strict=True):
        first = frames[0]
        if not (frame["text"].equals(first["text"]) and frame["label"].equals(first["label"])):
            raise SystemExit(f"{run}: its {args.split} examples differ from {args.runs[0]}'s")
    labels = sorted({v for f in frames for v in (*f["label"], *f["predicted"])})
    index = {label: i for i, label in enumerate(labels)}
    y = frames[0]["label"].map(index).to_numpy()
    blocks = [(y, f["predicted"].map(index).to_numpy()) for f in frames]
    scores = [metrics_from_confusion(confusion(y, p, len(labels))) for _, p in blocks]
    print(f"{args.split}: n = {len(y)}, {len(blocks)} runs")
    for run, score in zip(args.runs, scores, strict=True):
        print(f"  accuracy {score['accuracy']:.4f}  macro-F1 {score['f1_macro']:.4f}  {run}")
    interval = seed_mean_ci(blocks, len(labels))
    recipe = recipe_ci(blocks, len(labels))
    for metric in METRICS:
        values = np.array([s[metric] for s in scores])
        (low, high), (r_low, r_high) = interval[metric], recipe[metric]
        print(
            f"  {metric}: mean {values.mean():.4f} ± {values.std(ddof=1):.4f} (std over runs), "
            f"95% CI over test examples for these runs [{low:.4f}, {high:.4f}], "
            f"for the recipe (runs resampled too) [{r_low:.4f}, {r_high:.4f}]"
        )


def recipe_ci(
    blocks: list[tuple[np.ndarray, np.ndarray]], k: int, samples: int = 2000, seed: int = 0
) -> dict[str, list[float]]:
    """95% interval of the mean over runs when both the runs (seeds) and the shared test
    examples are drawn again: a two-level bootstrap."""
    rng = np.random.default_rng(seed)
    y = blocks[0][0]
    whole = [confusion(y, p, k) for _, p in blocks]
    replicates: dict[str, list[float]] = {m: [] for m in METRICS}
    for _ in range(samples):
        runs = rng.integers(len(blocks), size=len(blocks))
        weights = np.bincount(rng.integers(len(y), size=len(y)), minlength=len(y))
        scores = [
            metrics_from_confusion(confusion(y, blocks[r][1], k, weights), whole[r]) for r in runs
        ]
        for m in METRICS:
            replicates[m].append(float(np.mean([s[m] for s in scores])))
    return {
        m: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]
        for m, v in replicates.items()
    }


if __name__ == "__main__":
    main()
