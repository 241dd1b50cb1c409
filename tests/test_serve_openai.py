"""The OpenAI-compatible routes on a REAL server, called by the official ``openai`` client (and
by lm-evaluation-harness's ``local-completions`` model): a tiny random Llama for text
generation, the real all-MiniLM-L6-v2 for embeddings. Every answer is checked against what the
task's runner, or CausalLM itself, gives for the same input alone."""

from __future__ import annotations

import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nlpsuite import RunConfig, get_task
from nlpsuite.causal import CausalLM, load_causal_lm
from nlpsuite.lookup import CheckedRunner, load_runner

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")

from nlpsuite.serving.server import ServeConfig  # noqa: E402
from tests.serving import post, serve_in_thread  # noqa: E402

OPTIONS = {"max_new_tokens": 12}
# Context and continuation pairs as lm-eval sends them: an empty context, trailing spaces.
PAIRS = [("the city", " river"), ("a river runs through", " the old town"), ("", "hello"),
         ("x ", "y"), ("the market opened early on monday", ", and the traders")]
CHAT = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}]

# Tiny models gain nothing from a second thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def url(tiny_llama: Path, minilm: Path) -> Iterator[str]:
    config = ServeConfig(tasks=("text-generation", "embedding"),
                         models={"text-generation": str(tiny_llama), "embedding": str(minilm)},
                         options={"text-generation": OPTIONS})
    with serve_in_thread(config) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def client(url: str) -> Any:
    return openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0)


@pytest.fixture(scope="module")
def lm(tiny_llama: Path) -> CausalLM:
    return load_causal_lm(RunConfig(model=str(tiny_llama)))


@pytest.fixture(scope="module")
def generator(tiny_llama: Path) -> CheckedRunner:
    return load_runner("text-generation", str(tiny_llama), options=OPTIONS)


def alone(runner: CheckedRunner, record: dict[str, Any]) -> Any:
    return runner([runner.task.make_input(record, "test")])[0]


def scored_ids(lm: CausalLM, context: str, continuation: str) -> tuple[list[int], int]:
    """What lm-eval sends for a pair: context and continuation token ids, and the context's
    length."""
    head, tail = lm.encode_pair(context, continuation)
    return head + tail, len(head)


def greedy_pair(lm: CausalLM) -> tuple[str, str]:
    """A pair whose continuation is what greedy decoding gives after the context (the first
    context whose greedy next token survives encoding the pair)."""
    for context in ("the city", "a river", "hello there", "the market", "one two", "in the"):
        ids = lm.encode([context], special_tokens=False)[0]
        new = lm.generate([ids], max_new_tokens=2)[0].token_ids
        pair = context, str(lm.tokenizer.decode(list(new)))
        if pair[1].strip() and lm.loglikelihoods([lm.encode_pair(*pair)])[0].greedy:
            return pair
    raise AssertionError("no context whose greedy continuation encodes back")


# /v1/completions


def test_completion_is_the_runners_answer(client: Any, generator: CheckedRunner) -> None:
    answer = client.completions.create(model="tiny", prompt="the city", max_tokens=8)
    expected = alone(generator, {"prompt": "the city", "max_new_tokens": 8})
    choice = answer.choices[0]
    assert choice.text == expected.text and choice.index == 0
    assert choice.finish_reason == {"eos": "stop"}.get(expected.finish_reason,
                                                       expected.finish_reason)
    assert answer.object == "text_completion" and answer.id.startswith("cmpl-")
    assert answer.usage.prompt_tokens == expected.prompt_tokens
    assert answer.usage.completion_tokens == expected.new_tokens
    assert answer.usage.total_tokens == expected.prompt_tokens + expected.new_tokens


def test_completion_default_max_tokens_is_16(client: Any, lm: CausalLM) -> None:
    answer = client.completions.create(model="tiny", prompt="a river")
    expected = lm.generate(["a river"], max_new_tokens=16)[0]
    assert answer.choices[0].text == expected.text
    assert answer.usage.completion_tokens == len(expected.token_ids)


