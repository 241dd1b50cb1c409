"""The task contract, and the library API for running a task.

A task is a frozen :class:`Task` value: a name, the record types it reads and writes, the metrics
that evaluate it, and a ``load`` function that turns a :class:`RunConfig` into a runner. A runner
is a plain function from a batch of input records to a list of output records, in the same order,
so a CLI, an evaluation harness, an HTTP server or a cluster worker can all call it. A task that
can be fine-tuned also has a ``train`` function (see :mod:`nlpsuite.training`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nlpsuite.errors import NlpsuiteError

if TYPE_CHECKING:
    from nlpsuite.metrics import Metric
    from nlpsuite.training import TrainConfig, TrainingSetup

Runner = Callable[[Sequence[Any]], list[Any]]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


@dataclass(frozen=True)
class Option:
    """A task option, set with ``--option name=value`` on the command line."""

    name: str
    type: type
    default: Any
    help: str

    def coerce(self, value: Any) -> Any:
        """Convert a command-line string (or a Python value) to this option's type."""
        if value is None or isinstance(value, self.type):
            return value
        text = str(value).strip()
        try:
            if self.type is bool:
                if text.lower() in _TRUE | _FALSE:
                    return text.lower() in _TRUE
                raise ValueError(text)
            return self.type(text)
        except ValueError:
            raise NlpsuiteError(
                f"option '{self.name}': expected {self.type.__name__}, got {value!r}"
            ) from None


@dataclass(frozen=True)
class RunConfig:
    """Everything a task's ``load`` needs to build a runner."""

    model: str
    device: str = "cpu"
    batch_size: int = 32
    options: Mapping[str, Any] = field(default_factory=dict)
    trust_remote_code: bool = False
    # The inference engine spec for load_model (see nlpsuite.backends), checked and canonical.
    backend: str = "torch"


@dataclass(frozen=True)
class Task:
    """One NLP task. ``default_model`` may name options: ``opus-mt-{source_lang}-{target_lang}``.

    ``train``, if given, makes the task trainable by ``nlpsuite train``: it turns a
    :class:`~nlpsuite.training.TrainConfig` into a :class:`~nlpsuite.training.TrainingSetup`
    (the model to fine-tune, its tokenizer, training features, validation examples); the shared
    loop in :mod:`nlpsuite.training` does the rest. None: the task cannot be trained.
    """

    name: str
    description: str
    default_model: str
    input_type: type
    output_type: type
    load: Callable[[RunConfig], Runner]
    metrics: tuple[Metric, ...] = ()
    options: tuple[Option, ...] = ()
    # The plain value the metrics score, taken from an output record (e.g. its label).
    prediction: Callable[[Any], Any] = lambda output: output
    # How a single output reads on a terminal; JSONL output always carries every field.
    render: Callable[[Any], str] | None = None
    train: Callable[[TrainConfig], TrainingSetup] | None = None

    def parse_options(self, given: Mapping[str, Any]) -> dict[str, Any]:
        """Validate option names, convert values to their types, and fill in defaults."""
        declared = {option.name: option for option in self.options}
        unknown = sorted(set(given) - set(declared))
        if unknown:
            known = ", ".join(declared) or "none"
            raise NlpsuiteError(
                f"unknown option '{unknown[0]}' for task '{self.name}' (known options: {known})"
            )
        return {
            name: option.coerce(given.get(name, option.default))
            for name, option in declared.items()
        }

    def model_for(self, options: Mapping[str, Any]) -> str:
        """The default model, with any ``{option}`` placeholders filled in."""
        try:
            return self.default_model.format(**options)
        except (KeyError, IndexError):
            return self.default_model

    def make_input(self, value: Any, where: str) -> Any:
        """Build an input record from a record, a mapping of fields, or a bare string."""
        from nlpsuite.records import from_mapping

        if isinstance(value, self.input_type):
            return value
        if isinstance(value, str):
            first = dataclasses.fields(self.input_type)[0].name
            value = {first: value}
        if not isinstance(value, Mapping):
            raise NlpsuiteError(f"{where}: expected text or an object, got {type(value).__name__}")
        return from_mapping(self.input_type, value, where)


def get_task(name: str) -> Task:
    """The registered task called ``name``."""
    from nlpsuite.plugins import registry

    return registry().task(name)


def list_tasks() -> list[Task]:
    """Every registered task, sorted by name."""
    from nlpsuite.plugins import registry

    return sorted(registry().tasks.values(), key=lambda task: task.name)


def load_runner(
    task: Task | str,
    model: str | None = None,
    *,
    device: str = "cpu",
    batch_size: int = 32,
    options: Mapping[str, Any] | None = None,
    trust_remote_code: bool = False,
    backend: str = "torch",
) -> Runner:
    """Load ``model`` (a hub id or a local directory; the task's default if None) into a runner.

    ``backend``: the inference engine, e.g. ``onnx`` or ``ctranslate2:compute_type=int8``.
    """
    from nlpsuite.backends import canonical_backend
    from nlpsuite.models import resolve_device

    if isinstance(task, str):
        task = get_task(task)
    if batch_size < 1:
        raise NlpsuiteError(f"batch size must be at least 1, got {batch_size}")
    parsed = task.parse_options(options or {})
    config = RunConfig(
        model=model or task.model_for(parsed),
        device=resolve_device(device),
        batch_size=batch_size,
        options=parsed,
        trust_remote_code=trust_remote_code,
        backend=canonical_backend(backend),
    )
    return task.load(config)


def run(
    task: Task | str,
    inputs: Iterable[Any],
    model: str | None = None,
    **load_options: Any,
) -> list[Any]:
    """Run ``task`` on ``inputs`` (strings, mappings or input records); outputs keep their order.

    >>> run("sentiment", ["A delightful film."])  # doctest: +SKIP
    [SentimentOutput(label='POSITIVE', score=0.9998)]
    """
    if isinstance(task, str):
        task = get_task(task)
    records = [task.make_input(value, f"input {i}") for i, value in enumerate(inputs, 1)]
    return load_runner(task, model, **load_options)(records)
