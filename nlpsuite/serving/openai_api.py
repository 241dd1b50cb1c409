"""OpenAI-compatible routes, so the official ``openai`` client and lm-evaluation-harness's
``local-completions`` model work against ``nlpsuite serve`` unchanged.

- ``POST /v1/completions`` and ``POST /v1/chat/completions``: task ``text-generation``. Each
  prompt is one input record carrying the request's settings (``max_tokens`` becomes the
  record's ``max_new_tokens``, token ids its ``prompt_ids``; ``temperature``, ``top_p``,
  ``seed``, ``stop``, ``logprobs``, ``echo`` keep their names), so it goes through the
  micro-batcher like any record, and a greedy answer has the tokens ``nlpsuite run`` gives. A
  prompt may be token ids, as lm-eval sends them; ``max_tokens: 1, echo: true, logprobs: 1``
  returns every prompt token's log-probability, and ``max_tokens: 0`` with ``echo`` only scores
  the prompt.
- ``POST /v1/embeddings``: task ``embedding``; ``encoding_format`` ``float`` or ``base64`` (the
  ``openai`` client asks for base64: little-endian float32).
- ``GET /v1/models``: one model per served task, its task named in ``nlpsuite_task``.

Settings a request leaves out are the served task's options (``nlpsuite serve --option``), not
OpenAI's defaults: ``temperature`` is 0 (greedy) unless the server says otherwise; a completion's
``max_tokens`` is 16, as OpenAI's. ``n`` above 1, penalties and ``logit_bias`` are refused (422).

``stream: true`` answers in server-sent events. A stream calls the runner's ``stream`` on a
thread of its own rather than going through the micro-batcher: the batcher answers a record
once it is whole, while a stream must send each piece as it is decoded, and one decoding loop
per stream is what makes the pieces join into exactly the text of the batched answer. Streams
therefore run beside the batcher's worker, outside its queue limit.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import struct
import threading
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Mapping
from typing import TYPE_CHECKING, Any

from nlpsuite.errors import NlpsuiteError, error_line
from nlpsuite.serving import openai_schemas
from nlpsuite.serving.http import (
    ServeError,
    field,
    json_object,
    json_response,
    read_json,
)

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    from nlpsuite.serving.server import ServedTask, Server

TEXT_TASK = "text-generation"
EMBEDDING_TASK = "embedding"
# OpenAI's default for a completion (chat completions default to the served task's option).
COMPLETION_MAX_TOKENS = 16
# Request fields accepted only at the value that changes nothing (the sampling they ask for
# is not implemented): a request with another value is refused rather than answered wrongly.
NEUTRAL = {"n": 1, "best_of": 1, "presence_penalty": 0, "frequency_penalty": 0,
           "logit_bias": {}, "suffix": "", "tools": [], "functions": []}
# A finished generation's reason, as OpenAI names it.
FINISH_REASONS = {"eos": "stop", "stop": "stop", "length": "length"}

Handler = Callable[["Server", "Request"], Awaitable["Response"]]


def routes(server: Server) -> list[Route]:
    from starlette.routing import Route

    started = int(time.time())

    async def models(server: Server, request: Request) -> Response:
        """OpenAI: the served models, one per task (``nlpsuite_task`` names it)."""
        return json_response(models_list(server, started))

    async def model(server: Server, request: Request) -> Response:
        """OpenAI: one served model, by its id."""
        wanted = request.path_params["model"]
        for entry in models_list(server, started)["data"]:
            if entry["id"] == wanted:
                return json_response(entry)
        raise ServeError(404, f"model '{wanted}' is not served (served: "
                              f"{', '.join(str(s.model) for s in server.tasks.values())})",
                         param="model")

    return [
        Route("/v1/completions", endpoint(server, completions), methods=["POST"]),
        Route("/v1/chat/completions", endpoint(server, chat_completions), methods=["POST"]),
        Route("/v1/embeddings", endpoint(server, embeddings), methods=["POST"]),
        Route("/v1/models", endpoint(server, models), methods=["GET"]),
        Route("/v1/models/{model:path}", endpoint(server, model), methods=["GET"]),
    ]


def openapi_paths() -> dict[str, Any]:
    """The routes' request and answer shapes for ``/openapi.json`` (see openai_schemas)."""
    handlers = {"/v1/completions": completions, "/v1/chat/completions": chat_completions,
                "/v1/embeddings": embeddings}
    summaries = {path: " ".join((handler.__doc__ or path).split())
                 for path, handler in handlers.items()}
    summaries["/v1/models"] = "OpenAI: the served models, one per task (nlpsuite_task names it)."
    summaries["/v1/models/{model}"] = "OpenAI: one served model, by its id."
    return openai_schemas.openapi_paths(NEUTRAL, summaries)


