"""Token-by-token decoding on a key/value cache, for encoder-decoder and decoder-only checkpoints.

``generate()`` rebuilds its inputs, checks its stopping criteria and runs its logits processors
through general code at every step; on a CPU that costs as much as a small decoder's arithmetic.
:func:`decode_steps` reads the input once (an encoder-decoder's encoder, or a decoder-only model's
whole left-padded prompt), then runs one step per token on a key/value cache, and drops a row from
the batch as soon as it is finished, so finished rows cost nothing. Greedy, it picks the same
tokens ``generate(num_beams=1, do_sample=False)`` picks, for the generation settings that
:func:`unsupported` does not name; callers fall back to ``generate()`` for the rest. With a
:class:`Sampling` it samples instead, each row from its own random generator seeded by the
sampling seed and the row's input, so a row's tokens do not depend on its batch.

The loop is a generator: it yields a :class:`Step` after every token, so a caller can stream
text as it comes, and an ``on_step`` hook may end rows (stop sequences).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from nlpsuite.errors import NlpsuiteError

# Prompts this many tokens shorter than the longest in their group still join it (an eighth of
# its length, if more): another forward pass costs about as much as a few padded tokens.
PREFILL_SLACK = 4
# Settings that change which token greedy search picks, beyond those handled here.
_CHANGES_TOKENS: dict[str, tuple[Any, ...]] = {
    "repetition_penalty": (1.0,), "encoder_repetition_penalty": (1.0,),
    "no_repeat_ngram_size": (0,), "encoder_no_repeat_ngram_size": (0,),
    "begin_suppress_tokens": ((), []), "sequence_bias": ({},),
    "exponential_decay_length_penalty": (), "renormalize_logits": (False,),
    "remove_invalid_values": (False,), "force_words_ids": ((), []), "constraints": ((), []),
    "guidance_scale": (1.0,), "watermarking_config": (), "stop_strings": ((), []),
    "max_time": (), "num_return_sequences": (1,), "penalty_alpha": (), "dola_layers": (),
    "prompt_lookup_num_tokens": (), "token_healing": (False,),
    "return_dict_in_generate": (False,), "output_scores": (False,), "output_logits": (False,),
}


@dataclass(frozen=True)
class Sampling:
    """How each next token is chosen: greedy (``temperature`` 0, the default) or sampled.

    Sampling divides the scores by ``temperature``, keeps the ``top_k`` best tokens (0: all),
    then the fewest best tokens whose probabilities add up to ``top_p``, and draws from what is
    left, as ``generate(do_sample=True)`` orders those steps.
    """

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.temperature >= 0:  # also NaN
            raise NlpsuiteError(f"'temperature' must be at least 0 (0 is greedy), got "
                                f"{self.temperature}")
        if not 0 < self.top_p <= 1:
            raise NlpsuiteError(f"'top_p' must be more than 0 and at most 1, got {self.top_p}")
        if self.top_k < 0:
            raise NlpsuiteError(f"'top_k' must be at least 0 (0 keeps every token), got "
                                f"{self.top_k}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


GREEDY = Sampling()


@dataclass(frozen=True)
class Step:
    """One decoding step: the rows (indices into the batch) that got a token, and their tokens."""

    rows: tuple[int, ...]
    tokens: tuple[int, ...]


@dataclass(frozen=True)
class Decoded:
    """A row's new tokens (its end token included) and why it ended: ``"eos"`` (an end token),
    ``"length"`` (its limit) or ``"stop"`` (the ``on_step`` hook ended it)."""

    tokens: tuple[int, ...]
    finish_reason: str


# Called after every step with the rows that got a token; returns the rows to end now.
StepHook = Callable[[Step], Collection[int]]


def settings(model: Any, options: Mapping[str, Any]) -> Any:
    """The checkpoint's generation config with ``options`` applied, as ``generate()`` sees it."""
    import copy

    config = copy.deepcopy(model.generation_config)
    config.update(**options)
    return config


def unsupported(config: Any, options: Mapping[str, Any]) -> str | None:
    """Why :func:`decode` cannot stand in for ``generate()`` under ``config``; None if it can."""
    if (config.num_beams or 1) != 1:
        return "beam search"
    if config.do_sample:
        return "sampling"
    for name in options:
        if not hasattr(config, name):
            return f"option {name}"
    for name, neutral in _CHANGES_TOKENS.items():
        value = getattr(config, name, None)
        if value is not None and value not in neutral:
            return name
    bad_words = config.bad_words_ids or []
    if any(len(words) != 1 for words in bad_words):
        return "multi-token bad_words_ids"
    return None


