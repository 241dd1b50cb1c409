"""Metrics: the per-example statistics reproduce the reference libraries exactly, the bootstrap is
seeded and fast, the paired test separates systems, and Hugging Face evaluate metrics load."""

from __future__ import annotations

import dataclasses
import importlib.util
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from nlpsuite import NlpsuiteError
from nlpsuite.hf_metrics import evaluate_metric
from nlpsuite.lookup import find_metric
from nlpsuite.metrics import (
    ACCURACY,
    BLEU,
    BUILT_IN,
    CHRF,
    EXACT_MATCH,
    MACRO_F1,
    MCC,
    MRR_10,
    NDCG_10,
    RECALL_10,
    RECALL_100,
    ROUGE,
    SPEARMAN,
    SQUAD_F1,
    Metric,
    bootstrap,
    paired_bootstrap,
)
from tests.conftest import SHARED_DATASETS

WMT = SHARED_DATASETS / "wmt17-en-de-systems"
SYSTEMS = ("uedin-nmt", "LIUM-NMT", "online-B", "PROMT-Rule-based")
needs_wmt = pytest.mark.skipif(not WMT.is_dir(), reason="shared WMT17 files not present")

VOCABULARY = "the a cat dog sat on mat red big small ran home quickly slowly house garden"
WORDS = VOCABULARY.split()


def _sentence(rng: random.Random, low: int = 1, high: int = 12) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(low, high)))


def _labels(rng: random.Random, n: int, labels: str) -> list[str]:
    return [rng.choice(labels) for _ in range(n)]


def _classification(rng: random.Random, n: int) -> tuple[list[Any], list[Any]]:
    # "d" is predicted but never gold: sklearn still averages over it.
    return _labels(rng, n, "abcd"), _labels(rng, n, "abc")


def _squad(rng: random.Random, n: int) -> tuple[list[Any], list[Any]]:
    golds = [
        [_sentence(rng, 1, 4) for _ in range(rng.randint(0, 3))]  # 0 golds: unanswerable
        for _ in range(n)
    ]
    predictions = [
        rng.choice([*gold, ""]) if gold and rng.random() < 0.4 else _sentence(rng, 0, 4)
        for gold in golds
    ]
    return predictions, golds


def _generation(rng: random.Random, n: int) -> tuple[list[Any], list[Any]]:
    predictions = [_sentence(rng) for _ in range(n)]
    # One or two references per segment: sacrebleu pads the second stream with None.
    references = [[_sentence(rng) for _ in range(rng.randint(1, 2))] for _ in range(n)]
    return predictions, references


def _summaries(rng: random.Random, n: int) -> tuple[list[Any], list[Any]]:
    def text() -> str:
        return ". ".join(_sentence(rng, 2, 6) for _ in range(rng.randint(1, 3))) + "."

    return [text() for _ in range(n)], [
        [text() for _ in range(rng.randint(1, 2))] for _ in range(n)
    ]


def _retrieval(rng: random.Random, n: int) -> tuple[list[Any], list[Any]]:
    docs = [f"d{i}" for i in range(40)]
    rankings = [rng.sample(docs, rng.randint(0, 30)) for _ in range(n)]
    qrels = [
        {doc: rng.randint(0, 2) for doc in rng.sample(docs, rng.randint(0, 6))} for _ in range(n)
    ]
    return rankings, qrels


RANDOM_DATA: dict[str, Callable[[random.Random, int], tuple[list[Any], list[Any]]]] = {
    "accuracy": _classification,
    "macro_f1": _classification,
    "mcc": _classification,
    "exact_match": _squad,
    "f1": _squad,
    "bleu": _generation,
    "chrf": _generation,
    **{metric.name: _summaries for metric in ROUGE},
    **{m.name: _retrieval for m in (NDCG_10, MRR_10, RECALL_10, RECALL_100)},
}


def test_every_built_in_metric_but_the_correlations_has_statistics() -> None:
    with_statistics = {metric.name for metric in BUILT_IN if metric.statistics is not None}
    assert with_statistics == set(RANDOM_DATA)
    assert {metric.name for metric in BUILT_IN} - with_statistics == {"spearman", "pearson"}


