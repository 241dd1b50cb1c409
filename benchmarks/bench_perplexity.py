"""Benchmark the perplexity task on the real SmolLM2 against lm-evaluation-harness's HFLM, and
measure SmolLM2's perplexity on the English side of flores200 devtest and the WMT17 source.

    .venv/bin/python benchmarks/bench_perplexity.py [--documents 256] [--max-length 512]
        [--batch-size 16] [--rounds 2] [--threads 1] [--no-figures] [--quick]

Speed: the first ``--documents`` lines of flores200 ``eng_Latn.devtest`` (one document each),
scored at ``--max-length`` by nlpsuite's ``PerplexityScorer`` and by lm-eval 0.4.13's
``HFLM.loglikelihood_rolling`` on the same model instance (float32, documents encoded without
special tokens: SmolLM2's tokenizer adds none), at the same batch size. Each contender runs in
its own subprocess, after an untimed warm-up batch, one timed pass per round; the rounds take
turns and the best pass is kept. Figures: tokens scored per second, the largest relative
difference between the two contenders' per-document log-likelihoods, and memory of each
subprocess: its resident set size once the model is loaded and warm, the peak while scoring
(``VmHWM`` after resetting it through ``/proc/self/clear_refs``) and the growth over the former,
and the process's peak over its whole life (``ru_maxrss`` before the reset, model load
included, or the scoring peak if higher).

Figures: ``nlpsuite eval perplexity`` on each whole file at ``--max-length`` (its results.json:
word and byte perplexity, bits per byte, token perplexity with 95% bootstrap intervals), with
the wall time of the run.

Writes benchmarks/out/bench_perplexity.json. Absolute speeds depend on the machine and on
whatever else runs on it; compare ratios. One torch thread by default: on a shared 2-core
machine two spinning OpenMP threads per process make every step several times slower.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
DATASETS = ROOT.parent / "shared" / "datasets"
FILES = {
    "flores200 devtest eng_Latn": DATASETS / "flores200-devtest-en-de" / "eng_Latn.devtest",
    "WMT17 newstest2017 source (en)": DATASETS / "wmt17-en-de-systems" / "newstest2017.src.en",
}
SPEED_FILE = FILES["flores200 devtest eng_Latn"]
CONTENDERS = ("nlpsuite", "lm-eval")

sys.path.insert(0, str(ROOT / "benchmarks"))
from timing import machine, quiet_transformers  # noqa: E402


def resident_mib(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (its peak since the last reset), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise SystemExit(f"/proc/self/status has no {field}")


def reset_resident_peak() -> bool:
    """Start ``VmHWM`` again from the current resident size (Linux: clear_refs 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def scorer_for(contender: str, lm: Any, max_length: int, batch_size: int) -> Any:
    """A function from texts to per-document log-likelihoods and scored-token counts."""
    if contender == "nlpsuite":
        from nlpsuite_plugins.perplexity import PerplexityScorer

        scorer = PerplexityScorer(lm, max_length, max_length, batch_size)

        def ours(texts: list[str]) -> tuple[list[float], int]:
            outputs = scorer(texts)
            return [o.loglikelihood for o in outputs], sum(o.tokens for o in outputs)

        return ours
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    harness = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, max_length=max_length,
                   batch_size=batch_size, add_bos_token=False)

    def theirs(texts: list[str]) -> tuple[list[float], int]:
        requests = [Instance(request_type="loglikelihood_rolling", doc={}, arguments=(text,),
                             idx=i) for i, text in enumerate(texts)]
        values = harness.loglikelihood_rolling(requests, disable_tqdm=True)
        tokens = sum(len(ids) for ids in lm.encode(texts, special_tokens=False))
        return [float(value) for value in values], tokens

    return theirs


def worker(contender: str, documents: int, max_length: int, batch_size: int) -> dict[str, Any]:
    """One contender in this process: load, warm up, reset the memory peak, one timed pass."""
    import logging

    from nlpsuite.causal import DEFAULT_CAUSAL_MODEL, load_causal_lm
    from nlpsuite.tasks import RunConfig

    logging.getLogger("lm_eval").setLevel(logging.ERROR)
    texts = SPEED_FILE.read_text(encoding="utf-8").split("\n")[:documents]
    lm = load_causal_lm(RunConfig(model=DEFAULT_CAUSAL_MODEL))
    score = scorer_for(contender, lm, max_length, batch_size)
    score(texts[:batch_size])
    # ru_maxrss follows VmHWM, which the reset lowers: the load's peak is read before it.
    load_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_known = reset_resident_peak()
    before = resident_mib("VmRSS")
    started = time.perf_counter()
    logliks, tokens = score(texts)
    seconds = time.perf_counter() - started
    scoring_peak = resident_mib("VmHWM") if peak_known else None
    return {
        "contender": contender,
        "seconds": seconds,
        "tokens": tokens,
        "loglikelihoods": logliks,
        "rss_before_scoring_mib": before,
        "scoring_peak_rss_mib": scoring_peak,
        "process_peak_rss_mib": max(load_peak, scoring_peak or 0.0),
    }


