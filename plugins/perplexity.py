"""perplexity: how well a causal language model predicts plain text, scored as
lm-evaluation-harness scores wikitext.

Each document is encoded without special tokens and scored in windows of at most
``max_length`` tokens, every token exactly once:

- the first window is the prefix token (BOS, else EOS) and the document's first
  ``max_length`` tokens, all of them scored;
- each later window scores the next ``stride`` tokens (fewer at the end) from the
  ``max_length`` tokens that end with them.

With ``stride == max_length`` (the default) these are exactly lm-eval's
``loglikelihood_rolling`` windows (``get_rolling_token_windows`` with a context of one token,
made disjoint); a smaller stride is the strided sliding window of the transformers perplexity
guide: more context per scored token, at ``max_length / stride`` times the work. Windows go
through :meth:`CausalLM.loglikelihoods`, which computes lm-eval's ``_loglikelihood_tokens``.

A document's output record is its log-likelihood and its token, word and byte counts; the
metrics weight by words and bytes over the whole corpus as lm-eval's wikitext task does
(``word_perplexity = exp(-sum loglik / sum words)``, words counted as
``len(re.split(r"\\s+", text))`` and bytes in UTF-8), so bootstrap resamples re-sum rows.

Datasets (``--dataset FILE``) are read by :mod:`.text_documents`: JSONL with a ``text`` field,
or plain text where documents are paragraphs separated by blank lines, or lines when the file
has no blank line (flores200, WMT sources: one segment per line).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpsuite import NlpsuiteError, Option, RunConfig, Task, hookimpl
from nlpsuite.causal import DEFAULT_CAUSAL_MODEL, OFFLINE_HINT, CausalLM, load_causal_lm
from nlpsuite.datasets import Dataset, DatasetFormat
from nlpsuite.metrics import Metric

from .text_documents import TEXT_DOCUMENT_FORMATS, load_text_file

if TYPE_CHECKING:
    import numpy as np

# Columns of a document's statistics row, as the metrics read them.
LOGLIKELIHOOD, WORDS, BYTES, TOKENS = range(4)
WORD_SPLIT = re.compile(r"\s+")


@dataclass(frozen=True)
class PerplexityInput:
    text: str

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise NlpsuiteError("field 'text' is empty")


@dataclass(frozen=True)
class PerplexityOutput:
    """A document's summed log-likelihood (natural log) over its ``tokens``, and its length in
    words and UTF-8 bytes, the units the metrics are weighted by."""

    loglikelihood: float
    tokens: int
    words: int
    bytes: int


def count_words(text: str) -> int:
    """Words as lm-eval counts them for wikitext (a leading space makes an empty first word)."""
    return len(WORD_SPLIT.split(text))


def rolling_windows(
    tokens: Sequence[int], prefix: int, max_length: int, stride: int
) -> list[tuple[list[int], list[int]]]:
    """(context, continuation) pairs scoring each of ``tokens`` once, the model reading at most
    ``max_length`` tokens for each (see the module's docstring)."""
    sequence = [prefix, *tokens]  # sequence[i + 1] is tokens[i]
    windows = []
    start, end = 0, min(max_length, len(tokens))
    while start < len(tokens):
        windows.append((sequence[max(0, end - max_length):start + 1], sequence[start + 1:end + 1]))
        start, end = end, min(end + stride, len(tokens))
    return windows


class PerplexityScorer:
    """Scores documents with a :class:`CausalLM`, all windows of a batch sorted together."""

    def __init__(self, lm: CausalLM, max_length: int, stride: int, batch_size: int) -> None:
        if lm.prefix_token_id is None:
            raise NlpsuiteError("the model has neither a BOS nor an EOS token to start from")
        self.lm = lm
        self.prefix = lm.prefix_token_id
        self.max_length = max_length
        self.stride = stride
        self.batch_size = batch_size

    def __call__(self, texts: Sequence[str]) -> list[PerplexityOutput]:
        encoded = self.lm.encode(texts, special_tokens=False)
        windows = [rolling_windows(ids, self.prefix, self.max_length, self.stride)
                   for ids in encoded]
        scores = iter(self.lm.loglikelihoods([w for each in windows for w in each],
                                             self.batch_size))
        outputs = []
        for text, ids, each in zip(texts, encoded, windows, strict=True):
            # sum() over the windows in order, as lm-eval adds them: the same float.
            loglikelihood = sum(next(scores).logprob for _ in each)
            outputs.append(PerplexityOutput(float(loglikelihood), len(ids), count_words(text),
                                            len(text.encode("utf-8"))))
        return outputs


def check_options(options: Mapping[str, Any]) -> None:
    """The option errors that show without the model, so they come before it loads."""
    max_length, stride = options.get("max_length"), options.get("stride")
    for name, value in (("max_length", max_length), ("stride", stride)):
        if value is not None and value < 1:
            raise NlpsuiteError(f"option '{name}' must be at least 1, got {value}")
    if max_length is not None and stride is not None and stride > max_length:
        raise NlpsuiteError(f"option 'stride' ({stride}) is more than max_length ({max_length})")


def window_settings(options: Mapping[str, Any], window: int) -> tuple[int, int]:
    """``(max_length, stride)``: the options, else the model's ``window`` and max_length."""
    check_options(options)
    max_length = options.get("max_length") or window
    if max_length > window:
        raise NlpsuiteError(f"option 'max_length' ({max_length}) is more than the model's "
                            f"context ({window} tokens)")
    stride = options.get("stride") or max_length
    if stride > max_length:
        raise NlpsuiteError(f"option 'stride' ({stride}) is more than max_length ({max_length}, "
                            f"the model's context)")
    return max_length, stride


def load(config: RunConfig) -> Callable[[Sequence[PerplexityInput]], list[PerplexityOutput]]:
    check_options(config.options)
    lm = load_causal_lm(config)
    max_length, stride = window_settings(config.options, lm.window)
    scorer = PerplexityScorer(lm, max_length, stride, config.batch_size)

    def run(inputs: Sequence[PerplexityInput]) -> list[PerplexityOutput]:
        return scorer([item.text for item in inputs])

    return run


# Metrics: corpus log-likelihood over a corpus count, as lm-eval's weighted_mean.


def _corpus_metric(name: str, column: int, transform: Callable[[float], float],
                   description: str) -> Metric:
    def compute(predictions: Sequence[Sequence[float]], references: Sequence[Any]) -> float:
        count = sum(row[column] for row in predictions)
        if not count:
            raise NlpsuiteError(f"metric '{name}': the documents have no {_UNITS[column]}")
        # lm-eval's order: sum of log-likelihoods / sum of counts, then the transform.
        return transform(sum(row[LOGLIKELIHOOD] for row in predictions) / count)

    def statistics(predictions: Sequence[Sequence[float]], references: Sequence[Any]) -> np.ndarray:
        import numpy as np

        return np.asarray(predictions, dtype=np.float64).reshape(len(predictions), 4)

    def from_statistics(summed: np.ndarray) -> float:
        count = float(summed[column])
        return transform(float(summed[LOGLIKELIHOOD]) / count) if count else math.nan

    return Metric(name, False, compute, description, statistics=statistics,
                  from_statistics=from_statistics, scale=None)


_UNITS = {WORDS: "words", BYTES: "bytes", TOKENS: "tokens"}


def _perplexity(mean: float) -> float:
    return math.exp(-mean)


def _bits(mean: float) -> float:
    return -mean / math.log(2)


METRICS = (
    _corpus_metric("word_perplexity", WORDS, _perplexity,
                   "exp(-loglikelihood / words) over the corpus, as lm-eval's wikitext; >= 1"),
    _corpus_metric("byte_perplexity", BYTES, _perplexity,
                   "exp(-loglikelihood / UTF-8 bytes) over the corpus; >= 1"),
    _corpus_metric("bits_per_byte", BYTES, _bits,
                   "-loglikelihood / UTF-8 bytes / ln 2 over the corpus; >= 0"),
    _corpus_metric("token_perplexity", TOKENS, _perplexity,
                   "exp(-loglikelihood / tokens) over the corpus (depends on the tokenizer); "
                   ">= 1"),
)


def scored(output: PerplexityOutput) -> list[float]:
    """A document's statistics row: [loglikelihood, words, bytes, tokens]."""
    return [output.loglikelihood, output.words, output.bytes, output.tokens]


def render(output: PerplexityOutput) -> str:
    mean = output.loglikelihood
    parts = [
        f"word_perplexity {_perplexity(mean / output.words):.4f}",
        f"byte_perplexity {_perplexity(mean / output.bytes):.4f}",
        f"bits_per_byte {_bits(mean / output.bytes):.4f}",
    ]
    if output.tokens:
        parts.append(f"token_perplexity {_perplexity(mean / output.tokens):.4f}")
    counts = f"({output.tokens} tokens, {output.words} words, {output.bytes} bytes)"
    return "  ".join([*parts, f"loglikelihood {mean:.4f}", counts])


TASK = Task(
    name="perplexity",
    description="Perplexity and bits per byte of plain text under a causal LM (SmolLM2 by "
                "default), scored as lm-evaluation-harness scores wikitext.",
    default_model=DEFAULT_CAUSAL_MODEL,
    input_type=PerplexityInput,
    output_type=PerplexityOutput,
    load=load,
    metrics=METRICS,
    options=(
        Option("max_length", int, None,
               "tokens the model reads per window; unset: the model's context"),
        Option("stride", int, None,
               "new tokens scored per window after the first; unset: max_length (lm-eval's "
               "rolling windows), smaller gives each token more context at more cost"),
    ),
    prediction=scored,
    render=render,
    offline_hint=OFFLINE_HINT,
)


@hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    register(TASK)


EVAL_SET = Path(__file__).resolve().parent / "data" / "perplexity-mini.txt"


@hookimpl
def register_datasets(register: Callable[[Dataset], None]) -> None:
    register(Dataset(
        name="perplexity-mini",
        task="perplexity",
        description="10 short news-style paragraphs, written for nlpsuite",
        licence="CC0-1.0",
        load=lambda: load_text_file(EVAL_SET),
        files=(EVAL_SET,),
    ))


@hookimpl
def register_dataset_formats(register: Callable[[DatasetFormat], None]) -> None:
    for found in TEXT_DOCUMENT_FORMATS:
        register(found)
