"""nlpsuite.loadtest against a real server (uvicorn on a free loopback port) serving the real
MiniLM: counts add up, percentiles are ordered, tokens come from where the report says, and a
server that is not there is a one-line error before any load is sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from nlpsuite import NlpsuiteError
from nlpsuite.loadtest import (
    TOKENS_FROM_USAGE,
    TOKENS_FROM_WORDS,
    LoadReport,
    LoadTestConfig,
    run_loadtest,
)
from nlpsuite.serving.server import ServeConfig
from tests.serving import free_port, serve_in_thread

RECORDS = [{"text": "one"}, {"text": "two words"}, {"text": "and three words"}]


@pytest.fixture(scope="module")
def embedding_url(minilm: Path) -> Iterator[str]:
    config = ServeConfig(tasks=("embedding",), models={"embedding": str(minilm)})
    with serve_in_thread(config) as url:
        yield url


def assert_consistent(report: LoadReport) -> None:
    assert report.succeeded + sum(report.errors.values()) == report.requests
    latencies = [report.latency_p50_ms, report.latency_p90_ms, report.latency_p99_ms,
                 report.latency_max_ms]
    assert all(value is not None and value > 0 for value in latencies)
    assert latencies == sorted(latencies)  # type: ignore[type-var]
    assert report.duration_s > 0
    assert report.requests_per_s == pytest.approx(report.requests / report.duration_s, rel=0.01)


def test_records_cycle_and_every_request_is_counted(embedding_url: str) -> None:
    config = LoadTestConfig(url=embedding_url, task="embedding", concurrency=4, requests=30,
                            records=RECORDS, warmup_requests=4)
    report = run_loadtest(config)
    assert_consistent(report)
    assert (report.requests, report.succeeded, report.errors) == (30, 30, {})
    assert report.route == "/v1/tasks/embedding"
    assert report.tokens == 10 * (1 + 2 + 3)  # each record sent 10 times, words counted
    assert report.tokens_from == TOKENS_FROM_WORDS
    assert report.tokens_per_s == pytest.approx(report.tokens / report.duration_s, rel=0.01)


def test_the_default_record_is_the_tasks_example_and_the_report_renders(
    embedding_url: str,
) -> None:
    report = run_loadtest(LoadTestConfig(url=embedding_url, task="embedding", concurrency=8,
                                         requests=20))
    assert_consistent(report)
    assert report.succeeded == 20
    assert report.tokens > 0
    table = report.table().splitlines()
    assert table[0].startswith("| measure") and table[1].startswith("|--")
    assert all(line.startswith("| ") and line.endswith(" |") for line in table[2:])
    assert any("requests/s" in line and f"{report.requests_per_s:.1f}" in line for line in table)
    data = json.loads(report.to_json())
    assert data["requests"] == 20 and data["errors"] == {} and data["concurrency"] == 8
    assert data["latency_p99_ms"] == report.latency_p99_ms


def test_usage_of_an_openai_answer_is_the_token_count(embedding_url: str) -> None:
    config = LoadTestConfig(url=embedding_url, task="embedding", concurrency=2, requests=6,
                            route="/v1/embeddings",
                            records=[{"input": "a sentence of several words to embed"}])
    report = run_loadtest(config)
    assert report.succeeded == 6
    assert report.tokens_from == TOKENS_FROM_USAGE
    assert report.tokens > 6 * 7  # word pieces plus [CLS] and [SEP], not whitespace words


def test_refused_requests_are_counted_by_status(embedding_url: str) -> None:
    config = LoadTestConfig(url=embedding_url, task="embedding", concurrency=3, requests=9,
                            records=[{"text": "fine"}, {"wrong": "field"}, {"text": ""}])
    report = run_loadtest(config)
    assert report.succeeded == 3
    assert report.errors == {"422": 6}
    assert report.tokens == 3  # only answered requests count


def test_the_api_key_goes_with_every_request(minilm: Path) -> None:
    config = ServeConfig(tasks=("embedding",), models={"embedding": str(minilm)},
                         api_key="s3cret")
    with serve_in_thread(config) as url:
        with pytest.raises(NlpsuiteError, match="wants an API key"):
            run_loadtest(LoadTestConfig(url=url, task="embedding", requests=2))
        report = run_loadtest(LoadTestConfig(url=url + "/", task="embedding", concurrency=2,
                                             requests=6, api_key="s3cret"))
    assert (report.succeeded, report.errors) == (6, {})


def test_a_server_that_is_not_there_is_one_line() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(NlpsuiteError) as caught:
        run_loadtest(LoadTestConfig(url=url, task="embedding", requests=5))
    message = str(caught.value)
    assert message.startswith(f"cannot reach {url}") and "\n" not in message


def test_a_task_that_is_not_served_names_what_is(embedding_url: str) -> None:
    with pytest.raises(NlpsuiteError, match=r"task 'sentiment' is not served .*embedding"):
        run_loadtest(LoadTestConfig(url=embedding_url, task="sentiment", requests=5))


@pytest.mark.parametrize(("change", "field"), [
    ({"concurrency": 0}, "concurrency"), ({"requests": 0}, "requests"),
    ({"records": []}, "records"), ({"url": "127.0.0.1:8000"}, "url"),
])
def test_bad_settings_are_refused_before_connecting(change: dict[str, object], field: str) -> None:
    settings: dict[str, object] = {"url": "http://127.0.0.1:9", "task": "embedding", **change}
    with pytest.raises(NlpsuiteError, match=field):
        run_loadtest(LoadTestConfig(**settings))  # type: ignore[arg-type]