def run_worker(contender: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--worker", contender, "--documents",
               str(args.documents), "--max-length", str(args.max_length), "--batch-size",
               str(args.batch_size), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, check=False,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    if done.returncode != 0:
        raise SystemExit(f"{contender} worker failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def speed(args: argparse.Namespace) -> dict[str, Any]:
    best: dict[str, dict[str, Any]] = {}
    for _ in range(args.rounds):
        for contender in CONTENDERS:
            result = run_worker(contender, args)
            print(f"  {contender}: {result['tokens'] / result['seconds']:.1f} tokens/s", flush=True)
            if contender not in best or result["seconds"] < best[contender]["seconds"]:
                best[contender] = result
    ours, theirs = best["nlpsuite"], best["lm-eval"]
    difference = max(abs(a - b) / abs(b) for a, b in
                     zip(ours["loglikelihoods"], theirs["loglikelihoods"], strict=True))
    row: dict[str, Any] = {"documents": args.documents, "tokens": ours["tokens"]}
    for name, result in best.items():
        row[name] = {
            "tokens_per_s": round(result["tokens"] / result["seconds"], 1),
            "seconds": round(result["seconds"], 2),
            "rss_before_scoring_mib": _rounded(result["rss_before_scoring_mib"]),
            "scoring_peak_rss_mib": _rounded(result["scoring_peak_rss_mib"]),
            "scoring_growth_mib": _rounded(None if result["scoring_peak_rss_mib"] is None else
                                           result["scoring_peak_rss_mib"]
                                           - result["rss_before_scoring_mib"]),
            "process_peak_rss_mib": _rounded(result["process_peak_rss_mib"]),
        }
    row["speedup"] = round(theirs["seconds"] / ours["seconds"], 2)
    row["max_relative_loglikelihood_difference"] = difference
    row["identical_to_1e-6"] = difference <= 1e-6
    return row


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def figures(args: argparse.Namespace) -> list[dict[str, Any]]:
    """``nlpsuite eval perplexity`` on each whole file, as a user runs it."""
    rows = []
    for name, path in FILES.items():
        with tempfile.TemporaryDirectory() as scratch:
            command = [sys.executable, "-c", "from nlpsuite.cli import main; main()", "eval",
                       "perplexity", "--dataset", str(path), "--option",
                       f"max_length={args.max_length}", "-b", str(args.batch_size), "-q",
                       "--out", scratch]
            if args.limit:
                command += ["--limit", str(args.limit)]
            started = time.perf_counter()
            done = subprocess.run(command, capture_output=True, text=True, check=False,
                                  env={**os.environ, "HF_HUB_OFFLINE": "1",
                                       "OMP_NUM_THREADS": str(args.threads)})
            wall = time.perf_counter() - started
            if done.returncode != 0:
                raise SystemExit(f"eval on {path} failed:\n{done.stderr[-3000:]}")
            results = json.loads((Path(scratch) / "results.json").read_text())
            predictions = (Path(scratch) / "predictions.jsonl").read_text().splitlines()
            tokens = sum(json.loads(line)["prediction"]["tokens"] for line in predictions)
        metrics = {metric: {"value": score["value"], "ci95": score["ci95"]}
                   for metric, score in results["metrics"].items()}
        documents = results["dataset"]["examples"]
        # The harness times every prediction (not the load, nor its warm-up batch).
        timed_s = documents / results["examples_per_second"]
        row = {"file": name, "documents": documents, "tokens": tokens, "wall_s": round(wall, 1),
               "tokens_per_s": round(tokens / timed_s, 1), "metrics": metrics}
        print(f"  {name}: " + ", ".join(f"{m} {s['value']:.4f}" for m, s in metrics.items())
              + f" ({documents} documents, {tokens} tokens, {row['tokens_per_s']} tokens/s, "
                f"{wall:.0f} s)", flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--documents", type=int, default=256)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2, help="timed passes (best is kept)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None,
                        help="figures on the first N documents of each file only")
    parser.add_argument("--no-figures", action="store_true")
    parser.add_argument("--quick", action="store_true",
                        help="64 documents, 1 round, figures on 200 documents")
    parser.add_argument("--worker", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    quiet_transformers(args.threads)
    if args.worker:
        print(json.dumps(worker(args.worker, args.documents, args.max_length, args.batch_size)))
        return
    if args.quick:
        args.documents, args.rounds, args.limit = min(args.documents, 64), 1, args.limit or 200
    print(f"speed: {args.documents} flores lines, max_length {args.max_length}, batch size "
          f"{args.batch_size}, {args.threads} thread(s)", flush=True)
    row = speed(args)
    print("\n| contender | tokens/s | RSS before scoring | scoring peak RSS (growth) | "
          "process peak RSS |\n|---|---:|---:|---:|---:|")
    for name in CONTENDERS:
        result = row[name]
        print(f"| {name} | {result['tokens_per_s']:.1f} | {result['rss_before_scoring_mib']} MiB "
              f"| {result['scoring_peak_rss_mib']} MiB (+{result['scoring_growth_mib']}) | "
              f"{result['process_peak_rss_mib']} MiB |")
    print(f"\nnlpsuite is {row['speedup']:.2f}x lm-eval; per-document log-likelihoods differ by "
          f"at most {row['max_relative_loglikelihood_difference']:.2e} (relative)")
    found = [] if args.no_figures else figures(args)
    if found:
        print("\n| file | documents | word perplexity | byte perplexity | bits per byte | "
              "token perplexity | tokens/s | wall s |\n|---|---:|---:|---:|---:|---:|---:|---:|")
        for entry in found:
            m = entry["metrics"]
            cells = " | ".join(
                f"{m[name]['value']:.4f} [{m[name]['ci95'][0]:.4f}, {m[name]['ci95'][1]:.4f}]"
                for name in ("word_perplexity", "byte_perplexity", "bits_per_byte",
                             "token_perplexity"))
            print(f"| {entry['file']} | {entry['documents']} | {cells} | {entry['tokens_per_s']} "
                  f"| {entry['wall_s']} |")
    report = {
        "benchmark": "perplexity",
        "machine": machine(),
        "settings": {"documents": args.documents, "max_length": args.max_length,
                     "batch_size": args.batch_size, "rounds": args.rounds,
                     "threads": args.threads, "figures_limit": args.limit},
        "speed": row,
        "figures": found,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "bench_perplexity.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
