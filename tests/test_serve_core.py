"""``nlpsuite serve``'s core routes on a REAL server (uvicorn on a free loopback port): answers
equal to the runner's, overload, budgets, timeouts, disconnects, bad bodies, a failing record,
the API key, metrics, the OpenAPI document and SIGTERM.

Where a case needs requests to wait, the test holds the task's one worker thread (it submits
a function that waits on an event): the server and its model stay real, only busy."""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from nlpsuite.errors import NlpsuiteError
from nlpsuite.lookup import load_runner
from nlpsuite.records import to_json
from nlpsuite.serving.server import BatchLimits, ServeConfig, ServedTask, Server, load_server
from nlpsuite.serving.telemetry import Telemetry
from nlpsuite.tasks import Task
from tests.serving import post, serve_in_thread

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXTS = ["A delightful film.", "Dull.", "It was fine, I suppose, though the second half "
         "dragged on and on without much happening at all.", "Great!", "Not my cup of tea."]


def sentiment(model: Path, **limits: Any) -> ServeConfig:
    return ServeConfig(tasks=("sentiment",), models={"sentiment": str(model)},
                       batch_limits=BatchLimits(**limits))


@contextlib.contextmanager
def serving(config: ServeConfig, **options: Any) -> Iterator[tuple[str, Server]]:
    server = load_server(config)
    with serve_in_thread(config, server=server, **options) as url:
        yield url, server


@contextlib.contextmanager
def worker_held(served: ServedTask) -> Iterator[None]:
    """The task's worker thread busy until the block ends: batches wait for it."""
    free = threading.Event()
    assert served.batcher.worker is not None
    served.batcher.worker.submit(free.wait, 120)
    try:
        yield
    finally:
        free.set()


