"""Where an evaluation's chunks are predicted: in this process, or by Ray actors.

The harness cuts a run's examples into chunks at fixed positions and keeps each finished chunk's
rows in its per-example cache; an executor only predicts whole chunks and hands each one's rows
back, in any order. Since a chunk's rows do not depend on where it ran, the executor is no part
of a run's identity: a run started on a Ray cluster resumes locally, or with another number of
workers, computing only the chunks it lacks.

- :class:`LocalExecutor` (the default): the runner the harness loaded, one chunk after another.
- :class:`RayExecutor` (``--executor ray``): N Ray actors, each loading the runner once exactly
  as the harness does (:func:`build_runner`), each given at most two chunks at a time; a chunk
  whose actor dies is predicted again by another one (a new actor when none is left).

Ray is an optional extra (``pip install 'nlpsuite[ray]'``), imported only by a Ray run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from nlpsuite.datasets import Example
from nlpsuite.errors import NlpsuiteError, reason_line
from nlpsuite.lookup import get_task, load_runner
from nlpsuite.options import parse_key_values
from nlpsuite.tasks import Task

Runner = Callable[[Sequence[Any]], list[Any]]
Rows = list[dict[str, Any]]
RAY_MISSING = "--executor ray needs Ray: pip install 'nlpsuite[ray]'"
# Chunks handed to one actor at a time: one predicting, one waiting, so it never idles on the
# driver, and a dead actor takes few chunks with it.
IN_FLIGHT_PER_WORKER = 2
logger = logging.getLogger("nlpsuite")


@dataclass(frozen=True)
class ExecutorConfig:
    """Where to predict: ``kind`` "local" or "ray"; for Ray, the cluster (None: start one on
    this machine), the number of actors and what each reserves."""

    kind: str = "local"
    address: str | None = None
    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0


def parse_executor(
    text: str, workers: int = 1, cpus_per_worker: float = 1.0, gpus_per_worker: float = 0.0
) -> ExecutorConfig:
    """``--executor`` as written: ``local``, ``ray``, ``ray:address=HOST:PORT`` or
    ``ray:address=auto``, with ``--workers`` and what each worker reserves."""
    kind, _, rest = text.partition(":")
    if kind not in ("local", "ray"):
        raise NlpsuiteError(f"--executor must be local or ray[:address=HOST:PORT], got '{text}'")
    settings = parse_key_values(tuple(rest.split(",")) if rest else (), "--executor")
    unknown = sorted(set(settings) - {"address"})
    if unknown or (kind == "local" and settings):
        raise NlpsuiteError(f"--executor {kind} takes no setting '{(unknown or ['address'])[0]}'")
    if workers < 1:
        raise NlpsuiteError(f"--workers must be 1 or more, got {workers}")
    if cpus_per_worker <= 0:
        raise NlpsuiteError(f"--cpus-per-worker must be above 0, got {cpus_per_worker}")
    if gpus_per_worker < 0:
        raise NlpsuiteError(f"--gpus-per-worker must be 0 or more, got {gpus_per_worker}")
    if kind == "ray":  # said before a model loads, not after
        try:
            import ray  # noqa: F401
        except ImportError:
            raise NlpsuiteError(RAY_MISSING) from None
    return ExecutorConfig(kind, settings.get("address") or None, workers, cpus_per_worker,
                          gpus_per_worker)


@dataclass(frozen=True)
class RunnerSpec:
    """All a process needs to load a run's runner: the harness's and every Ray actor's."""

    task: str
    model: str | None
    device: str
    batch_size: int
    backend: str
    allow_random_head: bool
    options: Mapping[str, Any] = field(default_factory=dict)


def build_runner(spec: RunnerSpec) -> Runner:
    """The runner a run predicts with, loaded as every executor loads it."""
    return load_runner(
        get_task(spec.task), spec.model, device=spec.device, batch_size=spec.batch_size,
        options=dict(spec.options), backend=spec.backend,
        allow_random_head=spec.allow_random_head,
    )


def chunk_inputs(task: Task, chunk: Sequence[Example]) -> list[Any]:
    return [task.make_input(example.input, f"example {example.id}") for example in chunk]


