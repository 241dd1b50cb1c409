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
from pathlib import Path
from typing import Any

from nlpsuite.datasets import Example
from nlpsuite.errors import NlpsuiteError
from nlpsuite.explanations import Explainable
from nlpsuite.metrics import Metric
from nlpsuite.options import Option
from nlpsuite.records import from_mapping

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
    # Pass on to load_model: run a checkpoint without the task's head (a base model) with a
    # newly initialized, random one instead of refusing it.
    allow_random_head: bool = False


@dataclass(frozen=True)
class TrainConfig:
    """One fine-tuning run. ``train`` and ``validation`` are anything ``nlpsuite eval`` reads
    (a dataset file or a registered name); ``options`` are the task's own options (e.g.
    question answering's ``doc_stride``), also used to run validation."""

    task: str
    model: str
    train: str
    out: Path
    validation: str | None = None
    epochs: int = 3
    lr: float = 5e-5
    batch_size: int = 16
    # None: the task's default (sentiment 128 tokens; question answering its 384-token window).
    max_length: int | None = None
    seed: int = 42
    # Fraction of all steps over which the learning rate climbs from 0; then it falls linearly.
    warmup: float = 0.1
    weight_decay: float = 0.01
    options: Mapping[str, Any] = field(default_factory=dict)
    # Only the first N training examples.
    limit: int | None = None
    # A checkpoint every N optimizer steps (0: only at the end of each epoch).
    checkpoint_every: int = 200
    resume: bool = False
    device: str = "cpu"
    trust_remote_code: bool = False


@dataclass(frozen=True)
class TrainingSetup:
    """What a task's ``train`` hands the shared loop.

    ``features`` are one dict per training row (a sentence, a QA window): the model's inputs as
    lists of ints (``input_ids``, ``attention_mask``, ``token_type_ids``) and its targets as
    ints (``labels``; ``start_positions``/``end_positions``), so ``model(**batch).loss`` is the
    loss; ``examples`` is how many training examples they came from. ``validation`` examples are
    scored at each epoch's end by the task's own runner on the saved checkpoint, run with
    ``options``; ``card`` adds lines to the model card's details.

    A recipe other than plain fine-tuning (distillation) changes only what it must: ``loss``
    computes a batch's loss from the model and the collated batch (features may then carry
    extra targets, e.g. a teacher's logits as lists of floats); ``made_with`` and ``command``
    replace the card's "fine-tuned with `nlpsuite train`" and its command line.
    """

    model: Any
    tokenizer: Any
    features: Sequence[Mapping[str, Any]]
    examples: int
    validation: Sequence[Example] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    card: Mapping[str, str] = field(default_factory=dict)
    loss: Callable[[Any, dict[str, Any]], Any] | None = None
    made_with: str | None = None
    command: str | None = None


@dataclass(frozen=True)
class Task:
    """One NLP task. ``default_model`` may name options: ``opus-mt-{source_lang}-{target_lang}``.

    ``train``, if given, makes the task trainable by ``nlpsuite train``: it turns a
    :class:`TrainConfig` into a :class:`TrainingSetup`
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
    # What works without the Hugging Face Hub when a model cannot be had offline (a model a
    # package ships, say), said after the error; a trainable task also gets `nlpsuite train`.
    offline_hint: str | None = None
    # ``nlpsuite explain``: loads the model of a RunConfig as an Explainable (see
    # nlpsuite.explanations), which encodes an input toward a target for the attribution
    # methods. None: the task cannot be explained.
    explain: Callable[[RunConfig], Explainable] | None = None

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


def render_score(value: float) -> str:
    """``value`` to four decimals for a task's ``render``, a space where a minus sign would go,
    so that columns of scores line up whatever their signs."""
    return f"{value: .4f}"
