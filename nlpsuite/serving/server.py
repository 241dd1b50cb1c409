"""The served tasks: one runner per task, loaded once, each behind its own micro-batcher.

:func:`load_server` loads every model before anything listens, so a server that answers
``/ready`` answers requests. Routes (``app``, ``openai_api``, ``tei_api``) reach a task through
:meth:`Server.served` and call :meth:`ServedTask.parse` and :meth:`ServedTask.predict`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import re
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nlpsuite.errors import NlpsuiteError
from nlpsuite.lookup import get_task, load_runner
from nlpsuite.serving.batcher import BatchLimits, BatchObserver, MicroBatcher
from nlpsuite.serving.http import ServeError
from nlpsuite.tasks import Task

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = ["BatchLimits", "ServeConfig", "ServedTask", "Server", "load_server"]

# Text this long (characters, all fields) is counted on a thread rather than on the event loop.
COUNT_ON_LOOP_CHARS = 20_000


@dataclass(frozen=True)
class ServeConfig:
    """What ``nlpsuite serve`` serves, and how."""

    tasks: tuple[str, ...]
    models: Mapping[str, str] = field(default_factory=dict)  # task -> model (else its default)
    options: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # task -> options
    backend: str = "torch"
    device: str = "cpu"
    batch_limits: BatchLimits = field(default_factory=BatchLimits)
    api_key: str | None = None
    host: str = "127.0.0.1"
    port: int = 8000
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if not self.tasks:
            raise NlpsuiteError("no task to serve")
        for name, what in ((self.models, "a model"), (self.options, "options")):
            stray = sorted(set(name) - set(self.tasks))
            if stray:
                raise NlpsuiteError(f"{what} given for task '{stray[0]}', which is not served "
                                    f"(served: {', '.join(self.tasks)})")


class TokenCounter:
    """A record's size for the batch budget: its model's tokens over every text it holds, or
    ``len(utf-8 bytes) // 4 + 1`` per text when the model has no tokenizer that loads.

    A copy of the tokenizer, used under a lock: a fast tokenizer that the runner's thread
    configures (truncation, padding) at the same time fails with "Already borrowed"."""

    def __init__(self, model: str, trust_remote_code: bool = False) -> None:
        self.tokenizer = self.load(model, trust_remote_code)
        self.lock = threading.Lock()

    @staticmethod
    def load(model: str, trust_remote_code: bool) -> Any:
        from nlpsuite.models import load_tokenizer

        try:
            return copy.deepcopy(load_tokenizer(model, trust_remote_code=trust_remote_code))
        except Exception:  # no tokenizer (a plugin's own model format): count bytes instead
            return None

    def __call__(self, record: Any) -> int:
        counts = (self.count(piece) if isinstance(piece, str) else len(piece)
                  for piece in texts_in(record))
        return sum(counts) or 1

    def count(self, text: str) -> int:
        if self.tokenizer is not None:
            try:
                with self.lock:
                    return len(self.tokenizer(text, verbose=False)["input_ids"])
            except Exception:  # a tokenizer that cannot take this text: count its bytes
                pass
        return len(text.encode("utf-8")) // 4 + 1


def texts_in(value: Any) -> Iterator[str | Sequence[int]]:
    """Every string in a record's fields, at any depth (chat messages are dicts in a list), and
    every sequence of token ids (a prompt given as ids), which counts as that many tokens."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    if isinstance(value, str):
        yield value
    elif isinstance(value, Mapping):
        for inner in value.values():
            yield from texts_in(inner)
    elif isinstance(value, list | tuple):
        if value and all(type(inner) is int for inner in value):
            yield value
            return
        for inner in value:
            yield from texts_in(inner)


