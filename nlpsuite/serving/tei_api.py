"""text-embeddings-inference (TEI) compatible routes: ``POST /embed``, ``/predict``, ``/rerank``.

Request and answer shapes are TEI's (its ``router/src/http/types.rs``), so a TEI client only
changes its base URL. Each route is backed by a served task, through its micro-batcher:

- ``/embed`` by ``embedding``: ``{"inputs": str | [str], "normalize"?, "truncate"?}`` ->
  ``[[float, ...], ...]``, one unit-length vector per input (always a list of vectors).
- ``/predict`` by ``sentiment``: ``{"inputs": str | [str] | [[str], ...], "raw_scores"?,
  "truncate"?}`` -> ``[{"label", "score"}, ...]`` best first for one input, a list of those for a
  batch. As in TEI, a flat list is ONE input (``[text]``, or ``[text, text]``: a pair, which a
  one-text classifier refuses); a batch is a list of lists. The labels are those the served
  classifier's answer holds: all of them when it runs with ``--option top_k=N``, N >= labels.
- ``/rerank`` by ``sentence-similarity``: ``{"query", "texts": [str], "return_text"?,
  "raw_scores"?, "truncate"?}`` -> ``[{"index", "score", "text"?}, ...]``, best first; the score
  is the cosine of the query's and the text's embeddings (a bi-encoder, not a cross-encoder).

Differences from TEI, each refused with a 422 naming the field rather than answered wrongly:
``normalize: false`` (the encoder gives only unit-length vectors) and ``raw_scores: true`` on
``/predict`` (the classifier's answer holds probabilities, not logits). ``truncate`` is read
but inputs are always cut at the model's limit, as ``nlpsuite run`` does; ``raw_scores`` on
``/rerank`` changes nothing, since a cosine has no sigmoid to leave out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from nlpsuite.errors import NlpsuiteError
from nlpsuite.serving.http import ServeError, field, json_object, json_response, read_json

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

    from nlpsuite.serving.server import ServedTask, Server

EMBED_TASK = "embedding"
PREDICT_TASK = "sentiment"
RERANK_TASK = "sentence-similarity"


def routes(server: Server) -> list[BaseRoute]:
    """The TEI-compatible routes for ``server``."""
    from starlette.routing import Route

    async def embed(request: Request) -> Response:
        """TEI embed: a unit-length vector per input (task 'embedding')"""
        served = server.first_served(EMBED_TASK)
        return json_response(await embed_answer(served, await read_json(request), request))

    async def predict(request: Request) -> Response:
        """TEI predict: labels and scores per input, best first (task 'sentiment')"""
        served = server.first_served(PREDICT_TASK)
        return json_response(await predict_answer(served, await read_json(request), request))

    async def rerank(request: Request) -> Response:
        """TEI rerank: the texts by cosine to the query, best first (task 'sentence-similarity')"""
        served = server.first_served(RERANK_TASK)
        return json_response(await rerank_answer(served, await read_json(request), request))

    return [
        Route("/embed", embed, methods=["POST"], name="tei_embed"),
        Route("/predict", predict, methods=["POST"], name="tei_predict"),
        Route("/rerank", rerank, methods=["POST"], name="tei_rerank"),
    ]


# /embed


async def embed_answer(served: ServedTask, body: Any, request: Request | None = None
                       ) -> list[list[float]]:
    fields = json_object(body)
    texts = text_list(field(fields, "inputs", (str, list)), "inputs")
    if not field(fields, "normalize", bool, True):
        raise ServeError(422, "field 'normalize': false is not supported; this server's "
                              "embeddings are unit length", param="normalize")
    field(fields, "truncate", bool, False)
    records = [make_record(served, {"text": text}, f"inputs[{i}]", "inputs")
               for i, text in enumerate(texts)]
    outputs = await served.predict(records, request)
    return [list(output.embedding) for output in outputs]


def text_list(value: str | list[Any], name: str) -> list[str]:
    """A string or a non-empty list of strings, as a list; 422 naming the field otherwise."""
    texts = [value] if isinstance(value, str) else value
    if not texts:
        raise ServeError(422, f"field '{name}' is an empty list", param=name)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise ServeError(422, f"field '{name}[{i}]' must be a string, not "
                                  f"{type(text).__name__}", param=name)
    return texts


def make_record(served: ServedTask, values: dict[str, str], where: str, param: str) -> Any:
    """The served task's input record from ``values``; its own refusal (an empty text) is a
    422 naming the request field, ``where``."""
    try:
        return served.task.make_input(values, where)
    except NlpsuiteError as error:
        raise ServeError(422, str(error), param=param) from None


# /predict


async def predict_answer(served: ServedTask, body: Any, request: Request | None = None
                         ) -> list[dict[str, Any]] | list[list[dict[str, Any]]]:
    fields = json_object(body)
    batch, texts = predict_inputs(field(fields, "inputs", (str, list)))
    if field(fields, "raw_scores", bool, False):
        raise ServeError(422, "field 'raw_scores': true is not supported; the classifier "
                              "answers probabilities, not logits", param="raw_scores")
    field(fields, "truncate", bool, False)
    where = "inputs[{}]" if batch else "inputs"
    records = [make_record(served, {"text": text}, where.format(i), "inputs")
               for i, text in enumerate(texts)]
    answers = [predictions(output) for output in await served.predict(records, request)]
    return answers if batch else answers[0]


def predict_inputs(inputs: str | list[Any]) -> tuple[bool, list[str]]:
    """TEI's ``inputs``: ``"text"`` or ``["text"]`` (one input), or ``[["text"], ...]`` (a
    batch); whether it is a batch, and its texts. A pair ``[a, b]`` is 422: a classifier of one
    text cannot take it."""
    if isinstance(inputs, str):
        return False, [inputs]
    if not inputs:
        raise ServeError(422, "field 'inputs' is an empty list", param="inputs")
    if isinstance(inputs[0], list):
        return True, [one_text(item, f"inputs[{i}]") for i, item in enumerate(inputs)]
    return False, [one_text(inputs, "inputs")]


def one_text(sequence: Any, name: str) -> str:
    """The text of TEI's one-input sequence ``[text]``; 422 for anything else."""
    if not isinstance(sequence, list) or not all(isinstance(text, str) for text in sequence):
        raise ServeError(422, f"field '{name}' must be a list of strings: [text] (a batch is a "
                              "list of those)", param="inputs")
    if len(sequence) == 2:
        raise ServeError(422, f"field '{name}' is a pair of texts; the served classifier takes "
                              "one text: send [text], or a batch as [[text], [text]]",
                         param="inputs")
    if len(sequence) != 1:
        raise ServeError(422, f"field '{name}' holds {len(sequence)} texts; an input is [text] "
                              "and a batch is [[text], [text], ...]", param="inputs")
    text: str = sequence[0]
    return text


