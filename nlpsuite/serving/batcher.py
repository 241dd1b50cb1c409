"""Dynamic micro-batching: concurrent requests to one task merged into one forward pass.

Each task has one :class:`MicroBatcher`: a bounded queue of records, a collector task on the
event loop that gathers a batch under a token budget and a request count (waiting at most
``max_wait_ms`` after the first record), and one worker thread that runs the task's runner, so
model work never blocks the loop and a model sees one forward pass at a time. Every record has
its own future: a request's answers come back in its input order, and a record that fails
fails alone. Pure Python and asyncio, so it is tested with a plain runner function.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from nlpsuite.errors import NlpsuiteError, PluginError, error_line, reason_line
from nlpsuite.serving.http import ServeError

logger = logging.getLogger("nlpsuite.serve")

BatchRunner = Callable[[Sequence[Any]], list[Any]]


@dataclass(frozen=True)
class BatchLimits:
    """How batches are made. ``max_queue``: records waiting per task, beyond it a 429;
    ``request_timeout_s``: the longest a request waits for its answers, beyond it a 504."""

    max_batch_tokens: int = 16384
    max_batch_requests: int = 64
    max_wait_ms: float = 5.0
    max_queue: int = 1024
    request_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        for name in ("max_batch_tokens", "max_batch_requests", "max_queue"):
            if getattr(self, name) < 1:
                raise NlpsuiteError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("max_wait_ms", "request_timeout_s"):
            value = getattr(self, name)
            if not value >= 0 or math.isinf(value):  # also refuses NaN
                raise NlpsuiteError(f"{name} must be a number of at least 0, got {value}")
        if self.request_timeout_s == 0:
            raise NlpsuiteError("request_timeout_s must be more than 0")


class BatchObserver(Protocol):
    """What a batcher reports (the server's Prometheus metrics implement it). ``batch`` and
    ``dropped`` are called from the worker thread, the others from the event loop."""

    def queue_depth(self, task: str, depth: int) -> None: ...

    def batch(self, task: str, size: int, tokens: int, waits: Sequence[float],
              compute_s: float) -> None: ...

    def dropped(self, task: str, reason: str, count: int) -> None: ...


class NoObserver:
    def queue_depth(self, task: str, depth: int) -> None:
        pass

    def batch(self, task: str, size: int, tokens: int, waits: Sequence[float],
              compute_s: float) -> None:
        pass

    def dropped(self, task: str, reason: str, count: int) -> None:
        pass


@dataclass(eq=False)
class Pending:
    """One record waiting for its answer. ``abandoned`` names why its answer is no longer
    wanted (the client disconnected, the request timed out): it is dropped before its pass."""

    record: Any
    tokens: int
    future: asyncio.Future[Any]
    enqueued: float = field(default_factory=time.monotonic)
    abandoned: str | None = None


def failure(error: Exception) -> ServeError:
    """The answer for one record whose run raised ``error``: the user's input (422) or the
    server's (500), with a one-line reason, never a traceback."""
    if isinstance(error, ServeError):
        return error
    if isinstance(error, NlpsuiteError) and not isinstance(error, PluginError):
        return ServeError(422, error_line(error))
    return ServeError(500, reason_line(error))


class MicroBatcher:
    """Batches the records of concurrent requests for one runner (see the module's doc)."""

    def __init__(self, name: str, runner: BatchRunner, count_tokens: Callable[[Any], int],
                 limits: BatchLimits, observer: BatchObserver | None = None) -> None:
        self.name = name
        self.runner = runner
        self.count_tokens = count_tokens
        self.limits = limits
        self.observer: BatchObserver = observer or NoObserver()
        self.queue: collections.deque[Pending] = collections.deque()
        self.in_flight: list[Pending] = []  # the batch being collected or run
        self.stopping = False
        self.running = 0  # how many records that batch holds
        self.batch_seconds = 0.0  # the last pass's time, for Retry-After
        self.loop: asyncio.AbstractEventLoop | None = None
        self.collector: asyncio.Task[None] | None = None
        self.worker: concurrent.futures.ThreadPoolExecutor | None = None
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        """Bind to the running event loop and start collecting (again, after a stop)."""
        loop = asyncio.get_running_loop()
        if self.loop is loop and self.collector is not None and not self.collector.done():
            return
        self.loop = loop
        self.queue.clear()
        self.wake, self.idle = asyncio.Event(), asyncio.Event()
        self.idle.set()
        self.stopping = False
        self.worker = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix=f"nlpsuite-{self.name}"
        )
        self.collector = loop.create_task(self.collect_forever(), name=f"batcher-{self.name}")

    async def stop(self) -> None:
        """Answer every record already queued, then stop the collector and the worker."""
        if self.collector is None:
            return
        self.stopping = True  # a batch being collected goes now, without its wait
        self.wake.set()
        while self.queue or self.in_flight:
            self.idle.clear()
            await self.idle.wait()
        self.collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.collector
        self.collector = None
        if self.worker is not None:
            self.worker.shutdown(wait=True)
            self.worker = None

    # -- submitting -------------------------------------------------------------------------

    def submit(self, records: Sequence[Any], counts: Sequence[int]) -> list[Pending]:
        """Queue ``records`` (with their token ``counts``) and return their pending answers.

        413 for a record over the token budget (never queued: it could never be batched), 429
        when the queue has no room for all of them (none is queued)."""
        budget = self.limits.max_batch_tokens
        for index, count in enumerate(counts):
            if count > budget:
                where = f"record {index}" if len(counts) > 1 else "the record"
                raise ServeError(413, f"{where} has {count} tokens, over the batch budget of "
                                      f"{budget} tokens (--max-batch-tokens)")
        self.start()
        if len(self.queue) + len(records) > self.limits.max_queue:
            raise ServeError(429, f"server overloaded: {len(self.queue)} records are waiting "
                                  f"for task '{self.name}' (--max-queue "
                                  f"{self.limits.max_queue}); retry later",
                             retry_after=self.retry_after())
        assert self.loop is not None
        pending = [Pending(record, count, self.loop.create_future())
                   for record, count in zip(records, counts, strict=True)]
        self.queue.extend(pending)
        self.observer.queue_depth(self.name, len(self.queue))
        self.wake.set()
        return pending

    def retry_after(self) -> float:
        """Seconds until the queue has likely drained: its batches times the last pass's."""
        batches = math.ceil(len(self.queue) / self.limits.max_batch_requests)
        return max(1.0, batches * self.batch_seconds)

    async def answers(self, pending: Sequence[Pending]) -> list[Any]:
        """The outputs of ``pending``, in order; the first failure (in input order) raises.

        504 past the request timeout; the records not yet run are then dropped."""
        futures = [item.future for item in pending]
        try:
            async with asyncio.timeout(self.limits.request_timeout_s):
                await asyncio.wait(futures)
        except TimeoutError:
            self.abandon(pending, "timeout")
            raise ServeError(504, f"no answer within {self.limits.request_timeout_s:g} s "
                                  "(--request-timeout)") from None
        except asyncio.CancelledError:
            self.abandon(pending, "cancelled")
            raise
        errors = [future.exception() for future in futures]  # each read, so none is "lost"
        first = next((error for error in errors if error is not None), None)
        if first is not None:
            raise first
        return [future.result() for future in futures]

    def abandon(self, pending: Sequence[Pending], reason: str) -> None:
        """No one wants these answers any more: drop those not yet run before their pass."""
        for item in pending:
            if item.future.done():
                if not item.future.cancelled():
                    item.future.exception()  # read, so asyncio does not log it as lost
            elif item.abandoned is None:
                item.abandoned = reason
                item.future.cancel()
        self.wake.set()  # let the collector drop them now, freeing the queue

    # -- collecting and running --------------------------------------------------------------

    async def collect_forever(self) -> None:
        while True:
            batch: list[Pending] = []
            try:
                batch = await self.collect()
                if batch:
                    await self.run(batch)
            except Exception as error:  # a bug here must not stop the task's batching
                logger.exception("task %s: batching failed", self.name)
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(failure(error))
            self.in_flight = []
            if not self.queue:
                self.idle.set()

    async def collect(self) -> list[Pending]:
        """The next batch: records in arrival order while under both limits, waiting at most
        ``max_wait_ms`` after the first record arrived for more to come."""
        batch: list[Pending] = []
        self.in_flight = batch  # so that stop() waits for it
        tokens = 0
        while True:
            self.drop_abandoned()
            while self.queue and self.fits(batch, tokens, self.queue[0]):
                item = self.queue.popleft()
                batch.append(item)
                tokens += item.tokens
            if batch and (self.queue or len(batch) >= self.limits.max_batch_requests):
                return batch  # full: the next record would break a limit
            if batch and self.stopping:
                return batch
            wait = None
            if batch:
                wait = batch[0].enqueued + self.limits.max_wait_ms / 1000 - time.monotonic()
                if wait <= 0:
                    return batch
            self.wake.clear()
            try:
                async with asyncio.timeout(wait):
                    await self.wake.wait()
            except TimeoutError:
                return batch

    def fits(self, batch: list[Pending], tokens: int, item: Pending) -> bool:
        if not batch:
            return True  # every queued record is within the budget (submit checks)
        return (len(batch) < self.limits.max_batch_requests
                and tokens + item.tokens <= self.limits.max_batch_tokens)

    def drop_abandoned(self) -> None:
        if not any(item.abandoned for item in self.queue):
            return
        kept: collections.deque[Pending] = collections.deque()
        dropped: collections.Counter[str] = collections.Counter()
        for item in self.queue:
            if item.abandoned:
                dropped[item.abandoned] += 1
            else:
                kept.append(item)
        self.queue = kept
        for reason, count in dropped.items():
            self.observer.dropped(self.name, reason, count)
        self.observer.queue_depth(self.name, len(self.queue))

    async def run(self, batch: list[Pending]) -> None:
        """Run ``batch`` (sorted by length) on the worker thread and settle every future."""
        self.observer.queue_depth(self.name, len(self.queue))
        batch.sort(key=lambda item: item.tokens)
        self.running = len(batch)
        try:
            assert self.loop is not None
            ran = await self.loop.run_in_executor(self.worker, self.forward, batch)
        finally:
            self.running = 0
        for item, (ok, value) in ran:
            if item.future.done():
                continue  # timed out or disconnected during the pass
            if ok:
                item.future.set_result(value)
            else:
                item.future.set_exception(value)

    def forward(self, batch: list[Pending]) -> list[tuple[Pending, tuple[bool, Any]]]:
        """On the worker thread, when its turn comes: drop the records no one waits for any
        more (their client left while the batch waited for the worker), run the others."""
        live = [item for item in batch if item.abandoned is None]
        for reason in sorted({str(item.abandoned) for item in batch if item.abandoned}):
            count = sum(item.abandoned == reason for item in batch)
            self.observer.dropped(self.name, reason, count)
        if not live:
            return []
        started = time.monotonic()
        results = self.run_batch([item.record for item in live])
        self.batch_seconds = time.monotonic() - started
        self.observer.batch(self.name, len(live), sum(item.tokens for item in live),
                            [started - item.enqueued for item in live], self.batch_seconds)
        return list(zip(live, results, strict=True))

    def run_batch(self, records: list[Any]) -> list[tuple[bool, Any]]:
        """On the worker thread: the batch in one pass; if it raises, each record alone, so
        only the faulty record fails. ``(True, output)`` or ``(False, ServeError)`` each."""
        try:
            outputs = self.runner(records)
            if len(outputs) != len(records):
                raise PluginError(f"task '{self.name}': the runner gave {len(outputs)} outputs "
                                  f"for {len(records)} inputs")
            return [(True, output) for output in outputs]
        except Exception as error:
            if len(records) == 1:
                return [(False, failure(error))]
        return [self.run_alone(record) for record in records]

    def run_alone(self, record: Any) -> tuple[bool, Any]:
        try:
            return True, self.runner([record])[0]
        except Exception as error:
            return False, failure(error)