def predict_chunk(task: Task, runner: Runner, chunk: Sequence[Example]) -> Rows:
    """One chunk's rows for the per-example cache, in the chunk's order.

    When the runner raises on the chunk, each example is predicted again alone, and one that
    still raises becomes an error row (``{"id", "error"}``) instead of failing the run, unless
    every example of the chunk raises: then the batch's error stops the run. All that
    chunk's rows then come from single runs, whose floats may differ in the last bits from the
    batched pass (other padding); such a run cannot finish anyway (see the harness), and
    ``--retry-failed`` predicts the whole chunk again, batched, as an uninterrupted run does."""
    inputs = chunk_inputs(task, chunk)  # a malformed input is the dataset's error, not isolated
    try:
        outputs = runner(inputs)
    except Exception as error:  # which example raised is found below, one by one
        rows = [_predict_alone(task, runner, example, item) for example, item
                in zip(chunk, inputs, strict=True)]
        if all("error" in row for row in rows):
            # Nothing in the chunk works alone either: the runner's failure (a broken model or
            # plugin, its contract broken), not an example's. The run stops; the cache keeps
            # the chunks done, to resume.
            raise error
        return rows
    return [_row(task, example, output) for example, output in zip(chunk, outputs, strict=True)]


def _row(task: Task, example: Example, output: Any) -> dict[str, Any]:
    # "scored" is what the metrics read, so a resumed run needs no output records.
    return {"id": example.id, "prediction": dataclasses.asdict(output),
            "scored": task.prediction(output), "reference": example.reference}


def _predict_alone(task: Task, runner: Runner, example: Example, item: Any) -> dict[str, Any]:
    try:
        [output] = runner([item])
    except Exception as error:  # the example's failure, recorded with its reason
        return {"id": example.id, "error": reason_line(error)}
    return _row(task, example, output)


class ChunkExecutor(Protocol):
    def warm_up(self, batch: Sequence[Example]) -> None:
        """Predict ``batch`` once, untimed, outputs discarded (see the harness's warm-up)."""

    def run(self, chunks: Sequence[Sequence[Example]], finished: Callable[[Rows], None]) -> None:
        """Predict every chunk, calling ``finished`` with each one's rows as it completes."""

    def workers(self) -> int | None:
        """Workers alive (Ray actors), or None when predicting in this process."""


@dataclass
class LocalExecutor:
    """Chunks one after another, in order, with the runner the harness loaded."""

    task: Task
    runner: Runner

    def warm_up(self, batch: Sequence[Example]) -> None:
        # Outputs unused, so never checked; an example that raises is isolated by the real run.
        with contextlib.suppress(Exception):
            self.runner(chunk_inputs(self.task, batch))

    def run(self, chunks: Sequence[Sequence[Example]], finished: Callable[[Rows], None]) -> None:
        for chunk in chunks:
            finished(predict_chunk(self.task, self.runner, chunk))

    def workers(self) -> int | None:
        return None


class ChunkWorker:
    """A Ray actor's state: the runner, loaded once when the actor starts."""

    def __init__(self, spec: RunnerSpec) -> None:
        self.task = get_task(spec.task)
        # The driver loads no model on Ray: a model that cannot load (a wrong path, offline)
        # is the user's one-line error, given back with the first chunk.
        self.runner: Runner | None = None
        self.failure: str | None = None
        try:
            self.runner = build_runner(spec)
        except NlpsuiteError as mistake:
            self.failure = str(mistake)

    def predict(self, chunk: Sequence[Example]) -> Rows | str:
        """The chunk's rows, or the one-line error a user's data caused (re-raised by the
        driver as its own, not as a Ray traceback)."""
        if self.runner is None:
            return self.failure or "the model did not load"
        try:
            return predict_chunk(self.task, self.runner, chunk)
        except NlpsuiteError as mistake:
            return str(mistake)

    def pid(self) -> int:
        return os.getpid()


@contextlib.contextmanager
def open_executor(
    config: ExecutorConfig | None, spec: RunnerSpec, task: Task, runner: Runner | None
) -> Iterator[ChunkExecutor]:
    """The executor ``config`` names, started, and stopped again after the ``with`` block
    (``runner``: the one this process loaded, which a local run predicts with)."""
    if config is None or config.kind == "local":
        if runner is None:
            raise ValueError("a local run predicts with the runner the harness loaded")
        yield LocalExecutor(task, runner)
        return
    with ray_session(config):
        executor = RayExecutor(config, spec)
        try:
            yield executor
        finally:
            executor.stop()