@pytest.mark.parametrize(
    "metric", [m for m in BUILT_IN if m.statistics is not None], ids=lambda m: m.name
)
def test_statistics_reproduce_compute_on_random_data(metric: Metric) -> None:
    assert metric.statistics is not None and metric.from_statistics is not None
    rng = random.Random(metric.name)
    predictions, references = RANDOM_DATA[metric.name](rng, 120)
    stats = metric.statistics(predictions, references)
    assert stats.shape[0] == len(predictions)
    assert metric.from_statistics(stats.sum(0)) == pytest.approx(
        metric.compute(predictions, references), rel=1e-12, abs=1e-12
    )
    # Any resample (rows repeated or missing) too: that is what the bootstrap relies on.
    picker = np.random.default_rng(7)
    for _ in range(5):
        picked = picker.integers(0, len(predictions), 60)
        expected = metric.compute([predictions[i] for i in picked], [references[i] for i in picked])
        got = metric.from_statistics(stats[picked].sum(0))
        assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


@pytest.mark.filterwarnings("ignore:A single label was found")
@pytest.mark.parametrize("labels", ["ab", "abc", "abcdefg"])
def test_confusion_matrix_f1_and_mcc_equal_sklearn(labels: str) -> None:
    from sklearn.metrics import f1_score, matthews_corrcoef

    rng = random.Random(labels)
    for n in (2, 5, 30, 300):
        gold, predicted = _labels(rng, n, labels), _labels(rng, n, labels[:-1] or labels)
        for metric in (MACRO_F1, MCC):
            assert metric.statistics is not None and metric.from_statistics is not None
            value = metric.from_statistics(metric.statistics(predicted, gold).sum(0))
            expected = (
                f1_score(gold, predicted, average="macro", zero_division=0)
                if metric is MACRO_F1
                else matthews_corrcoef(gold, predicted)
            )
            assert value == pytest.approx(float(expected), rel=1e-12, abs=1e-12)
    # Degenerate: one label everywhere (MCC 0 by sklearn's convention).
    assert MCC.from_statistics is not None and MCC.statistics is not None
    assert MCC.from_statistics(MCC.statistics(["a"] * 4, ["a"] * 4).sum(0)) == 0.0


def test_a_metric_needs_both_statistics_functions() -> None:
    with pytest.raises(ValueError, match="together"):
        Metric("x", True, lambda p, r: 0.0, statistics=lambda p, r: np.zeros((len(p), 1)))


def test_squad_unanswerable_questions_follow_the_v2_rule() -> None:
    # No gold answer: right only for an empty (after normalisation) prediction.
    assert EXACT_MATCH.compute(["", "the", "Paris"], [[], [], []]) == pytest.approx(200 / 3)
    assert SQUAD_F1.compute(["", "Paris"], [[], []]) == 50.0


# Bootstrap


def test_bootstrap_interval_holds_the_value_and_is_seeded() -> None:
    rng = random.Random(3)
    predictions, references = _generation(rng, 200)
    first = bootstrap(BLEU, predictions, references, resamples=300, seed=1)
    assert first.low <= first.value <= first.high and first.low < first.high
    assert first.value == BLEU.compute(predictions, references)
    assert bootstrap(BLEU, predictions, references, resamples=300, seed=1) == first
    assert bootstrap(BLEU, predictions, references, resamples=300, seed=2) != first
    # No resampling asked for: no interval; nothing to resample: the value alone.
    unsampled = bootstrap(BLEU, predictions, references, resamples=0)
    assert (unsampled.value, unsampled.low, unsampled.high) == (first.value, None, None)
    with pytest.raises(NlpsuiteError, match="resamples must be 0 or more, got -10"):
        bootstrap(BLEU, predictions, references, resamples=-10)
    one = bootstrap(ACCURACY, ["a"], ["a"])
    assert one.low == one.value == one.high == 1.0


