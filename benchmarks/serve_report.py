"""Render benchmarks/out/serve_load*.json (from serve_load.py) as a BENCHMARKS.md section.

.venv/bin/python benchmarks/serve_report.py [--out DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "out"
NAMES = {"/analyze": "single `/analyze`", "/analyze/batch": "`/analyze/batch`, 32 texts"}


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"  # None: no request was answered


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder of serve_load's files")
    args = parser.parse_args(argv)
    results = {
        precision: json.loads(path.read_text())
        for precision in ("fp32", "bf16", "int8")
        if (path := args.out / f"serve_load_{precision}.json").is_file()
    }
    if not results:
        raise SystemExit(f"no serve_load_*.json in {args.out}: run benchmarks/serve_load.py")
    runs = {precision: result.get("run") for precision, result in results.items()}
    # by folder name (timestamped, unique): serve_load records --run as typed, else absolute
    if len({Path(str(run)).name for run in runs.values()}) > 1:  # say, fpb_methods.py rerun
        served = "; ".join(f"{precision}: {run}" for precision, run in runs.items())
        raise SystemExit(
            f"the files in {args.out} served different runs ({served}): measure every "
            "precision on one run (serve_load.py --run RUN_DIR)"
        )
    machines = {
        precision: (
            hw.get("cpu"),
            hw.get("cpu_cores_usable", result.get("cpu_cores")),
            hw.get("device"),
        )
        for precision, result in results.items()
        for hw in [result.get("hardware", {})]
    }
    if len(set(machines.values())) > 1:  # the header states one machine for the whole table
        measured = "; ".join(
            f"{precision}: {cpu or 'unrecorded CPU'}, {cores} cores, {device or 'cpu'}"
            for precision, (cpu, cores, device) in machines.items()
        )
        raise SystemExit(
            f"the files in {args.out} were measured on different machines ({measured}): "
            "measure every precision on one machine"
        )
    # what was measured, from the first result (files before hardware was recorded: cores)
    first = next(iter(results.values()))
    machine = first.get("hardware", {})
    cores = machine.get("cpu_cores_usable", first["cpu_cores"])
    n = first["agreement"]["n"]
    lines = [
        "## Serving: the MiniLM Financial PhraseBank model over HTTP",
        "",
        "`benchmarks/serve_load.py` starts `fintune serve` on the `full` run above ("
        + (f"`{Path(first['run']).name}`; " if first.get("run") else "")
        + "loopback, "
        f"{cores} CPU cores, uvicorn, one process) and loads it from a second process (Python, "
        f"asyncio + httpx, keep-alive connections), which shares the same {cores} cores. Texts: "
        f"the run's {n} test sentences, cycled. Latency is per request, client side; a warm-up "
        "of 50 requests is not counted. Latency and throughput count answered requests only.",
        "",
    ]
    for precision, result in results.items():
        hw, versions = result.get("hardware"), result.get("versions", {})
        if hw:
            lines.append(
                f"`--precision {precision}`: measured on {hw['cpu']}, {hw['cpu_cores_usable']} "
                f"cores, {hw['ram_gib']} GiB RAM, device {hw['device']}"
                + (f" ({hw['gpu']})" if "gpu" in hw else "")
                + f"; torch {versions.get('torch', '?')}.  "
            )
    lines += [
        "",
        "| model | endpoint | concurrency | requests | errors | p50 ms | p99 ms | requests/s "
        "| texts/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    agreement = []
    for precision, result in results.items():
        model = f"`--precision {precision}`"
        a = result["agreement"]
        agreement.append(
            f"- {model}: the served label equals the run's recorded label for "
            f"{a['same_label']}/{a['n']} test sentences; served test accuracy "
            f"{a['served_accuracy']:.4f}."
        )
        for p in result["phases"]:
            lines.append(
                f"| {model} | {NAMES[p['path']]} | {p['concurrency']} | {p['requests']:,} | "
                f"{p['errors']} | {ms(p['p50_ms'])} | {ms(p['p99_ms'])} | "
                f"{p['requests_per_s']:.1f} | {p['texts_per_s']:.1f} |"
            )
        b = result["server_batching"]
        lines.append(
            f"| {model} | server side, all phases | | | | | | | mean model batch "
            f"{b['mean_batch']}, largest {b['largest_batch']} |"
        )
    lines += ["", "Served labels against the labels the run recorded at evaluation (fp32):", ""]
    print("\n".join(lines + agreement))


if __name__ == "__main__":
    main()
