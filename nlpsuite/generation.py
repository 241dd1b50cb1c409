"""Text generation shared by the seq2seq tasks (translation, summarization).

* :func:`split_sentences` cuts text at sentence ends and line breaks, keeping the whitespace
  between sentences so a task can put its outputs back in the same layout.
* :func:`fit_text` and :func:`chunk_text` cut text into pieces that each fit the model's input
  window: whole sentences first, then words, then characters, so nothing is silently truncated.
* :class:`Seq2Seq` wraps a loaded encoder-decoder checkpoint: it knows its window, its task
  prefix (``"summarize: "`` for T5) and how many tokens its decoder can produce, and it generates
  in length-sorted batches with right padding, so a batch gives exactly what each input would
  alone under greedy search.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nlpsuite.batching import map_sorted, model_max_length
from nlpsuite.decoding import decode, settings, unsupported
from nlpsuite.errors import NlpsuiteError
from nlpsuite.lookup import load_model
from nlpsuite.models import load_tokenizer
from nlpsuite.tasks import RunConfig

# Counts tokens of each text exactly as the model will see it (prefix and special tokens included).
Counter = Callable[[Sequence[str]], list[int]]

# "Dr. Smith", "e.g. this": a period after these does not end a sentence.
_ABBREVIATED = """
mr mrs ms dr prof sr jr st mt vs etc e.g i.e cf al approx dept est fig figs no nos vol
inc ltd co corp jan feb mar apr jun jul aug sep sept oct nov dec u.s u.k a.m p.m ph.d
"""
ABBREVIATIONS = frozenset(_ABBREVIATED.split())

# ASCII ends need whitespace after them (so "3.5" and "example.com" stay whole); CJK ends do not.
# Typographic quotes and full-width punctuation are meant here.
_END = re.compile(r"""(?:[.!?…]+[)"'”’»\]]*(?=\s|$)|[。！？]+[」』）”’]*)""")  # noqa: RUF001
_LINE_BREAK = re.compile(r"[^\S\n]*\n\s*")
_OPENERS = "\"'“‘«([¿¡"  # noqa: RUF001


def split_sentences(text: str) -> list[tuple[str, str]]:
    """``(sentence, separator)`` pairs; every line break also ends a sentence.

    The separator is the run of line breaks after the sentence as it stands in ``text`` (so a
    translation keeps the input's lines and paragraphs), a space between sentences on one line,
    or nothing after a CJK full stop with no space after it.
    """
    pairs: list[tuple[str, str]] = []
    body = text.strip()
    position = 0
    for line_end in [*_LINE_BREAK.finditer(body), None]:
        stop = line_end.start() if line_end else len(body)
        line = body[position:stop]
        breaks = line_end.group() if line_end else ""
        sentences = _split_line(line)
        for i, (sentence, space) in enumerate(sentences):
            pairs.append((sentence, breaks if i == len(sentences) - 1 else space))
        position = line_end.end() if line_end else len(body)
    return [(sentence, space) for sentence, space in pairs if sentence]


def _split_line(line: str) -> list[tuple[str, str]]:
    pairs = []
    start = 0
    for match in _END.finditer(line):
        end = match.end()
        after = line[end:]
        rest = after.lstrip()
        if not rest:
            break
        if match.group()[0] in ".!?…" and not _starts_sentence(rest):
            continue
        if match.group() == "." and _is_abbreviation(line[start:match.start()]):
            continue
        pairs.append((line[start:end], " " if after[:1].isspace() else ""))
        start = len(line) - len(rest)
    pairs.append((line[start:].strip(), ""))
    return pairs


def _starts_sentence(text: str) -> bool:
    """A new sentence starts with anything but a lower-case letter (after any opening quote)."""
    first = text.lstrip(_OPENERS)[:1]
    return bool(first) and not first.islower()


def _is_abbreviation(before: str) -> bool:
    words = before.split()
    if not words:
        return False
    word = words[-1].lstrip(_OPENERS).lower()
    # A single letter is an initial ("J. R. R. Tolkien"), or part of one ("U.S.").
    return word in ABBREVIATIONS or (len(word) == 1 and word.isalpha())


def join_sentences(pairs: Sequence[tuple[str, str]], spaced: bool = True) -> str:
    """Put sentences back together with their separators; ``spaced=False`` for Chinese, Japanese,
    Thai and the like, where sentences follow each other without a space. Empty sentences (a
    model that said nothing) leave no double spaces, but their line breaks stay."""
    parts = []
    for sentence, separator in pairs:
        if "\n" in separator:
            parts.append(sentence + separator)
        elif sentence:
            parts.append(sentence + (" " if spaced else ""))
    return "".join(parts).strip()


