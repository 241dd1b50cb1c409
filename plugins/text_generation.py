"""text-generation: continue a prompt with any causal language model (SmolLM2 by default).

Greedy by default; ``temperature`` above 0 samples (with ``top_p``, ``top_k`` and a ``seed``: a
prompt's sample is the same in any batch). ``stop`` ends a generation at a stop sequence, which
the text leaves out; ``chat`` puts the prompt in the tokenizer's chat template as a user turn.
Prompts are batched by length with left padding (see :meth:`nlpsuite.causal.CausalLM.generate`),
so a batch gives what each prompt gives alone.

A record may carry its own settings (``max_new_tokens``, ``temperature``, ``top_p``, ``seed``,
``stop``; absent: the run's options), chat ``messages`` instead of a prompt, a prompt given as
token ids, and ask for ``logprobs`` (with ``echo``, the prompt's too): what an OpenAI completion
request carries, so ``nlpsuite serve`` answers one with one record. The runner groups a batch's
records by their settings; each group is generated as one, so a record gets what it gets alone.

The runner is a plain batch-in, batch-out function with one more method, ``stream(record)``,
which yields the text of one output in pieces as it is decoded (``nlpsuite run`` uses it when
its output is a terminal) and returns the output, without log-probabilities.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpsuite import NlpsuiteError, Option, RunConfig, Task, hookimpl
from nlpsuite.catalog import load_records
from nlpsuite.causal import (
    DEFAULT_CAUSAL_MODEL,
    OFFLINE_HINT,
    CausalLM,
    PromptText,
    TextStream,
    TokenLogprob,
    load_causal_lm,
)
from nlpsuite.datasets import Dataset
from nlpsuite.decoding import Sampling
from nlpsuite.generation import Generation

EVAL_SET = Path(__file__).resolve().parent / "data" / "text-generation-mini.jsonl"
# Escapes a stop sequence may use on the command line, where a newline is hard to type.
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}
# The most alternatives a record may ask for at each position (OpenAI allows 5, vLLM 20).
MAX_LOGPROBS = 20


@dataclass(frozen=True)
class TextGenerationInput:
    # The text to continue.
    prompt: str = ""
    # Or the token ids to continue, read as they are (no special token is added).
    prompt_ids: tuple[int, ...] | None = None
    # Or chat turns, each {"role": ..., "content": ...}, put in the model's chat template for
    # the assistant's reply.
    messages: tuple[dict[str, str], ...] | None = None
    # This record's settings; absent (null), the run's options. max_new_tokens may be 0 with
    # echo: the prompt is scored, nothing generated.
    max_new_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] | None = None
    # Give each token's log-probability and this many likeliest tokens at its position.
    logprobs: int | None = None
    # Put the prompt before the text (and, with logprobs, score its tokens too).
    echo: bool = False

    def __post_init__(self) -> None:
        self._check_prompt()
        if self.max_new_tokens is not None and self.max_new_tokens < (0 if self.echo else 1):
            raise NlpsuiteError(f"field 'max_new_tokens' must be at least 1 (0 only with "
                                f"echo), got {self.max_new_tokens}")
        try:
            Sampling(temperature=1.0 if self.temperature is None else self.temperature,
                     top_p=1.0 if self.top_p is None else self.top_p)
        except NlpsuiteError as error:
            raise NlpsuiteError(f"field {error}") from None  # error names the field
        if self.stop is not None and not all(isinstance(s, str) and s for s in self.stop):
            raise NlpsuiteError("field 'stop': a stop sequence is empty or not text")
        if self.logprobs is not None and not 0 <= self.logprobs <= MAX_LOGPROBS:
            raise NlpsuiteError(f"field 'logprobs' must be from 0 to {MAX_LOGPROBS}, got "
                                f"{self.logprobs}")

    def _check_prompt(self) -> None:
        given = [name for name in ("prompt", "prompt_ids", "messages") if getattr(self, name)]
        if len(given) > 1:
            raise NlpsuiteError(f"give one of the fields 'prompt', 'prompt_ids' and 'messages', "
                                f"not {' and '.join(repr(name) for name in given)}")
        if self.messages:
            self._check_messages(self.messages)
        elif self.prompt_ids:
            if not all(_is_int(token) for token in self.prompt_ids):
                raise NlpsuiteError("field 'prompt_ids' must be a list of token ids (integers)")
        elif not self.prompt.strip():
            empty = ("messages" if self.messages is not None else
                     "prompt_ids" if self.prompt_ids is not None else "prompt")
            raise NlpsuiteError(f"field '{empty}' is empty")

    @staticmethod
    def _check_messages(messages: tuple[dict[str, str], ...]) -> None:
        for number, message in enumerate(messages):
            if not isinstance(message, dict) or not all(
                isinstance(message.get(key), str) for key in ("role", "content")
            ):
                raise NlpsuiteError(f"field 'messages': message {number} must be an object with "
                                    f"the texts 'role' and 'content'")


@dataclass(frozen=True)
class TokenLogprobs:
    """The tokens of a text and their log-probabilities, in the shape of an OpenAI completion's
    ``logprobs``: each token as text, its log-probability after the tokens before it (None for
    a prompt's first token, which nothing comes before), the likeliest tokens at its position
    (the token itself among them) and where it starts in the output's ``text``."""

    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None]
    text_offset: list[int]


