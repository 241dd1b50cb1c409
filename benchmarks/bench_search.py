"""Benchmark semantic search: embedding throughput against sentence-transformers, and query
latency over random corpora of 10,000 and 100,000 unit vectors.

    .venv/bin/python benchmarks/bench_search.py [--sentences 1000] [--repeats 3]

Prints a summary and writes benchmarks/out/bench_search.json. Absolute figures depend on the
machine; compare the ratio, and latencies only between runs on the same machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STS_DEV = ROOT.parent / "shared" / "datasets" / "stsbenchmark" / "sts-dev.csv"
OUT = ROOT / "benchmarks" / "out"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def sts_sentences(limit: int) -> list[str]:
    """Distinct sentences of STS-B dev, in file order (the file has unbalanced quotes)."""
    seen: dict[str, None] = {}
    with STS_DEV.open(encoding="utf-8", newline="") as handle:
        for fields in csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE):
            for sentence in fields[5:7]:
                seen.setdefault(sentence.strip(), None)
            if len(seen) >= limit:
                break
    return list(seen)[:limit]


def best_seconds(actions: list[Callable[[], Any]], repeats: int) -> list[float]:
    """Each action's fastest of ``repeats`` runs, taking turns, so that a burst of other work on
    a shared machine cannot land on one contender only."""
    timings: list[list[float]] = [[] for _ in actions]
    for _ in range(repeats):
        for action, spent in zip(actions, timings, strict=True):
            started = time.perf_counter()
            action()
            spent.append(time.perf_counter() - started)
    return [min(spent) for spent in timings]


def median_ms(action: Callable[[], Any], repeats: int) -> float:
    action()  # first call pays for page faults and BLAS thread start-up
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        action()
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


def embedding_throughput(count: int, repeats: int) -> dict[str, Any]:
    from nlpsuite_plugins.semantic_search import embed
    from sentence_transformers import SentenceTransformer

    from nlpsuite import RunConfig
    from nlpsuite.models import resolve_model

    sentences = sts_sentences(count)
    config = RunConfig(model=MODEL, batch_size=32)
    reference = SentenceTransformer(resolve_model(MODEL), device="cpu")
    # Warm both up so that model loading is not timed.
    embed(sentences[:64], config)
    reference.encode(sentences[:64], batch_size=32)

    ours_s, reference_s = best_seconds([
        lambda: embed(sentences, config),
        lambda: reference.encode(sentences, batch_size=32, normalize_embeddings=True),
    ], repeats)
    ours_vectors = embed(sentences, config)
    reference_vectors = reference.encode(sentences, batch_size=32, normalize_embeddings=True)
    cosines = np.einsum("ij,ij->i", ours_vectors, reference_vectors)
    return {
        "sentences": len(sentences),
        "ours_sentences_per_s": len(sentences) / ours_s,
        "sentence_transformers_sentences_per_s": len(sentences) / reference_s,
        "ratio_ours_over_sentence_transformers": reference_s / ours_s,
        "min_cosine_vs_sentence_transformers": float(cosines.min()),
    }


def query_latency(sizes: list[int], repeats: int, dimension: int = 384) -> list[dict[str, Any]]:
    from nlpsuite_plugins.semantic_search import Index

    rng = np.random.default_rng(0)
    results = []
    for size in sizes:
        docs = rng.standard_normal((size, dimension), dtype=np.float32)
        docs /= np.linalg.norm(docs, axis=1, keepdims=True)
        index = Index(tuple(str(i) for i in range(size)), ("",) * size, docs, MODEL)
        queries = rng.standard_normal((32, dimension), dtype=np.float32)
        queries /= np.linalg.norm(queries, axis=1, keepdims=True)
        single = median_ms(lambda index=index, q=queries[:1]: index.search(q, 10), repeats)
        batch = median_ms(lambda index=index, q=queries: index.search(q, 10), repeats)
        results.append({
            "documents": size,
            "dimension": dimension,
            "top_k": 10,
            "single_query_median_ms": single,
            "batch_32_median_ms": batch,
            "batch_32_per_query_ms": batch / 32,
        })
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5, help="embedding runs (best is kept)")
    parser.add_argument("--query-repeats", type=int, default=50)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch

    embedding = embedding_throughput(args.sentences, args.repeats)
    latency = query_latency([10_000, 100_000], args.query_repeats)
    report = {
        "benchmark": "semantic-search",
        "model": MODEL,
        "machine": {
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "numpy": np.__version__,
            "torch": torch.__version__,
            # Other work on a shared machine skews figures; the load says how busy it was.
            "load_average_1_5_15_min": list(os.getloadavg()),
        },
        "embedding": embedding,
        "query_latency": latency,
    }
    print(f"embedding {embedding['sentences']} STS-B dev sentences, batch 32:")
    print(f"  nlpsuite embed           {embedding['ours_sentences_per_s']:8.1f} sentences/s")
    print(f"  SentenceTransformer      "
          f"{embedding['sentence_transformers_sentences_per_s']:8.1f} sentences/s")
    print(f"  ratio (ours / theirs)    {embedding['ratio_ours_over_sentence_transformers']:8.2f}")
    print(f"  min cosine vs theirs     {embedding['min_cosine_vs_sentence_transformers']:.7f}")
    print("query latency, top 10 of random unit vectors (median):")
    for row in latency:
        print(f"  {row['documents']:>7} x {row['dimension']}: one query "
              f"{row['single_query_median_ms']:.2f} ms; 32 queries {row['batch_32_median_ms']:.2f}"
              f" ms ({row['batch_32_per_query_ms']:.2f} ms a query)")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_search.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {OUT / 'bench_search.json'}")


if __name__ == "__main__":
    main()