def predictions(output: Any) -> list[dict[str, Any]]:
    """A classifier's answer as TEI's predictions, best first: every label it scored."""
    scores = getattr(output, "scores", None) or {output.label: output.score}
    ranked = sorted(scores.items(), key=lambda item: -item[1])
    return [{"label": label, "score": score} for label, score in ranked]


# /rerank


async def rerank_answer(served: ServedTask, body: Any, request: Request | None = None
                        ) -> list[dict[str, Any]]:
    fields = json_object(body)
    query = field(fields, "query", str)
    if not query.strip():
        raise ServeError(422, "field 'query' is empty", param="query")
    texts = text_list(field(fields, "texts", list), "texts")
    for i, text in enumerate(texts):
        if not text.strip():
            raise ServeError(422, f"field 'texts[{i}]' is empty", param="texts")
    return_text = field(fields, "return_text", bool, False)
    field(fields, "raw_scores", bool, False)
    field(fields, "truncate", bool, False)
    records = [make_record(served, {"text": query, "text_pair": text}, f"texts[{i}]", "texts")
               for i, text in enumerate(texts)]
    outputs = await served.predict(records, request)
    return ranks([output.score for output in outputs], texts if return_text else None)


def ranks(scores: Sequence[float], texts: Sequence[str] | None) -> list[dict[str, Any]]:
    """TEI's ranks: index and score of each text, best first (ties in input order), with the
    text when asked for."""
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    return [{"index": i, "score": scores[i], **({"text": texts[i]} if texts is not None else {})}
            for i in order]


# The routes' request and answer shapes for /openapi.json (TEI's own schemas, as JSON schema).

_TEXTS = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"},
                                          "minItems": 1}]}
_FLAG = {"type": "boolean"}
_PREDICTION = {"type": "object", "required": ["label", "score"],
               "properties": {"label": {"type": "string"}, "score": {"type": "number"}}}
_PREDICTIONS = {"type": "array", "items": _PREDICTION}


def openapi_paths() -> dict[str, Any]:
    """``/embed``, ``/predict`` and ``/rerank`` as OpenAPI path items: request body and the
    200 answer (the error answers are every route's)."""
    embed = _operation(
        "TEI embed: a unit-length vector per input (task 'embedding')",
        {"inputs": _TEXTS, "normalize": {**_FLAG, "default": True, "enum": [True]},
         "truncate": {**_FLAG, "default": False}},
        {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
    )
    one_input = {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": 1}
    predict = _operation(
        "TEI predict: labels and scores per input, best first (task 'sentiment')",
        {"inputs": {"anyOf": [{"type": "string"}, one_input,
                              {"type": "array", "items": one_input, "minItems": 1}]},
         "raw_scores": {**_FLAG, "default": False, "enum": [False]},
         "truncate": {**_FLAG, "default": False}},
        {"anyOf": [_PREDICTIONS, {"type": "array", "items": _PREDICTIONS}]},
    )
    rank = {"type": "object", "required": ["index", "score"],
            "properties": {"index": {"type": "integer"}, "score": {"type": "number"},
                           "text": {"type": "string"}}}
    rerank = _operation(
        "TEI rerank: the texts by cosine to the query, best first (task 'sentence-similarity')",
        {"query": {"type": "string"},
         "texts": {"type": "array", "items": {"type": "string"}, "minItems": 1},
         "return_text": {**_FLAG, "default": False}, "raw_scores": {**_FLAG, "default": False},
         "truncate": {**_FLAG, "default": False}},
        {"type": "array", "items": rank},
        required=("query", "texts"),
    )
    return {"/embed": {"post": embed}, "/predict": {"post": predict},
            "/rerank": {"post": rerank}}


def _operation(summary: str, properties: dict[str, Any], answer: dict[str, Any],
               required: Sequence[str] = ("inputs",)) -> dict[str, Any]:
    body = {"type": "object", "required": list(required), "properties": properties}
    return {
        "summary": summary, "tags": ["text-embeddings-inference"],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {"200": {"description": "OK",
                              "content": {"application/json": {"schema": answer}}}},
    }
