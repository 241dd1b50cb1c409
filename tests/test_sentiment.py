"""The sentiment task on tiny real BERT classifiers."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from nlpsuite import NlpsuiteError, get_task, load_runner, run
from nlpsuite.models import load_model

TEXTS = [
    "a wonderful film",
    "the worst plot",
    "boring",
    "great acting and a good story",
    "i love this movie " * 20,
    "dull",
    "an awful war film about a king and a queen",
    "fun",
    "ok",
]


def test_outputs_do_not_depend_on_batch_size(tiny_classifier: Path) -> None:
    one = run("sentiment", TEXTS, model=str(tiny_classifier), batch_size=1)
    eight = run("sentiment", TEXTS, model=str(tiny_classifier), batch_size=8)
    assert [o.label for o in one] == [o.label for o in eight]
    assert [o.score for o in one] == pytest.approx([o.score for o in eight], abs=1e-5)


def test_order_follows_input_not_length(tiny_classifier: Path) -> None:
    runner = load_runner("sentiment", str(tiny_classifier), batch_size=3)
    task = get_task("sentiment")
    records = [task.make_input(text, "test") for text in TEXTS]
    together = runner(records)
    alone = [runner([record])[0] for record in records]
    assert [o.label for o in together] == [o.label for o in alone]
    assert [o.score for o in together] == pytest.approx([o.score for o in alone], abs=1e-5)


def test_labels_come_from_the_checkpoint(tiny_classifier_3way: Path) -> None:
    outputs = run("sentiment", TEXTS, model=str(tiny_classifier_3way), options={"top_k": 2})
    for output in outputs:
        assert output.label in {"negative", "neutral", "positive"}
        assert output.scores is not None and len(output.scores) == 2
        assert next(iter(output.scores)) == output.label
        assert 1 / 3 <= output.score <= 1


def test_long_inputs_are_truncated_and_counted(
    tiny_classifier: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="nlpsuite"):
        outputs = run("sentiment", ["good " * 500, "bad", "fun " * 200], model=str(tiny_classifier))
    assert len(outputs) == 3
    assert "2 of 3 inputs were longer than 128 tokens and were truncated" in caplog.text


def test_model_loads_once_per_process(tiny_classifier: Path) -> None:
    first = load_model("AutoModelForSequenceClassification", str(tiny_classifier))
    assert load_model("AutoModelForSequenceClassification", str(tiny_classifier)) is first


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text_is_an_error(tiny_classifier: Path, text: str) -> None:
    with pytest.raises(NlpsuiteError, match="input 2: field 'text' is empty"):
        run("sentiment", ["fine", text], model=str(tiny_classifier))


def test_bad_top_k(tiny_classifier: Path) -> None:
    with pytest.raises(NlpsuiteError, match="top_k"):
        run("sentiment", ["fine"], model=str(tiny_classifier), options={"top_k": 0})


def test_metrics_are_declared_with_direction() -> None:
    task = get_task("sentiment")
    assert [(m.name, m.higher_is_better) for m in task.metrics] == [
        ("accuracy", True),
        ("macro_f1", True),
        ("mcc", True),
    ]
    accuracy, macro_f1, mcc = (m.compute for m in task.metrics)
    predicted, gold = ["a", "a", "b", "b"], ["a", "b", "b", "b"]
    assert accuracy(predicted, gold) == 0.75
    # F1(a) = 2/3, F1(b) = 0.8; macro average 0.7333...
    assert macro_f1(predicted, gold) == pytest.approx((2 / 3 + 0.8) / 2)
    assert mcc(gold, gold) == 1.0
