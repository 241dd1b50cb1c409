# ruff: noqa: E501
"""Leaderboards: a golden Markdown table, JSON that follows its schema, and an HTML page that a
real (headless) browser renders and sorts."""

from __future__ import annotations

import html
import json
import logging
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from nlpsuite import NlpsuiteError
from nlpsuite.metrics import ACCURACY, paired_bootstrap
from nlpsuite.report import SCHEMA_VERSION, build, parse_formats, to_html, to_json, to_markdown
from tests.helpers import browse, chromium, nlpsuite, nlpsuite_process, one_error_line

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts"
SHA = "0ca413bf1266a5868018923927ef1ae38a6d338052aded62408ed650c9dd96ed"
VERSIONS = {"python": "3.11.7", "nlpsuite": "0.1.0", "torch": "2.13.0+cpu"}
# Twenty sentiment examples, alternating gold labels.
IDS = [f"e{i:02d}" for i in range(1, 21)]
GOLD = ["POSITIVE" if i % 2 else "NEGATIVE" for i in range(1, 21)]
FLIP = {"POSITIVE": "NEGATIVE", "NEGATIVE": "POSITIVE"}


def _answers(wrong: set[int]) -> list[str]:
    """Predictions equal to GOLD except at the given (1-based) positions."""
    return [FLIP[gold] if i in wrong else gold for i, gold in enumerate(GOLD, 1)]


def write_run(
    root: Path,
    name: str,
    *,
    model: str,
    scores: dict[str, tuple[float, float, float]],
    rows: list[tuple[str, Any, Any]],
    task: str = "sentiment",
    dataset: str = "sentiment-mini",
    higher_is_better: bool = True,
    rate: float | None = 40.0,
    sample: int | None = None,
    options: dict[str, Any] | None = None,
    sha: str = SHA,
    size: tuple[int | None, int | None] = (105616, 25324),
    label_mapping: dict[str, str] | None = None,
) -> Path:
    """A run folder as the harness writes it, with fixed numbers."""
    folder = root / name
    folder.mkdir(parents=True)
    results: dict[str, Any] = {
        "version": 1,
        "task": task,
        "model": {
            "id": model,
            "weights_sha256": "ab" * 32,
            "weights_bytes": size[0],
            "parameters": size[1],
        },
        "dataset": {"name": dataset, "sha256": sha, "examples": len(rows)},
        "metrics": {
            metric: {"value": value, "ci95": [low, high], "higher_is_better": higher_is_better}
            for metric, (value, low, high) in scores.items()
        },
        "options": options if options is not None else {"top_k": 1},
        "limit": None,
        "sample": sample,
        "seed": 0,
        "bootstrap_resamples": 1000,
        "batch_size": 32,
        "device": "cpu",
        "versions": VERSIONS,
        "examples_per_second": rate,
        "command": f"nlpsuite eval {task} --dataset {dataset} --model {model} --out {name}",
    }
    if label_mapping is not None:
        results["label_mapping"] = label_mapping
    (folder / "results.json").write_text(json.dumps(results, indent=2))
    (folder / "predictions.jsonl").write_text(
        "".join(
            json.dumps({"id": i, "prediction": {}, "scored": s, "reference": r}) + "\n"
            for i, s, r in rows
        )
    )
    return folder


def sentiment_rows(wrong: set[int]) -> list[tuple[str, Any, Any]]:
    return list(zip(IDS, _answers(wrong), GOLD, strict=True))


