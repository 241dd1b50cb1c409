"""The OpenAI-compatible routes' request and answer shapes for ``/openapi.json``, as JSON schema:
the fields the handlers in :mod:`nlpsuite.serving.openai_api` read, and the bodies they build,
no more (kept apart so that module stays short; it imports this one, never the reverse)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nlpsuite.serving.openapi import error_responses, json_content

# text-generation's MAX_LOGPROBS: the most alternatives a record may ask for at each token (a
# plugin's constant, which nlpsuite may not import; tests/test_serve_openai.py checks they agree).
MAX_LOGPROBS = 20

ERROR = {"$ref": "#/components/schemas/Error"}
STRING = {"type": "string"}
INTEGER = {"type": "integer"}
NULL = {"type": "null"}
TOKEN_IDS = {"type": "array", "items": INTEGER, "minItems": 1}
FINISH_REASON = {"enum": ["stop", "length"]}
USAGE = {"type": "object", "required": ["prompt_tokens", "completion_tokens", "total_tokens"],
         "properties": {name: INTEGER
                        for name in ("prompt_tokens", "completion_tokens", "total_tokens")}}
MODEL_FIELD = {"type": "string", "description": "Read but not checked: the served model answers"}


def openapi_paths(neutral: Mapping[str, Any], summaries: Mapping[str, str]) -> dict[str, Any]:
    """The five OpenAI routes as OpenAPI path items; ``neutral``: the fields accepted only at
    the value that changes nothing; ``summaries``: each path's one-line summary."""
    generation = generation_fields(neutral)
    completions = operation(
        summaries["/v1/completions"], "createCompletion",
        {**generation, "prompt": PROMPT,
         "max_tokens": {**INTEGER, "minimum": 0, "default": 16,
                        "description": "Tokens to generate, at least 1 (0 only with echo)"},
         "echo": {"type": "boolean", "default": False,
                  "description": "Put the prompt before the text (with logprobs, score it)"},
         "logprobs": nullable({**INTEGER, "minimum": 0, "maximum": MAX_LOGPROBS,
                               "description": "Each token's log-probability and this many "
                                              "likeliest tokens at its position"})},
        ["prompt"], completion_answer(), stream_answer(completion_chunk()))
    chat = operation(
        summaries["/v1/chat/completions"], "createChatCompletion",
        {**generation, "messages": {"type": "array", "items": MESSAGE, "minItems": 1},
         "max_completion_tokens": nullable({**INTEGER, "minimum": 1, "description":
                                            "Absent: the served task's max_new_tokens"}),
         "max_tokens": nullable({**INTEGER, "minimum": 1,
                                 "description": "Read when max_completion_tokens is absent"}),
         "logprobs": nullable({"type": "boolean", "default": False}),
         "top_logprobs": nullable({**INTEGER, "minimum": 0, "maximum": MAX_LOGPROBS,
                                   "default": 0})},
        ["messages"], chat_answer(), stream_answer(chat_chunk()))
    embeddings = operation(
        summaries["/v1/embeddings"], "createEmbedding",
        {"model": MODEL_FIELD,
         "input": {"anyOf": [STRING, {"type": "array", "items": STRING, "minItems": 1}]},
         "encoding_format": {"enum": ["float", "base64", None], "default": "float",
                             "description": "base64: little-endian float32"},
         "dimensions": nullable({**INTEGER, "description": "Must be the model's own: "
                                                           "embeddings are not shortened"})},
        ["input"], embedding_answer())
    not_served = json_content("The model is not served", ERROR)
    return {
        "/v1/completions": {"post": completions},
        "/v1/chat/completions": {"post": chat},
        "/v1/embeddings": {"post": embeddings},
        "/v1/models": {"get": {
            "summary": summaries["/v1/models"], "operationId": "listModels", "tags": ["openai"],
            "responses": {"200": json_content("The served models", MODEL_LIST),
                          "401": error_responses()["401"]}}},
        "/v1/models/{model}": {"get": {
            "summary": summaries["/v1/models/{model}"], "operationId": "retrieveModel",
            "tags": ["openai"],
            "parameters": [{"name": "model", "in": "path", "required": True, "schema": STRING,
                            "description": "A served model's id, as /v1/models lists it "
                                           "(it may hold '/')"}],
            "responses": {"200": json_content("The model", MODEL),
                          "401": error_responses()["401"], "404": not_served}}},
    }


