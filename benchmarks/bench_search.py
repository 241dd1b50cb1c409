"""Benchmark semantic search: embedding throughput against sentence-transformers, and query
latency over corpora of 10,000 and 100,000 MiniLM-like vectors, exact and with the approximate
HNSW index (faiss; skipped if it is not installed), with its recall@10 against exact search.

    .venv/bin/python benchmarks/bench_search.py [--sentences 1000] [--repeats 3] [--real 4000]

The corpora are MiniLM embeddings of ``--real`` distinct SST-2 train sentences, topped up with
copies of them perturbed along the embeddings' own covariance, because embeddings of 100,000
real sentences take too long to make on a small machine and gaussian noise is not what an
HNSW graph meets in practice. The queries are embeddings of other SST-2 sentences.

Prints a summary and writes benchmarks/out/bench_search.json. Absolute figures depend on the
machine; compare the ratio, and latencies only between runs on the same machine.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from timing import best_seconds, machine

ROOT = Path(__file__).resolve().parents[1]
STS_DEV = ROOT.parent / "shared" / "datasets" / "stsbenchmark" / "sts-dev.csv"
SST2_TRAIN = ROOT.parent / "shared" / "datasets" / "glue-sst2" / "train.tsv"
# How far perturbed copies stray: a copy keeps a cosine of about 0.84 with its original, and a
# query's 10th-best cosine stays near that of the real embeddings alone (0.45-0.5).
SPREAD = 0.7
# ef_search values swept to show what recall costs; the index's default is always included.
EF_SWEEP = (16, 32, 64, 96)
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
    from nlpsuite.checkpoints import resolve_model

    sentences = sts_sentences(count)
    config = RunConfig(model=MODEL, batch_size=32)
    reference = SentenceTransformer(resolve_model(MODEL), device="cpu")
    # Warm both up so that model loading is not timed.
    embed(sentences[:64], config)
    reference.encode(sentences[:64], batch_size=32)

    (ours_s, reference_s), _ = best_seconds([
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


def sst2_sentences(count: int, seed: int = 0) -> list[str]:
    """``count`` distinct SST-2 train sentences of four words or more, in a seeded random order
    (the file is sorted by nothing useful, but its neighbours are often fragments of one
    review)."""
    seen: dict[str, None] = {}
    with SST2_TRAIN.open(encoding="utf-8") as handle:
        next(handle)  # header
        for line in handle:
            sentence = line.rsplit("\t", 1)[0].strip()
            if len(sentence.split()) >= 4:
                seen.setdefault(sentence, None)
    sentences = list(seen)
    if count > len(sentences):
        raise SystemExit(f"SST-2 train has only {len(sentences)} usable sentences, not {count}")
    order = np.random.default_rng(seed).permutation(len(sentences))[:count]
    return [sentences[i] for i in order]


def perturbed(real: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` unit vectors, each a random row of ``real`` plus gaussian noise shaped like the
    rows' own covariance (so the noise stays in the directions sentence embeddings use)."""
    centred = real - real.mean(axis=0)
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / len(real))
    root = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))).astype(np.float32)
    noise = rng.standard_normal((count, real.shape[1]), dtype=np.float32) @ root.T
    vectors = real[rng.integers(0, len(real), count)] + SPREAD * noise
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def rss_bytes() -> int | None:
    """This process's resident memory, where /proc says it (Linux)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


def each_query_ms(search: Callable[[np.ndarray], Any], queries: np.ndarray, repeats: int) -> float:
    """Median ms of one-query searches, a different query each time, so that no query's path
    through the data is cached from the run before."""
    search(queries[:1])  # first call pays for page faults and thread start-up
    timings = []
    for i in range(max(repeats, len(queries))):
        row = queries[i % len(queries)][None]
        started = time.perf_counter()
        search(row)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)


Ranking = list[list[tuple[int, float]]]


def recall_at_10(found: Ranking, truth: Ranking) -> float:
    return float(np.mean([
        len({p for p, _ in got} & {p for p, _ in want}) / len(want)
        for got, want in zip(found, truth, strict=True)
    ]))


def query_latency(
    sizes: list[int], repeats: int, real: int, query_count: int
) -> tuple[str, list[dict[str, Any]]]:
    """What the corpora are, and per size: exact single and batched latency, and the HNSW
    index's build time, memory, latency and recall@10 against exact."""
    from nlpsuite_plugins.semantic_search import HnswParams, Index, embed

    from nlpsuite import RunConfig

    try:
        import faiss  # noqa: F401  (only to know whether the approximate rows can be run)

        have_faiss = True
    except ImportError:
        have_faiss = False
    sentences = sst2_sentences(real + query_count)
    vectors = embed(sentences, RunConfig(model=MODEL, batch_size=32))
    centres, queries = vectors[:real], vectors[real:]
    description = (
        f"{real:,} MiniLM embeddings of SST-2 train sentences plus copies perturbed along their "
        f"covariance; queries: {query_count} other SST-2 sentences"
    )
    rng = np.random.default_rng(0)
    params = HnswParams()
    results = []
    for size in sizes:
        docs = np.concatenate([centres[:size], perturbed(centres, max(0, size - real), rng)])
        index = Index(tuple(str(i) for i in range(size)), ("",) * size, docs, MODEL)
        batch_queries = queries[:32]
        single = each_query_ms(lambda q, index=index: index.search(q, 10), queries, repeats)
        batch = median_ms(lambda index=index, q=batch_queries: index.search(q, 10), repeats)
        row: dict[str, Any] = {
            "documents": size,
            "dimension": int(docs.shape[1]),
            "top_k": 10,
            "corpus": "SST-2 MiniLM embeddings + perturbed copies",
            "single_query_median_ms": single,
            "batch_32_median_ms": batch,
            "batch_32_per_query_ms": batch / len(batch_queries),
            "ann": None,
        }
        if have_faiss:
            row["ann"] = approximate(index, queries, params, repeats)
        results.append(row)
    return description, results