def fit_text(text: str, count: Counter, budget: int) -> list[str]:
    """``text`` cut into pieces of at most ``budget`` tokens: at words, or at characters where a
    single word is too long (a URL, or text in a script written without spaces)."""
    if count([text])[0] <= budget:
        return [text]
    pieces = []
    for word_group in pack(text.split(), " ", count, budget, oversized="keep"):
        if count([word_group])[0] <= budget:
            pieces.append(word_group)
        else:  # a single word longer than the window
            pieces.extend(pack(list(word_group), "", count, budget))
    return pieces


def chunk_text(text: str, count: Counter, budget: int) -> list[str]:
    """``text`` as few pieces of whole sentences as fit ``budget`` tokens each, in order."""
    if count([text])[0] <= budget:
        return [text]
    sentences = [sentence for sentence, _ in split_sentences(text)]
    units = []
    for sentence, size in zip(sentences, count(sentences), strict=True):
        units += [sentence] if size <= budget else fit_text(sentence, count, budget)
    return pack(units, " ", count, budget)


def pack(units: list[str], joiner: str, count: Counter, budget: int,
         oversized: str = "error") -> list[str]:
    """Greedily join consecutive ``units`` into pieces of at most ``budget`` tokens each.

    Piece sizes are first estimated from each unit's own count (one batched tokenizer call), then
    checked exactly; a piece that tokenizes longer than its estimate is split in two and packed
    again. A unit over budget on its own is kept alone (``oversized="keep"``, for the caller to
    cut further) or is an error.
    """
    if not units:
        return []
    overhead = count([""])[0]  # the prefix and special tokens every piece carries
    costs = [max(cost - overhead, 0) for cost in count(units)]
    room = budget - overhead
    groups: list[list[int]] = []
    used = 0
    for index, cost in enumerate(costs):
        if cost > room and oversized == "error":
            raise NlpsuiteError(f"a piece of {cost} tokens cannot fit a window of {budget}")
        if groups and used + cost <= room:
            groups[-1].append(index)
            used += cost
        else:
            groups.append([index])
            used = cost
    pieces: list[str] = []
    texts = [joiner.join(units[i] for i in group) for group in groups]
    for group, piece, size in zip(groups, texts, count(texts), strict=True):
        if size <= budget or len(group) == 1:
            pieces.append(piece)
            continue
        middle = len(group) // 2
        for half in (group[:middle], group[middle:]):
            pieces.extend(pack([units[i] for i in half], joiner, count, budget, oversized))
    return pieces


def task_params(config: Any, key: str) -> dict[str, Any]:
    """``config.task_specific_params[key]`` (e.g. ``summarization``) or an empty dict."""
    params = getattr(config, "task_specific_params", None) or {}
    found = params.get(key) if isinstance(params, Mapping) else None
    return dict(found) if isinstance(found, Mapping) else {}


@dataclass(frozen=True)
class Generation:
    """One generated text and the tokens it was decoded from (no start token, no padding)."""

    text: str
    token_ids: tuple[int, ...]
    # Why decoding ended, where the generator says (a causal LM's "eos", "length" or "stop").
    finish_reason: str | None = None


