"""Is run B better than run A? Pairs two finished runs' predictions on the same examples.

    .venv/bin/python benchmarks/paired_runs.py RUN_A RUN_B [--split test]

Prints each run's accuracy and macro-F1, the difference B - A with its paired-bootstrap 95%
interval and verdict, and the exact McNemar test on accuracy: the same statistics a
`fintune compare` study applies to its cells, here for runs made outside one study.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

from fintune.evaluation.metrics import confusion, metrics_from_confusion
from fintune.evaluation.paired import format_difference, format_p, paired_bootstrap

# Read predictions_*.csv with labels as text: "true", "NA" or "01" stay the labels they were.
TEXT_COLUMNS = {"text": str, "label": str, "predicted": str, "cleaned_text": str}


def read_predictions(run: Path, split: str) -> pd.DataFrame:
    path = run / f"predictions_{split}.csv"
    if not path.is_file():
        raise SystemExit(f"{run}: no predictions_{split}.csv (not a finished run?)")
    try:
        frame = pd.read_csv(path, dtype=TEXT_COLUMNS, keep_default_na=False)
    except (ValueError, pd.errors.ParserError) as error:  # EmptyDataError is a ValueError
        raise SystemExit(f"{path}: damaged or cut short ({error})") from None
    missing = [c for c in ("text", "label", "predicted") if c not in frame]
    if missing or frame.empty:
        lacks = f"no {', '.join(missing)} column" if missing else "no rows"
        raise SystemExit(f"{path}: not a run's predictions ({lacks})")
    return frame


def refuse_repeats(runs: list[Path]) -> None:
    """A run given twice would count twice (double weight), which no one means."""
    seen: dict[Path, Path] = {}
    for run in runs:
        if run.resolve() in seen:
            raise SystemExit(f"{run}: given twice (also as {seen[run.resolve()]})")
        seen[run.resolve()] = run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("baseline", type=Path)
    parser.add_argument("candidate", type=Path)
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)
    refuse_repeats([args.baseline, args.candidate])
    a, b = (read_predictions(run, args.split) for run in (args.baseline, args.candidate))
    if not (a["text"].equals(b["text"]) and a["label"].equals(b["label"])):
        raise SystemExit(f"the two runs' {args.split} examples differ; they cannot be paired")
    labels = sorted(set(a["label"]) | set(a["predicted"]) | set(b["predicted"]))
    index = {label: i for i, label in enumerate(labels)}
    y = a["label"].map(index).to_numpy()
    pa, pb = a["predicted"].map(index).to_numpy(), b["predicted"].map(index).to_numpy()
    difference = paired_bootstrap([(y, pa)], [(y, pb)], len(labels))
    print(f"{args.split}: n = {len(y)}")
    for name, run, p in (("A", args.baseline, pa), ("B", args.candidate, pb)):
        f1 = metrics_from_confusion(confusion(y, p, len(labels)))["f1_macro"]
        print(f"  {name} accuracy {np.mean(p == y):.4f}  macro-F1 {f1:.4f}  {run}")
    for metric in ("accuracy", "f1_macro"):
        d = difference[metric]
        shown = format_difference(d["difference"], *d["ci95"])
        print(
            f"  B - A {metric}: {shown} {d['verdict']}"
            f" ({d['test']} p = {format_p(d['p'], d['p_floor'])})"
        )
    test = difference["accuracy"]
    p = format_p(test["exact_p"], test["p_floor"])
    print(
        f"  McNemar: {test['baseline_ahead']} right only for A, "
        f"{test['candidate_ahead']} only for B, exact p = {p}"
    )


if __name__ == "__main__":
    main()