def until(condition: Callable[[], bool], timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError("the condition never held")


def metric(url: str, name: str, **labels: str) -> float:
    """One sample of ``/metrics``, read with prometheus_client's own parser (0 if absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


@pytest.fixture(scope="module")
def classifier_url(tiny_classifier: Path) -> Iterator[str]:
    with serving(sentiment(tiny_classifier)) as (url, _):
        yield url


def test_each_answer_is_what_nlpsuite_run_json_prints(classifier_url: str,
                                                      tiny_classifier: Path) -> None:
    runner = load_runner("sentiment", str(tiny_classifier))
    for text in TEXTS:
        answer = post(classifier_url, "/v1/tasks/sentiment", {"text": text})
        assert answer.status_code == 200
        alone = runner([runner.task.make_input(text, "test")])[0]
        assert answer.text == to_json(alone)  # byte for byte


def test_a_list_gets_a_list_in_order_and_concurrent_requests_are_batched(
        classifier_url: str, tiny_classifier: Path) -> None:
    runner = load_runner("sentiment", str(tiny_classifier))
    expected = {text: json.loads(to_json(runner([runner.task.make_input(text, "t")])[0]))
                for text in TEXTS}
    bodies = [[{"text": text} for text in TEXTS[i % 5:] + TEXTS[:i % 5]] for i in range(24)]
    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda body: post(classifier_url, "/v1/tasks/sentiment", body),
                                bodies))
    for body, answer in zip(bodies, answers, strict=True):
        assert answer.status_code == 200
        for record, output in zip(body, answer.json(), strict=True):
            assert output["label"] == expected[record["text"]]["label"]
            assert output["score"] == pytest.approx(expected[record["text"]]["score"], abs=1e-6)
    batches = metric(classifier_url, "nlpsuite_batch_size_count", task="sentiment")
    records = metric(classifier_url, "nlpsuite_batch_size_sum", task="sentiment")
    assert records >= 24 * 5 and batches < records  # records shared forward passes


@pytest.mark.parametrize(("body", "status", "param", "says"), [
    (b"{not json", 400, None, "not JSON"),
    ({"txt": "hello"}, 422, "txt", "unknown field 'txt'"),
    ({}, 422, "text", "missing field 'text'"),
    ({"text": 3}, 422, "text", "field 'text' should be str"),
    ([{"text": "fine"}, {"text": "  "}], 422, "text", "record 1: field 'text' is empty"),
    ([], 422, None, "empty list"),
    (7, 422, None, "a number"),
])
def test_a_bad_body_is_400_or_422_naming_the_field(classifier_url: str, body: Any, status: int,
                                                   param: str | None, says: str) -> None:
    url = f"{classifier_url}/v1/tasks/sentiment"
    answer = (httpx.post(url, content=body) if isinstance(body, bytes)
              else httpx.post(url, json=body))
    assert answer.status_code == status
    error = answer.json()["error"]
    assert says in error["message"] and error["param"] == param
    assert error["type"] == "invalid_request_error" and error["code"] == status


def test_unknown_tasks_routes_and_methods_get_the_error_body(classifier_url: str) -> None:
    missing = post(classifier_url, "/v1/tasks/translation", {"text": "hi"})
    assert missing.status_code == 404
    assert "not served (served: sentiment)" in missing.json()["error"]["message"]
    assert httpx.get(f"{classifier_url}/nowhere").json()["error"]["type"] == "not_found_error"
    assert httpx.get(f"{classifier_url}/v1/tasks/sentiment").status_code == 405


def test_tasks_health_ready_and_openapi(classifier_url: str, tiny_classifier: Path) -> None:
    [shown] = httpx.get(f"{classifier_url}/v1/tasks").json()
    assert shown["name"] == "sentiment" and shown["model"] == str(tiny_classifier)
    assert shown["input_fields"][0] == {"name": "text", "type": "str", "required": True}
    assert set(shown["example"]) == {"text"}
    assert httpx.get(f"{classifier_url}/health").json() == {"status": "ok"}
    assert httpx.get(f"{classifier_url}/ready").status_code == 200
    document = httpx.get(f"{classifier_url}/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    operation = document["paths"]["/v1/tasks/sentiment"]["post"]
    one = operation["requestBody"]["content"]["application/json"]["schema"]["oneOf"][0]
    schemas = document["components"]["schemas"]
    record = schemas[one["$ref"].rsplit("/", 1)[1]]
    assert record["required"] == ["text"] and record["properties"]["text"] == {"type": "string"}
    output = schemas["SentimentOutput"]["properties"]
    assert output["score"] == {"type": "number"}
    assert output["scores"]["anyOf"][0] == {"type": "object",
                                           "additionalProperties": {"type": "number"}}
    assert {"/health", "/ready", "/metrics", "/v1/tasks"} <= set(document["paths"])


def test_metrics_count_requests_by_route_template_and_status(classifier_url: str) -> None:
    before = metric(classifier_url, "nlpsuite_requests_total", route="/v1/tasks/{task}",
                    status="200")
    for text in TEXTS[:3]:
        assert post(classifier_url, "/v1/tasks/sentiment", {"text": text}).status_code == 200
    post(classifier_url, "/v1/tasks/sentiment", {"nope": 1})
    after = metric(classifier_url, "nlpsuite_requests_total", route="/v1/tasks/{task}",
                   status="200")
    assert after == before + 3
    assert metric(classifier_url, "nlpsuite_requests_total", route="/v1/tasks/{task}",
                  status="422") >= 1
    assert metric(classifier_url, "nlpsuite_compute_seconds_count", task="sentiment") >= 1
    assert metric(classifier_url, "nlpsuite_queue_wait_seconds_count", task="sentiment") >= 3
    text = httpx.get(f"{classifier_url}/metrics").text
    assert "nlpsuite_queue_depth{task=\"sentiment\"}" in text
    assert "/v1/tasks/sentiment" not in text  # templates, never raw paths


def test_over_the_token_budget_is_413_and_the_server_goes_on(tiny_classifier: Path) -> None:
    with serving(sentiment(tiny_classifier, max_batch_tokens=16), max_body_bytes=2000) as (
            url, _):
        answer = post(url, "/v1/tasks/sentiment", [{"text": "ok"}, {"text": "word " * 40}])
        assert answer.status_code == 413
        assert "record 1 has" in answer.json()["error"]["message"]
        assert post(url, "/v1/tasks/sentiment", {"text": "short"}).status_code == 200
        huge = post(url, "/v1/tasks/sentiment", {"text": "x" * 5000})
        assert huge.status_code == 413 and "2,000 bytes" in huge.json()["error"]["message"]


def test_a_full_queue_is_429_with_retry_after(tiny_classifier: Path) -> None:
    config = sentiment(tiny_classifier, max_queue=2, max_batch_requests=1, max_wait_ms=0)
    with serving(config) as (url, server), concurrent.futures.ThreadPoolExecutor(4) as pool:
        batcher = server.tasks["sentiment"].batcher
        with worker_held(server.tasks["sentiment"]):
            waiting = [pool.submit(post, url, "/v1/tasks/sentiment", {"text": text})
                       for text in TEXTS[:3]]
            until(lambda: batcher.running == 1 and len(batcher.queue) == 2)
            refused = post(url, "/v1/tasks/sentiment", {"text": "one too many"})
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) >= 1
        error = refused.json()["error"]
        assert error["type"] == "rate_limit_error" and "overloaded" in error["message"]
        assert [future.result().status_code for future in waiting] == [200, 200, 200]


def test_a_request_past_the_timeout_is_504(tiny_classifier: Path) -> None:
    config = sentiment(tiny_classifier, request_timeout_s=0.2)
    with serving(config) as (url, server):
        with worker_held(server.tasks["sentiment"]):
            late = post(url, "/v1/tasks/sentiment", {"text": "hello"})
        assert late.status_code == 504
        assert late.json()["error"]["type"] == "timeout_error"
        until(lambda: metric(url, "nlpsuite_dropped_records_total", task="sentiment",
                             reason="timeout") == 1)
        assert post(url, "/v1/tasks/sentiment", {"text": "hello"}).status_code == 200


def test_a_disconnected_clients_record_never_reaches_the_model(tiny_classifier: Path) -> None:
    with serving(sentiment(tiny_classifier, max_wait_ms=0)) as (url, server):
        served = server.tasks["sentiment"]
        with worker_held(served):
            body = json.dumps({"text": "nobody waits for me"}).encode()
            port = int(url.rsplit(":", 1)[1])
            with socket.create_connection(("127.0.0.1", port)) as client:
                client.sendall(b"POST /v1/tasks/sentiment HTTP/1.1\r\nHost: test\r\n"
                               b"Content-Type: application/json\r\n"
                               + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
                until(lambda: served.batcher.running == 1)  # batched, waiting for the worker
            # The socket is closed: the server hears of it while the record still waits.
            until(lambda: all(item.abandoned == "disconnected"
                              for item in served.batcher.in_flight))
        until(lambda: metric(url, "nlpsuite_dropped_records_total", task="sentiment",
                             reason="disconnected") == 1)
        assert metric(url, "nlpsuite_batch_size_count", task="sentiment") == 0
        assert post(url, "/v1/tasks/sentiment", {"text": "still here"}).status_code == 200


@dataclass(frozen=True)
class Words:
    text: str


@dataclass(frozen=True)
class Count:
    words: int


def flaky_runner(seen: list[list[str]]) -> Callable[[Sequence[Words]], list[Count]]:
    """Counts words; "bad" is the user's mistake, "boom" a bug in the plugin."""

    def run(batch: Sequence[Words]) -> list[Count]:
        seen.append([record.text for record in batch])
        texts = [record.text for record in batch]
        if "bad" in texts:
            raise NlpsuiteError("field 'text': 'bad' is not a sentence")
        if "boom" in texts:
            raise ZeroDivisionError("division by zero")
        return [Count(len(text.split())) for text in texts]

    return run


@pytest.mark.parametrize(("bad", "status", "says"), [
    ("bad", 422, "field 'text': 'bad' is not a sentence"),
    ("boom", 500, "the runner failed: ZeroDivisionError: division by zero"),
])
def test_a_failing_record_fails_alone_and_not_its_batch_mates(bad: str, status: int,
                                                              says: str) -> None:
    from nlpsuite.lookup import CheckedRunner

    seen: list[list[str]] = []
    task = Task(name="words", description="Count words.", default_model="none",
                input_type=Words, output_type=Count, load=lambda config: flaky_runner(seen))
    limits = BatchLimits(max_batch_requests=3, max_wait_ms=60_000)
    telemetry = Telemetry()
    served = ServedTask(task, "none", CheckedRunner(task, flaky_runner(seen)), limits,
                        lambda record: len(record.text), telemetry)
    config = ServeConfig(tasks=("words",), batch_limits=limits)
    with serve_in_thread(config, server=Server(config, {"words": served}, telemetry)) as url, \
            concurrent.futures.ThreadPoolExecutor(3) as pool:
        texts = ["two words", bad, "three more words"]
        answers = list(pool.map(lambda text: post(url, "/v1/tasks/words", {"text": text}),
                                texts))
    assert [answer.status_code for answer in answers] == [200, status, 200]
    assert [answers[0].json(), answers[2].json()] == [{"words": 2}, {"words": 3}]
    message = answers[1].json()["error"]["message"]
    assert says in message and "\n" not in message and "Traceback" not in message
    assert sorted(seen[0]) == sorted(texts)  # they shared a pass, then each ran alone


def test_the_api_key_guards_every_route_but_health(tiny_classifier: Path) -> None:
    config = ServeConfig(tasks=("sentiment",), models={"sentiment": str(tiny_classifier)},
                         api_key="sekrit")
    with serving(config) as (url, _):
        assert httpx.get(f"{url}/health").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "sekrit"}):
            refused = httpx.post(f"{url}/v1/tasks/sentiment", json={"text": "hi"},
                                 headers=headers)
            assert refused.status_code == 401
            assert refused.json()["error"]["type"] == "authentication_error"
            assert httpx.get(f"{url}/metrics", headers=headers).status_code == 401
        allowed = {"Authorization": "Bearer sekrit"}
        assert post(url, "/v1/tasks/sentiment", {"text": "hi"}, headers=allowed).status_code == 200