def operation(summary: str, operation_id: str, properties: dict[str, Any],
              required: list[str], answer: dict[str, Any],
              stream: dict[str, Any] | None = None) -> dict[str, Any]:
    """A POST operation: its JSON body (fields not listed are ignored, so no
    ``additionalProperties: false``), its 200 answer (and event stream) and the error answers."""
    body = {"type": "object", "required": required, "properties": properties}
    ok = json_content("The answer" + (" (stream: false)" if stream else ""), answer)
    if stream:
        ok["content"]["text/event-stream"] = stream
    return {
        "summary": summary, "operationId": operation_id, "tags": ["openai"],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {"200": ok, **error_responses()},
    }


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """``schema`` or null: the handlers read a null field as one left out."""
    if isinstance(schema.get("type"), str):
        return {**schema, "type": [schema["type"], "null"]}
    return {"anyOf": [schema, NULL]}


def generation_fields(neutral: Mapping[str, Any]) -> dict[str, Any]:
    """The fields both generation routes read: sampling, streaming, and the neutral ones."""
    return {
        "model": MODEL_FIELD,
        "temperature": nullable({"type": "number", "minimum": 0,
                                 "description": "0 is greedy; absent: the served task's option"}),
        "top_p": nullable({"type": "number", "exclusiveMinimum": 0, "maximum": 1}),
        "seed": nullable(INTEGER),
        "stop": nullable({"anyOf": [STRING, {"type": "array", "items": STRING}]}),
        "stream": nullable({"type": "boolean", "default": False, "description":
                            "Answer in server-sent events (one prompt, no logprobs)"}),
        "stream_options": nullable({"type": "object", "properties": {
            "include_usage": {"type": "boolean", "default": False}}}),
        **{name: {"enum": [value, None], "description": "Accepted only at this value"}
           for name, value in neutral.items()},
    }


# Requests.

PROMPT = {"anyOf": [STRING, TOKEN_IDS, {"type": "array", "minItems": 1,
                                        "items": {"anyOf": [STRING, TOKEN_IDS]}}],
          "description": "A text, token ids, or a list of those (one choice each)"}
TEXT_PART = {"type": "object", "required": ["type", "text"],
             "properties": {"type": {"const": "text"}, "text": STRING}}
MESSAGE = {"type": "object", "required": ["role"], "properties": {
    "role": STRING,
    "content": {"anyOf": [STRING, {"type": "array", "items": TEXT_PART}, NULL], "default": ""},
}}


# Answers.

def answer_object(kind: str, choice: dict[str, Any], usage: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": ["id", "object", "created", "model", "choices", "usage"],
            "properties": {"id": STRING, "object": {"const": kind}, "created": INTEGER,
                           "model": STRING, "choices": {"type": "array", "items": choice},
                           "usage": usage}}


def choice_object(properties: dict[str, Any]) -> dict[str, Any]:
    every = {"index": INTEGER, **properties}
    return {"type": "object", "required": list(every), "properties": every}


COMPLETION_LOGPROBS = {
    "type": "object", "required": ["tokens", "token_logprobs", "top_logprobs", "text_offset"],
    "properties": {
        "tokens": {"type": "array", "items": STRING},
        "token_logprobs": {"type": "array", "items": {"type": ["number", "null"]}},
        "top_logprobs": {"type": "array", "items": {"anyOf": [
            {"type": "object", "additionalProperties": {"type": "number"}}, NULL]}},
        "text_offset": {"type": "array", "items": INTEGER},
    },
}
CHAT_TOKEN: dict[str, Any] = {
    "type": "object", "required": ["token", "logprob", "bytes"],
    "properties": {"token": STRING, "logprob": {"type": ["number", "null"]},
                   "bytes": {"type": "array", "items": INTEGER}}}
