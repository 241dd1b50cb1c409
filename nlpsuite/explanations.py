"""Explanations as values: word attributions, their faithfulness, and the hook a task implements.

An :class:`Explanation` says which words of an input pushed a model toward one target (a label,
or a question-answering span) and how faithful that ranking is: ERASER's comprehensiveness and
sufficiency (DeYoung et al. 2020, as ferret computes them). The methods themselves (integrated
gradients, occlusion, LIME, KernelSHAP through captum) live in :mod:`nlpsuite.explaining`; this
module holds only values and pure arithmetic, so it imports neither torch nor captum.

A task becomes explainable by giving its :class:`~nlpsuite.tasks.Task` an ``explain`` function:
from a :class:`~nlpsuite.tasks.RunConfig` it loads the model and returns an
:class:`Explainable`, whose ``prepare`` encodes one input record as a :class:`Prepared`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# A token id standing for "this token is deleted" in the rows :attr:`Prepared.probability` takes.
DELETED = -1
# The k of top-k% in comprehensiveness and sufficiency (ERASER's bins, ferret's defaults).
FAITHFULNESS_BINS = (0.01, 0.05, 0.10, 0.20, 0.50)
# A word: a run of letters/digits/underscores, or one punctuation character.
WORD_PATTERN = re.compile(r"\w+|[^\w\s]")


@dataclass(frozen=True)
class WordSpan:
    """A word of an input field: its text and character offsets into that field."""

    word: str
    start: int
    end: int
    field: str


@dataclass(frozen=True)
class WordScore:
    """A word's attribution toward the explained target (positive: toward it)."""

    word: str
    start: int
    end: int
    score: float
    field: str


@dataclass(frozen=True)
class WordAttention:
    """Word-to-word self-attention, ``weights[layer][head][from_word][to_word]``, words in
    :attr:`Explanation.words` order (special tokens dropped)."""

    layers: int
    heads: int
    weights: tuple[tuple[tuple[tuple[float, ...], ...], ...], ...]


@dataclass(frozen=True)
class Explanation:
    """One input's explanation; :meth:`to_json` is its ``nlpsuite explain --json`` record."""

    task: str
    method: str
    # The explained target: a label, or the question-answering answer text.
    label: str
    # The model's probability of that target on the full input.
    probability: float
    words: tuple[WordScore, ...]
    comprehensiveness: float
    sufficiency: float
    convergence_delta: float | None
    attention: WordAttention | None
    input: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        """The JSONL record (plain dicts and lists)."""
        attention = None
        if self.attention is not None:
            attention = {"layers": self.attention.layers, "heads": self.attention.heads,
                         "weights": _lists(self.attention.weights)}
        return {
            "task": self.task, "method": self.method, "label": self.label,
            "probability": self.probability, "input": dict(self.input),
            "words": [{"word": w.word, "start": w.start, "end": w.end, "score": w.score,
                       "field": w.field} for w in self.words],
            "comprehensiveness": self.comprehensiveness, "sufficiency": self.sufficiency,
            "convergence_delta": self.convergence_delta, "attention": attention,
        }


def _lists(value: Any) -> Any:
    return [_lists(item) for item in value] if isinstance(value, tuple | list) else value


@dataclass(frozen=True)
class GradientParts:
    """What integrated gradients needs from a model with gradients (torch).

    ``embeddings``: the input word-embedding module (``model.get_input_embeddings()``), the
    layer IG attributes at. ``forwards``: functions from a batch of token ids (a ``(n, T)``
    long tensor, rows like :attr:`Prepared.input_ids`) to the target's score per row, ``(n,)``;
    one per output the target reads (question answering: start, end), whose attributions are
    summed, as captum's SQuAD tutorial attributes start and end separately."""

    embeddings: Any
    forwards: tuple[Callable[[Any], Any], ...]


@dataclass(frozen=True)
class Prepared:
    """One input record encoded for explaining, toward one target.

    ``token_words[i]`` is the index in ``words`` of token ``i``, None for special tokens (CLS,
    SEP), which are never perturbed. ``probability`` takes rows of token ids as long as
    ``input_ids`` (a word's tokens set to ``pad_id``: the word is masked; to :data:`DELETED`:
    removed from the text) and returns the target's probability for each, batched, through
    the model's forward pass on any backend. ``removable[w]``: word ``w`` may be removed to
    measure faithfulness (empty: every word). ``gradients`` and ``attentions`` (a function
    giving one ``(heads, T, T)`` tensor per layer for the full input) are None on a backend
    without them (ONNX Runtime, CTranslate2)."""

    label: str
    words: tuple[WordSpan, ...]
    token_words: tuple[int | None, ...]
    input_ids: tuple[int, ...]
    pad_id: int
    probability: Callable[[Sequence[Sequence[int]]], list[float]]
    removable: tuple[bool, ...] = ()
    gradients: GradientParts | None = None
    attentions: Callable[[], Sequence[Any]] | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)

    def baseline_ids(self) -> list[int]:
        """The integrated-gradients baseline: every word token PAD, special tokens kept."""
        return [self.pad_id if word is not None else token
                for token, word in zip(self.input_ids, self.token_words, strict=True)]

    def masked(self, present: Sequence[bool], absent: int) -> list[int]:
        """``input_ids`` with the tokens of each word not ``present`` set to ``absent``
        (``pad_id`` to mask, :data:`DELETED` to remove)."""
        return [absent if word is not None and not present[word] else token
                for token, word in zip(self.input_ids, self.token_words, strict=True)]