def test_several_prompts_and_token_ids_answer_in_order(client: Any, lm: CausalLM) -> None:
    texts = ["the city", "a river runs through the old town", "x"]
    answer = client.completions.create(model="tiny", prompt=texts, max_tokens=6)
    expected = [lm.generate([text], max_new_tokens=6)[0].text for text in texts]
    assert [choice.index for choice in answer.choices] == [0, 1, 2]
    assert [choice.text for choice in answer.choices] == expected

    ids = [lm.encode([text], special_tokens=False)[0] for text in texts]
    by_ids = client.completions.create(model="tiny", prompt=ids, max_tokens=6)
    assert [choice.text for choice in by_ids.choices] == [
        lm.generate([row], max_new_tokens=6)[0].text for row in ids]
    one = client.completions.create(model="tiny", prompt=ids[1], max_tokens=6)
    assert one.choices[0].text == by_ids.choices[1].text
    assert one.usage.prompt_tokens == len(ids[1])  # read as given: no BOS added


def test_stop_sequences_end_the_text(client: Any, lm: CausalLM) -> None:
    text = lm.generate(["the city"], max_new_tokens=12)[0].text
    stop = text[3:5]
    answer = client.completions.create(model="tiny", prompt="the city", max_tokens=12, stop=stop)
    assert answer.choices[0].text == text[:text.find(stop)]
    assert answer.choices[0].finish_reason == "stop"


def test_sampling_with_a_seed_repeats(client: Any, generator: CheckedRunner) -> None:
    settings = {"temperature": 1.0, "top_p": 0.9, "seed": 5}
    answers = [client.completions.create(model="tiny", prompt="the city", max_tokens=10,
                                         **settings).choices[0].text for _ in range(2)]
    expected = alone(generator, {"prompt": "the city", "max_new_tokens": 10, **settings})
    assert answers == [expected.text, expected.text]
    greedy = alone(generator, {"prompt": "the city", "max_new_tokens": 10})
    assert expected.text != greedy.text


def test_echo_logprobs_are_loglikelihoods(client: Any, lm: CausalLM) -> None:
    """lm-eval's local-completions contract: ``max_tokens: 1, echo: true, logprobs: 1`` on the
    context and continuation ids; ``token_logprobs[ctxlen:-1]`` sums to the log-likelihood,
    and the continuation is greedy when each token's logprob is its position's best."""
    pairs = [*PAIRS, greedy_pair(lm)]
    requests = [scored_ids(lm, *pair) for pair in pairs]
    answer = client.completions.create(model="tiny", prompt=[ids for ids, _ in requests],
                                       max_tokens=1, echo=True, logprobs=1, temperature=0)
    expected = lm.loglikelihoods([lm.encode_pair(*pair) for pair in pairs])
    assert expected[-1].greedy and not expected[0].greedy
    for choice, (ids, context), truth in zip(answer.choices, requests, expected, strict=True):
        logprobs = choice.logprobs
        assert len(logprobs.token_logprobs) == len(ids) + 1  # the prompt, then one new token
        assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None
        assert sum(logprobs.token_logprobs[context:-1]) == pytest.approx(truth.logprob,
                                                                         abs=1e-5)
        greedy = all(value == max(top.values()) for value, top in
                     zip(logprobs.token_logprobs[context:-1], logprobs.top_logprobs[context:-1],
                         strict=True))
        assert greedy == truth.greedy
        assert len(logprobs.tokens) == len(logprobs.text_offset) == len(ids) + 1
        assert logprobs.text_offset == sorted(logprobs.text_offset)
        assert choice.text.startswith(lm.tokenizer.decode(ids, skip_special_tokens=True))


def test_echo_with_max_tokens_0_only_scores(client: Any, lm: CausalLM) -> None:
    ids, context = scored_ids(lm, "a river runs through", " the old town")
    answer = client.completions.create(model="tiny", prompt=ids, max_tokens=0, echo=True,
                                       logprobs=3)
    choice = answer.choices[0]
    assert choice.text == lm.tokenizer.decode(ids, skip_special_tokens=True)
    assert len(choice.logprobs.token_logprobs) == len(ids)
    assert answer.usage.completion_tokens == 0 and answer.usage.prompt_tokens == len(ids)
    truth = lm.loglikelihoods([(ids[:context], ids[context:])])[0]
    assert sum(choice.logprobs.token_logprobs[context:]) == pytest.approx(truth.logprob,
                                                                          abs=1e-5)
    # Three alternatives, and the token itself when it is not among them (fewer when two
    # tokens decode to one text, as bytes of a split character do).
    tops = choice.logprobs.top_logprobs[1:]
    assert all(1 <= len(top) <= 4 for top in tops) and max(map(len, tops)) >= 3
    for top, token, value in zip(tops, choice.logprobs.tokens[1:],
                                 choice.logprobs.token_logprobs[1:], strict=True):
        assert max(top.values()) >= value and top.get(token, value) >= value


