"""Tasks on a causal language model through a prompt template, scored as lm-evaluation-harness does.

A template is a small TOML file (docs/plugins.md): a ``prompt`` with ``{field}`` placeholders
filled from the task's input record, and either ``choices`` (label = continuation: the task
picks the label whose continuation the model finds most likely), ``max_new_tokens`` and ``stop``
(the task generates greedily), or neither (the choices come with each input: multiple choice).
Few-shot ``examples`` may follow, each with the input's fields and an ``answer``. With
``chat = true`` the whole context is one user turn of the tokenizer's chat template, and the
model's reply is what is generated or scored.

A prompt is laid out as lm-eval lays it out: the ``instruction``, each shot
(``prompt + target_delimiter + answer``) and the input's prompt, joined by ``fewshot_delimiter``;
a choice is scored as the continuation ``target_delimiter + choice``. The choice with the
highest log-likelihood is the prediction; the one with the highest log-likelihood per character
of the choice (lm-eval's ``acc_norm``, ``len`` of the choice text without the delimiter) is
recorded beside it in the output field :data:`NORMALISED_CHOICE`, and the harness scores it as
:data:`ACC_NORM`.

Which plugin tasks run this way is theirs to say: a task's ``load`` asks :func:`is_prompted`
and, for a causal LM, builds its runner on :func:`load_prompted`; the core names no task.
"""

from __future__ import annotations

import dataclasses
import math
import string
import tomllib
import typing
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpsuite.causal import CausalLM, is_causal_lm, load_causal_lm
from nlpsuite.errors import NlpsuiteError
from nlpsuite.lookup import CheckedRunner
from nlpsuite.metrics import ACCURACY
from nlpsuite.models import load_config
from nlpsuite.options import Option
from nlpsuite.records import decode_utf8
from nlpsuite.results import PromptInfo
from nlpsuite.tasks import RunConfig

# The output field that holds the choice by length-normalised log-likelihood.
NORMALISED_CHOICE = "choice_norm"
ACC_NORM = dataclasses.replace(
    ACCURACY, name="acc_norm",
    description="accuracy of the choice with the highest log-likelihood per character "
                "(lm-evaluation-harness acc_norm)",
)
# What a template needs for each way of running: a label for each choice, or generation limits.
CHOICES, GENERATION, PER_INPUT = "choices", "generation", "per-input choices"
TEMPLATE_KEYS: dict[str, type] = {
    "description": str, "instruction": str, "prompt": str, "choices": dict, "stop": list,
    "max_new_tokens": int, "examples": list, "shots": int, "target_delimiter": str,
    "fewshot_delimiter": str, "chat": bool,
}
# The task options every prompted task declares beside its own.
PROMPT_OPTIONS = (
    Option("template", str, None,
           "causal LMs only: a prompt template, shipped (by name) or a TOML file; unset: "
           "the task's own (see docs/plugins.md)"),
    Option("shots", int, None,
           "causal LMs only: how many of the template's examples go before each input; "
           "unset: the template's own number (most: 0)"),
)


