"""multiple-choice: a causal language model picks one of several continuations of a context.

Scored as lm-evaluation-harness scores its multiple-choice tasks: each choice is a continuation
of the rendered context (after the template's ``target_delimiter``, one space by default); the
prediction is the choice with the highest log-likelihood (``accuracy``), and the choice with the
highest log-likelihood per character is recorded beside it (``acc_norm``). Datasets are JSONL
files of ``context``, ``choices`` and ``gold`` (the right choice's index), the shape of
HellaSwag, ARC, PIQA and the like once exported.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpsuite import NlpsuiteError, RunConfig, Task, hookimpl
from nlpsuite.causal import DEFAULT_CAUSAL_MODEL, OFFLINE_HINT
from nlpsuite.datasets import (
    Dataset,
    DatasetFormat,
    Example,
    Located,
    first_jsonl_keys,
    required_field,
    row_id,
    rows,
    string_list,
    unique_located,
)
from nlpsuite.metrics import ACCURACY
from nlpsuite.prompting import PER_INPUT, PROMPT_OPTIONS, PromptedRunner, is_prompted, load_prompted

TEMPLATES = Path(__file__).parent / "data" / "templates"
EVAL_SET = Path(__file__).parent / "data" / "multiple-choice-mini.jsonl"


@dataclass(frozen=True)
class MultipleChoiceInput:
    context: str
    choices: list[str]

    def __post_init__(self) -> None:
        if not isinstance(self.context, str) or not self.context.strip():
            raise NlpsuiteError("field 'context' is empty")
        check_choices(self.choices, "")


@dataclass(frozen=True)
class MultipleChoiceOutput:
    # The index of the choice with the highest log-likelihood.
    choice: int
    # The index of the choice with the highest log-likelihood per character (lm-eval acc_norm).
    choice_norm: int
    # Each choice's log-likelihood (natural log) as a continuation of the context.
    logprobs: list[float]


def check_choices(choices: Any, where: str) -> None:
    at = f"{where}: " if where else ""
    if not isinstance(choices, list) or not all(isinstance(c, str) for c in choices):
        raise NlpsuiteError(f"{at}field 'choices' should be a list of strings")
    if len(choices) < 2:
        raise NlpsuiteError(f"{at}field 'choices' needs at least 2 choices, got {len(choices)}")
    empty = next((i for i, choice in enumerate(choices) if not choice), None)
    if empty is not None:
        raise NlpsuiteError(f"{at}field 'choices': choice {empty} is empty")


def load(config: RunConfig) -> Callable[[Sequence[MultipleChoiceInput]], list[Any]]:
    if not is_prompted(config):
        raise NlpsuiteError(f"multiple-choice needs a causal language model; '{config.model}' "
                            f"is not one")
    prompted = load_prompted(config, MultipleChoiceInput, TEMPLATES, default="multiple-choice",
                             needs=PER_INPUT, task="multiple-choice")

    def run(inputs: Sequence[MultipleChoiceInput]) -> list[MultipleChoiceOutput]:
        chosen = prompted.choose(inputs, [item.choices for item in inputs])
        return [MultipleChoiceOutput(c.best, c.best_norm, list(c.logprobs)) for c in chosen]

    runner: PromptedRunner = prompted.runner(run)
    return runner


def gold_reference(value: Any, where: str) -> int:
    """A record's reference: the right choice's index, counted from 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise NlpsuiteError(f"{where}: field 'reference' should be a choice index (0 or more), "
                            f"got {value!r}")
    return value


TASK = Task(
    name="multiple-choice",
    description="Pick the likeliest of several continuations with a causal LM (lm-eval style).",
    default_model=DEFAULT_CAUSAL_MODEL,
    input_type=MultipleChoiceInput,
    output_type=MultipleChoiceOutput,
    load=load,
    metrics=(ACCURACY,),
    options=PROMPT_OPTIONS,
    prediction=lambda output: output.choice,
    parse_reference=gold_reference,
    render=lambda output: f"{output.choice}\t" + "\t".join(f"{v:.4f}" for v in output.logprobs),
    offline_hint=OFFLINE_HINT,
)


@hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    register(TASK)


@hookimpl
def register_datasets(register: Callable[[Dataset], None]) -> None:
    register(Dataset(
        name="multiple-choice-mini",
        task="multiple-choice",
        description="16 everyday commonsense completions, four choices each, written for nlpsuite",
        licence="CC0-1.0",
        load=lambda: load_multiple_choice(EVAL_SET),
        files=(EVAL_SET,),
    ))


@hookimpl
def register_dataset_formats(register: Callable[[DatasetFormat], None]) -> None:
    register(DatasetFormat.of_files(
        "multiple-choice JSONL", ("multiple-choice",), _is_multiple_choice, load_multiple_choice,
        suffixes=(".jsonl",), expects="'context', 'choices' and 'gold' (multiple choice)",
    ))


def _is_multiple_choice(spec: str) -> bool:
    path = Path(spec)
    if path.suffix.lower() not in {".jsonl", ".ndjson"} or not path.is_file():
        return False
    try:
        keys = first_jsonl_keys(path)
    except NlpsuiteError:
        return False
    return {"context", "choices", "gold"} <= set(keys)


def load_multiple_choice(path: str | Path) -> list[Example]:
    """JSONL rows of ``context`` (text), ``choices`` (two or more texts), ``gold`` (the index of
    the right choice, from 0) and an optional ``id`` (else the line number)."""
    examples = []
    for where, row in rows(path):
        context = required_field(row, "context", str, where)
        if not context.strip():
            raise NlpsuiteError(f"{where}: field 'context' is empty")
        choices = string_list(row, "choices", where)
        check_choices(choices, where)
        gold = required_field(row, "gold", int, where)
        if not 0 <= gold < len(choices):
            raise NlpsuiteError(f"{where}: field 'gold' should be a choice index from 0 to "
                                f"{len(choices) - 1}, got {gold}")
        inputs = {"context": context, "choices": choices}
        examples.append(Located(where, Example(row_id(row, where), inputs, gold)))
    return unique_located(examples)
