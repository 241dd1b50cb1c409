"""text-generation: continue a prompt with any causal language model (SmolLM2 by default).

Greedy by default; ``temperature`` above 0 samples (with ``top_p``, ``top_k`` and a ``seed``: a
prompt's sample is the same in any batch). ``stop`` ends a generation at a stop sequence, which
the text leaves out; ``chat`` puts the prompt in the tokenizer's chat template as a user turn.
Prompts are batched by length with left padding (see :meth:`nlpsuite.causal.CausalLM.generate`),
so a batch gives what each prompt gives alone.

The runner is a plain batch-in, batch-out function with one more method, ``stream(record)``,
which yields the text of one output in pieces as it is decoded: ``nlpsuite run`` uses it when
its output is a terminal.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpsuite import NlpsuiteError, Option, RunConfig, Task, hookimpl
from nlpsuite.catalog import load_records
from nlpsuite.causal import DEFAULT_CAUSAL_MODEL, OFFLINE_HINT, CausalLM, load_causal_lm
from nlpsuite.datasets import Dataset
from nlpsuite.decoding import Sampling

EVAL_SET = Path(__file__).resolve().parent / "data" / "text-generation-mini.jsonl"
# Escapes a stop sequence may use on the command line, where a newline is hard to type.
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


@dataclass(frozen=True)
class TextGenerationInput:
    prompt: str

    def __post_init__(self) -> None:
        if not self.prompt.strip():
            raise NlpsuiteError("field 'prompt' is empty")


@dataclass(frozen=True)
class TextGenerationOutput:
    # The continuation alone (not the prompt), cut before the stop sequence that ended it.
    text: str
    # Tokens generated, an end token or a stop sequence's tokens included.
    new_tokens: int
    # "eos" (the model ended it), "stop" (a stop sequence) or "length" (max_new_tokens, or the
    # end of the model's context).
    finish_reason: str


@dataclass(frozen=True)
class GenerationSettings:
    """The task's options, checked: what every prompt of a run is generated with."""

    max_new_tokens: int
    stop: tuple[str, ...]
    sampling: Sampling
    chat: bool


def parse_stop(value: str | None) -> tuple[str, ...]:
    """The ``stop`` option: one sequence, in which ``\\n``, ``\\t``, ``\\r`` and ``\\\\`` are
    escapes, or a JSON list of sequences (``["\\n\\n", "Q:"]``)."""
    if value is None:
        return ()
    if value.lstrip().startswith("["):
        try:
            sequences = json.loads(value)
        except json.JSONDecodeError as error:
            raise NlpsuiteError(f"option 'stop': not a JSON list of strings: {error}") from None
        if not isinstance(sequences, list) or not all(isinstance(s, str) for s in sequences):
            raise NlpsuiteError("option 'stop': expected a JSON list of strings")
    else:
        sequences = [re.sub(r"\\(.)", lambda m: _ESCAPES.get(m[1], m[0]), value)]
    if any(not sequence for sequence in sequences):
        raise NlpsuiteError("option 'stop': a stop sequence is empty")
    return tuple(sequences)


def generation_settings(options: Mapping[str, Any]) -> GenerationSettings:
    """The options as :class:`GenerationSettings`; a bad value is a one-line error naming it."""
    if options["max_new_tokens"] < 1:
        raise NlpsuiteError(
            f"option 'max_new_tokens' must be at least 1, got {options['max_new_tokens']}")
    try:
        sampling = Sampling(temperature=options["temperature"], top_p=options["top_p"],
                            top_k=options["top_k"], seed=options["seed"])
    except NlpsuiteError as error:
        raise NlpsuiteError(f"option {error}") from None  # error names the option
    return GenerationSettings(options["max_new_tokens"], parse_stop(options["stop"]), sampling,
                              bool(options["chat"]))


class TextGenerator:
    """The task's runner: prompts in, continuations out; ``stream`` for one prompt at a time."""

    def __init__(self, lm: CausalLM, settings: GenerationSettings, batch_size: int) -> None:
        self.lm = lm
        self.settings = settings
        self.batch_size = batch_size

    def __call__(self, inputs: Sequence[TextGenerationInput]) -> list[TextGenerationOutput]:
        settings = self.settings
        generations = self.lm.generate(
            [item.prompt for item in inputs], max_new_tokens=settings.max_new_tokens,
            stop=settings.stop, sampling=settings.sampling, batch_size=self.batch_size,
            chat=settings.chat,
        )
        return [TextGenerationOutput(g.text, len(g.token_ids), g.finish_reason or "length")
                for g in generations]

    def stream(self, item: TextGenerationInput) -> Iterator[str]:
        """The text of ``self([item])[0]``, in pieces as it is decoded."""
        settings = self.settings
        return self.lm.stream(item.prompt, max_new_tokens=settings.max_new_tokens,
                              stop=settings.stop, sampling=settings.sampling, chat=settings.chat)


def load(config: RunConfig) -> TextGenerator:
    settings = generation_settings(config.options)  # bad options fail before the model loads
    return TextGenerator(load_causal_lm(config), settings, config.batch_size)


TASK = Task(
    name="text-generation",
    description="Continue a prompt with a causal language model (SmolLM2 by default).",
    default_model=DEFAULT_CAUSAL_MODEL,
    input_type=TextGenerationInput,
    output_type=TextGenerationOutput,
    load=load,
    options=(
        Option("max_new_tokens", int, 64, "most tokens to generate per prompt"),
        Option("temperature", float, 0.0, "0 for greedy decoding; above 0 samples"),
        Option("top_p", float, 1.0, "sample only from the best tokens that make up this "
               "probability (1: all)"),
        Option("top_k", int, 0, "sample only from this many best tokens (0: all)"),
        Option("seed", int, 0, "sampling seed; a prompt's sample also depends on the prompt, "
               "not on its batch"),
        Option("stop", str, None, "stop sequence, left out of the text (\\n for a newline), or "
               "a JSON list of them"),
        Option("chat", bool, False, "put the prompt in the model's chat template as a user "
               "turn"),
    ),
    prediction=lambda output: output.text,
    render=lambda output: output.text,
    offline_hint=OFFLINE_HINT,
)


@hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    register(TASK)


@hookimpl
def register_datasets(register: Callable[[Dataset], None]) -> None:
    register(
        Dataset(
            name="text-generation-mini",
            task="text-generation",
            description="8 prompts with a short expected continuation, written for nlpsuite",
            licence="CC0-1.0",
            load=lambda: load_records(EVAL_SET, TASK),
            files=(EVAL_SET,),
            options={},
        )
    )