@pytest.fixture()
def results_folder(tmp_path: Path) -> Path:
    """Three comparable sentiment runs, one sampled run, a task that is not installed, and a
    results.json that is not JSON."""
    root = tmp_path / "results"
    identity = {g: g for g in ("NEGATIVE", "POSITIVE")}
    write_run(
        root,
        "sentiment/strong",
        model="org/strong-model",
        scores={
            "accuracy": (0.9, 0.75, 1.0),
            "macro_f1": (0.8990, 0.7475, 1.0),
            "mcc": (0.8165, 0.5774, 1.0),
        },
        rows=sentiment_rows({3, 8}),
        rate=120.5,
        size=(267832320, 66955010),
        label_mapping=identity,
    )
    write_run(
        root,
        "sentiment/weak",
        # A local checkpoint beside the results folder: shown relative to the folder holding it.
        model=str(tmp_path / "models" / "checkpoints" / "tiny-bert"),
        scores={
            "accuracy": (0.55, 0.35, 0.75),
            "macro_f1": (0.5489, 0.3333, 0.75),
            "mcc": (0.1005, -0.3015, 0.5025),
        },
        rows=sentiment_rows({1, 2, 5, 6, 9, 12, 13, 17, 20}),
        rate=2500.0,
        label_mapping=identity,
    )
    # Names its classes LABEL_0/LABEL_1: compared in the dataset's labels all the same.
    write_run(
        root,
        "sentiment/renamed",
        model="org/renamed",
        scores={
            "accuracy": (0.85, 0.7, 1.0),
            "macro_f1": (0.8496, 0.6970, 1.0),
            "mcc": (0.7035, 0.4264, 1.0),
        },
        rows=[
            (i, {"NEGATIVE": "LABEL_0", "POSITIVE": "LABEL_1"}[p], g)
            for i, p, g in sentiment_rows({3, 8, 11})
        ],
        rate=None,
        size=(None, None),
        label_mapping={"NEGATIVE": "LABEL_0", "POSITIVE": "LABEL_1"},
    )
    write_run(
        root,
        "sentiment/sampled",
        model="org/sampled",
        scores={"accuracy": (0.95, 0.9, 1.0), "macro_f1": (0.95, 0.9, 1.0), "mcc": (0.9, 0.8, 1.0)},
        rows=sentiment_rows(set())[:10],
        sample=10,
        label_mapping=identity,
    )
    # A task this installation does not have: its direction comes from results.json.
    errors = [(f"q{i}", float(i), 0.0) for i in range(4)]
    write_run(
        root,
        "other/low",
        task="error-rate",
        dataset="custom.jsonl",
        model="org/low",
        scores={"wer": (12.5, 10.25, 14.75)},
        higher_is_better=False,
        rows=errors,
        sha="f" * 64,
        rate=3.25,
    )
    write_run(
        root,
        "other/high",
        task="error-rate",
        dataset="custom.jsonl",
        model="org/high",
        scores={"wer": (31.0, 28.5, 33.5)},
        higher_is_better=False,
        rows=errors,
        sha="f" * 64,
        rate=None,
    )
    broken = root / "broken"
    broken.mkdir()
    (broken / "results.json").write_text('{"task": ')
    return root


