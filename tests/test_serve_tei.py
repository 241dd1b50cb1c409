"""The `embedding` task, and the TEI-compatible routes (/embed, /predict, /rerank) on a REAL
server: the real all-MiniLM-L6-v2 for embeddings and similarity, a tiny random classifier for
/predict; each answer checked against what the task's runner gives for the same input alone."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nlpsuite import get_task
from nlpsuite.lookup import load_runner
from tests.helpers import nlpsuite

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from nlpsuite.serving.server import ServeConfig
from tests.serving import post, serve_in_thread

TEXTS = ["A man is playing a guitar.", "Rain all weekend.",
         "The quick brown fox jumps over the lazy dog near the river bank this morning."]


# The embedding task


def test_embedding_runner_gives_the_encoders_unit_rows(minilm: Path) -> None:
    from nlpsuite_plugins.semantic_search import load_encoder

    task = get_task("embedding")
    records = [task.make_input(text, "test") for text in TEXTS]
    outputs = load_runner(task, str(minilm))(records)
    rows = load_encoder(str(minilm)).encode(TEXTS)
    assert [output.embedding for output in outputs] == [tuple(row.tolist()) for row in rows]
    for output in outputs:
        assert len(output.embedding) == 384
        assert all(type(value) is float for value in output.embedding)
        assert math.isclose(math.fsum(v * v for v in output.embedding), 1.0, rel_tol=1e-5)


def test_nlpsuite_run_embedding_json_and_terminal(minilm: Path) -> None:
    done = nlpsuite("run", "embedding", "-m", str(minilm), "--json", "hello")
    assert done.returncode == 0, done.stderr
    vector = json.loads(done.stdout)["embedding"]
    # Every digit of each float32 survives the JSON.
    assert vector == list(alone("embedding", minilm, {"text": "hello"}).embedding)

    shown = nlpsuite("run", "embedding", "-m", str(minilm), "hello")
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith("384 dimensions: ") and shown.stdout.rstrip().endswith("...")
    empty = nlpsuite("run", "embedding", "-m", str(minilm), "  ")
    assert empty.returncode == 2 and "field 'text' is empty" in empty.stderr


# The TEI routes on a real server


@pytest.fixture(scope="module")
def tei(minilm: Path, tiny_classifier: Path) -> Iterator[str]:
    config = ServeConfig(
        tasks=("embedding", "sentence-similarity", "sentiment"),
        models={"embedding": str(minilm), "sentence-similarity": str(minilm),
                "sentiment": str(tiny_classifier)},
        options={"sentiment": {"top_k": 5}},  # more than its labels: every label's score
    )
    with serve_in_thread(config) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def embedding_only(minilm: Path) -> Iterator[str]:
    with serve_in_thread(ServeConfig(tasks=("embedding",),
                                     models={"embedding": str(minilm)})) as base_url:
        yield base_url


def alone(task: str, model: Path, record: dict[str, Any], **options: Any) -> Any:
    """What ``nlpsuite run`` gives for ``record`` alone."""
    found = get_task(task)
    return load_runner(found, str(model), options=options)([found.make_input(record, "test")])[0]


def test_embed_answers_each_input_with_the_runners_vector(tei: str, minilm: Path) -> None:
    answer = post(tei, "/embed", {"inputs": TEXTS})
    assert answer.status_code == 200, answer.text
    expected = [list(alone("embedding", minilm, {"text": text}).embedding) for text in TEXTS]
    assert answer.json() == expected

    single = post(tei, "/embed", {"inputs": TEXTS[1], "normalize": True, "truncate": True})
    assert single.status_code == 200 and single.json() == [expected[1]]


def test_rerank_orders_texts_by_the_similarity_runners_cosine(tei: str, minilm: Path) -> None:
    query = "Someone plays music."
    answer = post(tei, "/rerank", {"query": query, "texts": TEXTS, "return_text": True})
    assert answer.status_code == 200, answer.text
    scores = [alone("sentence-similarity", minilm, {"text": query, "text_pair": text}).score
              for text in TEXTS]
    ranked = sorted(range(len(TEXTS)), key=lambda i: -scores[i])
    assert answer.json() == [{"index": i, "score": scores[i], "text": TEXTS[i]} for i in ranked]
    assert ranked[0] == 0  # the guitar sentence is about music

    without = post(tei, "/rerank", {"query": query, "texts": TEXTS}).json()
    assert [rank["index"] for rank in without] == ranked
    assert all("text" not in rank for rank in without)


def test_predict_gives_every_labels_score_best_first(tei: str, tiny_classifier: Path) -> None:
    expected = []
    for text in TEXTS:
        output = alone("sentiment", tiny_classifier, {"text": text}, top_k=5)
        assert output.scores is not None
        ranked = sorted(output.scores.items(), key=lambda item: -item[1])
        expected.append([{"label": label, "score": score} for label, score in ranked])
    assert {p["label"] for p in expected[0]} == {"NEGATIVE", "POSITIVE"}

    one = post(tei, "/predict", {"inputs": TEXTS[0]})
    assert one.status_code == 200, one.text
    assert one.json() == expected[0]
    assert post(tei, "/predict", {"inputs": [TEXTS[1]]}).json() == expected[1]
    batch = post(tei, "/predict", {"inputs": [[text] for text in TEXTS]})
    assert batch.status_code == 200 and batch.json() == expected


@pytest.mark.parametrize(
    ("path", "body", "param", "words"),
    [
        ("/embed", {}, "inputs", "field 'inputs' is required"),
        ("/embed", {"inputs": 3}, "inputs", "field 'inputs' must be str or list"),
        ("/embed", {"inputs": ["a", 2]}, "inputs", "field 'inputs[1]' must be a string"),
        ("/embed", {"inputs": []}, "inputs", "field 'inputs' is an empty list"),
        ("/embed", {"inputs": ["a", " "]}, "inputs", "inputs[1]: field 'text' is empty"),
        ("/embed", {"inputs": "a", "normalize": "yes"}, "normalize", "must be bool"),
        ("/embed", {"inputs": "a", "normalize": False}, "normalize", "unit length"),
        ("/embed", {"inputs": "a", "truncate": 1}, "truncate", "must be bool"),
        ("/embed", ["a"], None, "must be a JSON object"),
        ("/predict", {"inputs": ["a", "b"]}, "inputs", "is a pair of texts"),
        ("/predict", {"inputs": ["a", "b", "c"]}, "inputs", "holds 3 texts"),
        ("/predict", {"inputs": [["a"], "b"]}, "inputs", "field 'inputs[1]' must be a list"),
        ("/predict", {"inputs": [["a"], ["b", "c"]]}, "inputs", "'inputs[1]' is a pair"),
        ("/predict", {"inputs": "a", "raw_scores": True}, "raw_scores", "not logits"),
        ("/rerank", {"texts": ["a"]}, "query", "field 'query' is required"),
        ("/rerank", {"query": "q", "texts": "a"}, "texts", "field 'texts' must be list"),
        ("/rerank", {"query": "q", "texts": []}, "texts", "field 'texts' is an empty list"),
        ("/rerank", {"query": "q", "texts": ["a", ""]}, "texts", "field 'texts[1]' is empty"),
        ("/rerank", {"query": " ", "texts": ["a"]}, "query", "field 'query' is empty"),
        ("/rerank", {"query": "q", "texts": ["a"], "return_text": "no"}, "return_text",
         "must be bool"),
    ],
)
def test_malformed_bodies_are_422_naming_the_field(
    tei: str, path: str, body: Any, param: str | None, words: str
) -> None:
    answer = post(tei, path, body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert words in error["message"] and error["param"] == param
    assert error["type"] == "invalid_request_error" and error["code"] == 422


def test_not_json_is_400(tei: str) -> None:
    import httpx

    answer = httpx.post(f"{tei}/embed", content=b"{inputs", timeout=30)
    assert answer.status_code == 400 and "not JSON" in answer.json()["error"]["message"]


def test_a_route_whose_task_is_not_served_is_404(embedding_only: str) -> None:
    assert post(embedding_only, "/embed", {"inputs": "fine"}).status_code == 200
    for path, body, task in [("/predict", {"inputs": "a"}, "sentiment"),
                             ("/rerank", {"query": "q", "texts": ["a"]}, "sentence-similarity")]:
        answer = post(embedding_only, path, body)
        assert answer.status_code == 404, answer.text
        message = answer.json()["error"]["message"]
        assert f"task '{task}' is not served" in message
        assert f"nlpsuite serve {task}" in message


def test_the_routes_are_in_the_openapi_document(tei: str) -> None:
    import httpx

    paths = httpx.get(f"{tei}/openapi.json", timeout=30).json()["paths"]
    assert {"/embed", "/predict", "/rerank"} <= set(paths)
    assert "TEI rerank" in paths["/rerank"]["post"]["summary"]


def test_the_embedding_task_is_registered_beside_similarity() -> None:
    task = get_task("embedding")
    assert task.default_model == get_task("sentence-similarity").default_model
    assert task.metrics == ()


def test_a_classifier_answer_without_scores_gives_its_one_label() -> None:
    from nlpsuite_plugins.sentiment import SentimentOutput

    from nlpsuite.serving.tei_api import predictions

    assert predictions(SentimentOutput("POSITIVE", 0.75)) == [{"label": "POSITIVE", "score": 0.75}]
    both = SentimentOutput("b", 0.6, {"a": 0.4, "b": 0.6})
    assert predictions(both) == [{"label": "b", "score": 0.6}, {"label": "a", "score": 0.4}]


def test_the_openapi_shapes_cover_exactly_the_routes() -> None:
    from nlpsuite.serving.tei_api import openapi_paths, routes

    served = [getattr(route, "path", None) for route in routes(None)]  # type: ignore[arg-type]
    assert sorted(openapi_paths()) == sorted(served)
    rerank = openapi_paths()["/rerank"]["post"]["requestBody"]["content"]["application/json"]
    assert rerank["schema"]["required"] == ["query", "texts"]