@contextlib.contextmanager
def ray_session(config: ExecutorConfig) -> Iterator[None]:
    """Ray connected: to ``config.address``, or to a cluster started here for this run (and
    stopped after it). A caller that has connected already keeps its own connection."""
    try:
        import ray
    except ImportError:
        raise NlpsuiteError(RAY_MISSING) from None
    if ray.is_initialized():
        yield
        return
    # No dashboard, and the workers' logs stay in Ray's session folder, off the user's terminal.
    quiet: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                             "logging_level": logging.ERROR}
    if config.address is None:
        # The whole machine, or what the workers reserve if more (their actors wait otherwise).
        wanted = round(config.workers * config.cpus_per_worker)
        ray.init(num_cpus=max(1, wanted, os.cpu_count() or 1), **quiet)
    else:
        try:
            ray.init(address=config.address, **quiet)
        except (ConnectionError, RuntimeError) as unreachable:
            raise NlpsuiteError(
                f"--executor ray:address={config.address}: no Ray cluster there ({unreachable})"
            ) from None
    try:
        yield
    finally:
        ray.shutdown()


class RayExecutor:
    """``config.workers`` actors, each loading the runner once; chunks go to whichever actor has
    fewer than two, and a chunk whose actor died goes back in the queue."""

    def __init__(self, config: ExecutorConfig, spec: RunnerSpec) -> None:
        import ray

        self.config = config
        self.spec = spec
        self.actor_class = ray.remote(ChunkWorker).options(
            num_cpus=config.cpus_per_worker, num_gpus=config.gpus_per_worker
        )
        self.actors: list[Any] = [self._start() for _ in range(config.workers)]
        # A runner that kills its process on every chunk would otherwise restart forever.
        self.restarts_left = 2 * config.workers + 2

    def _start(self) -> Any:
        return self.actor_class.remote(self.spec)

    def workers(self) -> int | None:
        return len(self.actors)

    def warm_up(self, batch: Sequence[Example]) -> None:
        """Every actor loads its model and runs ``batch`` once, before the timed predictions."""
        import ray

        warm = list(batch)
        answers = [actor.predict.remote(warm) for actor in self.actors]
        for actor, answer in zip(list(self.actors), answers, strict=True):
            try:
                self._rows(ray.get(answer))
            except ray.exceptions.RayActorError:
                self._replace(actor)

    def run(self, chunks: Sequence[Sequence[Example]], finished: Callable[[Rows], None]) -> None:
        import ray

        waiting = deque(range(len(chunks)))
        running: dict[Any, tuple[Any, int]] = {}  # answer -> (actor, chunk index)
        while waiting or running:
            for actor in self.actors:
                held = sum(1 for owner, _ in running.values() if owner is actor)
                for _ in range(IN_FLIGHT_PER_WORKER - held):
                    if not waiting:
                        break
                    index = waiting.popleft()
                    running[actor.predict.remote(list(chunks[index]))] = (actor, index)
            [answer], _ = ray.wait(list(running), num_returns=1)
            actor, index = running.pop(answer)
            try:
                rows = ray.get(answer)
            except ray.exceptions.RayActorError:
                logger.warning("a Ray worker died; its chunks are predicted again")
                waiting.appendleft(index)
                self._replace(actor)
                continue
            finished(self._rows(rows))

    def _rows(self, answer: Rows | str) -> Rows:
        if isinstance(answer, str):
            raise NlpsuiteError(answer)
        return answer

    def _replace(self, dead: Any) -> None:
        """Forget a dead actor; start a new one only when no other is left."""
        if dead in self.actors:
            self.actors.remove(dead)
        if self.actors:
            return
        if self.restarts_left == 0:
            raise NlpsuiteError("Ray workers keep dying; see the Ray logs for why")
        self.restarts_left -= 1
        self.actors.append(self._start())

    def stop(self) -> None:
        import ray

        for actor in self.actors:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(actor)


def concurrent_runs(config: ExecutorConfig) -> int:
    """How many runs' worker groups the connected Ray cluster holds at once (at least one)."""
    import ray

    resources = ray.cluster_resources()
    fits = resources.get("CPU", 1.0) // (config.workers * config.cpus_per_worker)
    if config.gpus_per_worker > 0:
        fits = min(fits, resources.get("GPU", 0.0) // (config.workers * config.gpus_per_worker))
    return max(1, int(fits))
