"""The task contract: what a plugin registers to add a task.

A task is a frozen :class:`Task` value: a name, the record types it reads and writes, the metrics
that evaluate it, and a ``load`` function that turns a :class:`RunConfig` into a runner. A runner
is a plain function from a batch of input records to a list of output records, in the same order,
so a CLI, an evaluation harness, an HTTP server or a cluster worker can all call it. A task that
can be fine-tuned also has a ``train`` function (see :mod:`nlpsuite.training`). Looking tasks up
and running them is :mod:`nlpsuite.lookup`'s business.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nlpsuite.errors import NlpsuiteError
from nlpsuite.metrics import Metric
from nlpsuite.options import Option
from nlpsuite.records import from_mapping

if TYPE_CHECKING:
    from nlpsuite.training import TrainConfig, TrainingSetup

Runner = Callable[[Sequence[Any]], list[Any]]


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
    # How a plain record's ``reference`` field becomes what the metrics score (a bare answer
    # string a one-item list, say), raising NlpsuiteError naming ``where`` (file:line) if bad.
    parse_reference: Callable[[Any, str], Any] = lambda value, where: value
    # The Hugging Face pipeline tag that model cards of this task's checkpoints carry.
    pipeline_tag: str | None = None
    # A trainable classifier whose training features carry ``labels``: ``nlpsuite distill``
    # can train a student for it from a teacher's logits.
    distillable: bool = False

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
        if isinstance(value, self.input_type):
            return value
        if isinstance(value, str):
            first = dataclasses.fields(self.input_type)[0].name
            value = {first: value}
        if not isinstance(value, Mapping):
            raise NlpsuiteError(f"{where}: expected text or an object, got {type(value).__name__}")
        return from_mapping(self.input_type, value, where)

