"""Benchmark the inference engines (``--backend``) against torch and the usual baselines.

    .venv/bin/python benchmarks/bench_backends.py [--quick] [--only embed,sentiment,generate]

Three workloads, each in one run, contenders taking turns (best of ``--repeats`` after an
untimed warm-up), outputs checked against torch:

* ``embed``: the real all-MiniLM-L6-v2 on STS-B dev sentences: ``SentenceTransformer.encode``
  (batch 32) against nlpsuite's encoder on torch, onnx and onnx int8; cosine of each embedding
  with SentenceTransformer's.
* ``sentiment``: a random bert-base-sized classifier (``bench_sentiment.py``'s) on SST-2
  sentences: torch, torch int8 (``quantize=int8``), onnx, onnx int8; labels against torch.
* ``generate``: an opus-mt-sized Marian with random weights, greedy, 32 new tokens an input:
  plain ``generate()`` on batches in input order, nlpsuite on torch, ctranslate2 float32 and
  int8; token agreement with torch. Random weights give no translation to score, so BLEU needs
  a trained checkpoint (opus-mt is not on PyPI); token agreement is what can be measured here.

Conversions are made before timing (once; they are cached, see ``nlpsuite backends``). Writes
benchmarks/out/bench_backends.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from timing import best_seconds, machine  # noqa: E402


def bench_embed(count: int, repeats: int) -> list[dict[str, Any]]:
    import numpy as np
    from bench_search import sts_sentences
    from nlpsuite_plugins.semantic_search import embed
    from sentence_transformers import SentenceTransformer

    from nlpsuite import RunConfig
    from nlpsuite.checkpoints import resolve_model

    model = resolve_model("sentence-transformers/all-MiniLM-L6-v2")
    sentences = sts_sentences(count)
    reference = SentenceTransformer(str(model), device="cpu")
    contenders: dict[str, Callable[[], Any]] = {
        "SentenceTransformer.encode": lambda: reference.encode(
            sentences, batch_size=32, normalize_embeddings=True),
    }
    for backend in ("torch", "onnx", "onnx:quantize=int8"):
        config = RunConfig(model=model, backend=backend, batch_size=32)
        embed(sentences[:8], config)  # loads (and converts, once) before timing
        contenders[f"nlpsuite {backend}"] = lambda config=config: embed(sentences, config)
    seconds, vectors = best_seconds(list(contenders.values()), repeats)
    baseline = np.asarray(vectors[0])
    rows = []
    for (name, _), spent, found in zip(contenders.items(), seconds, vectors, strict=True):
        cosines = (np.asarray(found) * baseline).sum(axis=1)
        rows.append({
            "workload": "embed", "contender": name, "inputs": len(sentences),
            "per_s": round(len(sentences) / spent, 1),
            "ratio": round(seconds[0] / spent, 2),
            "cosine_min": round(float(cosines.min()), 5),
            "cosine_mean": round(float(cosines.mean()), 6),
        })
    return rows


def bench_sentiment(count: int, repeats: int, folder: Path) -> list[dict[str, Any]]:
    from bench_sentiment import build_base_classifier, sst2_sentences

    from nlpsuite import load_runner
    from nlpsuite.lookup import get_task

    task = get_task("sentiment")
    sentences = [task.make_input(text, "sst2") for text in sst2_sentences(count)]
    checkpoint = build_base_classifier(folder, [])
    contenders: dict[str, Callable[[], Any]] = {}
    for name, backend, options in (
        ("torch", "torch", {}), ("torch int8", "torch", {"quantize": "int8"}),
        ("onnx", "onnx", {}), ("onnx int8", "onnx", {"quantize": "int8"}),
    ):
        runner = load_runner("sentiment", str(checkpoint), backend=backend, options=options)
        runner(sentences[:4])
        contenders[name] = lambda runner=runner: [o.label for o in runner(sentences)]
    seconds, labels = best_seconds(list(contenders.values()), repeats)
    return [{
        "workload": "sentiment (random bert-base)", "contender": name, "inputs": len(sentences),
        "per_s": round(len(sentences) / spent, 1), "ratio": round(seconds[0] / spent, 2),
        "agreement_with_torch": round(
            sum(a == b for a, b in zip(found, labels[0], strict=True)) / len(sentences), 4),
    } for name, spent, found in zip(contenders, seconds, labels, strict=True)]


def bench_generate(count: int, repeats: int, folder: Path) -> list[dict[str, Any]]:
    from bench_generation import MODELS, inputs, naive

    from nlpsuite import RunConfig
    from nlpsuite.generation import load_seq2seq
    from tests import tiny_seq2seq

    build = next(arguments for name, arguments in MODELS.items() if name.startswith("opus"))
    checkpoint = str(tiny_seq2seq.build_marian(folder, **build))
    texts = inputs(count)
    new_tokens = 32
    torch_model = load_seq2seq(RunConfig(model=checkpoint))
    contenders: dict[str, Callable[[], Any]] = {
        "generate() in input order": lambda: naive(
            torch_model.model, torch_model.tokenizer, texts, [new_tokens] * count, 16),
    }
    for backend in ("torch", "ctranslate2", "ctranslate2:compute_type=int8"):
        seq2seq = load_seq2seq(RunConfig(model=checkpoint, backend=backend))
        seq2seq.generate(texts[:2], max_new_tokens=2)
        contenders[f"nlpsuite {backend}"] = lambda seq2seq=seq2seq: [
            g.token_ids for g in seq2seq.generate(texts, max_new_tokens=new_tokens,
                                                  batch_size=16, num_beams=1)]
    seconds, outputs = best_seconds(list(contenders.values()), repeats)
    reference = outputs[1]
    rows = []
    for (name, _), spent, found in zip(contenders.items(), seconds, outputs, strict=True):
        produced = found if isinstance(found, int) else sum(len(ids) for ids in found)
        row: dict[str, Any] = {
            "workload": "generate (random opus-mt-sized Marian)", "contender": name,
            "inputs": count, "per_s": round(produced / spent, 1),
            "ratio": round((sum(len(ids) for ids in reference) / spent)
                           / (outputs[0] / seconds[0]), 2),
        }
        if not isinstance(found, int):
            pairs = [(a, b) for ours, theirs in zip(found, reference, strict=True)
                     for a, b in zip(ours, theirs, strict=False)]
            row["token_agreement"] = round(sum(a == b for a, b in pairs) / max(len(pairs), 1), 4)
            row["identical_outputs"] = sum(
                ours == theirs for ours, theirs in zip(found, reference, strict=True))
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer inputs and repeats")
    parser.add_argument("--only", default="embed,sentiment,generate")
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    repeats = args.repeats or (1 if args.quick else 3)
    wanted = set(args.only.split(","))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        if "embed" in wanted:
            # A pass takes about a second: more turns cost little and steady the ratio.
            rows += bench_embed(300 if args.quick else 1000, max(repeats, 3))
        if "sentiment" in wanted:
            rows += bench_sentiment(64 if args.quick else 300, repeats, Path(scratch) / "bert")
        if "generate" in wanted:
            rows += bench_generate(32 if args.quick else 64, repeats, Path(scratch) / "marian")
    print_table(rows)
    OUT.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": machine(),
        "quick": args.quick,
        "results": rows,
    }
    path = OUT / "bench_backends.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")


def print_table(rows: list[dict[str, Any]]) -> None:
    print("| workload | contender | per s | x first row | agreement with the reference |")
    print("|---|---|--:|--:|---|")
    for row in rows:
        if "cosine_min" in row:
            check = f"cosine min {row['cosine_min']:.4f}, mean {row['cosine_mean']:.5f}"
        elif "agreement_with_torch" in row:
            check = f"labels {row['agreement_with_torch']:.1%}"
        elif "token_agreement" in row:
            check = (f"tokens {row['token_agreement']:.1%}, "
                     f"{row['identical_outputs']}/{row['inputs']} outputs identical")
        else:
            check = "-"
        print(f"| {row['workload']} | {row['contender']} | {row['per_s']:.1f} | "
              f"{row['ratio']:.2f}x | {check} |")


if __name__ == "__main__":
    main()