class ServedTask:
    """One served task: its model's runner behind a :class:`MicroBatcher`."""

    def __init__(self, task: Task, model: str, runner: Callable[[Sequence[Any]], list[Any]],
                 limits: BatchLimits, count_tokens: Callable[[Any], int],
                 observer: BatchObserver | None = None) -> None:
        self.name = task.name
        self.task = task
        self.model = model
        self.runner = runner
        self.count_tokens = count_tokens
        self.batcher = MicroBatcher(task.name, runner, count_tokens, limits, observer)
        self.fields = [f.name for f in dataclasses.fields(task.input_type)]

    def parse(self, body: Any) -> list[Any]:
        """A JSON record (an object, or a bare string for the first field) or a list of them,
        as the task's input records; 422 naming the record and the field at fault."""
        values = body if isinstance(body, list) else [body]
        if isinstance(body, list) and not body:
            raise ServeError(422, "the request body is an empty list: give at least one record")
        return [self.parse_one(value, f"record {index}" if isinstance(body, list) else "the record")
                for index, value in enumerate(values)]

    def parse_one(self, value: Any, where: str) -> Any:
        if isinstance(value, Mapping):
            unknown = [key for key in value if key not in self.fields]
            if unknown:
                raise ServeError(422, f"{where}: unknown field '{unknown[0]}' (task "
                                      f"'{self.name}' reads: {', '.join(self.fields)})",
                                 param=unknown[0])
        elif not isinstance(value, str):
            raise ServeError(422, f"{where}: expected a JSON object with the fields "
                                  f"{', '.join(self.fields)}, or a string; got "
                                  f"{json_type(value)}")
        try:
            return self.task.make_input(value, where)
        except NlpsuiteError as error:
            named = re.search(r"field '([^']+)'", str(error))
            raise ServeError(422, str(error), param=named.group(1) if named else None) from None

    async def predict(self, records: Sequence[Any], request: Request | None = None) -> list[Any]:
        """The task's outputs for ``records``, in order, through the micro-batcher.

        ``request``: when its client disconnects, its records not yet run are dropped."""
        counts = await self.counts(records)
        pending = self.batcher.submit(records, counts)
        if request is None:
            return await self.batcher.answers(pending)
        async with watch_disconnect(request, lambda: self.batcher.abandon(pending,
                                                                          "disconnected")):
            return await self.batcher.answers(pending)

    async def counts(self, records: Sequence[Any]) -> list[int]:
        size = sum(len(piece) for piece in texts_in(list(records)))
        if size <= COUNT_ON_LOOP_CHARS:
            return [self.count_tokens(record) for record in records]
        return await asyncio.to_thread(lambda: [self.count_tokens(r) for r in records])


@contextlib.asynccontextmanager
async def watch_disconnect(request: Request,
                           on_disconnect: Callable[[], None]) -> AsyncIterator[None]:
    """Call ``on_disconnect`` if the client goes away while the body of the block runs.

    The request's body has been read, so the server's next message is ``http.disconnect``:
    when the client closes the connection, or when the response is complete."""

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                on_disconnect()
                return

    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        yield
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await watcher


def json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean",
             int: "a number", float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


class Server:
    """Every served task, by name, and what they were loaded with."""

    def __init__(self, config: ServeConfig, tasks: Mapping[str, ServedTask],
                 telemetry: Any = None) -> None:
        self.config = config
        self.tasks: dict[str, ServedTask] = dict(tasks)
        self.telemetry = telemetry  # nlpsuite.serving.telemetry.Telemetry
        self.draining = False

    def served(self, name: str) -> ServedTask:
        if name not in self.tasks:
            raise ServeError(404, f"task '{name}' is not served (served: "
                                  f"{', '.join(self.tasks)})", param="task")
        return self.tasks[name]

    def first_served(self, *names: str) -> ServedTask:
        for name in names:
            if name in self.tasks:
                return self.tasks[name]
        raise ServeError(404, f"task '{names[0]}' is not served (served: "
                              f"{', '.join(self.tasks)}); start the server with: "
                              f"nlpsuite serve {names[0]}")

    async def start(self) -> None:
        for served in self.tasks.values():
            served.batcher.start()

    async def stop(self) -> None:
        """Answer everything queued, then stop every batcher."""
        self.draining = True
        await asyncio.gather(*(served.batcher.stop() for served in self.tasks.values()))


def load_server(config: ServeConfig) -> Server:
    """Load every task's model once (NlpsuiteError for a task or model that does not load)."""
    from nlpsuite.serving.telemetry import Telemetry

    tasks = [get_task(name) for name in dict.fromkeys(config.tasks)]  # all known, first
    telemetry = Telemetry()
    served = {task.name: load_task(config, task, telemetry) for task in tasks}
    return Server(config, served, telemetry)


def load_task(config: ServeConfig, task: Task, observer: BatchObserver) -> ServedTask:
    limits = config.batch_limits
    runner = load_runner(
        task, config.models.get(task.name), backend=config.backend, device=config.device,
        options=config.options.get(task.name, {}), batch_size=limits.max_batch_requests,
        trust_remote_code=config.trust_remote_code,
    )
    model = config.models.get(task.name) or task.model_for(
        task.parse_options(config.options.get(task.name, {})))
    counter = TokenCounter(model, config.trust_remote_code)
    return ServedTask(task, model, runner, limits, counter, observer)