def test_logprobs_without_echo_cover_the_new_tokens(client: Any) -> None:
    answer = client.completions.create(model="tiny", prompt="the city", max_tokens=5,
                                       logprobs=2)
    logprobs = answer.choices[0].logprobs
    assert len(logprobs.tokens) == answer.usage.completion_tokens == 5
    assert all(value is not None and value <= 0 for value in logprobs.token_logprobs)
    assert logprobs.text_offset[0] == 0


def test_streamed_completion_joins_into_the_answer(url: str, client: Any) -> None:
    whole = client.completions.create(model="tiny", prompt="the city", max_tokens=10)
    streamed = list(client.completions.create(model="tiny", prompt="the city", max_tokens=10,
                                              stream=True))
    assert "".join(chunk.choices[0].text for chunk in streamed) == whole.choices[0].text
    assert streamed[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    assert all(chunk.choices[0].finish_reason is None for chunk in streamed[:-1])
    raw = post(url, "/v1/completions", {"prompt": "the city", "max_tokens": 3, "stream": True})
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.text.endswith("data: [DONE]\n\n")


# /v1/chat/completions


def test_chat_completion_is_the_runners_answer(client: Any, generator: CheckedRunner) -> None:
    answer = client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=8)
    expected = alone(generator, {"messages": CHAT, "max_new_tokens": 8})
    assert answer.object == "chat.completion" and answer.id.startswith("chatcmpl-")
    assert answer.choices[0].message.role == "assistant"
    assert answer.choices[0].message.content == expected.text
    assert answer.usage.prompt_tokens == expected.prompt_tokens
    # Without max_tokens: the served task's option (12), not OpenAI's.
    default = client.chat.completions.create(model="tiny", messages=CHAT)
    assert default.usage.completion_tokens == alone(generator, {"messages": CHAT}).new_tokens


def test_chat_of_one_user_turn_is_the_chat_option(client: Any, lm: CausalLM) -> None:
    answer = client.chat.completions.create(
        model="tiny", messages=[{"role": "user", "content": "hello there"}],
        max_completion_tokens=6)
    expected = lm.generate(["hello there"], max_new_tokens=6, chat=True)[0]
    assert answer.choices[0].message.content == expected.text


def test_streamed_chat_joins_into_the_answer(client: Any) -> None:
    for max_tokens in (12, 3):
        whole = client.chat.completions.create(model="tiny", messages=CHAT,
                                               max_tokens=max_tokens)
        chunks = list(client.chat.completions.create(
            model="tiny", messages=CHAT, max_tokens=max_tokens, stream=True,
            stream_options={"include_usage": True}))
        assert chunks[0].choices[0].delta.role == "assistant"
        assert all(chunk.object == "chat.completion.chunk" for chunk in chunks)
        text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
        assert text == whole.choices[0].message.content
        assert len([chunk for chunk in chunks if chunk.choices]) > 3  # pieces, not one block
        assert chunks[-2].choices[0].finish_reason == whole.choices[0].finish_reason
        assert chunks[-1].usage == whole.usage


def test_chat_logprobs_in_the_chat_shape(client: Any) -> None:
    answer = client.chat.completions.create(model="tiny", messages=CHAT, max_tokens=4,
                                            logprobs=True, top_logprobs=2)
    content = answer.choices[0].logprobs.content
    assert len(content) == answer.usage.completion_tokens
    assert all(len(entry.top_logprobs) == 2 for entry in content)
    assert all(entry.top_logprobs[0].logprob >= entry.logprob for entry in content)


# /v1/embeddings and /v1/models


def test_embeddings_are_the_runners_vectors(url: str, client: Any, minilm: Path) -> None:
    texts = ["A man is playing a guitar.", "Rain all weekend."]
    runner = load_runner(get_task("embedding"), str(minilm))
    expected = [list(alone(runner, {"text": text}).embedding) for text in texts]
    answer = client.embeddings.create(model="minilm", input=texts)  # base64 on the wire
    assert [item.embedding for item in answer.data] == expected
    assert [item.index for item in answer.data] == [0, 1]
    assert answer.usage.prompt_tokens > 0
    floats = post(url, "/v1/embeddings", {"input": texts[1], "encoding_format": "float"}).json()
    assert floats["object"] == "list" and floats["data"][0]["object"] == "embedding"
    assert floats["data"][0]["embedding"] == expected[1]


