"""Scoring prediction files against reference files, without running a model (``nlpsuite score``).

The file formats are the field's usual ones, per task:

- translation, summarization: a plain-text hypothesis file, one segment per line, and one or more
  reference files aligned with it line by line (as the sacrebleu command line takes them);
- question-answering: the official SQuAD prediction JSON ``{question_id: answer_text}`` and the
  SQuAD dataset JSON, v1.1 or v2.0 (v2.0 when any question has ``is_impossible``). Scores are
  those of the official evaluation scripts: v1.1 ``exact_match``/``f1``; v2.0 ``exact``/``f1``
  overall and over answerable (``HasAns_*``) and unanswerable (``NoAns_*``) questions. A
  question without a prediction scores 0 (the v1.1 script's rule, applied to v2.0 too, whose
  script would leave it out of the overall total); predictions for unknown ids are ignored;
- sentiment: a file of predicted labels and a file of gold labels, one per line.

``metrics`` (registered names or Hugging Face ``evaluate`` metrics, see
:func:`nlpsuite.metrics.find_metric`) replaces the task's own metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlpsuite.datasets import numbered_lines
from nlpsuite.errors import NlpsuiteError
from nlpsuite.lookup import find_metric, get_task
from nlpsuite.metrics import Metric, squad_exact, squad_f1, squad_v2_exact, squad_v2_f1
from nlpsuite.records import read_json
from nlpsuite.scales import PERCENT, Scale
from nlpsuite.squad import load_squad, squad_version

TEXT_TASKS = ("translation", "summarization")
QUESTION_ANSWERING = "question-answering"
SENTIMENT = "sentiment"
SCORABLE = (*TEXT_TASKS, QUESTION_ANSWERING, SENTIMENT)


@dataclass(frozen=True)
class MetricResult:
    """One score; ``signature`` pins the settings where the value depends on them (sacrebleu)."""

    name: str
    value: float
    higher_is_better: bool = True
    signature: str | None = None
    scale: Scale | None = None  # (low, high), as the metric declares it


@dataclass(frozen=True)
class ScoreReport:
    """What ``nlpsuite score`` prints: the scores and facts about the inputs."""

    task: str
    examples: int
    metrics: tuple[MetricResult, ...]
    # Task-specific facts: SQuAD version, question counts, missing and ignored predictions.
    details: Mapping[str, Any] = field(default_factory=dict)
    # Things the user should know that are not errors, one line each.
    notes: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "examples": self.examples,
            "metrics": {
                m.name: {
                    "value": m.value,
                    "higher_is_better": m.higher_is_better,
                    "scale": list(m.scale) if m.scale else None,
                    **({"signature": m.signature} if m.signature else {}),
                }
                for m in self.metrics
            },
            **dict(self.details),
            "notes": list(self.notes),
        }


def score_files(
    task: str,
    predictions: str | Path,
    references: Sequence[str | Path],
    metrics: Sequence[str] | None = None,
) -> ScoreReport:
    """Score a prediction file against reference file(s) for ``task`` (see the module doc)."""
    if task not in SCORABLE:
        get_task(task)  # an unknown task gets the registry's "known tasks" message
        raise NlpsuiteError(f"score reads files for {', '.join(SCORABLE)}; not for task '{task}'")
    if not references:
        raise NlpsuiteError("give at least one reference file (--references FILE)")
    chosen = None if metrics is None else [find_metric(name) for name in metrics]
    if task in TEXT_TASKS:
        return _score_text(task, Path(predictions), [Path(r) for r in references], chosen)
    if len(references) != 1:
        raise NlpsuiteError(f"{task} takes one reference file, got {len(references)}")
    if task == QUESTION_ANSWERING:
        return score_squad(Path(predictions), Path(references[0]), chosen)
    return _score_labels(Path(predictions), Path(references[0]), chosen)


def _task_metrics(task: str) -> tuple[Metric, ...]:
    return get_task(task).metrics


def _results(
    metrics: Sequence[Metric], predictions: Sequence[Any], references: Sequence[Any]
) -> tuple[MetricResult, ...]:
    return tuple(
        MetricResult(
            metric.name,
            float(metric.compute(predictions, references)),
            metric.higher_is_better,
            metric.signature(references) if metric.signature else None,
            metric.scale,
        )
        for metric in metrics
    )


# Plain-text files: one segment or label per line.


def read_lines(path: Path, role: str, *, keep_byte_order_mark: bool = False) -> list[str]:
    """The lines of a UTF-8 text file, split on "\\n" only (a final newline is optional); a
    leading byte-order mark is dropped unless ``keep_byte_order_mark``."""
    if not path.is_file():
        raise NlpsuiteError(f"{role} file not found: {path}")
    return [line for _, line in numbered_lines(path, keep_byte_order_mark=keep_byte_order_mark)]


def _aligned(
    predictions: Path, references: Sequence[Path], *, keep_byte_order_mark: bool = False
) -> tuple[list[str], list[list[str]]]:
    hypotheses = read_lines(predictions, "predictions", keep_byte_order_mark=keep_byte_order_mark)
    streams = [read_lines(reference, "references", keep_byte_order_mark=keep_byte_order_mark)
               for reference in references]
    for reference, lines in zip(references, streams, strict=True):
        if len(lines) != len(hypotheses):
            raise NlpsuiteError(
                f"{reference} has {len(lines)} lines but {predictions} has {len(hypotheses)}; "
                "predictions and references must be aligned line by line"
            )
    if not hypotheses:
        raise NlpsuiteError(f"{predictions}: no lines to score")
    return hypotheses, streams


def _score_text(
    task: str, predictions: Path, references: Sequence[Path], chosen: Sequence[Metric] | None
) -> ScoreReport:
    # sacrebleu reads a byte-order mark as part of the first segment, and its scores count it
    # (BLEU differs in the fourth decimal on a full test set): keep it, and say so.
    hypotheses, streams = _aligned(predictions, references, keep_byte_order_mark=True)
    per_segment = [list(refs) for refs in zip(*streams, strict=True)]
    metrics = chosen if chosen is not None else _task_metrics(task)
    notes = tuple(
        f"{path} starts with a UTF-8 byte-order mark; it is scored as part of the first line, "
        "as sacrebleu reads it"
        for path, lines in zip((predictions, *references), (hypotheses, *streams), strict=True)
        if lines[0].startswith("\ufeff")
    )
    return ScoreReport(
        task,
        len(hypotheses),
        _results(metrics, hypotheses, per_segment),
        {"references": len(references)},
        notes,
    )


def _score_labels(
    predictions: Path, references: Path, chosen: Sequence[Metric] | None
) -> ScoreReport:
    predicted, gold = _aligned(predictions, [references])
    for path, labels in ((predictions, predicted), (references, gold[0])):
        for number, label in enumerate(labels, 1):
            if not label.strip():
                raise NlpsuiteError(f"{path}:{number}: empty label")
    predicted = [label.strip() for label in predicted]
    golds = [label.strip() for label in gold[0]]
    metrics = chosen if chosen is not None else _task_metrics(SENTIMENT)
    return ScoreReport(SENTIMENT, len(golds), _results(metrics, predicted, golds))


# SQuAD.


def read_squad_predictions(path: Path) -> dict[str, str]:
    """The official SQuAD prediction file: a JSON object ``{question_id: answer_text}``."""
    found = read_json(path, "predictions file")
    if not isinstance(found, dict):
        raise NlpsuiteError(
            f"{path}: expected a JSON object {{question_id: answer}}, got {type(found).__name__}"
        )
    for question_id, answer in found.items():
        if not isinstance(answer, str):
            raise NlpsuiteError(
                f"{path}: the prediction for '{question_id}' should be a string, "
                f"got {type(answer).__name__}"
            )
    return found


def score_squad(
    predictions: Path, dataset: Path, chosen: Sequence[Metric] | None = None
) -> ScoreReport:
    """Official SQuAD v1.1 or v2.0 scores of a prediction file against a SQuAD dataset file."""
    if not dataset.is_file():
        raise NlpsuiteError(f"references file not found: {dataset}")
    answers = read_squad_predictions(predictions)
    examples = load_squad(dataset)
    version = squad_version(dataset)
    ids = [example.id for example in examples]
    golds = [list(example.reference) for example in examples]
    missing = [question_id for question_id in ids if question_id not in answers]
    ignored = len(set(answers) - set(ids))
    details: dict[str, Any] = {
        "squad_version": version,
        "missing_predictions": len(missing),
        "ignored_predictions": ignored,
    }
    notes = []
    if missing:
        notes.append(
            f"{len(missing)} of {len(ids)} questions have no prediction in {predictions} "
            f"and score 0 (first: {missing[0]})"
        )
    if ignored:
        notes.append(f"{ignored} predictions in {predictions} are for questions not in {dataset}")

    if chosen is not None:
        given = [answers.get(question_id, "") for question_id in ids]
        results = _results(chosen, given, golds)
    elif version == "v1.1":
        exact = _official_scores(squad_exact, ids, golds, answers)
        f1 = _official_scores(squad_f1, ids, golds, answers)
        results = (
            MetricResult("exact_match", _percent(exact, loop=True), scale=PERCENT),
            MetricResult("f1", _percent(f1, loop=True), scale=PERCENT),
        )
    else:
        exact = _official_scores(squad_v2_exact, ids, golds, answers)
        f1 = _official_scores(squad_v2_f1, ids, golds, answers)
        # Official v2.0: "has answer" is a non-empty answers list.
        has_answer = [i for i, answers_ in enumerate(golds) if answers_]
        no_answer = [i for i, answers_ in enumerate(golds) if not answers_]
        results = (MetricResult("exact", _percent(exact), scale=PERCENT),
                   MetricResult("f1", _percent(f1), scale=PERCENT))
        details["total"] = len(ids)
        for prefix, subset in (("HasAns", has_answer), ("NoAns", no_answer)):
            if subset:  # the official script omits an empty group
                results += (
                    MetricResult(f"{prefix}_exact", _percent([exact[i] for i in subset]),
                                 scale=PERCENT),
                    MetricResult(f"{prefix}_f1", _percent([f1[i] for i in subset]), scale=PERCENT),
                )
                details[f"{prefix}_total"] = len(subset)
    return ScoreReport(QUESTION_ANSWERING, len(ids), results, details, tuple(notes))


def _official_scores(
    per_question: Callable[[str | None, Sequence[str]], float],
    ids: Sequence[str],
    golds: Sequence[Sequence[str]],
    answers: Mapping[str, str],
) -> list[float]:
    # A missing prediction is wrong, even for an unanswerable question, where "" would be right.
    return [
        per_question(answers[question_id], gold) if question_id in answers else 0.0
        for question_id, gold in zip(ids, golds, strict=True)
    ]


def _percent(scores: Sequence[float], *, loop: bool = False) -> float:
    """100 * mean, accumulated as the official script does, so that the floats match: v1.1 adds
    in a loop (``+=``), v2.0 calls ``sum()``, which Python 3.12+ computes with compensation."""
    if not scores:
        return 0.0
    if not loop:
        return 100.0 * sum(scores) / len(scores)
    total = 0.0
    for score in scores:
        total += score
    return 100.0 * total / len(scores)