@dataclass(frozen=True)
class TextGenerationOutput:
    # The continuation alone (with echo: after the prompt), cut before the stop sequence that
    # ended it.
    text: str
    # Tokens generated, an end token or a stop sequence's tokens included.
    new_tokens: int
    # "eos" (the model ended it), "stop" (a stop sequence) or "length" (max_new_tokens, or the
    # end of the model's context).
    finish_reason: str
    # Tokens the model read before the new ones (a chat template's included).
    prompt_tokens: int
    # Only when the record asks for logprobs: the new tokens' (and with echo the prompt's).
    logprobs: TokenLogprobs | None = None


@dataclass(frozen=True)
class GenerationSettings:
    """The task's options, checked, with a record's own settings over them: what a prompt is
    generated with. Records with equal settings are generated together."""

    max_new_tokens: int
    stop: tuple[str, ...]
    sampling: Sampling
    chat: bool
    logprobs: int | None = None
    echo: bool = False

    def for_record(self, item: TextGenerationInput) -> GenerationSettings:
        """These settings with ``item``'s own over them."""
        sampling = dataclasses.replace(self.sampling, **{
            name: value for name in ("temperature", "top_p", "seed")
            if (value := getattr(item, name)) is not None})
        return dataclasses.replace(
            self, sampling=sampling, logprobs=item.logprobs, echo=item.echo,
            max_new_tokens=first_set(item.max_new_tokens, self.max_new_tokens),
            stop=first_set(item.stop, self.stop),
        )