def decode(
    model: Any,
    input_ids: Any,
    attention_mask: Any,
    limits: Sequence[int],
    config: Any,
    eos_token_ids: Collection[int],
    *,
    sampling: Sampling = GREEDY,
    on_step: StepHook | None = None,
) -> list[Decoded]:
    """:func:`decode_steps` run to the end: each row's tokens and finish reason."""
    return run_to_end(decode_steps(model, input_ids, attention_mask, limits, config,
                                   eos_token_ids, sampling=sampling, on_step=on_step))


Returned = TypeVar("Returned")


def run_to_end(steps: Generator[Any, None, Returned]) -> Returned:
    """What a generator returns once it has yielded everything (its steps are dropped)."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            returned: Returned = done.value
            return returned


def decode_steps(
    model: Any,
    input_ids: Any,
    attention_mask: Any,
    limits: Sequence[int],
    config: Any,
    eos_token_ids: Collection[int],
    *,
    sampling: Sampling = GREEDY,
    on_step: StepHook | None = None,
) -> Generator[Step, None, list[Decoded]]:
    """Decode every row, yielding a :class:`Step` per token; returns each row's :class:`Decoded`.

    An encoder-decoder's inputs are right-padded; a decoder-only model's are LEFT-padded (its
    prompt's last token at the end of the row) and its positions count only real tokens. Each
    row gets at most ``limits[row]`` new tokens. Applies what greedy ``generate()`` applies for
    ``config``: ``suppress_tokens``, single-token ``bad_words_ids``, ``min_length`` /
    ``min_new_tokens`` (no end token before), ``forced_bos_token_id`` (first token) and
    ``forced_eos_token_id`` (at each row's limit).
    """
    import torch

    rows = input_ids.shape[0]
    if model.config.is_encoder_decoder:
        state: _EncoderDecoder | _DecoderOnly = _EncoderDecoder(model, config)
        # min_length counts the decoder start token, as generate() counts it there.
        given = torch.ones(rows, dtype=torch.long, device=input_ids.device)
    else:
        state = _DecoderOnly(model)
        given = attention_mask.sum(-1)  # decoder-only: min_length counts the prompt
    chooser = _Chooser(model, config, eos_token_ids, limits, given, sampling,
                       _row_seeds(sampling, input_ids, attention_mask))
    with torch.inference_mode():
        logits = state.start(input_ids, attention_mask)
    produced: list[list[int]] = [[] for _ in range(rows)]
    reasons = [""] * rows
    active = list(range(rows))
    while True:
        with torch.inference_mode():
            tokens, ended = chooser.choose(logits)
        for row, token, reason in zip(active, tokens, ended, strict=True):
            produced[row].append(token)
            reasons[row] = reason
        step = Step(tuple(active), tuple(tokens))
        for row in on_step(step) if on_step is not None else ():
            if reasons[row] != "eos":  # an end token ends a row whatever its text says
                reasons[row] = "stop"
        yield step
        keep = [i for i, row in enumerate(active) if not reasons[row]]
        if not keep:
            break
        with torch.inference_mode():
            if len(keep) < len(active):
                # Finished rows leave the batch, with their cache and the rest of their state.
                selected = torch.tensor(keep, device=input_ids.device)
                state.select(selected)
                chooser.select(selected)
            active = [active[i] for i in keep]
            logits = state.next(torch.tensor([[tokens[i]] for i in keep],
                                             device=input_ids.device))
    return [Decoded(tuple(tokens), reason)
            for tokens, reason in zip(produced, reasons, strict=True)]


class _EncoderDecoder:
    """The encoder runs once; the decoder reads its states and one new token a step."""

    def __init__(self, model: Any, config: Any) -> None:
        self.model = model
        start = config.decoder_start_token_id
        self.start_token = model.config.decoder_start_token_id if start is None else start

    def start(self, input_ids: Any, attention_mask: Any) -> Any:
        import torch
        from transformers.cache_utils import DynamicCache, EncoderDecoderCache

        encoded = self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
        self.hidden, self.mask = encoded.last_hidden_state, attention_mask
        self.cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        first = torch.full((input_ids.shape[0], 1), self.start_token, dtype=torch.long,
                           device=input_ids.device)
        return self.next(first)

    def next(self, tokens: Any) -> Any:
        return self.model(
            encoder_outputs=(self.hidden,), attention_mask=self.mask, decoder_input_ids=tokens,
            past_key_values=self.cache, use_cache=True,
        ).logits[:, -1, :]

    def select(self, keep: Any) -> None:
        self.cache.batch_select_indices(keep)
        self.hidden, self.mask = self.hidden[keep], self.mask[keep]


class _DecoderOnly:
    """The left-padded prompts read in one pass (or one per group of similar lengths), then one
    token a step; positions count real tokens only, so a padded row sees the positions it would
    see alone."""

    def __init__(self, model: Any) -> None:
        import inspect

        self.model = model
        # Only the last position's scores are wanted: no prompt x vocabulary logits.
        accepts = inspect.signature(model.forward).parameters
        self.last_only = {"logits_to_keep": 1} if "logits_to_keep" in accepts else {}

    def start(self, input_ids: Any, attention_mask: Any) -> Any:
        import torch
        from transformers.cache_utils import DynamicCache, DynamicLayer

        self.mask = attention_mask
        positions = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        self.position = positions[:, -1:]
        self.cache = DynamicCache(config=self.model.config)
        lengths = attention_mask.sum(-1).tolist()
        groups = _prefill_groups(lengths)
        plain = bool(self.cache.layers) and all(
            type(layer) is DynamicLayer for layer in self.cache.layers)
        if len(groups) == 1 or not plain:
            return self._prefill(input_ids, attention_mask, positions, self.cache)
        # Prompts of very different lengths: each group of similar ones reads its prompts with
        # little padding, then their caches join into one left-padded cache (padding masked).
        scores, caches = [], []
        for rows in groups:
            index = torch.tensor(rows, device=input_ids.device)
            width = max(lengths[row] for row in rows)
            cache = DynamicCache(config=self.model.config)
            scores.append(self._prefill(input_ids[index, -width:], attention_mask[index, -width:],
                                        positions[index, -width:], cache))
            caches.append(cache)
        order = torch.tensor([row for rows in groups for row in rows],
                             device=input_ids.device).argsort()
        full = input_ids.shape[1]
        for number in range(len(self.cache.layers)):
            keys, values = (
                torch.cat([_pad_left(getattr(cache.layers[number], name), full)
                           for cache in caches])[order]
                for name in ("keys", "values"))
            self.cache.update(keys, values, number)
        return torch.cat(scores)[order]

    def _prefill(self, input_ids: Any, attention_mask: Any, positions: Any, cache: Any) -> Any:
        return self.model(
            input_ids=input_ids, attention_mask=attention_mask, position_ids=positions,
            past_key_values=cache, use_cache=True, **self.last_only,
        ).logits[:, -1, :]

    def next(self, tokens: Any) -> Any:
        import torch

        self.mask = torch.cat([self.mask, self.mask.new_ones((tokens.shape[0], 1))], dim=-1)
        self.position = self.position + 1
        return self.model(
            input_ids=tokens, attention_mask=self.mask, position_ids=self.position,
            past_key_values=self.cache, use_cache=True,
        ).logits[:, -1, :]

    def select(self, keep: Any) -> None:
        self.cache.batch_select_indices(keep)
        self.mask, self.position = self.mask[keep], self.position[keep]


def _prefill_groups(lengths: Sequence[int]) -> list[list[int]]:
    """Rows grouped so that each group's prompts are read together with little padding: longest
    first, a row joins a group while it is at most an eighth (or 4 tokens) shorter than the
    group's longest. Prompts of one length make one group."""
    groups: list[list[int]] = []
    for row in sorted(range(len(lengths)), key=lambda row: -lengths[row]):
        if groups:
            longest = lengths[groups[-1][0]]
            if longest - lengths[row] <= max(PREFILL_SLACK, longest // 8):
                groups[-1].append(row)
                continue
        groups.append([row])
    return groups


def _pad_left(states: Any, width: int) -> Any:
    """Cached keys or values ``[rows, heads, positions, size]`` with zeros before, to ``width``."""
    import torch

    missing = width - states.shape[-2]
    if not missing:
        return states
    zeros = states.new_zeros((*states.shape[:-2], missing, states.shape[-1]))
    return torch.cat([zeros, states], dim=-2)


class _Chooser:
    """Picks each active row's next token from its scores and says which rows end with it."""

    def __init__(self, model: Any, config: Any, eos_token_ids: Collection[int],
                 limits: Sequence[int], given: Any, sampling: Sampling,
                 seeds: Sequence[int]) -> None:
        import torch

        device = given.device
        vocab = model.get_output_embeddings().out_features
        self.banned = torch.zeros(vocab, dtype=torch.bool, device=device)
        for token in [*(config.suppress_tokens or []),
                      *(w[0] for w in config.bad_words_ids or [])]:
            if 0 <= token < vocab:
                self.banned[token] = True
        self.eos = torch.tensor(sorted(eos_token_ids), device=device)
        self.eos_ids = frozenset(eos_token_ids)
        self.min_new = torch.clamp(
            (config.min_length or 0) - given, min=config.min_new_tokens or 0
        )
        forced = config.forced_eos_token_id
        self.forced_eos = [forced] if isinstance(forced, int) else list(forced or [])
        self.forced_bos = config.forced_bos_token_id
        self.limits = torch.tensor(list(limits), device=device)
        self.sampling = sampling
        self.generators = [torch.Generator(device=device).manual_seed(seed) for seed in seeds]
        self.step = 0

    def choose(self, logits: Any) -> tuple[list[int], list[str]]:
        """The tokens picked, and for each row ``""`` (goes on), ``"eos"`` or ``"length"``."""
        import torch

        logits = logits.float().masked_fill(self.banned, -torch.inf)
        early = self.min_new > self.step
        if bool(early.any()):
            logits[:, self.eos] = torch.where(early[:, None], -torch.inf, logits[:, self.eos])
        if self.step == 0 and self.forced_bos is not None:
            logits = _force(logits, [self.forced_bos], None)
        last = self.limits == self.step + 1
        if self.forced_eos and bool(last.any()):
            logits = _force(logits, self.forced_eos, last)
        if self.sampling.greedy:
            picked = logits.argmax(-1)
        else:
            picked = _sample(logits, self.sampling, self.generators)
        self.step += 1
        tokens = picked.tolist()
        at_limit = (self.limits <= self.step).tolist()
        ended = ["eos" if token in self.eos_ids else "length" if full else ""
                 for token, full in zip(tokens, at_limit, strict=True)]
        return tokens, ended

    def select(self, keep: Any) -> None:
        self.min_new, self.limits = self.min_new[keep], self.limits[keep]
        if self.generators:  # greedy has none
            self.generators = [self.generators[i] for i in keep.tolist()]


def _sample(logits: Any, sampling: Sampling, generators: Sequence[Any]) -> Any:
    """One token per row drawn from the tempered, top-k and top-p filtered distribution, each
    row with its own generator (one uniform draw per row and step)."""
    import torch

    logits = logits / sampling.temperature
    if 0 < sampling.top_k < logits.shape[-1]:
        kth = logits.topk(sampling.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, -torch.inf)
    probs = torch.softmax(logits, dim=-1)
    if sampling.top_p < 1:
        ranked, order = probs.sort(dim=-1, descending=True)
        # A token goes when the better ones already reach top_p; the best one always stays.
        beyond = (ranked.cumsum(-1) - ranked) >= sampling.top_p
        probs = probs.masked_fill(beyond.scatter(-1, order, beyond), 0.0)
    draws = torch.stack([torch.rand((), generator=g, device=probs.device) for g in generators])
    cumulative = probs.cumsum(-1)
    targets = (draws * cumulative[:, -1])[:, None]
    picked = torch.searchsorted(cumulative, targets, right=True).squeeze(-1)
    return picked.clamp(max=probs.shape[-1] - 1)


def _row_seeds(sampling: Sampling, input_ids: Any, attention_mask: Any) -> list[int]:
    """A seed per row from the sampling seed and the row's own input tokens (padding left out),
    so a sampled row is the same in any batch, at any place in it."""
    if sampling.greedy:
        return []
    seeds = []
    for ids, mask in zip(input_ids.tolist(), attention_mask.tolist(), strict=True):
        real = [token for token, seen in zip(ids, mask, strict=True) if seen]
        digest = hashlib.blake2b(repr((sampling.seed, real)).encode(), digest_size=8).digest()
        seeds.append(int.from_bytes(digest, "big") >> 1)  # manual_seed takes 63 bits
    return seeds


def _force(logits: Any, tokens: list[int], rows: Any) -> Any:
    """Every score but those of ``tokens`` set to -inf, in ``rows`` (a boolean mask) or all."""
    import torch

    forced = torch.full_like(logits, -torch.inf)
    forced[:, tokens] = 0
    if rows is None:
        return forced
    return torch.where(rows[:, None], forced, logits)