def approximate(index: Any, queries: np.ndarray, params: Any, repeats: int) -> dict[str, Any]:
    """Build the HNSW graph over ``index`` and measure it against exact search."""
    import faiss
    from nlpsuite_plugins.semantic_search import HnswIndex

    truth = index.search(queries, 10, exact=True)
    before = rss_bytes()
    started = time.perf_counter()
    graph = HnswIndex.build(index.embeddings, params)
    build_s = time.perf_counter() - started
    after = rss_bytes()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "hnsw.faiss"
        graph.write(path)
        file_bytes = path.stat().st_size
    ann = index.with_hnsw(graph)
    sweep = []
    for ef in sorted({*EF_SWEEP, params.ef_search}):
        ms = each_query_ms(lambda q, ef=ef: ann.search(q, 10, ef_search=ef), queries, repeats)
        found = ann.search(queries, 10, ef_search=ef)
        sweep.append({"ef_search": ef, "single_query_median_ms": ms,
                      "recall_at_10": recall_at_10(found, truth)})
    chosen = next(row for row in sweep if row["ef_search"] == params.ef_search)
    batch = median_ms(lambda: ann.search(queries[:32], 10), repeats)
    return {
        "library": f"faiss-cpu {faiss.__version__}",
        "m": params.m,
        "ef_construction": params.ef_construction,
        "ef_search": params.ef_search,
        "build_s": build_s,
        "build_rss_growth_mb": (after - before) / 2**20 if before and after else None,
        "file_mb": file_bytes / 2**20,
        "single_query_median_ms": chosen["single_query_median_ms"],
        "batch_32_per_query_ms": batch / 32,
        "recall_at_10": chosen["recall_at_10"],
        "queries": len(queries),
        "ef_sweep": sweep,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5, help="embedding runs (best is kept)")
    parser.add_argument("--query-repeats", type=int, default=50)
    parser.add_argument("--real", type=int, default=4000,
                        help="real sentence embeddings the corpora are grown from")
    parser.add_argument("--queries", type=int, default=200,
                        help="held-out sentences to query with and score recall@10 over")
    parser.add_argument("--sizes", default="10000,100000", help="corpus sizes, comma-separated")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    if args.queries < 32:
        parser.error("--queries must be at least 32 (one batch of 32 is timed)")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    embedding = embedding_throughput(args.sentences, args.repeats)
    corpus, latency = query_latency(sizes, args.query_repeats, args.real, args.queries)
    report = {
        "benchmark": "semantic-search",
        "model": MODEL,
        "machine": machine(),
        "embedding": embedding,
        "corpus": corpus,
        "query_latency": latency,
    }
    print(f"embedding {embedding['sentences']} STS-B dev sentences, batch 32:")
    print(f"  nlpsuite embed           {embedding['ours_sentences_per_s']:8.1f} sentences/s")
    print(f"  SentenceTransformer      "
          f"{embedding['sentence_transformers_sentences_per_s']:8.1f} sentences/s")
    print(f"  ratio (ours / theirs)    {embedding['ratio_ours_over_sentence_transformers']:8.2f}")
    print(f"  min cosine vs theirs     {embedding['min_cosine_vs_sentence_transformers']:.7f}")
    print(f"corpora: {corpus}")
    print("query latency, top 10, exact (median):")
    for row in latency:
        print(f"  {row['documents']:>7} x {row['dimension']}: one query "
              f"{row['single_query_median_ms']:.2f} ms; 32 queries {row['batch_32_median_ms']:.2f}"
              f" ms ({row['batch_32_per_query_ms']:.2f} ms a query)")
    approximate_rows = [(row["documents"], row["ann"]) for row in latency if row["ann"]]
    if not approximate_rows:
        print("approximate (HNSW): skipped, faiss is not installed (pip install 'nlpsuite[ann]')")
    for number, (size, ann) in enumerate(approximate_rows):
        if number == 0:
            print(f"query latency, top 10, HNSW ({ann['library']}, m={ann['m']}, "
                  f"ef_construction={ann['ef_construction']}; median, recall@10 against exact "
                  f"over {ann['queries']} queries):")
        growth = ann["build_rss_growth_mb"]
        memory = f"+{growth:.0f} MB resident, " if growth is not None else ""
        print(f"  {size:>7}: build {ann['build_s']:.1f} s ({memory}{ann['file_mb']:.0f} MB file);"
              f" one query {ann['single_query_median_ms']:.3f} ms, recall@10 "
              f"{ann['recall_at_10']:.3f} at ef_search {ann['ef_search']}; 32 queries "
              f"{ann['batch_32_per_query_ms']:.3f} ms a query")
        print("           ef_search " + ", ".join(
            f"{sweep['ef_search']}: {sweep['single_query_median_ms']:.3f} ms "
            f"{sweep['recall_at_10']:.3f}" for sweep in ann["ef_sweep"]
        ))
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_search.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {OUT / 'bench_search.json'}")


if __name__ == "__main__":
    main()