@dataclass(frozen=True)
class Template:
    """A prompt template as read from its file; ``where`` names the file in errors."""

    name: str
    text: str
    where: str
    prompt: str
    fields: tuple[str, ...]
    instruction: str = ""
    choices: Mapping[str, str] | None = None
    stop: tuple[str, ...] = ()
    max_new_tokens: int | None = None
    examples: tuple[Mapping[str, Any], ...] = ()
    shots: int = 0
    target_delimiter: str = " "
    fewshot_delimiter: str = "\n\n"
    chat: bool = False

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.choices or ())

    def check_fields(self, fields: Collection[str], values: Collection[str], what: str) -> None:
        """Every placeholder must be one of ``fields`` (the input's text fields) or ``values``
        (given beside them), and every example must have the fields."""
        available = sorted({*fields, *values})
        for name in self.fields:
            if name not in available:
                raise NlpsuiteError(
                    f"{self.where}: placeholder '{{{name}}}' is not a field of {what} "
                    f"({', '.join(available) or 'none'})"
                )
        for number, example in enumerate(self.examples, 1):
            missing = next((name for name in self.fields
                            if name not in values and name not in example), None)
            if missing is not None:
                raise NlpsuiteError(f"{self.where}: example {number}: missing field '{missing}'")

    def shots_for(self, asked: int | None) -> int:
        shots = self.shots if asked is None else asked
        if not 0 <= shots <= len(self.examples):
            raise NlpsuiteError(
                f"option 'shots' must be between 0 and {len(self.examples)} (the examples of "
                f"{self.where.removeprefix('template ')}), got {shots}"
            )
        return shots

    def render(self, fields: Mapping[str, Any], shots: int = 0,
               values: Mapping[str, Any] | None = None) -> str:
        """The whole context for one input: instruction, ``shots`` examples, its prompt;
        ``values`` fill the placeholders that neither the input nor an example gives."""
        given = values or {}
        parts = [self.instruction] if self.instruction else []
        for example in self.examples[:shots]:
            answer = self.target_delimiter + self.answer_text(example)
            parts.append(self.fill({**given, **example}) + answer)
        parts.append(self.fill({**given, **fields}))
        return self.fewshot_delimiter.join(parts)

    def fill(self, values: Mapping[str, Any]) -> str:
        missing = next((name for name in self.fields if name not in values), None)
        if missing is not None:
            raise NlpsuiteError(f"{self.where}: the input has no field '{missing}'")
        return self.prompt.format_map({name: values[name] for name in self.fields})

    def answer_text(self, example: Mapping[str, Any]) -> str:
        """An example's answer as it follows the prompt: a label's continuation, or the text."""
        answer = str(example["answer"])
        return self.choices[answer] if self.choices is not None else answer

    def info(self, shots: int) -> PromptInfo:
        return PromptInfo(template=self.name, text=self.text, shots=shots)


def template_file(spec: str, shipped: Path) -> Path:
    """``spec`` as a template file: a path to one, or the name of one in ``shipped``."""
    given = Path(spec).expanduser()
    if given.is_file():
        return given
    if given.suffix or "/" in spec or given.exists():
        raise NlpsuiteError(f"option 'template': template file not found: {spec}")
    found = shipped / f"{spec}.toml"
    if found.is_file():
        return found
    names = ", ".join(sorted(file.stem for file in shipped.glob("*.toml"))) or "none"
    raise NlpsuiteError(
        f"option 'template': no file or shipped template named '{spec}' (shipped: {names})"
    )


