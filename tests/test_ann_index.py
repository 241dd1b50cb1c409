"""semantic-search's approximate (HNSW, faiss) index: agreement with exact search, the round
trip through disk, the options and commands that reach it, and the error without faiss."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from nlpsuite_plugins import semantic_search as search

from nlpsuite import NlpsuiteError, load_runner, run
from tests.helpers import nlpsuite, one_error_line

MODEL = search.DEFAULT_MODEL
DIMENSION = 384


def clustered(count: int, centres: int, seed: int) -> np.ndarray:
    """Unit vectors scattered around 80 fixed random centres (about cosine 0.85 from theirs),
    closer to sentence embeddings, whose neighbourhoods are uneven, than uniform noise is;
    ``seed`` picks which points, so queries can come from the same clusters as documents."""
    middles = np.random.default_rng(0).standard_normal((80, DIMENSION), dtype=np.float32)
    middles /= np.linalg.norm(middles, axis=1, keepdims=True)
    rng = np.random.default_rng(seed)
    vectors = middles[rng.integers(0, min(centres, 80), count)]
    vectors = vectors + 0.03 * rng.standard_normal((count, DIMENSION), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


@pytest.fixture(scope="module")
def faiss() -> object:
    return pytest.importorskip("faiss")


@pytest.fixture(scope="module")
def vectors_index(faiss: object) -> search.Index:
    docs = clustered(4000, 80, seed=0)
    return search.Index(
        tuple(f"d{i}" for i in range(len(docs))), ("",) * len(docs), docs, MODEL
    ).with_hnsw()


def recall(found: list[list[tuple[int, float]]], truth: list[list[tuple[int, float]]]) -> float:
    return float(np.mean([
        len({p for p, _ in got} & {p for p, _ in want}) / len(want)
        for got, want in zip(found, truth, strict=True)
    ]))


def test_hnsw_top_10_agrees_with_exact(vectors_index: search.Index) -> None:
    queries = clustered(200, 80, seed=1)
    approximate = vectors_index.search(queries, 10)
    exact = vectors_index.search(queries, 10, exact=True)
    assert all(len(hits) == 10 for hits in approximate)
    assert recall(approximate, exact) >= 0.95
    # The scores are the same cosines the exact search computes, best first.
    for query, hits in zip(queries, approximate, strict=True):
        positions = [p for p, _ in hits]
        cosines = vectors_index.embeddings[positions] @ query
        assert np.allclose([s for _, s in hits], cosines, atol=1e-5)
        assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    # A larger ef_search can only look further.
    wider = vectors_index.search(queries, 10, ef_search=256)
    assert recall(wider, exact) >= recall(approximate, exact) - 0.01


def test_hnsw_on_real_minilm_embeddings_of_the_demo_corpus(minilm: Path, faiss: object) -> None:
    index = search.build_index(search.DEMO_CORPUS, MODEL, hnsw=search.HnswParams())
    queries = [row["text"] for row in map(json.loads, search.EVAL_SET.read_text().splitlines())]
    vectors = search.load_encoder(MODEL).encode(queries)
    exact = index.search(vectors, 10, exact=True)
    assert recall(index.search(vectors, 10), exact) >= 0.95
    # top_k beyond the corpus: every document once, as the exact search gives them.
    everything = index.search(vectors[:1], 1000)[0]
    assert sorted(p for p, _ in everything) == list(range(len(index)))


def test_hnsw_index_round_trips_through_disk(
    vectors_index: search.Index, tmp_path: Path
) -> None:
    out = vectors_index.save(tmp_path / "idx")
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*search.INDEX_FILES, search.HNSW_FILE]
    )
    meta = json.loads((out / "index.json").read_text())
    assert meta["ann"]["kind"] == "hnsw" and meta["ann"]["file"] == search.HNSW_FILE
    defaults = search.HnswParams()
    assert (meta["ann"]["m"], meta["ann"]["ef_construction"], meta["ann"]["ef_search"]) == (
        defaults.m, defaults.ef_construction, defaults.ef_search
    )

    loaded = search.load_index(out)
    assert loaded.hnsw is None  # loading an index never needs faiss
    reloaded = loaded.with_hnsw(search.load_hnsw(out, loaded))
    queries = clustered(50, 80, seed=2)
    assert reloaded.search(queries, 10) == vectors_index.search(queries, 10)

    # Saved again without its graph, the index is a plain exact one.
    loaded.save(tmp_path / "plain")
    assert "ann" not in json.loads((tmp_path / "plain" / "index.json").read_text())
    with pytest.raises(NlpsuiteError, match=r"has no approximate index.*--ann hnsw"):
        search.load_hnsw(tmp_path / "plain")


def test_broken_hnsw_files_give_one_line_errors(
    vectors_index: search.Index, tmp_path: Path
) -> None:
    out = vectors_index.save(tmp_path / "idx")
    (out / search.HNSW_FILE).write_bytes(b"not a faiss index")
    with pytest.raises(NlpsuiteError, match=r"hnsw\.faiss: cannot read") as raised:
        search.load_hnsw(out)
    assert "\n" not in str(raised.value)
    (out / search.HNSW_FILE).unlink()
    with pytest.raises(NlpsuiteError, match=r"incomplete: hnsw\.faiss is missing"):
        search.load_hnsw(out)

    smaller = search.Index(("a", "b"), ("", ""), clustered(2, 1, seed=3), MODEL).with_hnsw()
    smaller.save(tmp_path / "small")
    (out / search.HNSW_FILE).write_bytes((tmp_path / "small" / search.HNSW_FILE).read_bytes())
    with pytest.raises(NlpsuiteError, match="expected an HNSW index of 4000 vectors"):
        search.load_hnsw(out)

    with pytest.raises(NlpsuiteError, match="'m' must be an integer of at least 2"):
        search.HnswParams(m=1)


def test_task_option_and_index_build_command(
    minilm: Path, faiss: object, tmp_path: Path
) -> None:
    from nlpsuite.cli import cli

    if "index" not in cli.commands:  # main() adds plugin commands; CliRunner skips main()
        search.register_commands(cli)
    out = tmp_path / "ann-index"
    built = nlpsuite("index", "build", str(search.DEMO_CORPUS), "--out", str(out),
                     "--ann", "hnsw", "--hnsw-ef-search", "48")
    assert built.returncode == 0, built.stderr
    assert "with an HNSW graph" in built.stdout
    info = json.loads(nlpsuite("index", "info", str(out)).stdout)
    assert info["ann"]["kind"] == "hnsw" and info["ann"]["ef_search"] == 48
    assert info["ann"]["library"].startswith("faiss-cpu ")

    queries = ["how do plants make energy", "who won the football final"]
    exact = run("semantic-search", queries, MODEL, options={"index": str(out)})
    approximate = run("semantic-search", queries, MODEL,
                      options={"index": str(out), "ann": "hnsw", "ef_search": 100})
    assert [r.ids for r in approximate] == [r.ids for r in exact]  # 48 documents: all found
    # Without a saved graph, one is built for the run (the corpus option, and the demo corpus).
    on_the_fly = run("semantic-search", queries, MODEL, options={"ann": "hnsw"})
    assert [r.ids[:3] for r in on_the_fly] == [r.ids[:3] for r in exact]

    done = nlpsuite("run", "semantic-search", "--index", str(out), "--ann", "hnsw",
                    "--ef-search", "100", "--json", *queries)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [[hit["id"] for hit in row["hits"]] for row in rows] == [r.ids for r in exact]


def test_bad_ann_options(minilm: Path) -> None:
    with pytest.raises(NlpsuiteError, match="option 'ann' must be one of exact, hnsw, got 'ivf'"):
        load_runner("semantic-search", MODEL, options={"ann": "ivf"})
    with pytest.raises(NlpsuiteError, match="'ef_search' applies only with ann=hnsw"):
        load_runner("semantic-search", MODEL, options={"ef_search": 32})


def test_missing_faiss_is_a_one_line_error(
    minilm: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # None in sys.modules makes `import faiss` raise ImportError, as if it were not installed.
    monkeypatch.setitem(sys.modules, "faiss", None)
    hint = "pip install 'nlpsuite[ann]'"
    with pytest.raises(NlpsuiteError, match=r"needs faiss-cpu.*pip install 'nlpsuite\[ann\]'"):
        search.HnswIndex.build(clustered(10, 2, seed=4))
    with pytest.raises(NlpsuiteError, match=r"nlpsuite\[ann\]"):
        load_runner("semantic-search", MODEL, options={"ann": "hnsw"})

    from nlpsuite.cli import cli

    if "index" not in cli.commands:
        search.register_commands(cli)
    done = nlpsuite("index", "build", str(search.DEMO_CORPUS), "--out", str(tmp_path / "x"),
                    "--ann", "hnsw")
    assert done.returncode == 2 and hint in one_error_line(done.stderr)
    assert not (tmp_path / "x").exists()
    # An exact index still builds and searches without it.
    assert run("semantic-search", ["stars"], MODEL)[0].ids


def test_importing_the_plugin_does_not_import_faiss() -> None:
    code = (
        "import sys, nlpsuite_plugins.semantic_search as s; "
        "s.load_index; assert 'faiss' not in sys.modules, 'faiss imported'"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
