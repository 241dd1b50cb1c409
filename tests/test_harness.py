"""The evaluation harness: results you can reproduce, labels mapped, runs that resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from nlpsuite import NlpsuiteError
from nlpsuite.harness import evaluate, map_labels
from nlpsuite.metrics import ACCURACY
from nlpsuite.results import EvalRequest
from tests.conftest import SHARED_DATASETS
from tests.helpers import nlpsuite, one_error_line

SST2 = SHARED_DATASETS / "glue-sst2"


def test_results_hold_what_reproduces_them(tiny_classifier: Path, tmp_path: Path) -> None:
    request = EvalRequest(
        "sentiment", "sentiment-mini", tmp_path / "run", model=str(tiny_classifier), bootstrap=200
    )
    results = evaluate(request)
    on_disk = json.loads((tmp_path / "run" / "results.json").read_text())
    assert on_disk == results
    assert results["task"] == "sentiment" and results["model"]["id"] == str(tiny_classifier)
    assert len(results["model"]["weights_sha256"]) == 64
    assert results["dataset"]["examples"] == 40 and len(results["dataset"]["sha256"]) == 64
    assert {"torch", "transformers", "nlpsuite"} <= set(results["versions"])
    assert results["examples_per_second"] > 0

    rows = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").open()]
    assert [row["id"] for row in rows] == [f"s{i:02d}" for i in range(1, 41)]
    predicted = [row["prediction"]["label"] for row in rows]
    expected = ACCURACY.compute(predicted, [row["reference"] for row in rows])
    accuracy = results["metrics"]["accuracy"]
    assert accuracy["value"] == expected
    assert accuracy["ci95"][0] <= expected <= accuracy["ci95"][1]
    again = evaluate(
        EvalRequest(
            "sentiment",
            "sentiment-mini",
            tmp_path / "again",
            model=str(tiny_classifier),
            bootstrap=200,
        )
    )
    assert again["metrics"] == results["metrics"]


def test_labels_map_by_name_by_id_or_explicitly() -> None:
    labels = ["NEGATIVE", "POSITIVE"]
    assert map_labels(["positive", "NEGATIVE"], labels, {}) == ["POSITIVE", "NEGATIVE"]
    assert map_labels(["0", "1"], labels, {}) == ["NEGATIVE", "POSITIVE"]
    assert map_labels(["bad", "good"], labels, {"bad": "NEGATIVE", "good": "POSITIVE"}) == labels
    with pytest.raises(NlpsuiteError, match="dataset label 'meh' maps to no label"):
        map_labels(["meh"], labels, {})


@pytest.mark.skipif(not SST2.exists(), reason="shared datasets not beside the checkout")
def test_glue_labels_and_bad_label_map_from_the_cli(tiny_classifier: Path, tmp_path: Path) -> None:
    done = nlpsuite(
        "eval",
        "sentiment",
        "-m",
        str(tiny_classifier),
        "-d",
        str(SST2 / "dev.tsv"),
        "--limit",
        "40",
        "--bootstrap",
        "10",
        "--out",
        str(tmp_path / "a"),
        "-q",
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("accuracy\t")
    bad = nlpsuite(
        "eval",
        "sentiment",
        "-m",
        str(tiny_classifier),
        "-d",
        str(SST2 / "dev.tsv"),
        "--limit",
        "40",
        "--label-map",
        "0=NEGATIVE",
        "--out",
        str(tmp_path / "b"),
    )
    assert bad.returncode == 2
    assert "dataset label '1' maps to no label" in one_error_line(bad.stderr)


def test_other_arguments_in_the_same_folder_are_refused(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    first = EvalRequest(
        "sentiment", "sentiment-mini", tmp_path, model=str(tiny_classifier), limit=5, bootstrap=0
    )
    evaluate(first)
    with pytest.raises(NlpsuiteError, match="holds a run with other arguments"):
        evaluate(
            EvalRequest(
                "sentiment",
                "sentiment-mini",
                tmp_path,
                model=str(tiny_classifier),
                limit=6,
                bootstrap=0,
            )
        )


def test_a_model_retrained_in_place_does_not_reuse_old_predictions(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    import shutil

    import torch
    from transformers import AutoModelForSequenceClassification

    model = tmp_path / "model"
    shutil.copytree(tiny_classifier, model)
    request = EvalRequest("sentiment", "sentiment-mini", tmp_path / "run", model=str(model),
                          limit=5, bootstrap=0)
    evaluate(request)
    retrained = AutoModelForSequenceClassification.from_pretrained(model)
    with torch.no_grad():
        retrained.classifier.bias[0] += 1.0
    retrained.save_pretrained(model)
    with pytest.raises(NlpsuiteError, match="other model weights"):
        evaluate(request)


def test_a_torn_last_line_is_dropped_and_recomputed(tiny_classifier: Path, tmp_path: Path) -> None:
    request = EvalRequest(
        "sentiment",
        "sentiment-mini",
        tmp_path,
        model=str(tiny_classifier),
        bootstrap=0,
        batch_size=8,
        checkpoint_every=8,
    )
    complete = evaluate(request)
    partial = tmp_path / "predictions.partial.jsonl"
    lines = partial.read_text().splitlines(keepends=True)
    partial.write_text("".join(lines[:10]) + lines[10][:25])  # as if killed mid-write
    (tmp_path / "results.json").unlink()
    expected = (tmp_path / "predictions.jsonl").read_text()
    resumed = evaluate(request)
    # The first chunk of 8 is whole and kept; the second, cut short, is predicted again whole.
    assert resumed["resumed_examples"] == 8
    assert resumed["metrics"] == complete["metrics"]
    assert (tmp_path / "predictions.jsonl").read_text() == expected


@pytest.mark.slow
@pytest.mark.skipif(not SST2.exists(), reason="shared datasets not beside the checkout")
def test_kill_and_resume_gives_identical_results(tiny_classifier: Path, tmp_path: Path) -> None:
    args = [
        "eval",
        "sentiment",
        "-m",
        str(tiny_classifier),
        "-d",
        str(SST2 / "train.tsv"),
        "--limit",
        "3000",
        "--bootstrap",
        "20",
        "-q",
    ]
    command = [sys.executable, "-c", "from nlpsuite.cli import main; main()"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    killed = tmp_path / "killed"
    process = subprocess.Popen(
        [*command, *args, "--out", str(killed)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    partial = killed / "predictions.partial.jsonl"
    deadline = time.monotonic() + 120
    while not (partial.exists() and partial.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (killed / "results.json").exists(), "the run finished before it could be killed"
    cached = len(partial.read_text().splitlines())
    assert 0 < cached < 3000

    subprocess.run(
        [*command, *args, "--out", str(killed)], env=env, check=True, capture_output=True
    )
    subprocess.run(
        [*command, *args, "--out", str(tmp_path / "whole")],
        env=env,
        check=True,
        capture_output=True,
    )
    resumed = json.loads((killed / "results.json").read_text())
    whole = json.loads((tmp_path / "whole" / "results.json").read_text())
    # Kept: every whole chunk of 256 in the partial file; a chunk cut short is predicted again.
    assert cached - 256 <= resumed["resumed_examples"] <= cached
    assert whole["resumed_examples"] == 0
    assert resumed["metrics"] == whole["metrics"]
    assert (killed / "predictions.jsonl").read_text() == (
        tmp_path / "whole" / "predictions.jsonl"
    ).read_text()


@pytest.mark.parametrize(
    ("task", "dataset", "model_fixture"),
    [
        ("sentiment", "sentiment-mini", "tiny_classifier"),
        ("question-answering", "qa-mini", "tiny_qa"),
        ("semantic-search", "search-mini", "minilm"),
        ("translation", "translation-mini", "tiny_marian"),
        ("summarization", "summarization-mini", "tiny_bart"),
    ],
)
def test_every_task_evaluates_on_its_embedded_set(
    task: str, dataset: str, model_fixture: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    model = str(request.getfixturevalue(model_fixture))
    done = nlpsuite(
        "eval", task, "-m", model, "-d", dataset, "--out", str(tmp_path), "--bootstrap", "50", "-q"
    )
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    from nlpsuite import get_task

    assert list(results["metrics"]) == [metric.name for metric in get_task(task).metrics]
    for score in results["metrics"].values():
        low, high = score["ci95"]
        assert low <= score["value"] <= high
    rows = (tmp_path / "predictions.jsonl").read_text().splitlines()
    assert len(rows) == results["dataset"]["examples"] > 0


def test_squad_v2_file_is_scored_by_the_official_v2_rules(tiny_qa: Path, tmp_path: Path) -> None:
    from nlpsuite.catalog import resolve_dataset
    from nlpsuite.metrics import EXACT_MATCH
    from nlpsuite.scoring import score_squad

    def qa(n: int, question: str, answers: list[str], context: str) -> dict[str, object]:
        found = [{"text": a, "answer_start": context.index(a)} for a in answers]
        return {"id": f"q{n}", "question": question, "answers": found,
                "is_impossible": not answers}

    cat, king, rome = "the cat sat on the mat in paris", "a king built the tower", "rome is old"
    paragraphs = [
        {"context": cat, "qas": [qa(1, "who sat", ["the cat", "cat"], cat),
                                 qa(2, "where", ["the", "paris"], cat)]},  # "the" normalises to ""
        {"context": king, "qas": [qa(3, "who built it", ["a king"], king),
                                  qa(4, "when", [], king)]},
        {"context": rome, "qas": [qa(5, "what is old", ["rome"], rome), qa(6, "why", [], rome)]},
    ]
    small = tmp_path / "squad-v2-small.json"
    small.write_text(json.dumps({"version": "v2.0", "data": [{"title": "t",
                                                              "paragraphs": paragraphs}]}))
    metrics = resolve_dataset(str(small)).metrics
    assert [m.description for m in metrics] == [
        "SQuAD v2.0 exact match, 0-100", "SQuAD v2.0 token F1, 0-100"
    ]
    # v2.0 drops gold answers that normalise to nothing; v1.1 keeps them.
    assert EXACT_MATCH.compute([""], [["the", "cat"]]) == 100.0
    assert metrics[0].compute([""], [["the", "cat"]]) == 0.0

    results = evaluate(EvalRequest("question-answering", str(small), tmp_path / "run",
                                   model=str(tiny_qa), bootstrap=0))
    rows = [json.loads(line) for line in (tmp_path / "run" / "predictions.jsonl").open()]
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({row["id"]: row["scored"] or "" for row in rows}))
    official = {m.name: m.value for m in score_squad(answers, small).metrics}
    assert results["metrics"]["exact_match"]["description"] == "SQuAD v2.0 exact match, 0-100"
    assert results["metrics"]["exact_match"]["value"] == pytest.approx(official["exact"])
    assert results["metrics"]["f1"]["value"] == pytest.approx(official["f1"])


def test_eval_metric_flag_scores_with_the_named_metrics_only(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    args = ["eval", "sentiment", "-m", str(tiny_classifier), "-d", "sentiment-mini",
            "--bootstrap", "0", "-q", "--out", str(out)]
    done = nlpsuite(*args, "--metric", "accuracy")
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert list(results["metrics"]) == ["accuracy"]
    assert results["command"].endswith("--metric accuracy")

    unknown = nlpsuite(*args[:-1], str(tmp_path / "other"), "--metric", "no-such-metric")
    assert unknown.returncode == 2
    assert "no-such-metric" in one_error_line(unknown.stderr)