def endpoint(server: Server, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """``handler`` as a Starlette endpoint (a :class:`ServeError` it raises becomes OpenAI's
    error body in the app's exception handler, as for every route)."""

    async def answer(request: Request) -> Response:
        return await handler(server, request)

    answer.__doc__ = handler.__doc__  # the OpenAPI document's summary of the route
    return answer


def models_list(server: Server, created: int) -> dict[str, Any]:
    return {"object": "list", "data": [
        {"id": str(served.model), "object": "model", "created": created, "owned_by": "nlpsuite",
         "nlpsuite_task": name}
        for name, served in server.tasks.items()
    ]}


# /v1/completions


async def completions(server: Server, request: Request) -> Response:
    """OpenAI: continue a prompt (text or token ids, or a list of them) with text-generation;
    echo and logprobs score the prompt's tokens."""
    served = server.first_served(TEXT_TASK)
    body = json_object(await read_json(request))
    check_neutral(body)
    prompts = completion_prompts(field(body, "prompt", (str, list)))
    echo = field(body, "echo", bool, False)
    max_tokens = field(body, "max_tokens", int, COMPLETION_MAX_TOKENS)
    if max_tokens < (0 if echo else 1):
        raise ServeError(422, f"field 'max_tokens' must be at least 1 (0 only with echo), got "
                              f"{max_tokens}", param="max_tokens")
    logprobs = field(body, "logprobs", int, None)
    settings = {**sampling_fields(body), "max_new_tokens": max_tokens, "echo": echo,
                "logprobs": logprobs}
    records = served.parse([{"prompt" if isinstance(prompt, str) else "prompt_ids": prompt,
                              **settings} for prompt in prompts])
    answer = Answer("cmpl", "text_completion", served.model)
    if field(body, "stream", bool, False):
        if len(records) != 1 or logprobs is not None:
            raise ServeError(422, "a streamed completion takes one prompt and no logprobs",
                             param="stream")
        return await stream_answer(served, records[0], answer, completion_chunk,
                                   include_usage(body))
    outputs = [dataclasses.asdict(output) for output in await served.predict(records, request)]
    return json_response(answer.body(
        [{"index": index, "text": output["text"], "logprobs": output.get("logprobs"),
          "finish_reason": finish_reason(output)} for index, output in enumerate(outputs)],
        usage(outputs)))


def completion_prompts(prompt: Any) -> list[str | list[int]]:
    """A completion's ``prompt``: a text, a list of texts, token ids, or a list of those."""
    if isinstance(prompt, str):
        return [prompt]
    if prompt and all(is_token(token) for token in prompt):
        return [prompt]
    if prompt and all(isinstance(one, str) or (isinstance(one, list) and one and all(
            is_token(token) for token in one)) for one in prompt):
        return list(prompt)
    raise ServeError(422, "field 'prompt' must be a text, a list of texts, a list of token ids "
                          "or a list of lists of token ids, none of them empty", param="prompt")


def is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def completion_chunk(answer: Answer, piece: str, reason: str | None) -> dict[str, Any]:
    return answer.chunk([{"index": 0, "text": piece, "logprobs": None, "finish_reason": reason}])


# /v1/chat/completions


async def chat_completions(server: Server, request: Request) -> Response:
    """OpenAI: the assistant's reply to chat messages, with text-generation (stream: true for
    server-sent events)."""
    served = server.first_served(TEXT_TASK)
    body = json_object(await read_json(request))
    check_neutral(body)
    messages = chat_messages(field(body, "messages", list))
    max_tokens = field(body, "max_completion_tokens", int, None)
    if max_tokens is None:
        max_tokens = field(body, "max_tokens", int, None)
    if max_tokens is not None and max_tokens < 1:
        raise ServeError(422, f"field 'max_tokens' must be at least 1, got {max_tokens}",
                         param="max_tokens")
    top = field(body, "top_logprobs", int, 0)
    logprobs = top if field(body, "logprobs", bool, False) else None
    record = {"messages": messages, **sampling_fields(body), "max_new_tokens": max_tokens,
              "logprobs": logprobs}
    records = served.parse([record])
    answer = Answer("chatcmpl", "chat.completion", served.model)
    if field(body, "stream", bool, False):
        if logprobs is not None:
            raise ServeError(422, "a streamed chat completion gives no logprobs",
                             param="logprobs")
        return await stream_answer(served, records[0], answer, chat_chunk, include_usage(body))
    outputs = [dataclasses.asdict(output) for output in await served.predict(records, request)]
    output = outputs[0]
    choice = {"index": 0, "message": {"role": "assistant", "content": output["text"]},
              "logprobs": chat_logprobs(output.get("logprobs"), top),
              "finish_reason": finish_reason(output)}
    return json_response(answer.body([choice], usage(outputs)))


def chat_messages(messages: list[Any]) -> list[dict[str, str]]:
    """Chat messages as the task reads them: role and text content (a content given as parts
    keeps its text parts, joined)."""
    if not messages:
        raise ServeError(422, "field 'messages' is empty", param="messages")
    turns = []
    for number, message in enumerate(messages):
        where = f"messages[{number}]"
        message = json_object(message, where)
        role = field(message, "role", str)
        content = field(message, "content", (str, list), "")
        if isinstance(content, list):
            if not all(isinstance(part, dict) and part.get("type") == "text"
                       and isinstance(part.get("text"), str) for part in content):
                raise ServeError(422, f"{where}: only text content parts are supported",
                                 param="messages")
            content = "".join(part["text"] for part in content)
        turns.append({"role": role, "content": content})
    return turns


def chat_chunk(answer: Answer, piece: str, reason: str | None) -> dict[str, Any]:
    delta = {"content": piece} if piece or reason is None else {}
    return answer.chunk([{"index": 0, "delta": delta, "logprobs": None,
                          "finish_reason": reason}])


def chat_logprobs(logprobs: Mapping[str, Any] | None, top: int) -> dict[str, Any] | None:
    """A completion's ``logprobs`` in the chat shape: one entry per token, its ``top``
    likeliest alternatives as a list."""
    if logprobs is None:
        return None

    def entry(token: str, value: float | None) -> dict[str, Any]:
        return {"token": token, "logprob": value, "bytes": list(token.encode("utf-8"))}

    content = []
    for token, value, best in zip(logprobs["tokens"], logprobs["token_logprobs"],
                                  logprobs["top_logprobs"], strict=True):
        alternatives = [entry(text, chance) for text, chance in (best or {}).items()][:top]
        content.append({**entry(token, value), "top_logprobs": alternatives})
    return {"content": content, "refusal": None}


# /v1/embeddings


async def embeddings(server: Server, request: Request) -> Response:
    """OpenAI: embed texts with the embedding task (float or base64)."""
    served = server.first_served(EMBEDDING_TASK)
    body = json_object(await read_json(request))
    given = field(body, "input", (str, list))
    texts = [given] if isinstance(given, str) else given
    if not texts:
        raise ServeError(422, "field 'input' is empty", param="input")
    if not all(isinstance(text, str) for text in texts):
        raise ServeError(422, "field 'input': token ids are not supported here; send texts",
                         param="input")
    encoding = field(body, "encoding_format", str, "float")
    if encoding not in ("float", "base64"):
        raise ServeError(422, f"field 'encoding_format' must be float or base64, not "
                              f"{encoding!r}", param="encoding_format")
    records = served.parse([{"text": text} for text in texts])
    outputs = await served.predict(records, request)
    vectors = [list(dataclasses.asdict(output)["embedding"]) for output in outputs]
    dimensions = field(body, "dimensions", int, None)
    if dimensions is not None and any(len(vector) != dimensions for vector in vectors):
        raise ServeError(422, f"field 'dimensions': the model's embeddings have "
                              f"{len(vectors[0])}, not {dimensions}", param="dimensions")
    tokens = sum(await served.counts(records))
    return json_response({
        "object": "list",
        "data": [{"object": "embedding", "index": index,
                  "embedding": as_base64(vector) if encoding == "base64" else vector}
                 for index, vector in enumerate(vectors)],
        "model": str(served.model),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })


def as_base64(vector: list[float]) -> str:
    """The vector as little-endian float32 bytes in base64 (what the openai client decodes)."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode("ascii")


# Shared by the generation routes.


class Answer:
    """One response's id, kind and model, and the bodies built from them."""

    def __init__(self, prefix: str, kind: str, model: str) -> None:
        self.id = f"{prefix}-{uuid.uuid4().hex}"
        self.kind = kind
        self.model = str(model)
        self.created = int(time.time())

    def body(self, choices: list[dict[str, Any]], usage: dict[str, int] | None,
             kind: str | None = None) -> dict[str, Any]:
        return {"id": self.id, "object": kind or self.kind, "created": self.created,
                "model": self.model, "choices": choices, "usage": usage}

    def chunk(self, choices: list[dict[str, Any]], usage: dict[str, int] | None = None,
              ) -> dict[str, Any]:
        # Chat chunks are "chat.completion.chunk"; completion chunks keep "text_completion".
        kind = f"{self.kind}.chunk" if self.kind == "chat.completion" else self.kind
        return self.body(choices, usage, kind)


def sampling_fields(body: dict[str, Any]) -> dict[str, Any]:
    """The request's sampling settings as record fields (absent ones left to the task)."""
    stop = field(body, "stop", (str, list), None)
    if isinstance(stop, str):
        stop = [stop]
    if stop is not None and not all(isinstance(sequence, str) for sequence in stop):
        raise ServeError(422, "field 'stop' must be a text or a list of texts", param="stop")
    return {"temperature": field(body, "temperature", (int, float), None),
            "top_p": field(body, "top_p", (int, float), None),
            "seed": field(body, "seed", int, None),
            "stop": stop or None}


def check_neutral(body: dict[str, Any]) -> None:
    for name, neutral in NEUTRAL.items():
        value = body.get(name)
        if value is not None and value != neutral:
            raise ServeError(422, f"field '{name}' is not supported (only {json.dumps(neutral)})",
                             param=name)


def include_usage(body: dict[str, Any]) -> bool:
    options = field(body, "stream_options", dict, {})
    return bool(options.get("include_usage", False))


def finish_reason(output: Mapping[str, Any]) -> str:
    return FINISH_REASONS.get(output["finish_reason"], "stop")


def usage(outputs: list[dict[str, Any]]) -> dict[str, int]:
    prompt = sum(output.get("prompt_tokens", 0) for output in outputs)
    completion = sum(output["new_tokens"] for output in outputs)
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


# Streaming: server-sent events.

Chunk = Callable[["Answer", str, "str | None"], dict[str, Any]]


async def stream_answer(served: ServedTask, record: Any, answer: Answer, chunk: Chunk,
                        with_usage: bool) -> Response:
    """``record``'s answer as server-sent events: a chunk per piece of text, one with the
    finish reason (and one with the usage if asked), then ``data: [DONE]``. An error before
    the first piece is an ordinary error answer."""
    from starlette.responses import StreamingResponse

    # The plugin's runner, inside the CheckedRunner that load_runner wraps it in.
    stream = getattr(getattr(served.runner, "runner", served.runner), "stream", None)
    events = pieces(stream, record) if stream is not None else whole(served, record)
    try:
        first = await anext(events)  # what the prompt is refused for, before any byte is sent
    except BaseException:
        await events.aclose()
        raise

    async def sent() -> AsyncIterator[str]:
        event = first
        try:
            if answer.kind == "chat.completion":  # a chat stream opens with the role
                yield sse(answer.chunk([{"index": 0, "logprobs": None, "finish_reason": None,
                                         "delta": {"role": "assistant", "content": ""}}]))
            while not isinstance(event, Finished):
                yield sse(chunk(answer, event, None))
                event = await anext(events)
        except ServeError as error:  # the answer has begun: an error event ends it
            yield sse(error.body())
            return
        finally:
            await events.aclose()
        output = dataclasses.asdict(event.output)
        yield sse(chunk(answer, "", finish_reason(output)))
        if with_usage:
            yield sse(answer.chunk([], usage([output])))
        yield "data: [DONE]\n\n"

    return StreamingResponse(sent(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache"})


def sse(data: dict[str, Any]) -> str:
    """One server-sent event."""
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


@dataclasses.dataclass(frozen=True)
class Finished:
    """A stream's last event: the record's output."""

    output: Any


async def pieces(stream: Callable[[Any], Any], record: Any) -> AsyncGenerator[Any, None]:
    """``stream(record)``'s pieces of text, then :class:`Finished` with its output, run on a
    thread of its own; the thread stops at its next piece once this generator is closed."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    closed = threading.Event()

    def put(kind: str, value: Any) -> None:
        if not loop.is_closed():
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))

    def run() -> None:
        try:
            generator: Generator[str, None, Any] = stream(record)
            while not closed.is_set():
                try:
                    put("piece", next(generator))
                except StopIteration as done:
                    put("done", done.value)
                    return
            generator.close()
        except BaseException as error:  # reported to the request, not lost
            put("error", error)

    threading.Thread(target=run, name="nlpsuite-stream", daemon=True).start()
    try:
        while True:
            kind, value = await queue.get()
            if kind == "piece":
                yield value
            elif kind == "done":
                yield Finished(value)
                return
            else:
                raise stream_error(value)
    finally:
        closed.set()


def stream_error(error: BaseException) -> ServeError:
    if isinstance(error, NlpsuiteError):
        return ServeError(422, error_line(error))
    return ServeError(500, f"{type(error).__name__}: {error_line(error)}")


async def whole(served: ServedTask, record: Any) -> AsyncGenerator[Any, None]:
    """A runner without ``stream``: its batched answer as one piece."""
    output = (await served.predict([record]))[0]
    yield dataclasses.asdict(output)["text"]
    yield Finished(output)