def first_set(value: Any, default: Any) -> Any:
    return default if value is None else value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
        groups: dict[GenerationSettings, list[int]] = {}
        for index, item in enumerate(inputs):
            groups.setdefault(self.settings.for_record(item), []).append(index)
        outputs: list[Any] = [None] * len(inputs)
        for settings, indices in groups.items():
            done = self._generate([self.prompt(inputs[i]) for i in indices], settings)
            for index, output in zip(indices, done, strict=True):
                outputs[index] = output
        return outputs

    def prompt(self, item: TextGenerationInput) -> PromptText:
        """What the model continues: the prompt's text or token ids, or the chat messages
        rendered and encoded (the template writes its own special tokens)."""
        if item.prompt_ids is not None:
            return list(item.prompt_ids)
        if item.messages is not None:
            return self.lm.encode([self.lm.chat_text(item.messages)], special_tokens=False)[0]
        return item.prompt

    def stream(self, item: TextGenerationInput) -> Generator[str, None, TextGenerationOutput]:
        """The text of ``self([item])[0]``, in pieces as it is decoded; returns that output
        (without log-probabilities)."""
        settings = self.settings.for_record(item)
        prompt = self.prompt(item)
        ids = self.lm.prompt_ids([prompt], settings.chat)[0]
        echoed = self._echo(ids) if settings.echo else ""
        if echoed:
            yield echoed
        if settings.max_new_tokens == 0:
            return self._output(Generation("", (), "length"), ids, echoed)
        generation = yield from self.lm.stream(
            prompt, max_new_tokens=settings.max_new_tokens, stop=settings.stop,
            sampling=settings.sampling, chat=settings.chat)
        return self._output(generation, ids, echoed)

    def _generate(self, prompts: list[PromptText],
                  settings: GenerationSettings) -> list[TextGenerationOutput]:
        """One group of prompts with the same settings."""
        ids = self.lm.prompt_ids(prompts, settings.chat)
        if settings.max_new_tokens == 0:  # echo only: the prompts are scored, not continued
            generations = [Generation("", (), "length") for _ in prompts]
        else:
            generations = self.lm.generate(
                prompts, max_new_tokens=settings.max_new_tokens, stop=settings.stop,
                sampling=settings.sampling, batch_size=self.batch_size, chat=settings.chat)
        scored: list[list[TokenLogprob] | None] = [None] * len(prompts)
        if settings.logprobs is not None:  # prompt and new tokens read again, in one pass
            scored = list(self.lm.token_logprobs(
                [row + list(g.token_ids) for row, g in zip(ids, generations, strict=True)],
                top=settings.logprobs, batch_size=self.batch_size))
        outputs = []
        for generation, row, scores in zip(generations, ids, scored, strict=True):
            echoed = self._echo(row) if settings.echo else ""
            logprobs = None
            if scores is not None:
                shown = row if settings.echo else []  # the prompt tokens reported
                # scores[i] is token i + 1's: the first token shown has none if it is the first.
                first = len(row) - len(shown)
                logprobs = self._logprobs([*shown, *generation.token_ids], len(shown), echoed,
                                          scores[first - 1:] if first else scores)
            outputs.append(self._output(generation, row, echoed, logprobs))
        return outputs

    @staticmethod
    def _output(generation: Generation, prompt_ids: list[int], echoed: str,
                logprobs: TokenLogprobs | None = None) -> TextGenerationOutput:
        return TextGenerationOutput(echoed + generation.text, len(generation.token_ids),
                                    generation.finish_reason or "length", len(prompt_ids),
                                    logprobs)

    def _echo(self, ids: list[int]) -> str:
        """The prompt as the output shows it: its tokens decoded, special tokens left out."""
        return str(self.lm.tokenizer.decode(ids, skip_special_tokens=True))

    def _logprobs(self, tokens: list[int], prompt_tokens: int, echoed: str,
                  scores: list[TokenLogprob]) -> TokenLogprobs:
        """OpenAI's shape for ``tokens`` (the echoed prompt's first ``prompt_tokens``, then the
        new ones): ``scores`` are the last tokens', the first token's may be missing."""
        tokenizer = self.lm.tokenizer
        missing = len(tokens) - len(scores)
        values: list[float | None] = [None] * missing
        tops: list[dict[str, float] | None] = [None] * missing
        for score in scores:
            values.append(score.logprob)
            top: dict[str, float] = {}
            for token, value in (*score.top, (score.token, score.logprob)):
                top.setdefault(tokenizer.decode([token]), value)  # one text, two tokens: the best
            tops.append(top)
        offsets = (text_offsets(tokenizer, tokens[:prompt_tokens])
                   + [len(echoed) + at for at in text_offsets(tokenizer, tokens[prompt_tokens:])])
        return TokenLogprobs([tokenizer.decode([token]) for token in tokens], values, tops,
                             offsets)


def text_offsets(tokenizer: Any, ids: Sequence[int]) -> list[int]:
    """Where each token's text starts in the text of ``ids`` (special tokens left out); a token
    that ends a character split over several tokens starts where that character does."""
    stream = TextStream(tokenizer)
    offsets = []
    for token in ids:
        offsets.append(len(stream.text))
        stream.add(token)
    return offsets


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