def test_models_lists_every_served_task(client: Any, tiny_llama: Path, minilm: Path) -> None:
    models = client.models.list().data
    assert [(m.id, m.owned_by, m.nlpsuite_task) for m in models] == [
        (str(tiny_llama), "nlpsuite", "text-generation"), (str(minilm), "nlpsuite", "embedding")]
    assert client.models.retrieve(str(tiny_llama)).nlpsuite_task == "text-generation"


# Errors: OpenAI's error body, naming the field.


@pytest.mark.parametrize(("path", "body", "param", "says"), [
    ("/v1/completions", {"prompt": "x", "n": 2}, "n", "field 'n' is not supported"),
    ("/v1/completions", {"prompt": "x", "max_tokens": 0}, "max_tokens", "0 only with echo"),
    ("/v1/completions", {"prompt": []}, "prompt", "field 'prompt' must be"),
    ("/v1/completions", {"prompt": "x", "logprobs": 50}, "logprobs", "from 0 to 20"),
    ("/v1/completions", {"prompt": "x", "temperature": -1}, "temperature", "at least 0"),
    ("/v1/completions", {"prompt": "x", "stop": [1]}, "stop", "field 'stop'"),
    ("/v1/completions", {"prompt": [1, 5, 100000]}, None, "token id 100000 is not in"),
    ("/v1/completions", {"prompt": "x " * 80}, None, "too long for the model's context"),
    ("/v1/completions", {"prompt": "x " * 80, "stream": True}, None, "too long"),
    ("/v1/chat/completions", {"messages": []}, "messages", "field 'messages' is empty"),
    ("/v1/chat/completions", {"messages": [{"content": "hi"}]}, "role", "'role' is required"),
    ("/v1/embeddings", {"input": [[1, 2]]}, "input", "token ids are not supported here"),
    ("/v1/embeddings", {"input": "x", "encoding_format": "int8"}, "encoding_format", "base64"),
])
def test_bad_requests_get_422_naming_the_field(url: str, path: str, body: dict[str, Any],
                                                param: str | None, says: str) -> None:
    answer = post(url, path, body)
    assert answer.status_code == 422, answer.text
    error = answer.json()["error"]
    assert says in error["message"] and error["type"] == "invalid_request_error"
    assert error["param"] == param and error["code"] == 422


def test_the_client_sees_422_on_n_2(client: Any) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as raised:
        client.completions.create(model="tiny", prompt="x", n=2)
    assert raised.value.status_code == 422


def test_not_json_is_400(url: str) -> None:
    import httpx

    answer = httpx.post(f"{url}/v1/chat/completions", content=b"{nope", timeout=30)
    assert answer.status_code == 400 and "not JSON" in answer.json()["error"]["message"]


def test_generation_routes_404_when_text_generation_is_not_served(minilm: Path) -> None:
    config = ServeConfig(tasks=("embedding",), models={"embedding": str(minilm)})
    with serve_in_thread(config) as base_url:
        client = openai.OpenAI(base_url=base_url + "/v1", api_key="x", max_retries=0)
        with pytest.raises(openai.NotFoundError) as raised:
            client.completions.create(model="tiny", prompt="the city")
        error = raised.value.body
        assert error["type"] == "not_found_error" and error["code"] == 404
        assert "nlpsuite serve text-generation" in error["message"]
        chat = post(base_url, "/v1/chat/completions", {"messages": CHAT})
        assert chat.status_code == 404 and "text-generation" in chat.json()["error"]["message"]
        assert [m.nlpsuite_task for m in client.models.list().data] == ["embedding"]


# lm-evaluation-harness's local-completions model against the server.