GOLDEN = """\
# Leaderboard

6 runs in 2 task/dataset groups. Each table ranks models by the task's primary metric (↑ higher is better, ↓ lower is better); equal scores share a rank, ordered by the next metrics. Scores are on the whole dataset, with the 95% bootstrap confidence interval in brackets, on the scale each column's header names (0-100, 0-1, -1 to 1). **p vs #1**: paired bootstrap test against the first row on the examples both runs share (1000 resamples, seed 0); * marks p < 0.05.

## error-rate · custom.jsonl

Primary metric **wer** ↓ · 4 examples · dataset sha256 `ffffffffffff`

| # | model | wer (scale unknown) ↓ | p vs #1 | examples/s | parameters | weights |
|--:|:--|--:|--:|--:|--:|--:|
| 1 | org/low | 12.5000 [10.2500, 14.7500] | — | 3.25 | 25.3k | 105.6 kB |
| 2 | org/high | 31.0000 [28.5000, 33.5000] | — | — | 25.3k | 105.6 kB |

- no significance test: metric 'wer' is not installed

## sentiment · sentiment-mini

Primary metric **accuracy** ↑ · 20 examples · dataset sha256 `0ca413bf1266`

| # | model | accuracy (0-1) ↑ | macro_f1 (0-1) ↑ | mcc (-1 to 1) ↑ | p vs #1 | examples/s | parameters | weights |
|--:|:--|--:|--:|--:|--:|--:|--:|--:|
| 1 | org/strong-model | 0.9000 [0.7500, 1.0000] | 0.8990 [0.7475, 1.0000] | 0.8165 [0.5774, 1.0000] | — | 120 | 67.0M | 267.8 MB |
| 2 | org/renamed | 0.8500 [0.7000, 1.0000] | 0.8496 [0.6970, 1.0000] | 0.7035 [0.4264, 1.0000] | 0.254 | — | — | — |
| 3 | tiny-bert | 0.5500 [0.3500, 0.7500] | 0.5489 [0.3333, 0.7500] | 0.1005 [-0.3015, 0.5025] | 0.016* | 2500 | 25.3k | 105.6 kB |

Not comparable with the ranked runs (not ranked):

- `sentiment/sampled` (org/sampled, accuracy (0-1) 0.9500 [0.9000, 1.0000]): sample 10, seed 0 (ranked runs: none)

## Skipped

- broken/results.json:1: not valid JSON (Expecting value)

## Runs

Paths are relative to the folder that holds the results folder `results/`; `leaderboard.json` keeps them as the runs recorded them.

- `other/high`: `nlpsuite eval error-rate --dataset custom.jsonl --model org/high --out results/other/high`
  (weights sha256 abababababab; dataset sha256 ffffffffffff; device cpu; python 3.11.7, nlpsuite 0.1.0, torch 2.13.0+cpu)
- `other/low`: `nlpsuite eval error-rate --dataset custom.jsonl --model org/low --out results/other/low`
  (weights sha256 abababababab; dataset sha256 ffffffffffff; device cpu; python 3.11.7, nlpsuite 0.1.0, torch 2.13.0+cpu)
- `sentiment/renamed`: `nlpsuite eval sentiment --dataset sentiment-mini --model org/renamed --out results/sentiment/renamed`
  (weights sha256 abababababab; dataset sha256 0ca413bf1266; device cpu; python 3.11.7, nlpsuite 0.1.0, torch 2.13.0+cpu)
- `sentiment/sampled`: `nlpsuite eval sentiment --dataset sentiment-mini --model org/sampled --out results/sentiment/sampled`
  (weights sha256 abababababab; dataset sha256 0ca413bf1266; device cpu; python 3.11.7, nlpsuite 0.1.0, torch 2.13.0+cpu)
- `sentiment/strong`: `nlpsuite eval sentiment --dataset sentiment-mini --model org/strong-model --out results/sentiment/strong`
  (weights sha256 abababababab; dataset sha256 0ca413bf1266; device cpu; python 3.11.7, nlpsuite 0.1.0, torch 2.13.0+cpu)
- `sentiment/weak`: `nlpsuite eval sentiment --dataset sentiment-mini --model models/checkpoints/tiny-bert --out results/sentiment/weak`
  (weights sha256 abababababab; dataset sha256 0ca413bf1266; device cpu; python 3.11.7, nlpsuite 0.1.0, torch 2.13.0+cpu)
"""


def test_markdown_leaderboard_is_exactly_the_golden_text(results_folder: Path) -> None:
    markdown = to_markdown(build(results_folder))
    assert markdown == GOLDEN


def test_paired_test_compares_labels_in_the_datasets_names(results_folder: Path) -> None:
    board = build(results_folder)
    sentiment = next(group for group in board.groups if group.task == "sentiment")
    strong, renamed, weak = sentiment.rows
    expected = paired_bootstrap(
        ACCURACY, _answers({3, 8, 11}), _answers({3, 8}), GOLD, resamples=1000, seed=0
    )
    assert renamed.p_value == expected and renamed.shared_examples == 20
    assert renamed.significant is False and weak.significant is True
    assert strong.p_value is None  # the first row is what the others are tested against


def test_lower_is_better_comes_from_results_when_the_task_is_not_installed(
    results_folder: Path,
) -> None:
    other = next(group for group in build(results_folder).groups if group.task == "error-rate")
    assert (other.primary, other.higher_is_better, other.direction_source) == (
        "wer",
        False,
        "results",
    )
    assert [row.model for row in other.rows] == ["org/low", "org/high"]