class Seq2Seq:
    """An encoder-decoder checkpoint ready to generate: window, prefix and limits included."""

    def __init__(
        self, model: Any, tokenizer: Any, *, device: str = "cpu", prefix: str = ""
    ) -> None:
        if not getattr(model.config, "is_encoder_decoder", False):
            raise NlpsuiteError(
                f"model type '{model.config.model_type}' is not an encoder-decoder model"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.prefix = prefix
        # Greedy search runs in nlpsuite.decoding, which picks the tokens generate() would; off
        # only to compare the two.
        self.fast_greedy = True
        self.window = model_max_length(tokenizer, model.config)
        self.max_new_tokens = _decoder_room(model.config)
        generation = model.generation_config
        self.pad_token_id = first_given(tokenizer.pad_token_id, generation.pad_token_id,
                                        model.config.pad_token_id)
        if self.pad_token_id is None:
            raise NlpsuiteError("the tokenizer has no padding token, so inputs cannot be batched")
        self.eos_token_ids = end_token_ids(model, tokenizer)
        if self.count([""])[0] >= self.window:
            raise NlpsuiteError(f"the task prefix {prefix!r} fills the model's whole window")

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids of ``prefix + text``, special tokens included and nothing truncated."""
        if not texts:
            return []
        encoded = self.tokenizer([self.prefix + text for text in texts], truncation=False,
                                 verbose=False)
        return [list(ids) for ids in encoded["input_ids"]]

    def count(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.encode(texts)]

    def fit(self, texts: Sequence[str]) -> list[list[str]]:
        """Each text as is when it fits the window, else cut at words (or characters) to fit."""
        counts = self.count(texts)
        return [[text] if n <= self.window else fit_text(text, self.count, self.window)
                for text, n in zip(texts, counts, strict=True)]

    def chunks(self, text: str) -> list[str]:
        """``text`` as runs of whole sentences that each fit the window."""
        return chunk_text(text, self.count, self.window)

    def generate(
        self,
        texts: Sequence[str],
        *,
        max_new_tokens: int | Sequence[int] | Callable[[int], int],
        batch_size: int = 32,
        **options: Any,
    ) -> list[Generation]:
        """Generate for every text, longest inputs batched together, results in input order.

        ``max_new_tokens`` is one bound for all texts, one per text, or a function of each
        input's length in tokens; it is capped by what the decoder's position table allows.
        ``options`` go to ``model.generate`` (``num_beams``, ``min_length``,
        ``no_repeat_ngram_size``...). Texts must fit the window (see :meth:`fit`).
        """
        rows = self.encode(texts)
        if isinstance(max_new_tokens, int):
            limits = [max_new_tokens] * len(rows)
        elif callable(max_new_tokens):
            limits = [max_new_tokens(len(ids)) for ids in rows]
        else:
            limits = list(max_new_tokens)
        if len(limits) != len(rows):
            raise ValueError(f"{len(limits)} max_new_tokens for {len(rows)} texts")
        for ids, limit in zip(rows, limits, strict=True):
            if limit < 1:
                raise NlpsuiteError(f"max_new_tokens must be at least 1, got {limit}")
            if len(ids) > self.window:
                raise NlpsuiteError(f"an input of {len(ids)} tokens is longer than the model's "
                                    f"window of {self.window}")
        if self.max_new_tokens is not None:
            limits = [min(limit, self.max_new_tokens) for limit in limits]
        items = list(zip(rows, limits, strict=True))
        return map_sorted(items, lambda batch: self._generate_batch(batch, options),
                          batch_size, lambda item: len(item[0]))

    def _generate_batch(self, items: list[tuple[list[int], int]],
                        options: Mapping[str, Any]) -> list[Generation]:
        import torch

        if hasattr(self.model, "generate_tokens"):  # an engine's own decoder (nlpsuite.backends)
            rows, limits = [ids for ids, _ in items], [limit for _, limit in items]
            return [
                Generation(self.tokenizer.decode(tokens, skip_special_tokens=True).strip(),
                           tuple(tokens))
                for tokens in self.model.generate_tokens(rows, limits, options)
            ]
        width = max(len(ids) for ids, _ in items)
        # Right padding for the encoder: positions of real tokens stay those of the input alone,
        # and the attention mask hides the padding from every layer.
        input_ids = torch.tensor(
            [ids + [self.pad_token_id] * (width - len(ids)) for ids, _ in items],
            device=self.device,
        )
        attention_mask = torch.tensor(
            [[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in items], device=self.device
        )
        limits = [limit for _, limit in items]
        config = settings(self.model, options)
        if self.fast_greedy and unsupported(config, options) is None:
            new_tokens = [list(row.tokens) for row in decode(
                self.model, input_ids, attention_mask, limits, config, self.eos_token_ids)]
        else:
            new_tokens = self._generate_tokens(input_ids, attention_mask, limits, options)
        return [
            Generation(self.tokenizer.decode(tokens, skip_special_tokens=True).strip(),
                       tuple(tokens))
            for tokens in new_tokens
        ]

    def _generate_tokens(self, input_ids: Any, attention_mask: Any, limits: list[int],
                         options: Mapping[str, Any]) -> list[list[int]]:
        """New tokens of each row through ``model.generate``, cut at the row's end token."""
        import torch
        from transformers import LogitsProcessorList, StoppingCriteriaList

        criteria, processors = StoppingCriteriaList(), LogitsProcessorList()
        if len(set(limits)) > 1:
            # generate() knows one max_new_tokens per batch; these give each row its own.
            criteria.append(_RowLimits(limits))
            forced = options.get("forced_eos_token_id",
                                 self.model.generation_config.forced_eos_token_id)
            if forced is not None:
                processors.append(_ForcedEosAtRowLimit(limits, forced))
        with torch.inference_mode():
            sequences = self.model.generate(
                input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=max(limits),
                do_sample=False, stopping_criteria=criteria, logits_processor=processors,
                **options,
            )
        new_tokens = []
        for row, limit in zip(sequences.tolist(), limits, strict=True):
            tokens = row[1:limit + 1]  # drop the decoder start token
            ends = [i for i, token in enumerate(tokens) if token in self.eos_token_ids]
            if ends:  # generate() pads a finished row up to the batch's longest
                tokens = tokens[:ends[0] + 1]
            new_tokens.append(tokens)
        return new_tokens


class _RowLimits:
    """Stops each row at its own token limit, so a short input in a batch with long ones ends
    where it would alone. Beam search passes ``beams x batch`` rows, input by input."""

    def __init__(self, limits: Sequence[int], start: int = 1) -> None:
        self.limits = list(limits)
        self.start = start  # encoder-decoder rows begin with the decoder start token

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        limits = torch.tensor(self.limits, device=input_ids.device)
        per_row = limits.repeat_interleave(input_ids.shape[0] // len(self.limits))
        return (input_ids.shape[1] - self.start) >= per_row


class _ForcedEosAtRowLimit:
    """Marian and BART end every output with </s> at the length limit (``forced_eos_token_id``);
    transformers does it at the batch's limit, this at each row's own, as the row would alone."""

    def __init__(self, limits: Sequence[int], eos: int | list[int], start: int = 1) -> None:
        self.limits = list(limits)
        self.eos = eos if isinstance(eos, list) else [eos]
        self.start = start

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        limits = torch.tensor(self.limits, device=input_ids.device)
        per_row = limits.repeat_interleave(input_ids.shape[0] // len(self.limits))
        last = (input_ids.shape[1] - self.start) == per_row - 1
        if not bool(last.any()):
            return scores
        forced = torch.full_like(scores, -math.inf)
        forced[:, self.eos] = 0
        return torch.where(last[:, None], forced, scores)


def first_given(*values: Any) -> Any:
    """The first of ``values`` that is not None (a setting's fallbacks, in order)."""
    return next((value for value in values if value is not None), None)


def end_token_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """The tokens that end an output: the generation config's, else the model's, else the
    tokenizer's (a list of several, or one)."""
    generation = getattr(model, "generation_config", None)
    eos = first_given(getattr(generation, "eos_token_id", None), model.config.eos_token_id,
                      tokenizer.eos_token_id)
    return frozenset(eos if isinstance(eos, list) else [] if eos is None else [eos])


def _decoder_room(config: Any) -> int | None:
    """How many tokens the decoder can produce after its start token; None when unbounded."""
    for name in ("max_decoder_position_embeddings", "max_position_embeddings"):
        limit = getattr(config, name, None)
        if isinstance(limit, int) and limit > 1:
            return limit - 1
    return None  # relative positions (T5): no table to run off


def load_seq2seq(config: RunConfig, prefix: Callable[[Any, Any], str] | str = "") -> Seq2Seq:
    """``config.model`` as a :class:`Seq2Seq`; ``prefix`` may be a function of the checkpoint's
    config and tokenizer."""

    tokenizer = load_tokenizer(config.model, trust_remote_code=config.trust_remote_code)
    model = load_model(
        "AutoModelForSeq2SeqLM", config.model, device=config.device,
        trust_remote_code=config.trust_remote_code, backend=config.backend,
    )
    text = prefix(model.config, tokenizer) if callable(prefix) else prefix
    return Seq2Seq(model, tokenizer, device=config.device, prefix=text)


def is_spaced(language: str) -> bool:
    """Whether sentences of ``language`` (an ISO code) are separated by spaces."""
    return language.split("_")[0].lower() not in {"zh", "ja", "th", "lo", "km", "my", "bo", "yue",
                                                  "wuu", "cmn"}


def has_text(text: str) -> bool:
    """Whether ``text`` has anything but whitespace and invisible format characters."""
    return any(not ch.isspace() and unicodedata.category(ch) != "Cf" for ch in text)