def test_lm_eval_local_completions_agrees_with_causal_lm(url: str, tiny_llama: Path,
                                                         lm: CausalLM) -> None:
    pytest.importorskip("lm_eval")
    pytest.importorskip("tenacity")  # lm-eval[api]
    from lm_eval.api.instance import Instance  # type: ignore[import-untyped]
    from lm_eval.models.openai_completions import (  # type: ignore[import-untyped]
        LocalCompletionsAPI,
    )

    pairs = [*PAIRS, greedy_pair(lm)]
    model = LocalCompletionsAPI(base_url=url + "/v1/completions", model="tiny",
                                tokenizer_backend="huggingface", tokenizer=str(tiny_llama),
                                max_length=64, batch_size=3)
    theirs = model.loglikelihood([Instance(request_type="loglikelihood", doc={}, arguments=pair,
                                           idx=i) for i, pair in enumerate(pairs)])
    ours = lm.loglikelihoods([lm.encode_pair(*pair) for pair in pairs])
    assert [greedy for _, greedy in theirs] == [one.greedy for one in ours]
    assert [value for value, _ in theirs] == pytest.approx([one.logprob for one in ours],
                                                           abs=1e-5)

    # generate_until sends the context's token ids, without BOS, and its stop sequences.
    generated = model.generate_until([Instance(
        request_type="generate_until", doc={}, idx=0,
        arguments=("the city", {"until": ["\n"], "max_gen_toks": 8}))])
    ids = lm.encode(["the city"], special_tokens=False)[0]
    assert generated == [lm.generate([ids], max_new_tokens=8, stop=["\n"])[0].text]


def test_chunks_are_json_lines(url: str) -> None:
    """Every server-sent event but the last is one JSON object on a ``data:`` line."""
    raw = post(url, "/v1/chat/completions", {"messages": CHAT, "max_tokens": 4, "stream": True})
    events = [block for block in raw.text.split("\n\n") if block]
    assert events[-1] == "data: [DONE]"
    for event in events[:-1]:
        assert event.startswith("data: ")
        assert json.loads(event.removeprefix("data: "))["object"] == "chat.completion.chunk"


# /openapi.json


def test_the_openapi_document_describes_every_route(url: str) -> None:
    """Each OpenAI route's body fields and answer schemas are in /openapi.json, the answers'
    keys being those the server really sends; the document is OpenAPI 3.1 (checked with
    openapi-spec-validator where it is installed)."""
    import httpx
    from nlpsuite_plugins.text_generation import MAX_LOGPROBS

    document = httpx.get(f"{url}/openapi.json", timeout=30).json()
    paths = document["paths"]
    body_fields = {  # the required field, and others
        "/v1/completions": ("prompt", {"max_tokens", "echo", "logprobs", "stream", "stop"}),
        "/v1/chat/completions": ("messages", {"stream", "max_completion_tokens", "logprobs"}),
        "/v1/embeddings": ("input", {"encoding_format", "dimensions"}),
    }
    samples = {"/v1/completions": {"prompt": "the city", "max_tokens": 2, "logprobs": 1},
               "/v1/chat/completions": {"messages": CHAT, "max_tokens": 2},
               "/v1/embeddings": {"input": ["a", "b"]}}
    for path, (required, names) in body_fields.items():
        operation = paths[path]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert {required, *names} <= set(body["properties"]), path
        assert body["required"] == [required], path
        answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
        sent = post(url, path, samples[path]).json()
        assert set(answer["required"]) == set(sent) == set(answer["properties"]), path
        listing = "choices" if "choices" in sent else "data"
        items = answer["properties"][listing]["items"]
        assert set(items["required"]) == set(sent[listing][0]), path
        assert operation["responses"]["422"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/Error"}
        assert ("text/event-stream" in operation["responses"]["200"]["content"]) == (
            path != "/v1/embeddings")
    logprobs = paths["/v1/completions"]["post"]["requestBody"]["content"]["application/json"]
    assert logprobs["schema"]["properties"]["logprobs"]["maximum"] == MAX_LOGPROBS

    listed = httpx.get(f"{url}/v1/models", timeout=30).json()
    for path, sent in (("/v1/models", listed), ("/v1/models/{model}", listed["data"][0])):
        answer = paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert set(answer["required"]) == set(sent) == set(answer["properties"]), path
    assert paths["/v1/models/{model}"]["get"]["parameters"][0]["name"] == "model"
    assert not [path for path in paths if ":" in path]  # no Starlette converter in a template

    assert document["openapi"] == "3.1.0"
    try:  # not a dependency: imported by name, so mypy needs no stubs for it
        validator = importlib.import_module("openapi_spec_validator")
    except ImportError:
        return
    validator.validate(document)