def test_runs_that_differ_in_data_or_options_are_not_ranked_together(tmp_path: Path) -> None:
    rows = sentiment_rows(set())
    score = {"accuracy": (1.0, 1.0, 1.0)}
    write_run(tmp_path, "a", model="org/a", scores=score, rows=rows)
    write_run(tmp_path, "b", model="org/b", scores=score, rows=rows)
    write_run(tmp_path, "c", model="org/c", scores=score, rows=rows, sha="1" * 64)
    write_run(tmp_path, "d", model="org/d", scores=score, rows=rows, options={"top_k": 2})
    write_run(tmp_path, "e", model="org/e", scores={"macro_f1": (1.0, 1.0, 1.0)}, rows=rows)
    group = build(tmp_path).groups[0]
    assert [row.model for row in group.rows] == ["org/a", "org/b"]
    assert [row.rank for row in group.rows] == [1, 1]  # a tie shares its rank
    reasons = {excluded.model: excluded.reasons for excluded in group.not_comparable}
    assert reasons == {
        "org/c": [f"dataset sha256 {'1' * 12} (ranked runs: {SHA[:12]})"],
        "org/d": ["options top_k=2 (ranked runs: top_k=1)"],
        "org/e": ["has no accuracy score"],
    }


def test_json_follows_the_versioned_schema(results_folder: Path) -> None:
    document = to_json(build(results_folder))
    text = json.dumps(document, allow_nan=False)  # strict JSON: no NaN anywhere
    assert json.loads(text) == document
    assert document["schema_version"] == SCHEMA_VERSION == 1
    assert set(document) == {
        "schema_version",
        "generator",
        "source",
        "significance",
        "groups",
        "skipped",
    }
    assert document["skipped"][0]["path"] == "broken/results.json"
    sentiment = document["groups"][1]
    assert sentiment["primary_metric"] == {
        "name": "accuracy",
        "higher_is_better": True,
        "direction_from": "task",
    }
    assert [row["rank"] for row in sentiment["rows"]] == [1, 2, 3]
    first, second = sentiment["rows"][:2]
    assert first["p_vs_first"] is None and 0 < second["p_vs_first"] <= 1
    assert first["metrics"]["accuracy"] == {
        "value": 0.9,
        "ci95": [0.75, 1.0],
        "higher_is_better": True,
        "scale": [0.0, 1.0],  # results.json has none: the installed metric's
    }
    assert first["parameters"] == 66955010 and first["weights_bytes"] == 267832320
    assert first["command"].startswith("nlpsuite eval sentiment")
    assert sentiment["not_comparable"][0]["reasons"] == ["sample 10, seed 0 (ranked runs: none)"]
    documented = (ROOT / "docs" / "leaderboard-schema.md").read_text()
    for key in [*document, *sentiment, *first, *second, "reasons", "direction_from"]:
        assert f"`{key}`" in documented, f"docs/leaderboard-schema.md does not describe {key}"


def test_html_is_one_self_contained_file(results_folder: Path) -> None:
    page = to_html(build(results_folder))
    assert page.startswith("<!doctype html>") and page.rstrip().endswith("</html>")
    assert "<style>" in page and "<script>" in page and page.count('<svg class="plot"') == 2
    assert page.count('<table class="sortable"') == 2
    assert not re.search(r"""(src|href)=["'](https?:)?//""", page), "loads something"
    assert "@import" not in page and "url(" not in page
    assert "Reproducibility" in page and html.escape("--model org/strong-model") in page


def test_leaderboard_command_writes_each_format(results_folder: Path, tmp_path: Path) -> None:
    printed = nlpsuite_process("leaderboard", str(results_folder))
    assert printed.returncode == 0 and printed.stdout == GOLDEN
    assert printed.stderr == (
        "nlpsuite: skipping a run: broken/results.json:1: not valid JSON (Expecting value)\n"
    )
    out = tmp_path / "board"
    done = nlpsuite(
        "leaderboard", str(results_folder), "--format", "md,html,json", "--out", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "leaderboard.html",
        "leaderboard.json",
        "leaderboard.md",
    ]
    assert (out / "leaderboard.md").read_text() == GOLDEN
    assert json.loads((out / "leaderboard.json").read_text())["schema_version"] == 1
    as_json = nlpsuite("leaderboard", str(results_folder), "--format", "json")
    assert json.loads(as_json.stdout)["groups"]