def read_template(spec: str, shipped: Path) -> Template:
    """The template ``spec`` names (a file, or a name in ``shipped``), read and checked."""
    path = template_file(spec, shipped)
    where = f"template {path}"
    try:
        text = decode_utf8(path.read_bytes(), str(path))
    except OSError as error:
        raise NlpsuiteError(f"{where}: cannot read ({error.strerror})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise NlpsuiteError(f"{where}: not valid TOML ({error})") from None
    return parse_template(data, name=spec, text=text, where=where)


def parse_template(data: Mapping[str, Any], *, name: str, text: str, where: str) -> Template:
    for key, value in data.items():
        kind = TEMPLATE_KEYS.get(key)
        if kind is None:
            raise NlpsuiteError(
                f"{where}: unknown field '{key}' (known: {', '.join(TEMPLATE_KEYS)})"
            )
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise NlpsuiteError(f"{where}: field '{key}' should be {_kind(kind)}, "
                                f"got {type(value).__name__}")
    if "prompt" not in data:
        raise NlpsuiteError(f"{where}: missing field 'prompt'")
    choices = _choices(data.get("choices"), where)
    stop = data.get("stop", [])
    if not all(isinstance(item, str) and item for item in stop):
        raise NlpsuiteError(f"{where}: field 'stop' should be a list of non-empty strings")
    limit = data.get("max_new_tokens")
    if limit is not None and limit < 1:
        raise NlpsuiteError(f"{where}: field 'max_new_tokens' must be at least 1, got {limit}")
    template = Template(
        name=name, text=text, where=where, prompt=data["prompt"],
        fields=placeholders(data["prompt"], where), instruction=data.get("instruction", ""),
        choices=choices, stop=tuple(stop), max_new_tokens=limit,
        examples=tuple(data.get("examples", [])), shots=data.get("shots", 0),
        target_delimiter=data.get("target_delimiter", " "),
        fewshot_delimiter=data.get("fewshot_delimiter", "\n\n"), chat=data.get("chat", False),
    )
    for number, example in enumerate(template.examples, 1):
        _check_example(template, example, f"{where}: example {number}")
    if template.shots < 0:
        raise NlpsuiteError(f"{where}: field 'shots' must be 0 or more, got {template.shots}")
    template.shots_for(None)
    return template


def placeholders(prompt: str, where: str) -> tuple[str, ...]:
    """The ``{field}`` names of ``prompt`` in order, once each; ``{{`` and ``}}`` are braces."""
    try:
        parsed = list(string.Formatter().parse(prompt))
    except ValueError as error:
        raise NlpsuiteError(f"{where}: field 'prompt': {error} (write {{{{ and }}}} for "
                            f"literal braces)") from None
    names: dict[str, None] = {}
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.isidentifier() or spec or conversion:
            shown = name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
            raise NlpsuiteError(f"{where}: placeholder '{{{shown}}}' should be a plain "
                                f"{{field}} name")
        names[name] = None
    return tuple(names)


def _kind(kind: type) -> str:
    return {str: "text", int: "an integer", list: "a list", dict: "a table",
            bool: "true or false"}[kind]


def _choices(value: Mapping[str, Any] | None, where: str) -> dict[str, str] | None:
    if value is None:
        return None
    if len(value) < 2:
        raise NlpsuiteError(f"{where}: field 'choices' needs at least two labels")
    for label, continuation in value.items():
        if not isinstance(continuation, str) or not continuation:
            raise NlpsuiteError(f"{where}: choice '{label}' should be a non-empty text")
    return dict(value)


def _check_example(template: Template, example: Any, where: str) -> None:
    if not isinstance(example, dict):
        raise NlpsuiteError(f"{where}: should be a table")
    if "answer" not in example:
        raise NlpsuiteError(f"{where}: missing field 'answer'")
    for name, value in example.items():
        if not isinstance(value, str):
            raise NlpsuiteError(f"{where}: field '{name}' should be text")
    if template.choices is not None and example["answer"] not in template.choices:
        raise NlpsuiteError(f"{where}: answer '{example['answer']}' is not one of the choices "
                            f"({', '.join(template.choices)})")


def require(template: Template, needs: str, task: str) -> None:
    """A template fit for how ``task`` runs: ``CHOICES``, ``GENERATION`` or ``PER_INPUT``."""
    has = (CHOICES if template.choices is not None
           else GENERATION if template.max_new_tokens is not None else PER_INPUT)
    if has == needs:
        return
    wanted = {CHOICES: "'choices' (label = continuation)",
              GENERATION: "'max_new_tokens' (and 'stop')",
              PER_INPUT: "neither 'choices' nor 'max_new_tokens' (the inputs bring choices)"}
    raise NlpsuiteError(f"{template.where}: a {task} template needs {wanted[needs]}")


def text_fields(record_type: type) -> list[str]:
    """The fields of an input record that hold text, which placeholders may name."""
    hints = typing.get_type_hints(record_type)
    return [field.name for field in dataclasses.fields(record_type) if hints[field.name] is str]


# Scoring choices.


@dataclass(frozen=True)
class Choice:
    """Continuations scored after one context: the best by summed log-likelihood, the best by
    log-likelihood per character of the choice (ties: the first), and each one's
    log-likelihood (natural log)."""

    best: int
    best_norm: int
    logprobs: tuple[float, ...]

    def probabilities(self) -> list[float]:
        """The choices' log-likelihoods as a distribution over the choices (softmax)."""
        top = max(self.logprobs)
        weights = [math.exp(value - top) for value in self.logprobs]
        total = sum(weights)
        return [weight / total for weight in weights]


def choose(lm: CausalLM, contexts: Sequence[str], options: Sequence[Sequence[str]], *,
           delimiter: str = " ", batch_size: int = 32) -> list[Choice]:
    """For each context, its options scored as continuations ``delimiter + option``."""
    requests = [lm.encode_pair(context, delimiter + option)
                for context, choices in zip(contexts, options, strict=True) for option in choices]
    scores = iter(lm.loglikelihoods(requests, batch_size))
    chosen = []
    for choices in options:
        logprobs = tuple(next(scores).logprob for _ in choices)
        normalised = [value / len(option) for value, option in zip(logprobs, choices, strict=True)]
        chosen.append(Choice(_first_best(logprobs), _first_best(normalised), logprobs))
    return chosen


def _first_best(values: Sequence[float]) -> int:
    return max(range(len(values)), key=values.__getitem__)


# Running a task through a template.


def is_prompted(config: RunConfig) -> bool:
    """Whether ``config.model`` is a causal LM, run through a prompt template; the prompt
    options are an error for any other model."""
    causal = is_causal_lm(load_config(config.model, trust_remote_code=config.trust_remote_code))
    if not causal:
        for option in PROMPT_OPTIONS:
            if config.options.get(option.name) is not None:
                raise NlpsuiteError(f"option '{option.name}' applies to causal language models "
                                    f"only; '{config.model}' is not one")
    return causal


@dataclass(frozen=True)
class PromptedRunner:
    """A task's runner over a causal LM, with the template and shots it renders (which the
    harness records with the run)."""

    prompt: PromptInfo
    run: Callable[[Sequence[Any]], list[Any]]
    # A classifier's labels, which the harness maps the dataset's labels onto.
    labels: tuple[str, ...] | None = None

    def __call__(self, inputs: Sequence[Any]) -> list[Any]:
        return self.run(inputs)


@dataclass(frozen=True)
class PromptedLM:
    """A causal LM, the template its inputs are rendered through, and how."""

    lm: CausalLM
    template: Template
    shots: int
    batch_size: int
    # Placeholder values beside the input's fields (translation's language names, say).
    values: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def prompts(self, inputs: Sequence[Any]) -> list[str]:
        return [self.template.render(dataclasses.asdict(item), self.shots, self.values)
                for item in inputs]

    def classify(self, inputs: Sequence[Any]) -> list[Choice]:
        """Each input's choice among the template's labels (by their continuations)."""
        continuations = list((self.template.choices or {}).values())
        return self.choose(inputs, [continuations] * len(inputs))

    def choose(self, inputs: Sequence[Any], options: Sequence[Sequence[str]]) -> list[Choice]:
        contexts = self.prompts(inputs)
        if self.template.chat:
            contexts = [self.lm.chat_prompt(context) for context in contexts]
        return choose(self.lm, contexts, options,
                      delimiter=self.template.target_delimiter, batch_size=self.batch_size)

    def generate(self, inputs: Sequence[Any], max_new_tokens: int | None = None) -> list[str]:
        """Each input's greedy continuation, cut before the first stop sequence, stripped of
        surrounding whitespace; ``max_new_tokens`` (else the template's) bounds it."""
        limit = max_new_tokens or self.template.max_new_tokens
        if limit is None:
            raise NlpsuiteError(f"{self.template.where}: missing field 'max_new_tokens'")
        found = self.lm.generate(self.prompts(inputs), max_new_tokens=limit,
                                 stop=self.template.stop, batch_size=self.batch_size,
                                 chat=self.template.chat)
        return [generation.text.strip() for generation in found]

    def runner(self, run: Callable[[Sequence[Any]], list[Any]]) -> PromptedRunner:
        return PromptedRunner(self.template.info(self.shots), run, self.template.labels or None)


def load_prompted(config: RunConfig, input_type: type, shipped: Path, *, default: str,
                  needs: str, task: str, values: Mapping[str, str] | None = None) -> PromptedLM:
    """The template ``config.options["template"]`` names (else ``default``, from ``shipped``),
    checked against ``input_type`` and ``values``, and the causal LM, loaded after it."""
    template = read_template(config.options.get("template") or default, shipped)
    require(template, needs, task)
    values = dict(values or {})
    template.check_fields(text_fields(input_type), values, f"the {task} input")
    shots = template.shots_for(config.options.get("shots"))
    lm = load_causal_lm(config)
    if template.chat and not getattr(lm.tokenizer, "chat_template", None):
        raise NlpsuiteError(f"{template.where}: chat = true, but the tokenizer of "
                            f"'{config.model}' has no chat template")
    return PromptedLM(lm, template, shots, config.batch_size, values)


def prompted_runner(runner: Any) -> PromptedRunner | None:
    """A loaded runner (checked or not) as the :class:`PromptedRunner` it is, else None."""
    inner = runner.runner if isinstance(runner, CheckedRunner) else runner
    return inner if isinstance(inner, PromptedRunner) else None


def normalised_choices(predictions: Sequence[Mapping[str, Any]]) -> list[Any] | None:
    """Each output's :data:`NORMALISED_CHOICE`, if every output records one, else None."""
    found = [prediction.get(NORMALISED_CHOICE) for prediction in predictions]
    return found if found and all(value is not None for value in found) else None