def test_serve_rejects_bad_flags_in_one_line() -> None:
    from click.testing import CliRunner

    from nlpsuite.cli import cli

    cases = {
        ("serve", "sentiment", "--option", "translation.beams=2"): "task 'translation' is not",
        ("serve", "sentiment", "--option", "nonsense=1"): "no served task has an option",
        ("serve", "sentiment", "--model", "a", "--model", "b"): "--model given twice",
        ("serve", "no-such-task"): "no-such-task",
        ("serve", "--max-batch-tokens", "0"): "--max-batch-tokens",
    }
    for arguments, says in cases.items():
        result = CliRunner().invoke(cli, list(arguments))
        assert result.exit_code == 2, (arguments, result.output)
        assert says in result.output


@pytest.mark.slow
def test_sigterm_finishes_the_requests_in_flight_then_exits_0(tiny_classifier: Path) -> None:
    command = [sys.executable, "-m", "nlpsuite", "serve", "sentiment", "--model",
               str(tiny_classifier), "--port", "0", "--max-batch-requests", "1",
               "--max-wait-ms", "0", "--max-queue", "5000"]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=environment)
    try:
        banner = [process.stdout.readline() for _ in range(2)] if process.stdout else []
        assert banner[0].startswith(f"sentiment\t{tiny_classifier}\t"), banner
        assert banner[1].startswith("serving on http://127.0.0.1:"), banner  # a free port
        url = banner[1].split()[-1]
        bodies = [[{"text": f"{text} {n}"} for text in TEXTS * 40] for n in range(6)]
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            answers = [pool.submit(post, url, "/v1/tasks/sentiment", body) for body in bodies]
            total = sum(map(len, bodies))
            until(lambda: metric(url, "nlpsuite_queue_depth", task="sentiment")
                  + metric(url, "nlpsuite_batch_size_sum", task="sentiment") >= total - 1)
            done = metric(url, "nlpsuite_batch_size_sum", task="sentiment")
            process.send_signal(signal.SIGTERM)
            assert done < total  # the premise: work was left when the signal came
            results = [future.result() for future in answers]
        assert [result.status_code for result in results] == [200] * 6
        assert [len(result.json()) for result in results] == [len(body) for body in bodies]
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_token_ids_count_as_that_many_tokens_toward_the_budget(tiny_classifier: Path) -> None:
    from nlpsuite_plugins.text_generation import TextGenerationInput

    from nlpsuite.serving.server import TokenCounter

    counter = TokenCounter(str(tiny_classifier))
    ids = TextGenerationInput(prompt_ids=tuple(range(3, 503)))
    assert counter(ids) >= 500  # a prompt given as ids is as long as its ids, not "1 token"
    chat = TextGenerationInput(messages=[{"role": "user", "content": "word " * 30}])
    assert counter(chat) >= 30