CHAT_LOGPROBS = {"type": "object", "required": ["content", "refusal"], "properties": {
    "content": {"type": "array", "items": {
        "type": "object", "required": [*CHAT_TOKEN["required"], "top_logprobs"],
        "properties": {**CHAT_TOKEN["properties"],
                       "top_logprobs": {"type": "array", "items": CHAT_TOKEN}}}},
    "refusal": NULL}}


def completion_answer() -> dict[str, Any]:
    return answer_object("text_completion", choice_object({
        "text": STRING, "logprobs": nullable(COMPLETION_LOGPROBS),
        "finish_reason": FINISH_REASON}), USAGE)


def chat_answer() -> dict[str, Any]:
    message = {"type": "object", "required": ["role", "content"],
               "properties": {"role": {"const": "assistant"}, "content": STRING}}
    return answer_object("chat.completion", choice_object({
        "message": message, "logprobs": nullable(CHAT_LOGPROBS),
        "finish_reason": FINISH_REASON}), USAGE)


def completion_chunk() -> dict[str, Any]:
    return answer_object("text_completion", choice_object({
        "text": STRING, "logprobs": NULL, "finish_reason": nullable(FINISH_REASON)}),
        nullable(USAGE))


def chat_chunk() -> dict[str, Any]:
    delta = {"type": "object",
             "properties": {"role": {"const": "assistant"}, "content": STRING}}
    return answer_object("chat.completion.chunk", choice_object({
        "delta": delta, "logprobs": NULL, "finish_reason": nullable(FINISH_REASON)}),
        nullable(USAGE))


def stream_answer(chunk: dict[str, Any]) -> dict[str, Any]:
    """The ``text/event-stream`` answer. OpenAPI 3.1 cannot give an event's schema (3.2's
    ``itemSchema`` can), so each event's ``data`` is described in an extension."""
    return {
        "schema": {"type": "string", "description":
                   "Server-sent events, each 'data: JSON': a chunk per piece of text, one with "
                   "the finish reason, one with the usage (stream_options.include_usage; its "
                   "choices are empty), then 'data: [DONE]'. A refused request gets an ordinary "
                   "error answer; an error once the answer has begun is an error event, last."},
        "x-event-data": {"oneOf": [chunk, ERROR]},
    }


def embedding_answer() -> dict[str, Any]:
    vector = {"anyOf": [{"type": "array", "items": {"type": "number"}},
                        {"type": "string", "contentEncoding": "base64"}]}
    embedding = {"type": "object", "required": ["object", "index", "embedding"],
                 "properties": {"object": {"const": "embedding"}, "index": INTEGER,
                                "embedding": vector}}
    usage = {"type": "object", "required": ["prompt_tokens", "total_tokens"],
             "properties": {"prompt_tokens": INTEGER, "total_tokens": INTEGER}}
    return {"type": "object", "required": ["object", "data", "model", "usage"],
            "properties": {"object": {"const": "list"},
                           "data": {"type": "array", "items": embedding},
                           "model": STRING, "usage": usage}}


MODEL = {"type": "object", "required": ["id", "object", "created", "owned_by", "nlpsuite_task"],
         "properties": {"id": STRING, "object": {"const": "model"}, "created": INTEGER,
                        "owned_by": {"const": "nlpsuite"},
                        "nlpsuite_task": {**STRING, "description": "The task it serves"}}}
MODEL_LIST = {"type": "object", "required": ["object", "data"],
              "properties": {"object": {"const": "list"},
                             "data": {"type": "array", "items": MODEL}}}
