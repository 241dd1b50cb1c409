# ruff: noqa: E501
"""Scores say their scale wherever they are printed (CLI, Markdown, HTML, JSON), each metric at
one precision; leaderboards name bench models by their suite names, say "nothing to plot" for
scores at the floor, keep run names whole, and show paths relative to the results' folder."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from nlpsuite.bench import is_complete, load_suite
from nlpsuite.metrics import ACCURACY, BLEU, EXACT_MATCH, MCC, ROUGE, SPEARMAN, Metric
from nlpsuite.report import build, to_html, to_json, to_markdown
from nlpsuite.results import RunResult, request_fields
from nlpsuite.scales import PERCENT, format_interval, format_number, scale_from_json, scale_label
from tests.helpers import nlpsuite
from tests.test_report import write_run

QA_ROWS: list[tuple[str, Any, Any]] = [(f"q{i}", "", ["Paris"]) for i in range(4)]


# The scale of each metric, and the one way a score is written.


def test_metrics_declare_the_scale_of_their_reference_implementation() -> None:
    assert EXACT_MATCH.scale == BLEU.scale == PERCENT == (0.0, 100.0)
    assert ACCURACY.scale == ROUGE[0].scale == (0.0, 1.0)
    assert MCC.scale == SPEARMAN.scale == (-1.0, 1.0)
    assert [scale_label(s) for s in (PERCENT, ACCURACY.scale, MCC.scale, None)] == [
        "0-100", "0-1", "-1 to 1", "scale unknown",
    ]
    # Precision comes from the scale, never from the values: 0 on 0-100 is 0.00.
    assert format_number(0.0, PERCENT) == "0.00" and format_number(0.0, (0.0, 1.0)) == "0.0000"
    assert format_interval(0.2, 2.0, PERCENT) == "[0.20, 2.00]"
    assert format_interval(None, 2.0, PERCENT) is None
    with pytest.raises(ValueError, match="scale"):
        Metric("m", True, lambda p, r: 0.0, scale=(1.0, 0.0))


def test_a_damaged_scale_or_command_in_results_is_read_as_unknown_or_as_recorded(
    tmp_path: Path,
) -> None:
    assert scale_from_json([0, 100]) == PERCENT
    for damaged in (["0", 100], [100, 0], [0, float("nan")], [0], "0-100", [True, 2]):
        assert scale_from_json(damaged) is None, damaged
    folder = write_run(tmp_path, "run", model="org/m", scores={"accuracy": (0.5, 0.25, 0.75)},
                       rows=[("e1", "POSITIVE", "POSITIVE"), ("e2", "POSITIVE", "NEGATIVE")])
    document = json.loads((folder / "results.json").read_text())
    document["metrics"]["accuracy"]["scale"] = "0-1"
    document["command"] = "nlpsuite eval sentiment --model 'unclosed"
    (folder / "results.json").write_text(json.dumps(document))
    markdown = to_markdown(build(tmp_path))
    assert "| accuracy (0-1) ↑ |" in markdown  # unreadable: the installed metric's scale
    assert "`nlpsuite eval sentiment --model 'unclosed`" in markdown


def test_eval_prints_each_score_with_its_scale_at_its_precision(
    tiny_qa: Path, tmp_path: Path
) -> None:
    out = tmp_path / "qa"
    done = nlpsuite("eval", "question-answering", "--model", str(tiny_qa), "--dataset", "qa-mini",
                    "--bootstrap", "20", "--out", str(out))
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    expected = []
    for name, score in results["metrics"].items():
        assert score["scale"] == [0.0, 100.0]
        low, high = score["ci95"]
        expected.append(f"{name}\t{score['value']:.2f}\t[{low:.2f}, {high:.2f}]\t(0-100)")
    assert done.stdout.splitlines()[:-1] == expected and len(expected) == 2
    assert RunResult.read(out / "results.json").metrics["f1"].scale == PERCENT


def _squad(tmp_path: Path) -> tuple[Path, Path]:
    paragraphs = [{"context": "Paris is in France.", "qas": [
        {"id": "a", "question": "Where is Paris?", "answers": [{"text": "France", "answer_start": 12}]},
        {"id": "b", "question": "What is in France?", "answers": [{"text": "Paris", "answer_start": 0}]},
    ]}]
    dataset, predictions = tmp_path / "dev.json", tmp_path / "predictions.json"
    dataset.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": paragraphs}]}))
    predictions.write_text(json.dumps({"a": "France", "b": "Lyon"}))
    return predictions, dataset


def test_score_prints_each_score_with_its_scale(tmp_path: Path) -> None:
    predictions, dataset = _squad(tmp_path)
    done = nlpsuite("score", "question-answering", "-p", str(predictions), "-r", str(dataset))
    assert done.stdout.splitlines() == ["exact_match\t50.00\t(0-100)", "f1\t50.00\t(0-100)"]
    as_json = json.loads(nlpsuite("score", "question-answering", "-p", str(predictions), "-r",
                                  str(dataset), "--json").stdout)
    assert as_json["metrics"]["exact_match"]["scale"] == [0.0, 100.0]
    predicted, gold = tmp_path / "predicted.txt", tmp_path / "gold.txt"
    predicted.write_text("POSITIVE\nNEGATIVE\nPOSITIVE\nPOSITIVE\n")
    gold.write_text("POSITIVE\nNEGATIVE\nNEGATIVE\nPOSITIVE\n")
    labels = nlpsuite("score", "sentiment", "-p", str(predicted), "-r", str(gold))
    assert labels.stdout.splitlines() == [
        "accuracy\t0.7500\t(0-1)", "macro_f1\t0.7333\t(0-1)", "mcc\t0.5774\t(-1 to 1)",
    ]


# Leaderboards: scale in the headers, one precision per metric.


def _qa_runs(root: Path, *, f1: float = 4.36) -> None:
    for name, value in (("qa/a", f1), ("qa/b", 0.0)):
        write_run(root, name, model=f"org/{name[-1]}", task="question-answering", dataset="qa-mini",
                  scores={"exact_match": (0.0, 0.0, 0.0), "f1": (value, 0.0, value * 2.5)},
                  rows=QA_ROWS)


def test_leaderboards_show_scales_and_take_them_from_the_installed_metric(tmp_path: Path) -> None:
    _qa_runs(tmp_path)  # results.json without "scale", as older runs wrote it
    write_run(tmp_path, "other/recorded", model="org/low", task="error-rate", dataset="custom.jsonl",
              scores={"wer": (12.5, 10.25, 14.75)}, higher_is_better=False,
              rows=[("x", 1.0, 0.0)])
    document = json.loads((tmp_path / "other/recorded/results.json").read_text())
    document["metrics"]["wer"]["scale"] = [0, 100]
    (tmp_path / "other/recorded/results.json").write_text(json.dumps(document))
    write_run(tmp_path, "other2/unknown", model="org/u", task="error-rate", dataset="other.jsonl",
              scores={"wer": (12.5, 10.25, 14.75)}, higher_is_better=False, rows=[("x", 1.0, 0.0)])
    board = build(tmp_path)
    markdown = to_markdown(board)
    assert "| # | model | exact_match (0-100) ↑ | f1 (0-100) ↑ |" in markdown
    assert "| 1 | org/a | 0.00 [0.00, 0.00] | 4.36 [0.00, 10.90] |" in markdown
    assert "| wer (0-100) ↓ |" in markdown and "| 12.50 [10.25, 14.75] |" in markdown
    assert "| wer (scale unknown) ↓ |" in markdown and "| 12.5000 [10.2500, 14.7500] |" in markdown
    page = to_html(board)
    assert ">exact_match (0-100) ↑</th>" in page and ">0.00 <span class=\"ci\">[0.00, 0.00]</span>" in page
    groups = {g["task"] + g["dataset"]: g for g in to_json(board)["groups"]}
    qa = groups["question-answeringqa-mini"]
    assert qa["metrics"][0] == {"name": "exact_match", "higher_is_better": True, "scale": [0.0, 100.0]}
    assert qa["rows"][0]["metrics"]["f1"]["scale"] == [0.0, 100.0]
    assert groups["error-ratecustom.jsonl"]["metrics"][0]["scale"] == [0.0, 100.0]
    assert groups["error-rateother.jsonl"]["metrics"][0]["scale"] is None


def test_scores_all_at_zero_are_said_to_be_so_instead_of_plotted(tmp_path: Path) -> None:
    _qa_runs(tmp_path)
    page = to_html(build(tmp_path))
    assert '<svg class="plot"' not in page
    assert "every exact_match score (0-100) is 0.00, intervals included: nothing to plot" in page
    other = tmp_path / "other"
    _qa_runs(other, f1=4.0)
    write_run(other, "qa/c", model="org/c", task="question-answering", dataset="qa-mini",
              scores={"exact_match": (1.0, 0.0, 4.0), "f1": (5.0, 0.0, 9.0)}, rows=QA_ROWS)
    assert '<svg class="plot"' in to_html(build(other))


# Leaderboards: suite names, run names that stay whole, paths relative to the results' folder.


def _bench_run(root: Path, name: str, model: str, suite_name: str, base: Path) -> None:
    folder = write_run(root, name, model=model, scores={"accuracy": (0.5, 0.25, 0.75)},
                       rows=[("e1", "POSITIVE", "POSITIVE"), ("e2", "POSITIVE", "NEGATIVE")])
    document = json.loads((folder / "results.json").read_text())
    document["request"] = {"task": "sentiment", "dataset": str(base / "data" / "dev.tsv"),
                           "out": str(folder), "model": model, "model_name": suite_name}
    document["dataset"]["name"] = str(base / "data" / "dev.tsv")
    document["command"] = (f"nlpsuite eval sentiment --dataset {base}/data/dev.tsv --model {model} "
                           f"--out {folder} --option corpus={base}/docs.jsonl")
    (folder / "results.json").write_text(json.dumps(document))


def test_bench_models_are_named_as_the_suite_names_them_with_paths_relative(tmp_path: Path) -> None:
    root = tmp_path / "results" / "offline"
    hub = "sentence-transformers/all-MiniLM-L6-v2"
    _bench_run(root, "sentiment--dev--minilm--0123abcd", hub, "minilm", tmp_path)
    _bench_run(root, "sentiment--dev--tiny--4567cdef", str(tmp_path / "models" / "tiny-bert"), "tiny", tmp_path)
    board = build(root)
    assert [row.model for row in board.groups[0].rows] == ["minilm", "tiny"]
    markdown = to_markdown(board)
    assert f"| 1 | minilm ({hub}) |" in markdown and "| 1 | tiny (../models/tiny-bert) |" in markdown
    assert "## sentiment · ../data/dev.tsv" in markdown
    assert ("`nlpsuite eval sentiment --dataset ../data/dev.tsv --model ../models/tiny-bert "
            "--out offline/sentiment--dev--tiny--4567cdef --option corpus=../docs.jsonl`") in markdown
    assert "Paths are relative to the folder that holds the results folder `offline/`" in markdown
    page = to_html(board)
    assert str(tmp_path) not in markdown and str(tmp_path) not in page
    assert ('<code><span class="nowrap">sentiment--</span><wbr><span class="nowrap">dev--</span><wbr>'
            '<span class="nowrap">tiny--</span><wbr><span class="nowrap">4567cdef</span></code>') in page
    assert "break-all" not in page
    document = to_json(board)  # the JSON keeps what the runs recorded
    rows = document["groups"][0]["rows"]
    assert [(row["model"], row["model_id"]) for row in rows] == [
        ("minilm", hub), ("tiny", str(tmp_path / "models" / "tiny-bert"))]
    assert f"--model {tmp_path}/models/tiny-bert" in rows[1]["command"]


def test_bench_records_the_suite_name_and_older_runs_without_it_stay_complete(tmp_path: Path) -> None:
    suite_file = tmp_path / "suite.toml"
    suite_file.write_text('[models]\nminilm = "sentence-transformers/all-MiniLM-L6-v2"\n'
                          '[[runs]]\ntask = "sentiment"\nmodels = ["minilm"]\ndataset = "sentiment-mini"\n')
    run = load_suite(suite_file).runs[0]
    out = tmp_path / "out"
    request = run.request(out)
    assert request.model_name == "minilm" and request_fields(request)["model_name"] == "minilm"
    older = {k: v for k, v in request_fields(request).items() if k != "model_name"}
    (out / run.folder).mkdir(parents=True)
    (out / run.folder / "results.json").write_text(json.dumps({
        "task": "sentiment", "dataset": {"name": "sentiment-mini"}, "request": older,
        "model": {"id": request.model}, "metrics": {"accuracy": {"value": 0.5}},
    }))
    assert is_complete(run, out)


def test_the_html_page_keeps_run_names_whole() -> None:
    css = (Path(__file__).resolve().parents[1] / "nlpsuite" / "report" / "assets" / "leaderboard.css").read_text()
    assert re.search(r"\.nowrap\s*{[^}]*white-space:\s*nowrap", css)
