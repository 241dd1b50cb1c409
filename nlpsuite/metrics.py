"""Metrics: a name, a direction, and a corpus-level score computed by the field's reference code.

Each metric scores plain values: a task's ``prediction`` turns its output records into them.
Scales follow the reference implementations: scikit-learn and rouge-score in [0, 1], SQuAD and
sacrebleu in [0, 100], correlations and MCC in [-1, 1]; each ``Metric`` says its ``scale``.

Bootstrap confidence intervals recompute a metric on 1,000 resampled corpora. Calling the
reference library 1,000 times is far too slow for BLEU on a few thousand segments, so a metric may
also give per-example *statistics*: one row of numbers per example such that the corpus score is a
function of their column sums, ``from_statistics(statistics(p, r).sum(0)) == compute(p, r)`` (to
float rounding). Resampling then only re-sums rows. This is how sacrebleu's own bootstrap works;
here BLEU and chrF use sacrebleu's segment statistics, mean-of-examples metrics (SQuAD, ROUGE,
retrieval, accuracy) a ``[value, 1]`` row, and macro-F1/MCC one confusion-matrix cell per example.
``compute`` always stays the reference-library call and gives the reported value.
"""

from __future__ import annotations

import collections
import math
import re
import string
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nlpsuite.errors import NlpsuiteError
from nlpsuite.scales import CORRELATION, PERCENT, UNIT, Scale, check_scale

if TYPE_CHECKING:
    import numpy as np

Statistics = Callable[[Sequence[Any], Sequence[Any]], "np.ndarray"]


@dataclass(frozen=True)
class Metric:
    """Scores a whole corpus: ``compute(predictions, references) -> float``.

    ``statistics`` and ``from_statistics`` are optional and come together: ``statistics`` gives an
    ``(n_examples, k)`` array, ``from_statistics`` turns a column sum of it (of any subset or
    resample of its rows) into the metric's value. :func:`bootstrap` uses them when present.
    ``scale`` is the range of the values, (low, high), None where unknown: what reports print
    beside each score and what decides its precision (:mod:`nlpsuite.scales`).
    """

    name: str
    higher_is_better: bool
    compute: Callable[[Sequence[Any], Sequence[Any]], float]
    description: str = ""
    # For metrics whose value depends on settings (sacrebleu), the string that pins them.
    signature: Callable[[Sequence[Any]], str] | None = None
    statistics: Statistics | None = None
    from_statistics: Callable[[np.ndarray], float] | None = None
    scale: Scale | None = UNIT

    def __post_init__(self) -> None:
        if (self.statistics is None) != (self.from_statistics is None):
            raise ValueError(f"metric '{self.name}': give statistics and from_statistics together")
        check_scale(self.scale, f"metric '{self.name}'")


# Mean-of-examples metrics: a row [value, 1] per example; the sum of the second column is the
# number of examples, so any resample's mean is sum / count.


def _value_rows(
    per_example: Callable[[Any, Any], float],
) -> Statistics:
    def statistics(predictions: Sequence[Any], references: Sequence[Any]) -> np.ndarray:
        import numpy as np

        values = [
            per_example(prediction, reference)
            for prediction, reference in zip(predictions, references, strict=True)
        ]
        rows = np.ones((len(values), 2), dtype=np.float64)
        rows[:, 0] = values
        return rows

    return statistics


def mean_metric(name: str, higher_is_better: bool, description: str,
                scale: Scale | None = UNIT) -> Metric:
    """A metric whose predictions are per-example values (references unused): their mean,
    with the exact bootstrap of mean-of-examples metrics."""

    statistics = _value_rows(lambda prediction, reference: float(prediction))
    from_statistics = _mean_of_rows()

    def compute(predictions: Sequence[Any], references: Sequence[Any]) -> float:
        # Through the statistics, so the value and its resamples sum alike.
        return from_statistics(statistics(predictions, references).sum(axis=0))

    return Metric(name, higher_is_better, compute, description, statistics=statistics,
                  from_statistics=from_statistics, scale=scale)


def _mean_of_rows(scale: float = 1.0) -> Callable[[np.ndarray], float]:
    def from_statistics(summed: np.ndarray) -> float:
        total, count = float(summed[0]), float(summed[1])
        # Same operation order as compute: scale * total, then / count.
        return scale * total / count if count else 0.0

    return from_statistics


