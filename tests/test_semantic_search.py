"""semantic-search: embeddings as sentence-transformers makes them, ranking, saved indexes,
corpus errors, the command line, and the retrieval metrics."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from nlpsuite_plugins import semantic_search as search

from nlpsuite import NlpsuiteError, RunConfig, load_runner, run
from nlpsuite.metrics import MRR_10, NDCG_10, RECALL_10, RECALL_100
from tests.helpers import nlpsuite, one_error_line

MODEL = search.DEFAULT_MODEL

SENTENCES = [
    "A man is playing a guitar on the street.",
    "The stock market fell sharply after the announcement.",
    "Photosynthesis converts light energy into chemical energy.",
    "I can't believe it's already December!",
    "Der Hund schläft auf dem Sofa.",
    "COVID-19 vaccines reduce the risk of severe illness.",
    "The quick brown fox jumps over the lazy dog.",
    "How do I reset my password?",
    "She scored two goals in the final minutes of the match.",
    "def add(a, b): return a + b",
    "Paris is the capital of France.",
    "The recipe calls for two cups of flour and a pinch of salt.",
    "Quantum entanglement links the states of two particles.",
    "ok",
    "Thank you so much for your help yesterday!!! :)",
    "The committee postponed its decision until next spring.",
    "Heavy rain caused flooding across the northern region.",
    "Neural networks learn representations from data.",
    "He bought a new bicycle for his daughter's birthday.",
    "Mount Everest is the highest mountain above sea level, at 8,849 metres.",
    "日本の首都は東京です。",
    # Well over 256 word pieces, so truncation at max_seq_length decides the embedding.
    " ".join(
        f"Paragraph {i}: the history of the river valley records floods, harvests, markets, "
        f"bridges and the slow growth of towns along its banks over many centuries."
        for i in range(20)
    ),
]

CORPUS = [
    {"id": doc_id, "text": text}
    for doc_id, text in [
        ("astro",
         "The telescope revealed distant galaxies and a new comet in the night sky."),
        ("cook",
         "Whisk the eggs with sugar, fold in the flour and bake the cake for 30 minutes."),
        ("law",
         "The court ruled that the contract was void because one party was a minor."),
        ("soccer",
         "The striker scored a penalty in extra time to win the championship."),
        ("code",
         "The Python function raised a KeyError when the dictionary lacked the key."),
        ("health",
         "Regular exercise lowers blood pressure and reduces the risk of heart disease."),
        ("weather",
         "A cold front will bring thunderstorms and strong winds on Tuesday."),
        ("music",
         "The orchestra performed Beethoven's ninth symphony to a standing ovation."),
    ]
]
QUERIES = {
    "how do I bake a sponge cake": "cook",
    "who won the football final": "soccer",
    "is it going to rain this week": "weather",
    "looking at stars and planets": "astro",
    "bug in my python dictionary lookup": "code",
    "ways to keep my heart healthy": "health",
    "classical music concert": "music",
    "can a child sign a legal agreement": "law",
}


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "corpus.jsonl", CORPUS)


@pytest.fixture(scope="module")
def minilm_index(minilm: Path, corpus_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("indexes") / "minilm"
    search.build_index(corpus_file, MODEL, out)
    return out


def config(model: str = MODEL, batch_size: int = 32) -> RunConfig:
    return RunConfig(model=model, batch_size=batch_size)


# Embeddings


@pytest.mark.slow
def test_embeddings_match_sentence_transformers(minilm: Path) -> None:
    from sentence_transformers import SentenceTransformer

    ours = search.embed(SENTENCES, config())
    reference = SentenceTransformer(str(minilm), device="cpu").encode(
        SENTENCES, normalize_embeddings=True, convert_to_numpy=True
    )
    assert ours.dtype == np.float32 and ours.shape == reference.shape == (len(SENTENCES), 384)
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    cosines = np.einsum("ij,ij->i", ours, reference) / np.linalg.norm(reference, axis=1)
    assert cosines.min() >= 0.9999, dict(zip(SENTENCES, cosines.round(6), strict=True))
    encoder = search.load_encoder(MODEL)
    assert encoder.max_length == 256
    assert len(encoder.tokenizer(SENTENCES[-1])["input_ids"]) > 256


def test_sentence_config_of_minilm(minilm: Path) -> None:
    settings = search.read_sentence_config(str(minilm))
    assert settings.pooling == ("mean",)
    assert settings.max_seq_length == 256 and not settings.lowercase


def test_batch_size_does_not_change_results(minilm: Path, corpus_file: Path) -> None:
    one = search.embed(SENTENCES, config(batch_size=1))
    eight = search.embed(SENTENCES, config(batch_size=8))
    assert np.allclose(one, eight, atol=1e-5)
    queries = list(QUERIES)
    ranked = [
        [r.ids for r in run("semantic-search", queries, MODEL, batch_size=size,
                            options={"corpus": str(corpus_file)})]
        for size in (1, 8)
    ]
    assert ranked[0] == ranked[1]


def test_similarity_helper(minilm: Path) -> None:
    scores = search.similarity(
        [("A man is playing the guitar.", "A person plays a guitar."),
         ("A man is playing the guitar.", "The tax rate rose last year.")],
        config(),
    )
    assert scores.shape == (2,) and scores[0] > 0.7 > 0.2 > scores[1]


def test_cls_pooling_and_max_seq_length_follow_the_config(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    import torch

    from nlpsuite.models import load_model, load_tokenizer

    folder = tmp_path / "cls-model"
    shutil.copytree(tiny_classifier, folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"word_embedding_dimension": 32, "pooling_mode_cls_token": True,
         "pooling_mode_mean_tokens": False}
    ))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 8}))
    encoder = search.load_encoder(str(folder))
    assert encoder.sentence.pooling == ("cls",) and encoder.max_length == 8
    texts = ["the cat and the dog", "a long story of the king and the queen of the old city"]
    ours = encoder.encode(texts)

    tokenizer, model = load_tokenizer(str(folder)), load_model("AutoModel", str(folder))
    batch = tokenizer(texts, truncation=True, max_length=8, padding=True, return_tensors="pt")
    with torch.inference_mode():
        cls = model(**batch).last_hidden_state[:, 0]
    expected = torch.nn.functional.normalize(cls, dim=1).numpy()
    assert np.allclose(ours, expected, atol=1e-5)


def test_concatenated_max_and_mean_pooling(tiny_classifier: Path, tmp_path: Path) -> None:
    import torch

    from nlpsuite.models import load_model, load_tokenizer

    folder = tmp_path / "max-mean-model"
    shutil.copytree(tiny_classifier, folder)
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(
        {"pooling_mode_mean_tokens": True, "pooling_mode_max_tokens": True}
    ))
    encoder = search.load_encoder(str(folder))
    assert encoder.sentence.pooling == ("max", "mean") and encoder.dimension == 64
    texts = ["the cat", "the old king of the big city and his queen"]
    ours = encoder.encode(texts, batch_size=2)  # one padded batch: padding must not leak in

    tokenizer, model = load_tokenizer(str(folder)), load_model("AutoModel", str(folder))
    expected = []
    for text in texts:  # one at a time: no padding at all
        with torch.inference_mode():
            hidden = model(**tokenizer(text, return_tensors="pt")).last_hidden_state[0]
        joined = torch.cat([hidden.max(0).values, hidden.mean(0)])
        expected.append(torch.nn.functional.normalize(joined, dim=0).numpy())
    assert np.allclose(ours, np.stack(expected), atol=1e-5)


# Ranking


def test_each_query_finds_its_document(minilm: Path, corpus_file: Path) -> None:
    results = run("semantic-search", list(QUERIES), MODEL, options={"corpus": str(corpus_file)})
    assert [result.ids[0] for result in results] == list(QUERIES.values())
    for result in results:
        assert len(result.hits) == len(CORPUS)  # top_k 10 > 8 documents: all of them
        scores = [hit.score for hit in result.hits]
        assert scores == sorted(scores, reverse=True)
        assert result.hits[0].text == next(d["text"] for d in CORPUS if d["id"] == result.ids[0])


def test_demo_corpus_answers_the_readme_query(minilm: Path) -> None:
    [result] = run("semantic-search", ["how do plants make energy"], options={"top_k": 3})
    assert result.ids[0] == "photosynthesis" and len(result.hits) == 3
    header, *lines = search.render(result).splitlines()
    assert header == "query: how do plants make energy" and len(lines) == 3
    rank, score, doc_id, *snippet = lines[0].split()
    assert (rank, doc_id) == ("1", "photosynthesis") and 0 < float(score) <= 1 and snippet


def test_demo_corpus_is_well_formed() -> None:
    corpus = search.read_corpus(search.DEMO_CORPUS)
    assert 30 <= len(corpus.ids) <= 60
    assert (search.DEMO_CORPUS.parent / "LICENSE-demo-corpus.txt").is_file()


def test_plain_text_corpus_ids_are_line_numbers(minilm: Path, tmp_path: Path) -> None:
    lines = tmp_path / "docs.txt"
    lines.write_text("Cats purr when they are content.\n\nThe bridge was closed for repairs.\n")
    corpus = search.read_corpus(lines)
    assert corpus.ids == ("1", "3")
    [result] = run("semantic-search", ["road closure"], MODEL, options={"corpus": str(lines)})
    assert result.ids == ["3", "1"]


def test_top_k_rows_matches_a_full_sort() -> None:
    rng = np.random.default_rng(0)
    scores = rng.standard_normal((5, 1000)).astype(np.float32)
    positions, values = search.top_k_rows(scores, 7)
    expected = np.argsort(-scores, axis=1)[:, :7]
    assert np.array_equal(positions, expected)
    assert np.array_equal(values, np.take_along_axis(scores, expected, axis=1))
    # k beyond the corpus returns everything; ties come back in document order.
    tied = np.array([[0.5, 0.9, 0.5, 0.1]], dtype=np.float32)
    positions, _ = search.top_k_rows(tied, 10)
    assert positions.tolist() == [[1, 0, 2, 3]]


def test_search_blocks_agree_with_one_matmul(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    docs = rng.standard_normal((300, 16)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    index = search.Index(tuple(map(str, range(300))), ("t",) * 300, docs, "m")
    queries = docs[:40] + 0.01
    whole = index.search(queries, 5)
    # Three queries per block; patched in the module whose Index.search reads it.
    monkeypatch.setattr("nlpsuite_plugins.semantic_search.index._SCORE_BLOCK_CELLS", 300 * 3)
    blocked = index.search(queries, 5)
    # BLAS may sum in another order for another shape: the last bit of a score can differ.
    assert [[p for p, _ in hits] for hits in blocked] == [[p for p, _ in hits] for hits in whole]
    assert np.allclose([[s for _, s in h] for h in blocked], [[s for _, s in h] for h in whole])
    assert [hits[0][0] for hits in whole] == list(range(40))


def test_corpus_embeddings_are_cached_per_file_version(minilm: Path, tmp_path: Path) -> None:
    corpus = write_jsonl(tmp_path / "c.jsonl", CORPUS[:3])
    settings = RunConfig(MODEL, options={"corpus": str(corpus)})
    encoder = search.load_encoder(MODEL)
    first = search.index_for(settings, encoder)
    assert search.index_for(settings, encoder) is first
    later = corpus.stat().st_mtime_ns + 10**9  # a coarse file-system clock must still differ
    write_jsonl(corpus, CORPUS[:4])
    os.utime(corpus, ns=(later, later))
    refreshed = search.index_for(settings, encoder)
    assert refreshed is not first and len(refreshed) == 4


# Saved indexes


def test_saved_index_reloads_to_the_same_results(
    minilm: Path, corpus_file: Path, minilm_index: Path
) -> None:
    built = search.build_index(corpus_file, MODEL)
    loaded = search.load_index(minilm_index)
    assert loaded.ids == built.ids and loaded.texts == built.texts
    assert loaded.embeddings.dtype == np.float32
    assert np.array_equal(loaded.embeddings, built.embeddings)
    meta = json.loads((minilm_index / "index.json").read_text())
    assert meta["model"] == MODEL and meta["normalised"] is True
    assert meta["dimension"] == 384 and meta["count"] == len(CORPUS)
    assert meta["weights_sha256"] and len(meta["weights_sha256"]) == 64
    assert sorted(p.name for p in minilm_index.iterdir()) == sorted(search.INDEX_FILES)

    queries = list(QUERIES)
    from_corpus = run("semantic-search", queries, MODEL, options={"corpus": str(corpus_file)})
    from_index = run("semantic-search", queries, MODEL, options={"index": str(minilm_index)})
    assert from_index == from_corpus


def test_float16_index_and_atomic_replacement(
    minilm: Path, corpus_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "idx"
    search.build_index(corpus_file, MODEL, out)
    full = search.load_index(out)
    search.build_index(corpus_file, MODEL, out, float16=True)  # replaces the existing index
    half = search.load_index(out)
    assert np.load(out / "embeddings.npy").dtype == np.float16
    assert half.embeddings.dtype == np.float32
    assert np.abs(half.embeddings - full.embeddings).max() < 1e-3
    assert [p.name for p in tmp_path.iterdir()] == ["idx"]  # no staging or old copies left

    stranger = tmp_path / "not-an-index"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(NlpsuiteError, match="not an nlpsuite index"):
        full.save(stranger)
    assert (stranger / "notes.txt").read_text() == "mine"


def test_index_from_another_model_is_refused(
    minilm: Path, tiny_classifier: Path, corpus_file: Path, minilm_index: Path, tmp_path: Path
) -> None:
    tiny = tmp_path / "tiny-index"
    search.build_index(corpus_file, str(tiny_classifier), tiny)
    assert json.loads((tiny / "index.json").read_text())["dimension"] == 32
    with pytest.raises(NlpsuiteError) as refused:
        load_runner("semantic-search", MODEL, options={"index": str(tiny)})
    assert str(tiny_classifier) in str(refused.value) and MODEL in str(refused.value)

    # Same dimension, different weights: caught by the recorded sha256 alone.
    edited = tmp_path / "edited"
    shutil.copytree(minilm_index, edited)
    meta = json.loads((edited / "index.json").read_text())
    meta |= {"model": "someone/other-minilm", "weights_sha256": "0" * 64}
    (edited / "index.json").write_text(json.dumps(meta))
    with pytest.raises(NlpsuiteError, match=r"'someone/other-minilm'.*all-MiniLM-L6-v2"):
        load_runner("semantic-search", MODEL, options={"index": str(edited)})
    # The same weights under another name (a local path) are accepted.
    load_runner("semantic-search", str(minilm), options={"index": str(minilm_index)})


def test_broken_indexes_give_clear_errors(
    minilm_index: Path, corpus_file: Path, tmp_path: Path
) -> None:
    with pytest.raises(NlpsuiteError, match="index directory not found"):
        search.load_index(tmp_path / "missing")
    with pytest.raises(NlpsuiteError, match="is a file, not a directory"):
        search.load_index(corpus_file)
    pickled = tmp_path / "pickled"
    shutil.copytree(minilm_index, pickled)
    np.save(pickled / "embeddings.npy", np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(NlpsuiteError, match=r"embeddings\.npy: cannot read"):
        search.load_index(pickled)
    newer = tmp_path / "newer"
    shutil.copytree(minilm_index, newer)
    meta = json.loads((newer / "index.json").read_text()) | {"version": 99}
    (newer / "index.json").write_text(json.dumps(meta))
    with pytest.raises(NlpsuiteError, match="version 99 is newer"):
        search.load_index(newer)


# Corpus and query errors


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("dup.jsonl",
         '{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n{"id": "a", "text": "z"}\n',
         r"dup.jsonl:3: duplicate id 'a' \(first at .*dup.jsonl:1\)"),
        ("dup.csv", "id,text\n1,one\n2,two\n1,three\n", r"dup.csv:4: duplicate id '1'"),
        ("notext.jsonl", '{"id": "a", "text": "x"}\n{"id": "b", "body": "y"}\n',
         r"notext.jsonl:2: missing field 'text'"),
        ("noid.csv", "text\nhello\n", r"noid.csv:2: missing field 'id'"),
        ("blank.jsonl", '{"id": "a", "text": "  "}\n', r"blank.jsonl:1: field 'text' is empty"),
        ("empty.jsonl", "\n\n", r"corpus .*empty.jsonl has no documents"),
        ("empty.txt", "", r"corpus .*empty.txt has no documents"),
        ("bad.jsonl", '{"id": "a", "text": "x"}\n{oops\n', r"bad.jsonl:2: not valid JSON"),
    ],
)
def test_corpus_errors_name_file_and_line(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(NlpsuiteError, match=message):
        search.read_corpus(path)


def test_beir_style_corpus_is_understood(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "beir.jsonl", [
        {"_id": 7, "title": "Tea", "text": "It is a drink.", "metadata": {}},
    ])
    corpus = search.read_corpus(path)
    assert corpus.ids == ("7",) and corpus.texts == ("Tea It is a drink.",)


def test_empty_query_and_bad_options(minilm: Path, corpus_file: Path) -> None:
    with pytest.raises(NlpsuiteError, match="field 'text' is empty"):
        search.SearchQuery("   ")
    with pytest.raises(NlpsuiteError, match="input 1: field 'text' is empty"):
        run("semantic-search", [""], MODEL, options={"corpus": str(corpus_file)})
    with pytest.raises(NlpsuiteError, match="'top_k' must be at least 1"):
        load_runner("semantic-search", MODEL, options={"top_k": 0})
    with pytest.raises(NlpsuiteError, match="not both"):
        load_runner("semantic-search", MODEL, options={"corpus": "a", "index": "b"})


# Command line


def test_cli_run_with_corpus_flag(minilm: Path, corpus_file: Path) -> None:
    done = nlpsuite("run", "semantic-search", "--corpus", str(corpus_file), "--top-k", "2",
                    "--json", "who won the football final", "classical music concert")
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [row["hits"][0]["id"] for row in rows] == ["soccer", "music"]
    assert all(len(row["hits"]) == 2 and set(row["hits"][0]) == {"id", "score", "text"}
               for row in rows)
    text = nlpsuite("run", "semantic-search", "--corpus", str(corpus_file), "-O", "top_k=1",
                    "bake a cake")
    header, first_hit = text.stdout.splitlines()
    assert header == "query: bake a cake"
    assert first_hit.split()[:1] + first_hit.split()[2:3] == ["1", "cook"]


def test_cli_bad_corpus_is_one_line_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "text": "x"}\n{"id": "a", "text": "y"}\n')
    done = nlpsuite("run", "semantic-search", "--corpus", str(bad), "query")
    assert done.returncode == 2
    assert "bad.jsonl:2: duplicate id 'a'" in one_error_line(done.stderr)
    missing = nlpsuite("run", "semantic-search", "--index", str(tmp_path / "nope"), "query")
    assert missing.returncode == 2 and "index directory not found" in one_error_line(
        missing.stderr
    )


def test_cli_index_build_then_search(minilm: Path, corpus_file: Path, tmp_path: Path) -> None:
    from nlpsuite.cli import cli

    if "index" not in cli.commands:  # main() adds plugin commands; CliRunner skips main()
        search.register_commands(cli)
    out = tmp_path / "cli-index"
    built = nlpsuite("index", "build", str(corpus_file), "--out", str(out))
    assert built.returncode == 0, built.stderr
    assert f"indexed {len(CORPUS)} documents" in built.stdout
    assert json.loads(nlpsuite("index", "info", str(out)).stdout)["count"] == len(CORPUS)
    done = nlpsuite("run", "semantic-search", "--index", str(out), "--json", "stars and planets")
    assert json.loads(done.stdout)["hits"][0]["id"] == "astro"
    bad = nlpsuite("index", "build", str(tmp_path / "none.jsonl"), "--out", str(out))
    assert bad.returncode == 2 and "corpus file not found" in one_error_line(bad.stderr)


# Retrieval metrics on a toy ranking, computed by hand


def test_retrieval_metrics_by_hand() -> None:
    rankings = [["d3", "d1", "d7", "d2"], ["x9", "x8"]]
    qrels = [{"d1": 1, "d2": 2, "d5": 1}, {"x1": 1}]
    # Query 1: gains at ranks 2 and 4 are 1 and 2; ideal order is 2, 1, 1.
    dcg = 1 / math.log2(3) + 2 / math.log2(5)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert NDCG_10.compute(rankings, qrels) == pytest.approx((dcg / idcg + 0.0) / 2)
    assert MRR_10.compute(rankings, qrels) == pytest.approx((1 / 2 + 0) / 2)
    assert RECALL_10.compute(rankings, qrels) == pytest.approx((2 / 3 + 0) / 2)
    assert RECALL_100.compute(rankings, qrels) == pytest.approx((2 / 3 + 0) / 2)
    # A relevant document past rank 10 counts for recall@100 only.
    deep = [[f"n{i}" for i in range(10)] + ["d1"]]
    assert MRR_10.compute(deep, [{"d1": 1}]) == 0.0
    assert RECALL_10.compute(deep, [{"d1": 1}]) == 0.0
    assert RECALL_100.compute(deep, [{"d1": 1}]) == 1.0
    assert NDCG_10.compute([["d1"]], [{"d1": 1}]) == pytest.approx(1.0)


def test_task_prediction_feeds_the_metrics(minilm: Path, corpus_file: Path) -> None:
    from nlpsuite import get_task

    task = get_task("semantic-search")
    results = run(task, list(QUERIES), MODEL, options={"corpus": str(corpus_file)})
    rankings = [task.prediction(result) for result in results]
    qrels = [{doc: 1} for doc in QUERIES.values()]
    assert {m.name for m in task.metrics} == {"ndcg@10", "mrr@10", "recall@10", "recall@100"}
    assert all(metric.compute(rankings, qrels) == pytest.approx(1.0) for metric in task.metrics)