class Explainable(Protocol):
    """A task's loaded model, ready to explain inputs (what ``Task.explain`` returns)."""

    def prepare(self, record: Any, label: str | None) -> Prepared:
        """Encode ``record`` (the task's input type) toward ``label``, or toward the model's
        prediction when None; a label the model does not have is an
        :class:`~nlpsuite.errors.NlpsuiteError` naming the model's labels."""
        ...


def split_words(text: str, field_name: str) -> list[WordSpan]:
    """``text``'s words with character offsets: runs of word characters, and each punctuation
    mark on its own (as BERT's pre-tokenizer splits), whitespace dropped."""
    return [WordSpan(match.group(), match.start(), match.end(), field_name)
            for match in WORD_PATTERN.finditer(text)]


def align_tokens(
    words: Sequence[Sequence[WordSpan]],
    offsets: Sequence[tuple[int, int]],
    token_fields: Sequence[int | None],
) -> tuple[tuple[WordSpan, ...], tuple[int | None, ...]]:
    """Map tokens to words through the tokenizer's offset mapping.

    ``words[f]`` are field ``f``'s words; ``token_fields[i]`` is the field token ``i`` was cut
    from (None: a special token), its ``offsets[i]`` character offsets into that field. Returns
    the words that have a token (a word truncation cut off is left out), fields in order, and
    for each token the index of the word its span starts in (None: special, or no word)."""
    located: list[tuple[int, int] | None] = []
    for (start, end), field_index in zip(offsets, token_fields, strict=True):
        where = None
        if field_index is not None and end > start:
            where = next(((field_index, i) for i, word in enumerate(words[field_index])
                          if word.start <= start < word.end), None)
        located.append(where)
    used = sorted({where for where in located if where is not None})
    index = {where: position for position, where in enumerate(used)}
    kept = tuple(words[f][i] for f, i in used)
    return kept, tuple(None if where is None else index[where] for where in located)


def kept_positions(row: Sequence[int]) -> list[int]:
    """The token positions of a :attr:`Prepared.probability` row that are not :data:`DELETED`."""
    return [position for position, token in enumerate(row) if token != DELETED]


def merge_to_words(token_scores: Sequence[float], token_words: Sequence[int | None],
                   count: int) -> list[float]:
    """Sub-token scores summed per word (``count`` words); special tokens' scores dropped."""
    merged = [0.0] * count
    for score, word in zip(token_scores, token_words, strict=True):
        if word is not None:
            merged[word] += float(score)
    return merged


def top_k_count(k: float, words: int) -> int:
    """How many of ``words`` words the top ``k`` (a fraction) are: ferret's rounding,
    ``int(k * words)`` (floor); a bin that comes to 0 words is skipped."""
    return int(k * words)


def faithfulness(
    scores: Sequence[float],
    removable: Sequence[bool],
    full: float,
    probability_without: Callable[[list[list[bool]]], list[float]],
) -> tuple[float, float]:
    """Comprehensiveness and sufficiency of word ``scores`` (ERASER; ferret's AOPC forms).

    Words are ranked by score, highest (most toward the target) first, among the ``removable``
    ones. For each k in :data:`FAITHFULNESS_BINS`, the top ``int(k * n)`` words of ``n``
    removable ones (ferret's floor; bins of 0 words are skipped; a text whose bins are all
    empty, fewer than 2 removable words, uses its top word, so both measures always exist):
    comprehensiveness averages ``full - p(text without them)``, sufficiency
    ``full - p(text of them and the words that are not removable)``. Words are ranked by their
    signed score, every word counted whatever its sign (ERASER; ferret's ``only_pos`` would
    leave negative words out). ``probability_without`` takes one presence mask per perturbed
    text (True: the word stays) and returns the target's probability on each, in one batch.
    """
    candidates = {i for i in range(len(scores)) if not removable or removable[i]}
    ranked = sorted(candidates, key=lambda i: (-scores[i], i))
    counts = [top_k_count(k, len(ranked)) for k in FAITHFULNESS_BINS]
    counts = [n for n in counts if n > 0] or ([1] if ranked else [])
    if not counts:
        return 0.0, 0.0
    masks: list[list[bool]] = []
    for n in counts:
        top = set(ranked[:n])
        masks.append([i not in top for i in range(len(scores))])  # top removed
        masks.append([i in top or i not in candidates for i in range(len(scores))])  # top kept
    values = probability_without(masks)
    comprehensiveness = [full - value for value in values[0::2]]
    sufficiency = [full - value for value in values[1::2]]
    return _mean(comprehensiveness), _mean(sufficiency)


def _mean(values: Sequence[float]) -> float:
    return math.fsum(values) / len(values)