# Classification: predicted labels against gold labels (scikit-learn).


def accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(references, predictions))


def macro_f1(predictions: Sequence[str], references: Sequence[str]) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(references, predictions, average="macro", zero_division=0))


def matthews(predictions: Sequence[str], references: Sequence[str]) -> float:
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(references, predictions))


def confusion_statistics(predictions: Sequence[Any], references: Sequence[Any]) -> np.ndarray:
    """One-hot confusion-matrix cells: row i has a 1 at ``true * K + predicted`` (K labels).

    Summed, the rows are the confusion matrix, flattened. Label order does not matter to F1 or
    MCC, so labels are numbered in order of appearance (no sorting: mixed types stay legal).
    The array is ``n x K**2``, which is fine for the handful of labels classification has.
    """
    import numpy as np

    index = {label: i for i, label in enumerate(dict.fromkeys([*references, *predictions]))}
    k = len(index)
    rows = np.zeros((len(predictions), k * k), dtype=np.float64)
    cells = [
        index[reference] * k + index[prediction]
        for prediction, reference in zip(predictions, references, strict=True)
    ]
    rows[np.arange(len(cells)), cells] = 1.0
    return rows


def _confusion(summed: np.ndarray) -> np.ndarray:
    k = math.isqrt(len(summed))
    return summed.reshape(k, k)


def macro_f1_from_confusion(summed: np.ndarray) -> float:
    """scikit-learn's macro F1 (zero_division=0) from a flattened confusion matrix.

    Only labels that occur (in gold or predicted) count, as scikit-learn averages over the labels
    it sees: a label absent from a bootstrap resample must not add a 0 to the average.
    """
    import numpy as np

    matrix = _confusion(summed)
    true, predicted, hits = matrix.sum(axis=1), matrix.sum(axis=0), np.diag(matrix)
    seen = (true + predicted) > 0
    if not seen.any():
        return 0.0
    # sklearn: (1 + beta^2) * tp / (beta^2 * true + predicted), beta = 1.
    return float(np.mean(2.0 * hits[seen] / (true[seen] + predicted[seen])))


def matthews_from_confusion(summed: np.ndarray) -> float:
    """scikit-learn's ``matthews_corrcoef`` from a flattened confusion matrix, same arithmetic."""
    import numpy as np

    matrix = _confusion(summed)
    t_sum = matrix.sum(axis=1, dtype=np.float64)
    p_sum = matrix.sum(axis=0, dtype=np.float64)
    n_correct = np.trace(matrix, dtype=np.float64)
    n_samples = p_sum.sum()
    cov_ytyp = n_correct * n_samples - np.dot(t_sum, p_sum)
    cov_ypyp = n_samples**2 - np.dot(p_sum, p_sum)
    cov_ytyt = n_samples**2 - np.dot(t_sum, t_sum)
    both = cov_ypyp * cov_ytyt
    return 0.0 if both == 0 else float(cov_ytyp / np.sqrt(both))


ACCURACY = Metric(
    "accuracy",
    True,
    accuracy,
    "fraction of labels predicted exactly",
    statistics=_value_rows(lambda prediction, reference: float(prediction == reference)),
    from_statistics=_mean_of_rows(),
)
MACRO_F1 = Metric(
    "macro_f1",
    True,
    macro_f1,
    "F1 averaged over labels",
    statistics=confusion_statistics,
    from_statistics=macro_f1_from_confusion,
)
MCC = Metric(
    "mcc",
    True,
    matthews,
    "Matthews correlation coefficient",
    statistics=confusion_statistics,
    from_statistics=matthews_from_confusion,
    scale=CORRELATION,
)


# Extractive QA: answer text against all gold answers, as the official SQuAD v1.1 script does.


_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, articles and extra whitespace (official SQuAD v1.1)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def answer_exact(prediction: str, gold: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(gold))


def answer_f1(prediction: str, gold: str) -> float:
    predicted, expected = normalize_answer(prediction).split(), normalize_answer(gold).split()
    common = collections.Counter(predicted) & collections.Counter(expected)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(predicted), same / len(expected)
    return 2 * precision * recall / (precision + recall)


