"""Metrics: a name, a direction, and a corpus-level score computed by the field's reference code.

Each metric scores plain values: a task's ``prediction`` turns its output records into them.
Scales follow the reference implementations: scikit-learn and rouge-score in [0, 1], SQuAD and
sacrebleu in [0, 100].
"""

from __future__ import annotations

import collections
import math
import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Metric:
    """Scores a whole corpus: ``compute(predictions, references) -> float``."""

    name: str
    higher_is_better: bool
    compute: Callable[[Sequence[Any], Sequence[Any]], float]
    description: str = ""
    # For metrics whose value depends on settings (sacrebleu), the string that pins them.
    signature: Callable[[Sequence[Any]], str] | None = None


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


ACCURACY = Metric("accuracy", True, accuracy, "fraction of labels predicted exactly")
MACRO_F1 = Metric("macro_f1", True, macro_f1, "F1 averaged over labels")
MCC = Metric("mcc", True, matthews, "Matthews correlation coefficient")


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


def _best_over_golds(
    per_answer: Callable[[str, str], float],
) -> Callable[[Sequence[str], Sequence[Sequence[str]]], float]:
    def score(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> float:
        if not references:
            return 0.0
        total = sum(
            max((per_answer(prediction or "", gold) for gold in golds), default=0.0)
            for prediction, golds in zip(predictions, references, strict=True)
        )
        return 100.0 * total / len(references)

    return score


EXACT_MATCH = Metric(
    "exact_match", True, _best_over_golds(answer_exact), "SQuAD v1.1 exact match, 0-100"
)
SQUAD_F1 = Metric("f1", True, _best_over_golds(answer_f1), "SQuAD v1.1 token F1, 0-100")


# Generation: sacrebleu's corpus BLEU and chrF, rouge-score's ROUGE F-measure.


def _reference_streams(references: Sequence[Sequence[str] | str]) -> list[list[str]]:
    """Per-segment reference lists to sacrebleu's one-stream-per-reference layout."""
    per_segment = [[refs] if isinstance(refs, str) else list(refs) for refs in references]
    width = max((len(refs) for refs in per_segment), default=1)
    # sacrebleu accepts None for a missing reference when segments have different counts.
    return [[refs[i] if i < len(refs) else None for refs in per_segment] for i in range(width)]  # type: ignore[misc]


def _sacrebleu(kind: str) -> tuple[Callable[..., float], Callable[[Sequence[Any]], str]]:
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

    return compute, signature


_bleu, _bleu_signature = _sacrebleu("bleu")
_chrf, _chrf_signature = _sacrebleu("chrf")
BLEU = Metric("bleu", True, _bleu, "sacrebleu corpus BLEU, 0-100", _bleu_signature)
CHRF = Metric("chrf", True, _chrf, "sacrebleu corpus chrF, 0-100", _chrf_signature)


def _rouge(kind: str) -> Callable[[Sequence[str], Sequence[Any]], float]:
    def compute(predictions: Sequence[str], references: Sequence[Any]) -> float:
        from rouge_score import rouge_scorer

        scorer = rouge_scorer.RougeScorer([kind], use_stemmer=True)
        total = 0.0
        for prediction, refs in zip(predictions, references, strict=True):
            golds = [refs] if isinstance(refs, str) else list(refs)
            if kind == "rougeLsum":  # rouge-score splits summary sentences on newlines only
                prediction = _sentence_lines(prediction)
                golds = [_sentence_lines(gold) for gold in golds]
            total += scorer.score_multi(golds, prediction)[kind].fmeasure
        return total / len(predictions) if predictions else 0.0

    return compute


def _sentence_lines(text: str) -> str:
    return "\n".join(part for part in re.split(r"(?<=[.!?])\s+", text.strip()) if part)


ROUGE = tuple(
    Metric(name, True, _rouge(name), f"rouge-score {name} F-measure with stemming, 0-1")
    for name in ("rouge1", "rouge2", "rougeL", "rougeLsum")
)


# Retrieval: ranked document ids against relevance judgements {doc_id: grade}.


def ndcg_at(k: int) -> Callable[[Sequence[Sequence[str]], Sequence[Mapping[str, int]]], float]:
    def compute(rankings: Sequence[Sequence[str]], qrels: Sequence[Mapping[str, int]]) -> float:
        total = 0.0
        for ranking, relevant in zip(rankings, qrels, strict=True):
            gains = [relevant.get(doc, 0) for doc in ranking[:k]]
            ideal = sorted((grade for grade in relevant.values() if grade > 0), reverse=True)[:k]
            dcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(gains))
            idcg = sum(gain / math.log2(rank + 2) for rank, gain in enumerate(ideal))
            total += dcg / idcg if idcg > 0 else 0.0
        return total / len(rankings) if rankings else 0.0

    return compute


def mrr_at(k: int) -> Callable[[Sequence[Sequence[str]], Sequence[Mapping[str, int]]], float]:
    def compute(rankings: Sequence[Sequence[str]], qrels: Sequence[Mapping[str, int]]) -> float:
        total = 0.0
        for ranking, relevant in zip(rankings, qrels, strict=True):
            for rank, doc in enumerate(ranking[:k], 1):
                if relevant.get(doc, 0) > 0:
                    total += 1.0 / rank
                    break
        return total / len(rankings) if rankings else 0.0

    return compute


def recall_at(k: int) -> Callable[[Sequence[Sequence[str]], Sequence[Mapping[str, int]]], float]:
    def compute(rankings: Sequence[Sequence[str]], qrels: Sequence[Mapping[str, int]]) -> float:
        total = 0.0
        for ranking, relevant in zip(rankings, qrels, strict=True):
            wanted = {doc for doc, grade in relevant.items() if grade > 0}
            total += len(wanted & set(ranking[:k])) / len(wanted) if wanted else 0.0
        return total / len(rankings) if rankings else 0.0

    return compute


NDCG_10 = Metric("ndcg@10", True, ndcg_at(10), "nDCG@10 with linear gains, as BEIR computes it")
MRR_10 = Metric("mrr@10", True, mrr_at(10), "mean reciprocal rank of the first relevant hit")
RECALL_10 = Metric("recall@10", True, recall_at(10), "share of relevant documents in the top 10")
RECALL_100 = Metric(
    "recall@100", True, recall_at(100), "share of relevant documents in the top 100"
)


# Similarity: predicted scores against gold scores (scipy).


def spearman(predictions: Sequence[float], references: Sequence[float]) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(predictions, references).statistic)


def pearson(predictions: Sequence[float], references: Sequence[float]) -> float:
    from scipy.stats import pearsonr

    return float(pearsonr(predictions, references).statistic)


SPEARMAN = Metric("spearman", True, spearman, "Spearman rank correlation with gold scores")
PEARSON = Metric("pearson", True, pearson, "Pearson correlation with gold scores")