@pytest.mark.parametrize("metric", [BLEU, MACRO_F1, EXACT_MATCH], ids=lambda m: m.name)
def test_statistics_path_equals_recomputing_on_the_same_resamples(metric: Metric) -> None:
    rng = random.Random(metric.name)
    predictions, references = RANDOM_DATA[metric.name](rng, 60)
    slow = dataclasses.replace(metric, statistics=None, from_statistics=None)
    fast_score = bootstrap(metric, predictions, references, resamples=80, seed=5)
    slow_score = bootstrap(slow, predictions, references, resamples=80, seed=5)
    assert fast_score.value == slow_score.value
    assert fast_score.low == pytest.approx(slow_score.low, rel=1e-12)
    assert fast_score.high == pytest.approx(slow_score.high, rel=1e-12)


def test_metrics_without_statistics_are_recomputed() -> None:
    rng = np.random.default_rng(0)
    gold = rng.normal(size=100)
    predicted = gold + rng.normal(scale=0.5, size=100)
    score = bootstrap(SPEARMAN, list(predicted), list(gold), resamples=200, seed=0)
    assert score.low <= score.value <= score.high < 1.0


def test_bootstrap_refuses_misaligned_inputs() -> None:
    with pytest.raises(NlpsuiteError, match="2 predictions for 3 references"):
        bootstrap(ACCURACY, ["a", "b"], ["a", "b", "c"])


def test_paired_bootstrap_separates_a_better_system_and_not_identical_ones() -> None:
    rng = random.Random(11)
    gold = _labels(rng, 300, "ab")
    good = [g if rng.random() < 0.9 else ("b" if g == "a" else "a") for g in gold]
    poor = [g if rng.random() < 0.6 else ("b" if g == "a" else "a") for g in gold]
    assert paired_bootstrap(ACCURACY, good, poor, gold, seed=0) < 0.01
    assert paired_bootstrap(ACCURACY, poor, good, gold, seed=0) < 0.01  # two-sided
    assert paired_bootstrap(ACCURACY, good, good, gold) == 1.0
    # Equally good systems that err on different examples: no evidence of a difference.
    other = [g if rng.random() < 0.9 else ("b" if g == "a" else "a") for g in gold]
    p = paired_bootstrap(ACCURACY, good, other, gold, seed=0)
    assert p > 0.05
    assert paired_bootstrap(ACCURACY, good, other, gold, seed=0) == p  # seeded
    with pytest.raises(NlpsuiteError, match="paired bootstrap"):
        paired_bootstrap(ACCURACY, good[:-1], other, gold)


# The real WMT17 system outputs against sacrebleu itself.


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").split("\n")[:-1]


@needs_wmt
@pytest.mark.parametrize("system", SYSTEMS)
def test_sacrebleu_statistics_are_exact_on_wmt17(system: str) -> None:
    import sacrebleu

    reference = _lines(WMT / "newstest2017.ref.de")
    hypotheses = _lines(WMT / "systems" / f"{system}.de")
    references = [[line] for line in reference]
    for metric, official in ((BLEU, sacrebleu.corpus_bleu), (CHRF, sacrebleu.corpus_chrf)):
        assert metric.statistics is not None and metric.from_statistics is not None
        expected = official(hypotheses, [reference]).score
        summed = metric.statistics(hypotheses, references).sum(0)
        assert metric.from_statistics(summed) == expected


@needs_wmt
def test_bleu_bootstrap_on_wmt17_takes_seconds() -> None:
    reference = [[line] for line in _lines(WMT / "newstest2017.ref.de")]
    hypotheses = _lines(WMT / "systems" / "uedin-nmt.de")
    start = time.perf_counter()
    score = bootstrap(BLEU, hypotheses, reference, resamples=1000, seed=0)
    elapsed = time.perf_counter() - start
    assert score.low < score.value < score.high
    assert score.high - score.low < 3.0  # about +-0.7 BLEU on 3004 segments
    # About 2 s here (two passes of sacrebleu over the corpus, then 1,000 sums); recomputing
    # corpus BLEU 1,000 times took over 10 minutes.
    assert elapsed < 60, elapsed


# Metrics by name, and Hugging Face evaluate metrics.