def _best_over(per_answer: Callable[[str, str], float]) -> Callable[[Any, Sequence[str]], float]:
    """One question's score: the best over its gold answers (official v1.1).

    A question without gold answers (SQuAD v2.0 unanswerable) is right only when the prediction
    is empty after normalisation, as the official v2.0 script scores it; v1.1 has no such
    questions, so its figures are unchanged.
    """

    def score(prediction: Any, golds: Sequence[str]) -> float:
        prediction = prediction or ""
        if not golds:
            return float(normalize_answer(prediction) == "")
        return max(per_answer(prediction, gold) for gold in golds)

    return score


def _squad_mean(
    per_question: Callable[[Any, Sequence[str]], float],
) -> Callable[[Sequence[str], Sequence[Sequence[str]]], float]:
    def compute(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
        if not references:
            return 0.0
        # Added in order with += and scaled last, as the official v1.1 script accumulates
        # (sum() would differ in the last bits on Python 3.12+, which compensates).
        total = 0.0
        for prediction, golds in zip(predictions, references, strict=True):
            total += per_question(prediction, golds)
        return 100.0 * total / len(references)

    return compute


def _kept_golds(per_question: Callable[[Any, Sequence[str]], float]) -> Callable[..., float]:
    def score(prediction: Any, golds: Sequence[str]) -> float:
        # Official v2.0: gold answers that normalise to "" are dropped; none left = no answer.
        return per_question(prediction, [gold for gold in golds if normalize_answer(gold)])

    return score


_exact_question, _f1_question = _best_over(answer_exact), _best_over(answer_f1)
# One question's score as the official scripts compute it: v1.1 (max over the gold answers), and
# v2.0 (the same, but gold answers that normalise to "" are dropped and a question left with no
# gold answer is right only for an empty prediction). ``None`` (no prediction) scores as "".
squad_exact: Callable[[str | None, Sequence[str]], float] = _exact_question
squad_f1: Callable[[str | None, Sequence[str]], float] = _f1_question
squad_v2_exact: Callable[[str | None, Sequence[str]], float] = _kept_golds(_exact_question)
squad_v2_f1: Callable[[str | None, Sequence[str]], float] = _kept_golds(_f1_question)


def _squad_metric(
    name: str, per_question: Callable[[Any, Sequence[str]], float], description: str
) -> Metric:
    return Metric(name, True, _squad_mean(per_question), description,
                  statistics=_value_rows(per_question), from_statistics=_mean_of_rows(100.0),
                  scale=PERCENT)


EXACT_MATCH = _squad_metric("exact_match", _exact_question, "SQuAD v1.1 exact match, 0-100")
SQUAD_F1 = _squad_metric("f1", _f1_question, "SQuAD v1.1 token F1, 0-100")
# What a SQuAD v2.0 file is scored with in place of the two above (see Dataset.metrics).
SQUAD_V2_METRICS = (
    _squad_metric("exact_match", squad_v2_exact, "SQuAD v2.0 exact match, 0-100"),
    _squad_metric("f1", squad_v2_f1, "SQuAD v2.0 token F1, 0-100"),
)


# Generation: sacrebleu's corpus BLEU and chrF, rouge-score's ROUGE F-measure.


def _reference_streams(references: Sequence[Sequence[str] | str]) -> list[list[str]]:
    """Per-segment reference lists to sacrebleu's one-stream-per-reference layout."""
    per_segment = [[refs] if isinstance(refs, str) else list(refs) for refs in references]
    width = max((len(refs) for refs in per_segment), default=1)
    # sacrebleu accepts None for a missing reference when segments have different counts.
    return [[refs[i] if i < len(refs) else None for refs in per_segment] for i in range(width)]  # type: ignore[misc]


def _sacrebleu(kind: str) -> Metric:
    """BLEU or chrF with sacrebleu's defaults, and sacrebleu's own per-segment statistics."""

    def scorer() -> Any:
        from sacrebleu.metrics import BLEU, CHRF

        return BLEU() if kind == "bleu" else CHRF()

    def compute(predictions: Sequence[str], references: Sequence[Any]) -> float:
        return float(scorer().corpus_score(list(predictions), _reference_streams(references)).score)

    def signature(references: Sequence[Any]) -> str:
        metric = scorer()  # sacrebleu knows the number of references only after scoring
        streams = _reference_streams(references[:1])
        metric.corpus_score([streams[0][0] or ""], streams)
        return str(metric.get_signature())

    def statistics(predictions: Sequence[str], references: Sequence[Any]) -> np.ndarray:
        import numpy as np

        # What corpus_score sums (sacrebleu 2.x, also behind its paired bootstrap): BLEU
        # [hyp_len, ref_len, matches x4, totals x4]; chrF [hyp, ref, match] per n-gram order.
        segments = scorer()._extract_corpus_statistics(
            list(predictions), _reference_streams(references)
        )
        return np.asarray(segments, dtype=np.float64).reshape(len(predictions), -1)

    shared: list[Any] = []  # one scorer for all resamples, built on first use (cheap import)

    def from_statistics(summed: np.ndarray) -> float:
        if not shared:
            shared.append(scorer())
        # A copy: BLEU's add-k smoothing would add to the array in place. Integer counts are
        # exact in float64, so the arithmetic is the same as on corpus_score's int sums.
        return float(shared[0]._compute_score_from_stats(summed.copy()).score)

    description = f"sacrebleu corpus {'BLEU' if kind == 'bleu' else 'chrF'}, 0-100"
    return Metric(kind, True, compute, description, signature, statistics, from_statistics, PERCENT)


BLEU = _sacrebleu("bleu")
CHRF = _sacrebleu("chrf")


def _rouge_scorer(kind: str) -> Callable[[str, Any], float]:
    """One example's rouge-score F-measure; the scorer is built once per call site."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer([kind], use_stemmer=True)

    def score(prediction: str, refs: Any) -> float:
        golds = [refs] if isinstance(refs, str) else list(refs)
        if kind == "rougeLsum":  # rouge-score splits summary sentences on newlines only
            prediction = _sentence_lines(prediction)
            golds = [_sentence_lines(gold) for gold in golds]
        return float(scorer.score_multi(golds, prediction)[kind].fmeasure)

    return score


def _rouge(kind: str) -> Metric:
    def compute(predictions: Sequence[str], references: Sequence[Any]) -> float:
        score = _rouge_scorer(kind)
        total = 0.0
        for prediction, refs in zip(predictions, references, strict=True):
            total += score(prediction, refs)
        return total / len(predictions) if predictions else 0.0

    def statistics(predictions: Sequence[str], references: Sequence[Any]) -> np.ndarray:
        return _value_rows(_rouge_scorer(kind))(predictions, references)

    return Metric(
        kind,
        True,
        compute,
        f"rouge-score {kind} F-measure with stemming, 0-1",
        statistics=statistics,
        from_statistics=_mean_of_rows(),
    )


def _sentence_lines(text: str) -> str:
    return "\n".join(part for part in re.split(r"(?<=[.!?])\s+", text.strip()) if part)


ROUGE = tuple(_rouge(name) for name in ("rouge1", "rouge2", "rougeL", "rougeLsum"))


# Retrieval: ranked document ids against relevance judgements {doc_id: grade}.

Ranking = Sequence[str]
Qrels = Mapping[str, int]


def _ndcg(k: int) -> Callable[[Ranking, Qrels], float]:
    def score(ranking: Ranking, relevant: Qrels) -> float:
        gains = [relevant.get(doc, 0) for doc in ranking[:k]]
        ideal = sorted((grade for grade in relevant.values() if grade > 0), reverse=True)[:k]
        dcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(gains))
        idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
        return dcg / idcg if idcg > 0 else 0.0

    return score


def _mrr(k: int) -> Callable[[Ranking, Qrels], float]:
    def score(ranking: Ranking, relevant: Qrels) -> float:
        for rank, doc in enumerate(ranking[:k], 1):
            if relevant.get(doc, 0) > 0:
                return 1.0 / rank
        return 0.0

    return score


def _recall(k: int) -> Callable[[Ranking, Qrels], float]:
    def score(ranking: Ranking, relevant: Qrels) -> float:
        wanted = {doc for doc, grade in relevant.items() if grade > 0}
        return len(wanted & set(ranking[:k])) / len(wanted) if wanted else 0.0

    return score


def _query_mean(
    per_query: Callable[[Ranking, Qrels], float],
) -> Callable[[Sequence[Ranking], Sequence[Qrels]], float]:
    def compute(rankings: Sequence[Ranking], qrels: Sequence[Qrels]) -> float:
        total = 0.0
        for ranking, relevant in zip(rankings, qrels, strict=True):
            total += per_query(ranking, relevant)
        return total / len(rankings) if rankings else 0.0

    return compute


def ndcg_at(k: int) -> Callable[[Sequence[Ranking], Sequence[Qrels]], float]:
    return _query_mean(_ndcg(k))


def mrr_at(k: int) -> Callable[[Sequence[Ranking], Sequence[Qrels]], float]:
    return _query_mean(_mrr(k))


def recall_at(k: int) -> Callable[[Sequence[Ranking], Sequence[Qrels]], float]:
    return _query_mean(_recall(k))


def _retrieval(name: str, per_query: Callable[[Ranking, Qrels], float], text: str) -> Metric:
    return Metric(
        name,
        True,
        _query_mean(per_query),
        text,
        statistics=_value_rows(per_query),
        from_statistics=_mean_of_rows(),
    )


NDCG_10 = _retrieval("ndcg@10", _ndcg(10), "nDCG@10 with linear gains, as BEIR computes it")
MRR_10 = _retrieval("mrr@10", _mrr(10), "mean reciprocal rank of the first relevant hit")
RECALL_10 = _retrieval("recall@10", _recall(10), "share of relevant documents in the top 10")
RECALL_100 = _retrieval("recall@100", _recall(100), "share of relevant documents in the top 100")


# Similarity: predicted scores against gold scores (scipy). No statistics: a rank correlation has
# no additive per-example form, and recomputing scipy 1,000 times takes well under a second.


def spearman(predictions: Sequence[float], references: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    _check_correlation("spearman", predictions, references)
    return float(spearmanr(predictions, references).statistic)


def pearson(predictions: Sequence[float], references: Sequence[float]) -> float:
    from scipy.stats import pearsonr

    _check_correlation("pearson", predictions, references)
    return float(pearsonr(predictions, references).statistic)


def _check_correlation(
    name: str, predictions: Sequence[float], references: Sequence[float]
) -> None:
    """A correlation needs two points and variation on both sides; scipy would return NaN."""
    for side, values in (("predictions", predictions), ("references", references)):
        if len(set(values)) < 2:
            raise NlpsuiteError(
                f"{name} is undefined here: the {len(values)} {side} are all equal"
                if values else f"{name} is undefined for no examples"
            )


SPEARMAN = Metric("spearman", True, spearman, "Spearman rank correlation with gold scores",
                  scale=CORRELATION)
PEARSON = Metric("pearson", True, pearson, "Pearson correlation with gold scores",
                 scale=CORRELATION)


BUILT_IN: tuple[Metric, ...] = (
    ACCURACY,
    MACRO_F1,
    MCC,
    EXACT_MATCH,
    SQUAD_F1,
    BLEU,
    CHRF,
    *ROUGE,
    NDCG_10,
    MRR_10,
    RECALL_10,
    RECALL_100,
    SPEARMAN,
    PEARSON,
)


# Bootstrap: confidence intervals and the paired significance test.


@dataclass(frozen=True)
class Score:
    """A metric's value on the whole corpus and its bootstrap confidence interval (None without
    resamples: an interval of one point would claim certainty that nothing measured)."""

    value: float
    low: float | None
    high: float | None


# Resample indices are drawn this many at a time (rows x examples), so memory stays bounded on
# large corpora; the chunking depends only on the corpus size, so a seed gives the same
# resamples whichever path (statistics or recompute) consumes them.
_CHUNK_CELLS = 1 << 22


def _resamples(n: int, resamples: int, seed: int) -> Iterator[np.ndarray]:
    """``resamples`` rows of ``n`` indices drawn with replacement, in chunks of rows."""
    import numpy as np

    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_CELLS // max(n, 1))
    for start in range(0, resamples, rows):
        yield rng.integers(0, n, size=(min(rows, resamples - start), n))


def _resampled_sums(stats: np.ndarray, chunk: np.ndarray) -> np.ndarray:
    """Column sums of ``stats`` over each row of resample indices, as counts @ stats."""
    import numpy as np

    c, n = chunk.shape
    flat = (chunk + (np.arange(c) * n)[:, None]).ravel()
    counts = np.bincount(flat, minlength=c * n).reshape(c, n).astype(np.float64)
    return counts @ stats


def _resampled_values(
    metric: Metric,
    predictions: Sequence[Any],
    references: Sequence[Any],
    resamples: int,
    seed: int,
) -> np.ndarray:
    """The metric on each of ``resamples`` seeded bootstrap resamples of the corpus."""
    import numpy as np

    n = len(predictions)
    values: list[float] = []
    if metric.statistics is not None and metric.from_statistics is not None:
        stats = np.asarray(metric.statistics(predictions, references), dtype=np.float64)
        for chunk in _resamples(n, resamples, seed):
            values.extend(metric.from_statistics(row) for row in _resampled_sums(stats, chunk))
    else:
        for chunk in _resamples(n, resamples, seed):
            for picked in chunk:
                values.append(_value_or_nan(
                    metric, [predictions[i] for i in picked], [references[i] for i in picked]
                ))
    return np.asarray(values, dtype=np.float64)


def _value_or_nan(metric: Metric, predictions: Sequence[Any], references: Sequence[Any]) -> float:
    # A resample can be degenerate where the corpus is not (all its scores equal): it is left out.
    try:
        return float(metric.compute(predictions, references))
    except NlpsuiteError:
        return math.nan


def bootstrap(
    metric: Metric,
    predictions: Sequence[Any],
    references: Sequence[Any],
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Score:
    """The metric on the whole corpus (``compute``) and a seeded percentile bootstrap interval.

    Uses the metric's statistics when it has them (exact, and fast), otherwise recomputes the
    metric on every resample. Resamples where the metric is undefined (NaN) are left out.
    """
    import numpy as np

    if len(predictions) != len(references):
        raise NlpsuiteError(
            f"metric '{metric.name}': {len(predictions)} predictions for "
            f"{len(references)} references"
        )
    if resamples < 0:
        raise NlpsuiteError(f"bootstrap resamples must be 0 or more, got {resamples}")
    value = metric.compute(predictions, references)
    if resamples == 0:
        return Score(value, None, None)
    if len(predictions) < 2:
        return Score(value, value, value)
    draws = _resampled_values(metric, predictions, references, resamples, seed)
    draws = draws[~np.isnan(draws)]
    if draws.size == 0:
        return Score(value, None, None)  # no resample defines the metric: no interval
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(draws, [tail, 100.0 - tail])
    return Score(value, float(low), float(high))


def paired_bootstrap(
    metric: Metric,
    predictions_a: Sequence[Any],
    predictions_b: Sequence[Any],
    references: Sequence[Any],
    resamples: int = 1000,
    seed: int = 0,
) -> float:
    """Two-sided p-value that systems A and B differ on ``metric`` (paired bootstrap test).

    Koehn (2004) as sacrebleu's ``--paired-bs`` runs it: both systems are scored on the same
    resamples of the test set, the resampled differences are centred on their mean (the null
    hypothesis of no difference), and p is the share of centred differences at least as large
    as the observed one, with the usual +1 correction: ``(count + 1) / (resamples + 1)``.

    Two deliberate differences from sacrebleu 2.6: the differences are signed before centring
    (sacrebleu centres absolute differences), and ties count (``>=``; sacrebleu uses ``>``), so
    a system compared with itself gets p = 1, not 1 / (resamples + 1).
    """
    import numpy as np

    n = len(references)
    if len(predictions_a) != n or len(predictions_b) != n:
        raise NlpsuiteError(
            f"paired bootstrap: {len(predictions_a)} and {len(predictions_b)} predictions "
            f"for {n} references"
        )
    if resamples < 1:
        raise NlpsuiteError(f"paired bootstrap: resamples must be at least 1, got {resamples}")
    observed = metric.compute(predictions_a, references) - metric.compute(predictions_b, references)
    # The same seed draws the same resamples for both systems: that is what makes it paired.
    scores_a = _resampled_values(metric, predictions_a, references, resamples, seed)
    scores_b = _resampled_values(metric, predictions_b, references, resamples, seed)
    differences = scores_a - scores_b
    centred = differences - differences.mean()
    extreme = int(np.sum(np.abs(centred) >= abs(observed)))
    return (extreme + 1) / (resamples + 1)
