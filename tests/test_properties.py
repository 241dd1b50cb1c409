"""Property-based tests: whatever bytes a user's file holds, a reader gives examples or one
NlpsuiteError, never another exception; metrics give a number (never a silent NaN) or an
NlpsuiteError; writers give back exactly what they were given.

Bounded (``max_examples``, no deadline) so that the whole module stays well under a minute.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlpsuite import NlpsuiteError
from nlpsuite.catalog import load_dataset
from nlpsuite.metrics import (
    ACCURACY,
    BLEU,
    CHRF,
    EXACT_MATCH,
    MACRO_F1,
    MCC,
    MRR_10,
    NDCG_10,
    PEARSON,
    RECALL_10,
    ROUGE,
    SPEARMAN,
    SQUAD_F1,
    SQUAD_V2_METRICS,
    Metric,
)
from nlpsuite.records import write_atomic

READER_EXAMPLES = 150
METRIC_EXAMPLES = 100
QUICK = settings(max_examples=READER_EXAMPLES, deadline=None,
                 suppress_health_check=[HealthCheck.function_scoped_fixture])

# Text that looks like data: separators, quotes, BOMs, odd spaces and line breaks, non-ASCII.
PIECES = st.sampled_from(["\t", ",", '"', "\n", "\r\n", "\ufeff", "\u2028", " ", "{", "}",
                          "label", "sentence", "text", "reference", "0", "1", "-1", "é", "x"])
LIKE_DATA = st.lists(PIECES | st.text(max_size=8), max_size=40).map("".join)
RAW = st.binary(max_size=400) | LIKE_DATA.map(lambda text: text.encode("utf-8"))


def _reads_or_refuses(read: Callable[[], Any]) -> None:
    try:
        read()
    except NlpsuiteError as error:
        assert str(error).strip() and "\n" not in str(error).strip()


def _file(folder: Path, name: str, data: bytes) -> Path:
    path = folder / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "task"),
    [("data.jsonl", "sentiment"), ("data.csv", "question-answering"), ("data.tsv", "sentiment"),
     ("data.json", "question-answering"), ("data.jsonl", "summarization"),
     ("data.csv", "sentence-similarity")],
)
@QUICK
@given(data=RAW)
def test_dataset_files_give_examples_or_one_error(name: str, task: str, data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = _file(Path(folder), name, data)
        _reads_or_refuses(lambda: load_dataset(str(path), task))


@QUICK
@given(source=RAW, reference=RAW)
def test_parallel_text_gives_examples_or_one_error(source: bytes, reference: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        spec = f"{_file(root, 'src.txt', source)}:{_file(root, 'ref.txt', reference)}"
        _reads_or_refuses(lambda: load_dataset(spec, "translation"))


@QUICK
@given(corpus=RAW, queries=RAW, qrels=RAW)
def test_beir_folders_give_examples_or_one_error(
    corpus: bytes, queries: bytes, qrels: bytes
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "qrels").mkdir()
        _file(root, "corpus.jsonl", corpus)
        _file(root, "queries.jsonl", queries)
        _file(root / "qrels", "test.tsv", qrels)
        _reads_or_refuses(lambda: load_dataset(str(root), "semantic-search"))


# Records that are well formed but odd: empty strings, long lists, deep nesting, big numbers.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)
RECORDS = st.lists(
    st.fixed_dictionaries({"text": JSON_VALUES, "reference": JSON_VALUES},
                          optional={"id": JSON_VALUES, "question": JSON_VALUES,
                                    "context": JSON_VALUES}),
    max_size=6,
)


@pytest.mark.parametrize(
    "task", ["sentiment", "question-answering", "translation", "semantic-search",
             "sentence-similarity"],
)
@QUICK
@given(rows=RECORDS)
def test_odd_but_well_formed_records_give_examples_or_one_error(
    task: str, rows: list[dict[str, Any]]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        text = "".join(json.dumps(row) + "\n" for row in rows)
        path = _file(Path(folder), "rows.jsonl", text.encode("utf-8"))
        _reads_or_refuses(lambda: load_dataset(str(path), task))


def _checked(metric: Metric, predictions: Sequence[Any], references: Sequence[Any]) -> None:
    try:
        value = metric.compute(predictions, references)
    except NlpsuiteError:
        return
    assert isinstance(value, float | int) and not math.isnan(value), (metric.name, value)


LABELS = st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=12)
SENTENCES = st.text(max_size=30)
SCORES = st.floats(min_value=-5, max_value=5, allow_nan=False)


@settings(max_examples=METRIC_EXAMPLES, deadline=None)
@given(pairs=st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(["a", "b"])),
                      min_size=1, max_size=12))
def test_classification_metrics_are_numbers(pairs: list[tuple[str, str]]) -> None:
    predictions, references = zip(*pairs, strict=True)
    for metric in (ACCURACY, MACRO_F1, MCC):
        _checked(metric, predictions, references)


@settings(max_examples=METRIC_EXAMPLES, deadline=None)
@given(pairs=st.lists(st.tuples(SENTENCES, st.lists(SENTENCES, max_size=3)), min_size=1,
                      max_size=6))
def test_text_metrics_are_numbers(pairs: list[tuple[str, list[str]]]) -> None:
    predictions = [prediction for prediction, _ in pairs]
    references = [golds for _, golds in pairs]
    for metric in (EXACT_MATCH, SQUAD_F1, *SQUAD_V2_METRICS):
        _checked(metric, predictions, references)
    nonempty = [golds or [""] for golds in references]
    for metric in (BLEU, CHRF, *ROUGE):
        _checked(metric, predictions, nonempty)


@settings(max_examples=METRIC_EXAMPLES, deadline=None)
@given(pairs=st.lists(st.tuples(SCORES, SCORES), min_size=1, max_size=12))
def test_correlations_are_numbers_or_one_error(pairs: list[tuple[float, float]]) -> None:
    predictions, references = zip(*pairs, strict=True)
    for metric in (SPEARMAN, PEARSON):
        _checked(metric, predictions, references)


@settings(max_examples=METRIC_EXAMPLES, deadline=None)
@given(rows=st.lists(st.tuples(st.lists(st.sampled_from("abcdef"), max_size=6, unique=True),
                               st.dictionaries(st.sampled_from("abcdef"),
                                               st.integers(0, 3), max_size=4)),
                     min_size=1, max_size=8))
def test_retrieval_metrics_are_numbers(rows: list[tuple[list[str], dict[str, int]]]) -> None:
    rankings = [ranking for ranking, _ in rows]
    judged = [grades for _, grades in rows]
    for metric in (NDCG_10, MRR_10, RECALL_10):
        _checked(metric, rankings, judged)


@QUICK
@given(text=st.text(max_size=300))
def test_written_files_read_back_exactly(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "out.jsonl"
        write_atomic(path, text)
        assert path.read_bytes() == text.encode("utf-8")
        assert [p.name for p in Path(folder).iterdir()] == ["out.jsonl"]  # no temp file left
