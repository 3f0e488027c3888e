"""What does a recipe reach over seeds? Its runs at several seeds, on the same examples.

    .venv/bin/python benchmarks/seed_mean.py RUN [RUN ...] [--split test]

Prints each run's accuracy and macro-F1, their mean and standard deviation over the runs,
and the bootstrap 95% interval of the mean (the examples resampled once for all runs, which
share them: fintune's seed_mean_ci, as a study reports a cell of several seeds). A run is any
folder with predictions_<split>.csv: a fintune run, a distil.py student, a soup.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from fintune.evaluation.metrics import confusion, metrics_from_confusion
from fintune.evaluation.paired import seed_mean_ci

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling, as a script or not
from paired_runs import read_predictions  # noqa: E402

METRICS = ("accuracy", "f1_macro")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        raise SystemExit("give the runs of at least two seeds: one run has no spread")
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
    for metric in METRICS:
        values = np.array([s[metric] for s in scores])
        low, high = interval[metric]
        print(
            f"  {metric}: mean {values.mean():.4f} ± {values.std(ddof=1):.4f} (std over runs), "
            f"95% CI of the mean [{low:.4f}, {high:.4f}]"
        )


if __name__ == "__main__":
    main()
