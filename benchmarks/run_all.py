"""Run every benchmark in benchmarks/ one after the other and write benchmarks/RESULTS.md.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only sentiment,qa]
    .venv/bin/python benchmarks/run_all.py --only train-minilm   # opt-in: trains real models

Each script writes its JSON to benchmarks/out/; RESULTS.md gathers the headline ratios of all of
them in one table (with the date, the machine, torch and transformers versions), followed by
each script's own printed table. ``--quick`` runs every script on fewer inputs and repeats (a
few minutes on 2 cores instead of about half an hour). A benchmark that fails is reported in
RESULTS.md and the others still run; timings never fail anything.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from timing import machine

ROOT = Path(__file__).resolve().parents[1]
HERE = ROOT / "benchmarks"
OUT = HERE / "out"

# name: (script, its JSON, full-run arguments, quick-run arguments)
BENCHMARKS: dict[str, tuple[str, str, list[str], list[str]]] = {
    "startup": ("bench_startup.py", "startup.json", [], ["--repeat", "5"]),
    "search": (
        "bench_search.py",
        "bench_search.json",
        [],
        ["--sentences", "300", "--repeats", "2", "--query-repeats", "20", "--real", "2000",
         "--queries", "100"],
    ),
    "generation": (
        "bench_generation.py",
        "bench_generation.json",
        [],
        ["--inputs", "32", "--repeats", "1"],
    ),
    "sentiment": ("bench_sentiment.py", "bench_sentiment.json", [], ["--quick"]),
    "qa": ("bench_qa.py", "bench_qa.json", [], ["--quick"]),
    "run": ("bench_run.py", "bench_run.json", [], ["--quick"]),
    "backends": ("bench_backends.py", "bench_backends.json", [], ["--quick"]),
    # Fine-tunes, distils and quantizes the real MiniLM on SST-2 (about half an hour; --quick
    # trains on 2,000 sentences, far below the accuracy targets).
    "train-minilm": (
        "train_minilm.py",
        "train_minilm.json",
        [],
        ["--train-sentences", "2000", "--repeats", "1"],
    ),
}
# Run only when --only names them: they take long and overwrite trained models.
OPT_IN = {"train-minilm"}

Row = tuple[str, str, str, str]  # benchmark, what, figure, ratio against the baseline


def startup_rows(data: dict[str, Any]) -> list[Row]:
    seconds = data["seconds"]
    bare = seconds["python -c pass (baseline)"]
    return [
        ("startup", f"`{name}` (median s)", f"{value:.3f} s", f"{value / bare:.1f}x bare python")
        for name, value in seconds.items()
        if name.startswith("nlpsuite")
    ]


def search_rows(data: dict[str, Any]) -> list[Row]:
    embedding = data["embedding"]
    rows = [
        (
            "search",
            f"embed {embedding['sentences']} STS-B sentences vs SentenceTransformer",
            f"{embedding['ours_sentences_per_s']:.0f} sent/s",
            f"{embedding['ratio_ours_over_sentence_transformers']:.2f}x",
        )
    ]
    for latency in data["query_latency"]:
        rows.append(
            (
                "search",
                f"top-10 query over {latency['documents']:,} vectors",
                f"{latency['single_query_median_ms']:.2f} ms",
                "-",
            )
        )
    for latency in data["query_latency"]:
        rows.append(
            (
                "search",
                f"top-10 query over {latency['documents']:,} vectors, 32 at once (per query)",
                f"{latency['batch_32_per_query_ms']:.2f} ms",
                "-",
            )
        )
    for latency in data["query_latency"]:
        # Absent from runs without faiss (and from JSON written before the HNSW index existed).
        ann = latency.get("ann")
        if ann:
            rows.append(
                (
                    "search",
                    f"top-10 HNSW query over {latency['documents']:,} vectors (recall@10 "
                    f"{ann['recall_at_10']:.3f}, build {ann['build_s']:.1f} s)",
                    f"{ann['single_query_median_ms']:.3f} ms",
                    f"{latency['single_query_median_ms'] / ann['single_query_median_ms']:.1f}x "
                    "exact's speed",
                )
            )
    return rows


def generation_rows(data: dict[str, Any]) -> list[Row]:
    return [
        (
            "generation",
            f"{r['model']}, {r['workload']}: nlpsuite vs plain generate()",
            f"{r['nlpsuite_tokens_per_s']:.0f} tok/s",
            f"{r['ratio']:.2f}x (sorting alone {r.get('ratio_sorting_only', float('nan')):.2f}x)",
        )
        for r in data["results"]
    ]


def sentiment_rows(data: dict[str, Any]) -> list[Row]:
    rows = []
    for result in data["results"]:
        for name in ("nlpsuite", "nlpsuite-int8"):
            row = result["contenders"][name]
            agree = (
                ""
                if name == "nlpsuite"
                else (f", labels agree with float32 {row['agreement_with_nlpsuite_float32']:.1%}")
            )
            rows.append(
                (
                    "sentiment",
                    f"{result['model']}, {name}, {result['sentences']} SST-2 sentences{agree}",
                    f"{row['examples_per_s']:.1f} ex/s",
                    f"{row['x_loop']:.2f}x loop, {row['x_pipeline']:.2f}x pipeline(32)",
                )
            )
    return rows


def qa_rows(data: dict[str, Any]) -> list[Row]:
    return [
        (
            "qa",
            f"{r['model']}, {r['examples']} long SQuAD contexts vs per-example reference"
            f" (same answers {r['agreement']:.0%})",
            f"{r['nlpsuite_examples_per_s']:.2f} ex/s",
            f"{r['ratio']:.2f}x",
        )
        for r in data["results"]
    ]


def run_rows(data: dict[str, Any]) -> list[Row]:
    result = data["result"]
    hand = result["by_hand"]
    return [
        (
            "run",
            "`nlpsuite run sentiment` (tiny) to first output",
            f"{result['nlpsuite_run_first_output_s']:.2f} s",
            f"{result['nlpsuite_run_first_output_s'] / hand['total_s']:.2f}x a hand script",
        ),
        (
            "run",
            "of which: CLI overhead beyond imports + model load "
            f"({hand['imports_s'] + hand['model_load_s']:.2f} s)",
            f"{result['cli_overhead_s']:.2f} s",
            "target < 1.5 s",
        ),
    ]


def backends_rows(data: dict[str, Any]) -> list[Row]:
    rows = []
    seen: set[str] = set()
    for result in data["results"]:
        if result["workload"] not in seen:  # each workload's first row is its baseline
            seen.add(result["workload"])
            continue
        if "cosine_min" in result:
            check = f"cosine min {result['cosine_min']:.4f}"
        elif "agreement_with_torch" in result:
            check = f"labels {result['agreement_with_torch']:.1%} as torch"
        elif "token_agreement" in result:
            check = f"tokens {result['token_agreement']:.1%} as torch"
        else:
            check = "-"
        rows.append((
            "backends",
            f"{result['workload']}: {result['contender']} ({check})",
            f"{result['per_s']:.1f}/s",
            f"{result['ratio']:.2f}x {BACKEND_BASELINES.get(result['workload'], 'baseline')}",
        ))
    return rows


BACKEND_BASELINES = {
    "embed": "SentenceTransformer.encode",
    "sentiment (random bert-base)": "torch",
    "generate (random opus-mt-sized Marian)": "generate() in input order",
}


def train_minilm_rows(data: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    teacher = data.get("teacher")
    if teacher:
        rows.append((
            "train-minilm",
            f"MiniLM fine-tuned on {teacher['train_sentences']} SST-2 sentences, dev accuracy "
            f"(training {teacher['train_seconds'] / 60:.1f} min)",
            f"{teacher['dev']['accuracy']:.4f}", "target >= 0.85 within 15 min",
        ))
    speed = data.get("speed", {}).get("x_teacher", {})
    for role, stage in (("student", data.get("distill")),
                        ("teacher-int8", data.get("quantize", {}).get("sst2-teacher-int8"))):
        if stage:
            ratio = f"{speed[role]:.2f}x teacher's ex/s" if role in speed else "-"
            rows.append(("train-minilm", f"{role}: SST-2 dev accuracy",
                         f"{stage['dev']['accuracy']:.4f}", ratio))
    qa = data.get("qa")
    if qa:
        rows.append(("train-minilm", f"MiniLM QA, {qa['split']}: EM / F1",
                     f"{qa['test']['exact_match']:.2f} / {qa['test']['f1']:.2f}", "-"))
    return rows


SUMMARIES: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "startup": startup_rows,
    "search": search_rows,
    "generation": generation_rows,
    "sentiment": sentiment_rows,
    "qa": qa_rows,
    "run": run_rows,
    "backends": backends_rows,
    "train-minilm": train_minilm_rows,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer inputs and repeats")
    parser.add_argument(
        "--only", default=None, help=f"comma-separated subset of {', '.join(BENCHMARKS)}"
    )
    args = parser.parse_args()
    chosen = args.only.split(",") if args.only else [b for b in BENCHMARKS if b not in OPT_IN]
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark {unknown[0]!r} (known: {', '.join(BENCHMARKS)})")

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    printed: dict[str, str] = {}
    rows: list[Row] = []
    spent: dict[str, float] = {}
    load_before = os.getloadavg()
    for name in chosen:
        script, output, full, quick = BENCHMARKS[name]
        command = [sys.executable, str(HERE / script), *(quick if args.quick else full)]
        print(f"== {name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
        spent[name] = time.perf_counter() - started
        print(done.stdout, flush=True)
        if done.returncode != 0:
            tail = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
            printed[name] = f"FAILED (exit {done.returncode}): {tail}"
            rows.append((name, "failed", tail, "-"))
            print(f"{name} failed: {tail}", file=sys.stderr)
            continue
        kept = [
            line
            for line in done.stdout.splitlines()
            if not line.startswith(("{", "wrote ", "Writing model shards"))
        ]
        # Blank lines stay: a table runs on into the next line of text without one.
        printed[name] = "\n".join(kept).strip()
        rows += SUMMARIES[name](json.loads((OUT / output).read_text(encoding="utf-8")))

    info = machine()
    lines = [
        "# Benchmark results",
        "",
        "Written by `benchmarks/run_all.py`"
        + (" --quick" if args.quick else "")
        + "; regenerate with the same command. Every ratio is measured in the same run against "
        "its baseline; absolute figures depend on the machine and on what else ran on it.",
        "",
        f"- date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC",
        f"- machine: {info['cpu']}, {info['cpus']} cores (torch threads {info['torch_threads']}),"
        f" {info['platform']}",
        f"- python {info['python']}, torch {info['torch']}, transformers {info['transformers']}",
        f"- mode: {'quick' if args.quick else 'full'}; load average before "
        f"{load_before[0]:.2f}, after {os.getloadavg()[0]:.2f}",
        "",
        "| benchmark | what | nlpsuite | ratio |",
        "|---|---|---:|---|",
        *(f"| {b} | {what} | {figure} | {ratio} |" for b, what, figure, ratio in rows),
        "",
    ]
    for name in chosen:
        body = printed[name]
        if not any(line.startswith("|") for line in body.splitlines()):
            body = f"```\n{body}\n```"
        lines += [f"## {name} ({BENCHMARKS[name][0]}, {spent[name]:.0f} s)", "", body, ""]
    (HERE / "RESULTS.md").write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {(HERE / 'RESULTS.md').relative_to(ROOT)}")


if __name__ == "__main__":
    main()