METRIC_SCRIPT = """
import datasets
import evaluate


class {cls}(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description="Share of predictions identical to their reference.",
            citation="",
            inputs_description="predictions and references: lists of strings",
            features=datasets.Features(
                {{"predictions": datasets.Value("string"), "references": datasets.Value("string")}}
            ),
        )

    def _compute(self, predictions, references):
        same = sum(p == r for p, r in zip(predictions, references))
        return {{"{name}": same / len(predictions), "count": len(predictions)}}
"""


def write_metric_dir(root: Path, name: str = "same_string") -> Path:
    """A local Hugging Face evaluate metric: a folder holding ``<folder name>.py``."""
    folder = root / name
    folder.mkdir(parents=True)
    cls = "".join(part.title() for part in name.split("_"))
    (folder / f"{name}.py").write_text(METRIC_SCRIPT.format(cls=cls, name=name))
    return folder


needs_evaluate = pytest.mark.skipif(
    importlib.util.find_spec("evaluate") is None, reason="evaluate not installed"
)


def test_registered_metrics_are_found_by_name() -> None:
    assert find_metric("accuracy") is ACCURACY
    assert find_metric("bleu") is BLEU


@needs_evaluate
def test_a_local_evaluate_metric_directory_works(tmp_path: Path) -> None:
    folder = write_metric_dir(tmp_path)
    metric = find_metric(str(folder))
    assert metric.name == "same_string" and metric.higher_is_better
    assert metric.compute(["a", "b", "c", "d"], ["a", "b", "x", "y"]) == 0.5
    score = bootstrap(metric, ["a", "b", "c", "d"], ["a", "b", "x", "y"], resamples=20)
    assert score.low <= 0.5 <= score.high
    picked = evaluate_metric(f"{folder}#count")
    assert picked.compute(["a", "b"], ["a", "c"]) == 2.0
    with pytest.raises(NlpsuiteError, match="returned no score 'nope'"):
        evaluate_metric(f"{folder}#nope").compute(["a"], ["a"])


def test_a_hub_metric_offline_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NlpsuiteError) as raised:
        find_metric("nlpsuite-no-such-metric")
    message = str(raised.value)
    assert "\n" not in message
    # First that the name is unknown, with the known names, in case it was a typo.
    assert message.startswith(
        "metric 'nlpsuite-no-such-metric' is not a known metric (known: accuracy, "
    )
    assert message.endswith(
        "needs the Hugging Face Hub; offline, pass a local metric directory"
    )


@needs_evaluate
def test_a_hub_metric_that_cannot_be_fetched_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Not marked offline: evaluate itself tries and fails (no network here, no such metric).
    for variable in ("HF_HUB_OFFLINE", "HF_EVALUATE_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(NlpsuiteError, match="needs the Hugging Face Hub; offline, pass a local"):
        evaluate_metric("nlpsuite-no-such-metric-xyz")


def test_evaluate_not_installed_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "evaluate" else real(name, *a)
    )
    with pytest.raises(NlpsuiteError, match=r"pip install 'nlpsuite\[evaluate\]'"):
        find_metric("squad_v2")


@needs_evaluate
def test_the_harness_scores_with_named_metrics(tiny_classifier: Path, tmp_path: Path) -> None:
    from nlpsuite.harness import evaluate
    from nlpsuite.results import EvalRequest

    folder = write_metric_dir(tmp_path / "metrics", "label_match")
    results = evaluate(
        EvalRequest(
            "sentiment",
            "sentiment-mini",
            tmp_path / "run",
            model=str(tiny_classifier),
            bootstrap=20,
            metrics=("mcc", str(folder)),
        )
    )
    assert list(results["metrics"]) == ["mcc", "label_match"]
    assert results["metrics"]["label_match"]["value"] == pytest.approx(
        find_metric("accuracy").compute(*_run_labels(tmp_path / "run"))
    )
    with pytest.raises(NlpsuiteError, match="needs the Hugging Face Hub"):
        evaluate(EvalRequest("sentiment", "sentiment-mini", tmp_path / "b", metrics=("nope",)))


def _run_labels(folder: Path) -> tuple[list[str], list[str]]:
    import json

    rows = [json.loads(line) for line in (folder / "predictions.jsonl").open()]
    return [row["prediction"]["label"] for row in rows], [row["reference"] for row in rows]
