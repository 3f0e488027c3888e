"""Benchmark: serve the MiniLM run from benchmarks/fpb_methods.py on loopback and load it
from this separate process. Writes p50/p99 latency and throughput to benchmarks/out/.

    .venv/bin/python benchmarks/serve_load.py [--precision fp32|bf16|int8] [--requests 10000]
        [--batch-requests N] [--single-requests 500] [--run RUN_DIR] [--out DIR]

Texts are the run's Financial PhraseBank test sentences, cycled. Before the load, all 967
go through /analyze/batch once and the served labels are compared with the labels the run
recorded at evaluation. Every figure is measured. Writes DIR/serve_load_<precision>.json
(default benchmarks/out), never over an earlier one.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import torch

from fintune.run_dir import hardware, package_versions

sys.path.insert(0, str(Path(__file__).resolve().parent))  # its sibling, as a script or not
from paired_runs import read_predictions  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "out"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(run_dir: Path, port: int, precision: str) -> subprocess.Popen:
    """`fintune serve` on the run; a server that exits or does not answer is an error that
    gives what it printed."""
    command = [sys.executable, "-m", "fintune.cli", "serve", str(run_dir), "--port", str(port)]
    command += ["--precision", precision]
    # a file, not a pipe: a full pipe would stall the server (which keeps its own handle)
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log)
        for _ in range(300):
            if process.poll() is not None:
                break
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    return process
            except httpx.HTTPError:
                time.sleep(0.2)
        process.kill()
        process.wait()
        log.seek(0)
        said = log.read().decode(errors="replace").strip()
    raise RuntimeError(f"fintune serve {run_dir} did not start: {said or 'no output'}")


async def load(url: str, bodies: list[dict], path: str, requests: int, concurrency: int) -> dict:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                start = time.perf_counter()
                try:
                    response = await client.post(path, json=bodies[i % len(bodies)])
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:  # a refused or failed request serves no text
                    latencies.append(time.perf_counter() - start)
                errors += not ok

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    texts_per_request = len(bodies[0].get("texts", [None]))
    answered = requests - errors

    def percentile(q: int) -> float | None:
        return round(float(np.percentile(ms, q)), 2) if len(ms) else None

    return {
        "path": path,
        "requests": requests,
        "concurrency": concurrency,
        "texts_per_request": texts_per_request,
        "errors": errors,
        "wall_s": round(wall, 2),
        "requests_per_s": round(answered / wall, 1),
        "texts_per_s": round(answered * texts_per_request / wall, 1),
        "p50_ms": percentile(50),
        "p99_ms": percentile(99),
    }


def label_agreement(url: str, run_dir: Path) -> dict:
    """Served labels against the labels the run recorded when it was evaluated (fp32)."""
    recorded = read_predictions(run_dir, "test")
    texts, served = list(recorded["text"]), []
    for i in range(0, len(texts), 64):
        response = httpx.post(url + "/analyze/batch", json={"texts": texts[i : i + 64]}, timeout=60)
        if response.status_code != 200:
            raise RuntimeError(f"/analyze/batch, texts {i + 1}-: {response.text}")
        served += [r["label"] for r in response.json()]
    same = int((recorded["predicted"] == served).sum())
    accuracy = float((recorded["label"] == served).mean())
    return {"n": len(texts), "same_label": same, "served_accuracy": round(accuracy, 4)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--run", type=Path, default=None)
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "int8"])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--batch-requests", type=int, default=10_000)
    parser.add_argument("--single-requests", type=int, default=500)
    parser.add_argument("--out", type=Path, default=OUT, help="folder of the result file")
    args = parser.parse_args(argv)
    for flag in ("requests", "batch_requests", "single_requests"):
        if getattr(args, flag) < 0:  # checked before the server starts and the phases run
            parser.error(f"--{flag.replace('_', '-')} must be 0 or more")
    result_file = args.out / f"serve_load_{args.precision}.json"
    if result_file.exists():
        raise SystemExit(f"{result_file} exists; move it away or give another --out")
    run_dir = args.run
    if run_dir is None:
        found = sorted(glob.glob(str(OUT / "runs" / "*-fpb50-minilm-full")))
        if not found:
            raise SystemExit(
                f"no run {OUT / 'runs'}/*-fpb50-minilm-full: run benchmarks/fpb_methods.py "
                "first, or give --run RUN_DIR"
            )
        run_dir = Path(found[-1])
    texts = list(read_predictions(run_dir, "test")["text"])  # before the server starts
    singles = [{"text": t} for t in texts]
    batches = [
        {"texts": [texts[(i + j) % len(texts)] for j in range(32)]} for i in range(0, 960, 32)
    ]

    port = free_port()
    server = start_server(run_dir, port, args.precision)
    url = f"http://127.0.0.1:{port}"
    try:
        agreement = label_agreement(url, run_dir)
        asyncio.run(load(url, singles, "/analyze", 50, 4))  # warm-up, not counted
        phases = [
            asyncio.run(load(url, singles, "/analyze", args.single_requests, 1)),
            asyncio.run(load(url, singles, "/analyze", args.requests, 32)),
            asyncio.run(load(url, batches, "/analyze/batch", args.batch_requests, 32)),
        ]
        serving = httpx.get(url + "/model").json()["serving"]
    finally:
        server.terminate()
        server.wait(timeout=10)
    result = {
        "run": str(run_dir),
        "precision": args.precision,
        "agreement": agreement,
        "phases": phases,
        "server_batching": serving,
        "cpu_cores": os.cpu_count(),
        # the server's device: `fintune serve` takes the GPU when one is visible
        "hardware": hardware("cuda" if torch.cuda.is_available() else "cpu"),
        "versions": package_versions(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    result_file.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
