"""The micro-batcher alone, with plain runner functions (a batch in, a batch out: the runner
contract), so every case is deterministic: a gate holds the runner while requests queue."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

import pytest

from nlpsuite.errors import NlpsuiteError
from nlpsuite.serving.batcher import BatchLimits, MicroBatcher
from nlpsuite.serving.http import ServeError


class Recorder:
    """A runner that upper-cases texts, remembering every batch it ran; ``gate`` (when set)
    holds it until released; "bad" fails the batch with a user error, "boom" with a bug."""

    def __init__(self, gated: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.entered = threading.Event()
        if not gated:
            self.gate.set()

    def __call__(self, batch: Sequence[str]) -> list[str]:
        self.entered.set()
        self.gate.wait(timeout=60)
        self.batches.append(list(batch))
        if "bad" in batch:
            raise NlpsuiteError("field 'text': 'bad' is not allowed")
        if "boom" in batch:
            raise ZeroDivisionError("division by zero\nsecond line")
        return [text.upper() for text in batch]


class Drops:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.batches: list[tuple[int, int]] = []

    def queue_depth(self, task: str, depth: int) -> None:
        pass

    def batch(self, task: str, size: int, tokens: int, waits: Sequence[float],
              compute_s: float) -> None:
        self.batches.append((size, tokens))

    def dropped(self, task: str, reason: str, count: int) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + count


def length(text: str) -> int:
    return len(text)


def batcher(runner: Recorder, observer: Drops | None = None, **limits: Any) -> MicroBatcher:
    return MicroBatcher("upper", runner, length, BatchLimits(**limits), observer)


def run(scenario: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    return asyncio.run(scenario())


async def ask(micro: MicroBatcher, texts: list[str]) -> list[str]:
    pending = micro.submit(texts, [length(text) for text in texts])
    result: list[str] = await micro.answers(pending)
    return result


async def until(condition: Callable[[], bool]) -> None:
    for _ in range(6000):
        if condition():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("the condition never held")


def test_concurrent_requests_share_one_sorted_pass_and_keep_their_order() -> None:
    runner = Recorder(gated=True)

    async def scenario() -> list[list[str]]:
        micro = batcher(runner, max_wait_ms=60_000, max_batch_requests=5)
        # A full batch goes at once (the gate holds it); the next ones queue meanwhile.
        first = asyncio.create_task(ask(micro, ["a1", "a2", "a3", "a4", "a5"]))
        await until(runner.entered.is_set)
        rest = [asyncio.create_task(ask(micro, texts))
                for texts in (["ccc", "b"], ["eeeee"], ["dddd", "ff"])]
        await until(lambda: len(micro.queue) == 5)
        runner.gate.set()
        answers = await asyncio.gather(first, *rest)
        await micro.stop()
        return answers

    answers = run(scenario)
    assert answers == [["A1", "A2", "A3", "A4", "A5"], ["CCC", "B"], ["EEEEE"], ["DDDD", "FF"]]
    # The five waiting records went in one pass, shortest first.
    assert runner.batches[1:] == [["b", "ff", "ccc", "dddd", "eeeee"]]


def test_a_batch_stays_within_the_request_and_token_limits() -> None:
    runner = Recorder(gated=True)

    async def scenario() -> None:
        micro = batcher(runner, max_wait_ms=0, max_batch_requests=3, max_batch_tokens=6)
        first = asyncio.create_task(ask(micro, ["x"]))
        await until(runner.entered.is_set)
        texts = ["aa", "bb", "cc", "dddd", "e", "f", "g", "h"]
        waiting = [asyncio.create_task(ask(micro, [text])) for text in texts]
        await until(lambda: len(micro.queue) == len(texts))
        runner.gate.set()
        assert [answer for [answer] in await asyncio.gather(*waiting)] == [
            text.upper() for text in texts]
        await first
        await micro.stop()

    run(scenario)
    batches = runner.batches[1:]
    assert all(len(batch) <= 3 and sum(map(len, batch)) <= 6 for batch in batches)
    assert sorted(text for batch in batches for text in batch) == sorted(
        ["aa", "bb", "cc", "dddd", "e", "f", "g", "h"])
    assert ["aa", "bb", "cc"] in batches  # full on tokens: "dddd" waits for the next pass


def test_a_record_over_the_token_budget_is_413_and_never_queued() -> None:
    runner = Recorder()

    async def scenario() -> None:
        micro = batcher(runner, max_batch_tokens=10)
        with pytest.raises(ServeError) as refused:
            micro.submit(["short", "x" * 11], [5, 11])
        assert refused.value.status == 413
        assert "record 1 has 11 tokens" in refused.value.message
        assert not micro.queue
        assert await ask(micro, ["ok"]) == ["OK"]  # the batcher still works
        await micro.stop()

    run(scenario)
    assert runner.batches == [["ok"]]


def test_a_full_queue_is_429_with_retry_after_and_queues_nothing() -> None:
    runner = Recorder(gated=True)

    async def scenario() -> None:
        micro = batcher(runner, max_queue=3, max_wait_ms=0, max_batch_requests=1)
        first = asyncio.create_task(ask(micro, ["a"]))
        await until(runner.entered.is_set)  # "a" holds the worker; the queue is empty
        queued = asyncio.create_task(ask(micro, ["b", "c"]))
        await until(lambda: len(micro.queue) == 2)
        with pytest.raises(ServeError) as overloaded:
            micro.submit(["d", "e"], [1, 1])  # 2 + 2 > 3
        assert overloaded.value.status == 429
        assert "overloaded" in overloaded.value.message
        assert overloaded.value.retry_after is not None and overloaded.value.retry_after >= 1
        assert len(micro.queue) == 2
        runner.gate.set()
        assert await first == ["A"] and await queued == ["B", "C"]
        await micro.stop()

    run(scenario)
    assert ["d"] not in runner.batches and ["e"] not in runner.batches


def test_a_request_past_its_timeout_is_504_and_its_records_never_run() -> None:
    runner = Recorder(gated=True)
    drops = Drops()

    async def scenario() -> None:
        micro = batcher(runner, drops, request_timeout_s=0.05, max_wait_ms=0)
        first = asyncio.create_task(ask(micro, ["a"]))
        await until(runner.entered.is_set)
        with pytest.raises(ServeError) as late:
            await ask(micro, ["late"])
        assert late.value.status == 504
        runner.gate.set()
        with pytest.raises(ServeError):
            await first  # it timed out too, while the gate held it
        assert await ask(micro, ["next"]) == ["NEXT"]
        await micro.stop()

    run(scenario)
    assert ["late"] not in runner.batches
    assert drops.counts == {"timeout": 1}


def test_a_record_abandoned_in_the_queue_is_dropped_before_its_forward_pass() -> None:
    runner = Recorder(gated=True)
    drops = Drops()

    async def scenario() -> None:
        micro = batcher(runner, drops, max_wait_ms=0)
        first = asyncio.create_task(ask(micro, ["a"]))
        await until(runner.entered.is_set)  # the collector waits for this pass to end
        left = micro.submit(["gone"], [4])  # its client goes away while it waits
        stays = asyncio.create_task(ask(micro, ["stays"]))
        await until(lambda: len(micro.queue) == 2)
        micro.abandon(left, "disconnected")
        runner.gate.set()
        assert await first == ["A"] and await stays == ["STAYS"]
        await micro.stop()

    run(scenario)
    assert all("gone" not in batch for batch in runner.batches)
    assert drops.counts == {"disconnected": 1}


def test_a_record_abandoned_while_its_batch_waits_for_the_worker_is_dropped() -> None:
    runner = Recorder()
    drops = Drops()
    worker_free = threading.Event()

    async def scenario() -> None:
        micro = batcher(runner, drops, max_wait_ms=60_000, max_batch_requests=2)
        micro.start()
        assert micro.worker is not None
        micro.worker.submit(worker_free.wait, 60)  # the worker is busy with something else
        left = micro.submit(["gone"], [4])
        stays = asyncio.create_task(ask(micro, ["stays"]))
        await until(lambda: not micro.queue and micro.running == 2)  # one batch, waiting
        micro.abandon(left, "disconnected")
        worker_free.set()
        assert await stays == ["STAYS"]
        await micro.stop()

    run(scenario)
    assert runner.batches == [["stays"]]
    assert drops.counts == {"disconnected": 1}


@pytest.mark.parametrize(("bad", "status", "message"), [
    ("bad", 422, "field 'text': 'bad' is not allowed"),
    ("boom", 500, "ZeroDivisionError: division by zero"),
])
def test_a_failing_record_fails_alone(bad: str, status: int, message: str) -> None:
    runner = Recorder(gated=True)

    async def scenario() -> list[Any]:
        micro = batcher(runner, max_wait_ms=60_000, max_batch_requests=3)
        first = asyncio.create_task(ask(micro, ["a", "b", "c"]))
        await until(runner.entered.is_set)
        mates = [asyncio.create_task(ask(micro, [text])) for text in ("one", bad, "three")]
        await until(lambda: len(micro.queue) == 3)
        runner.gate.set()
        answers = await asyncio.gather(first, *mates, return_exceptions=True)
        await micro.stop()
        return answers

    answers = run(scenario)
    assert answers[:2] == [["A", "B", "C"], ["ONE"]] and answers[3] == ["THREE"]
    error = answers[2]
    assert isinstance(error, ServeError)
    assert (error.status, error.message) == (status, message)  # one line, no traceback
    assert sorted(["one", bad, "three"]) in [sorted(batch) for batch in runner.batches]


def test_stop_answers_every_queued_record_first() -> None:
    runner = Recorder(gated=True)

    async def scenario() -> list[Any]:
        micro = batcher(runner, max_wait_ms=0, max_batch_requests=1)
        asks = [asyncio.create_task(ask(micro, [text])) for text in ("a", "b", "c")]
        await until(runner.entered.is_set)
        stopping = asyncio.create_task(micro.stop())
        await asyncio.sleep(0.01)
        assert not stopping.done()
        runner.gate.set()
        await stopping
        return [task.result() for task in asks]

    assert run(scenario) == [["A"], ["B"], ["C"]]


def test_stop_sends_a_batch_still_waiting_for_mates_without_its_wait() -> None:
    runner = Recorder()

    async def scenario() -> list[str]:
        micro = batcher(runner, max_wait_ms=600_000, max_batch_requests=10)
        waiting = asyncio.create_task(ask(micro, ["lonely"]))
        await until(lambda: not micro.queue and bool(micro.in_flight))  # collected, waiting
        await asyncio.wait_for(micro.stop(), timeout=60)  # far less than its 600 s wait
        return await waiting

    assert run(scenario) == ["LONELY"]


@pytest.mark.parametrize(("limits", "named"), [
    ({"max_batch_tokens": 0}, "max_batch_tokens"),
    ({"max_batch_requests": -1}, "max_batch_requests"),
    ({"max_queue": 0}, "max_queue"),
    ({"max_wait_ms": float("nan")}, "max_wait_ms"),
    ({"request_timeout_s": 0}, "request_timeout_s"),
])
def test_limits_out_of_range_are_one_line_errors(limits: dict[str, Any], named: str) -> None:
    with pytest.raises(NlpsuiteError, match=named):
        BatchLimits(**limits)