def test_bad_inputs_are_one_line_errors(
    results_folder: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for args, message in [
        ((str(empty),), f"no results under {empty}"),
        ((str(tmp_path / "absent"),), f"results folder not found: {tmp_path / 'absent'}"),
        (
            (str(results_folder), "--format", "md,xml"),
            "unknown leaderboard format 'xml' (known: md, html, json)",
        ),
        ((str(results_folder), "--format", "md,json"), "several formats need --out DIR"),
    ]:
        done = nlpsuite("leaderboard", *args)
        assert done.returncode == 2
        assert one_error_line(done.stderr) == f"nlpsuite: error: {message}"
    with pytest.raises(NlpsuiteError, match="unknown leaderboard format 'pdf'"):
        parse_formats("pdf")
    assert parse_formats("markdown, html,md") == ["md", "html"]

    only_broken = tmp_path / "only-broken"
    shutil.copytree(results_folder / "broken", only_broken / "broken")
    unreadable = r"no results under .* \(1 unreadable, skipped\)"
    with (
        caplog.at_level(logging.WARNING, logger="nlpsuite"),
        pytest.raises(NlpsuiteError, match=unreadable),
    ):
        build(only_broken)
    assert [r.getMessage() for r in caplog.records] == [
        "skipping a run: broken/results.json:1: not valid JSON (Expecting value)"
    ]

    (results_folder / "sentiment" / "weak" / "predictions.jsonl").unlink()
    (results_folder / "other" / "low" / "results.json").write_text('{"task": "x"}')
    board = build(results_folder)
    weak = next(row for row in board.groups[1].rows if row.model == "tiny-bert")
    assert (
        weak.p_value is None
        and weak.test_note == "not tested: sentiment/weak: no predictions.jsonl"
    )
    assert [path for path, _ in board.skipped] == ["broken/results.json", "other/low/results.json"]
    assert board.skipped[1][1] == "other/low/results.json: missing field 'dataset.name'"


# The browser test: the page as a person opens it, in headless Chromium.

def _browse(page: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return browse(page.as_uri() + "#selftest", *arguments)


def test_html_renders_and_sorts_in_a_browser(results_folder: Path, tmp_path: Path) -> None:
    browser = chromium()
    assert browser
    page = tmp_path / "leaderboard.html"
    page.write_text(to_html(build(results_folder)), encoding="utf-8")
    start = time.perf_counter()
    dumped = _browse(page, "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    found = re.search(r'data-selftest="([^"]*)"', dumped.stdout)
    assert found, "the page's self-test did not run"
    report = json.loads(html.unescape(found.group(1)))

    tables = {table["group"]: table for table in report["tables"]}
    sentiment = tables["g-sentiment-sentiment-mini"]
    assert sentiment["before"] == ["org/strong-model", "org/renamed", "tiny-bert"]
    assert sentiment["by_model"] == ["org/renamed", "org/strong-model", "tiny-bert"]
    assert [float(v) for v in sentiment["primary_ascending"]] == [0.55, 0.85, 0.9]
    assert [float(v) for v in sentiment["primary_descending"]] == [0.9, 0.85, 0.55]
    assert sentiment["restored"] == sentiment["before"]
    other = tables["g-error-rate-custom-jsonl"]
    assert [float(v) for v in other["primary_ascending"]] == [12.5, 31.0]

    plots = {plot["group"]: plot for plot in report["plots"]}
    assert set(plots) == set(tables)
    # Every run with a throughput is a point with its error bar (a line and two caps).
    assert (
        plots["g-sentiment-sentiment-mini"]["points"],
        plots["g-sentiment-sentiment-mini"]["bars"],
    ) == (2, 6)
    assert plots["g-error-rate-custom-jsonl"]["points"] == 1
    assert all(plot["width"] > 300 and plot["height"] > 200 for plot in plots.values())

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "leaderboard.png"
    shot.unlink(missing_ok=True)
    done = _browse(page, f"--screenshot={shot}", "--window-size=1280,1800")
    assert done.returncode == 0 and shot.stat().st_size > 10_000, done.stderr[-2000:]
    assert time.perf_counter() - start < 60
