"""Benchmark suites: TOML files of tasks x models x datasets, run through the harness into stably
named folders, complete runs skipped, and the offline suite of the README end to end."""

from __future__ import annotations

import importlib.util
import json
import shlex
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest

from nlpsuite import NlpsuiteError
from nlpsuite.bench import BenchRun, Model, load_suite, plan, run_suite
from nlpsuite.plugins import registry
from nlpsuite.report import build, to_markdown
from tests.helpers import nlpsuite, nlpsuite_process, one_error_line

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"


def _make_tiny_models() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "make_tiny_models", BENCHMARKS / "make_tiny_models.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_offline_suite_ranks_two_models_per_task_on_the_embedded_sets() -> None:
    suite = load_suite(BENCHMARKS / "suite-offline.toml")
    known = registry()
    models: dict[str, set[str]] = {}
    for run in suite.runs:
        assert run.task in known.tasks, run.task
        assert known.datasets[run.dataset].task == run.task
        models.setdefault(run.task, set()).add(run.model.name)
    embedded = {
        "sentiment-mini",
        "qa-mini",
        "search-mini",
        "sts-mini",
        "translation-mini",
        "summarization-mini",
    }
    assert {run.dataset for run in suite.runs} == embedded
    assert set(models) == {known.datasets[name].task for name in embedded}
    assert all(len(names) >= 2 for names in models.values()), models
    assert "sentence-transformers/all-MiniLM-L6-v2" in {r.model.source for r in suite.runs}
    # Every local model is one that benchmarks/make_tiny_models.py builds, where it builds it.
    local = {Path(run.model.source) for run in suite.runs if run.model.local}
    built = _make_tiny_models()
    assert local == {built.MODELS / name for name in built._builders()}
    assert suite.prepare == ".venv/bin/python benchmarks/make_tiny_models.py"


def test_online_suite_names_the_standard_hub_models() -> None:
    suite = load_suite(BENCHMARKS / "suite-online.toml")
    assert not any(run.model.local for run in suite.runs)
    assert {run.model.source for run in suite.runs} == {
        "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
        "distilbert/distilbert-base-cased-distilled-squad",
        "sentence-transformers/all-MiniLM-L6-v2",
        "sentence-transformers/all-mpnet-base-v2",
        "Helsinki-NLP/opus-mt-en-de",
        "sshleifer/distilbart-cnn-12-6",
        "google-t5/t5-small",
    }
    assert all(run.task in registry().tasks for run in suite.runs)


def test_run_folders_are_named_stably_from_what_decides_the_results() -> None:
    model = Model("tiny", "/anywhere/tiny", local=True)
    run = BenchRun("sentiment", "sentiment-mini", model, dataset_key="sentiment-mini")
    # The same spec gives the same folder wherever the checkout is (a local model counts by its
    # suite name, not its absolute path) ...
    moved = BenchRun(
        "sentiment",
        "sentiment-mini",
        Model("tiny", "/elsewhere/tiny", local=True),
        dataset_key="sentiment-mini",
    )
    assert run.folder == moved.folder == "sentiment--sentiment-mini--tiny--e2acfda2"
    # ... and anything that changes predictions or scores gives another one.
    changed = [
        BenchRun(
            "sentiment", "sentiment-mini", model, options={"top_k": 2}, dataset_key="sentiment-mini"
        ),
        BenchRun("sentiment", "sentiment-mini", model, sample=5, dataset_key="sentiment-mini"),
        BenchRun(
            "sentiment", "sentiment-mini", model, label_map={"a": "b"}, dataset_key="sentiment-mini"
        ),
    ]
    assert len({run.folder, *(other.folder for other in changed)}) == 4


def _suite(tmp_path: Path, body: str, name: str = "suite.toml") -> Path:
    path = tmp_path / name
    path.write_text(body, encoding="utf-8")
    return path


def test_bad_suites_are_one_line_errors(tmp_path: Path) -> None:
    models = '[models]\nm = "org/model"\n'
    run = models + "[[runs]]\ntask = 'sentiment'\nmodels = ['m']\n"
    full = run + "datasets = ['d']\n"
    cases = {
        "[runs\n": "not valid TOML",
        "[suite]\nname = 'x'\n": "no [[runs]] blocks",
        "[extra]\n": "unknown table 'extra' (known: suite, defaults, models, runs)",
        run: "[[runs]] #1: needs at least one of 'models' and of 'datasets'",
        full.replace("['m']", "['x']"): "[[runs]] #1: model 'x' is not in [models] (known: m)",
        full + "limt = 3\n": "[[runs]] #1: unknown key 'limt'",
        full + "limit = '3'\n": "[[runs]] #1: 'limit' should be int, got '3'",
        full.replace("task = 'sentiment'\n", ""): "[[runs]] #1: missing key 'task'",
        models + "[defaults]\ntask = 'x'\n": "[defaults]: unknown key 'task'",
        "[models]\nm = { path = 'a', id = 'b' }\n": "[models] m: give a hub id string",
        full.replace("['m']", "['m', 'm']"): "sentiment · d · m is listed twice",
    }
    for number, (body, message) in enumerate(cases.items()):
        path = _suite(tmp_path, body, f"s{number}.toml")
        with pytest.raises(NlpsuiteError) as caught:
            load_suite(path)
        assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value)
        assert "\n" not in str(caught.value)
    missing = nlpsuite("bench", str(tmp_path / "absent.toml"), "--out", str(tmp_path / "o"))
    assert one_error_line(missing.stderr) == (
        f"nlpsuite: error: suite file not found: {tmp_path / 'absent.toml'}"
    )


def test_missing_local_models_name_the_step_that_builds_them(tmp_path: Path) -> None:
    path = _suite(
        tmp_path,
        """
[suite]
prepare = "python make.py"
[models]
tiny = { path = "models/tiny" }
[[runs]]
task = "sentiment"
models = ["tiny"]
dataset = "sentiment-mini"
""",
    )
    done = nlpsuite("bench", str(path), "--out", str(tmp_path / "out"))
    assert one_error_line(done.stderr) == (
        f"nlpsuite: error: {path}: model folders not found: tiny ({tmp_path / 'models' / 'tiny'})"
        "; build them with: python make.py"
    )


def _two_classifiers(tmp_path: Path, classifier: Path, other: Path, bootstrap: int) -> Path:
    # Paths relative to the suite file; the datasets are registered names.
    shutil.copytree(classifier, tmp_path / "models" / "binary", dirs_exist_ok=True)
    shutil.copytree(other, tmp_path / "models" / "three-way", dirs_exist_ok=True)
    return _suite(
        tmp_path,
        f"""
[defaults]
limit = 8
bootstrap = {bootstrap}
batch_size = 4
[models]
binary = {{ path = "models/binary" }}
three-way = {{ path = "models/three-way" }}
[[runs]]
task = "sentiment"
models = ["binary", "three-way"]
datasets = ["sentiment-mini"]
""",
    )


def test_bench_runs_each_run_once_and_resumes_changed_ones(
    tiny_classifier: Path, tiny_classifier_3way: Path, tmp_path: Path
) -> None:
    suite_file = _two_classifiers(tmp_path, tiny_classifier, tiny_classifier_3way, 50)
    out = tmp_path / "results"
    first = nlpsuite("bench", str(suite_file), "--out", str(out))
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert lines[0].startswith("[1/2] sentiment · sentiment-mini · binary: done in ")
    assert lines[-1] == f"2 runs: 2 done, 0 already complete, 0 failed; results in {out}"
    folders = sorted(path.name for path in out.iterdir())
    assert [name.rsplit("--", 1)[0] for name in folders] == [
        "sentiment--sentiment-mini--binary",
        "sentiment--sentiment-mini--three-way",
    ]

    # What the harness now records: model size, the label mapping, the request and a command.
    results = json.loads((out / folders[1] / "results.json").read_text())
    assert results["model"]["parameters"] > 20_000 and results["model"]["weights_bytes"] > 50_000
    assert results["label_mapping"] == {"NEGATIVE": "negative", "POSITIVE": "positive"}
    assert results["request"]["limit"] == 8 and results["request"]["bootstrap"] == 50
    assert results["command"] == shlex.join(
        [
            "nlpsuite",
            "eval",
            "sentiment",
            "--dataset",
            "sentiment-mini",
            "--model",
            str((tmp_path / "models" / "three-way").resolve()),
            "--out",
            str(out / folders[1]),
            "--batch-size",
            "4",
            "--limit",
            "8",
            "--bootstrap",
            "50",
        ]
    )
    # The command makes the same run again.
    again = shlex.split(results["command"])
    again[again.index("--out") + 1] = str(tmp_path / "again")
    remade = nlpsuite(*again[1:])
    assert remade.returncode == 0, remade.stderr
    remade_results = json.loads((tmp_path / "again" / "results.json").read_text())
    assert remade_results["metrics"] == results["metrics"]

    second = nlpsuite("bench", str(suite_file), "--out", str(out))
    assert second.stdout.splitlines()[-1].startswith("2 runs: 0 done, 2 already complete")
    listed = nlpsuite("bench", str(suite_file), "--out", str(out), "--list")
    assert [line.split("\t")[0] for line in listed.stdout.splitlines()] == ["complete"] * 2

    # Another bootstrap count is another request: rerun, reusing every cached prediction.
    changed = _two_classifiers(tmp_path, tiny_classifier, tiny_classifier_3way, 60)
    assert [complete for _, complete in plan(load_suite(changed), out)] == [False, False]
    outcomes = run_suite(load_suite(changed), out)
    assert [outcome.status for outcome in outcomes] == ["done", "done"]
    assert all(o.results and o.results["resumed_examples"] == 8 for o in outcomes)
    forced = run_suite(load_suite(changed), out, force=True)
    assert all(o.results and o.results["resumed_examples"] == 0 for o in forced)

    board = build(out)
    assert [row.model for row in board.groups[0].rows] != []
    assert {row.model for row in board.groups[0].rows} == {"binary", "three-way"}
    assert board.groups[0].rows[1].p_value is not None  # labels compared across label names
    assert "| 1 |" in to_markdown(board)


def test_a_failing_run_is_reported_and_the_rest_go_on(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    path = _suite(
        tmp_path,
        f"""
[models]
tiny = {{ path = "{tiny_classifier}" }}
[[runs]]
task = "sentiment"
models = ["tiny"]
datasets = ["no-such-dataset", "sentiment-mini"]
limit = 4
bootstrap = 10
""",
    )
    done = nlpsuite("bench", str(path), "--out", str(tmp_path / "out"))
    assert done.returncode == 2
    lines = done.stdout.splitlines()
    assert lines[0].startswith("[1/2] sentiment · no-such-dataset · tiny: FAILED: ")
    assert "done in" in lines[1]
    assert one_error_line(done.stderr) == "nlpsuite: error: 1 of 2 runs failed (see above)"


@pytest.mark.slow
def test_the_readme_pipeline_builds_the_offline_leaderboard(tmp_path: Path) -> None:
    """The README's three commands, on a copy of the offline suite whose models are built
    beside it (so the test writes nothing into the checkout)."""
    shutil.copy(BENCHMARKS / "suite-offline.toml", tmp_path / "suite-offline.toml")
    import subprocess

    built = subprocess.run(
        [
            sys.executable,
            str(BENCHMARKS / "make_tiny_models.py"),
            "--out",
            str(tmp_path / "out" / "models"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    ran = nlpsuite_process(
        "bench", str(tmp_path / "suite-offline.toml"), "--out", str(tmp_path / "offline")
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert ran.stdout.splitlines()[-1].startswith("12 runs: 12 done")
    board = tmp_path / "leaderboard"
    made = nlpsuite_process(
        "leaderboard", str(tmp_path / "offline"), "--format", "md,html,json", "--out", str(board)
    )
    assert made.returncode == 0, made.stderr
    document = json.loads((board / "leaderboard.json").read_text())
    assert len(document["groups"]) == 6 and not document["skipped"]
    assert all(len(group["rows"]) == 2 for group in document["groups"])
    search = next(g for g in document["groups"] if g["task"] == "semantic-search")
    # Rows are named as the suite names the models, the hub id beside.
    assert search["rows"][0]["model"] == "minilm"
    assert search["rows"][0]["model_id"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert search["rows"][1]["significant"] is True
    assert (board / "leaderboard.md").read_text().startswith("# Leaderboard")


def test_model_size_of_a_hub_model_comes_from_the_local_cache(
    tiny_classifier: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import constants

    from nlpsuite.checkpoints import model_size

    assert model_size("org/not-cached") == {"weights_bytes": None, "parameters": None}
    repo = tmp_path / "models--org--cached"
    snapshot = repo / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    shutil.copy(tiny_classifier / "model.safetensors", snapshot / "model.safetensors")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert model_size("org/cached") == model_size(str(tiny_classifier))
    assert model_size("org/cached")["parameters"] == 25324


def test_a_model_retrained_in_place_is_no_longer_complete(
    tiny_classifier: Path, tiny_classifier_3way: Path, tmp_path: Path
) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    suite = load_suite(_two_classifiers(tmp_path, tiny_classifier, tiny_classifier_3way, 0))
    out = tmp_path / "results"
    run_suite(suite, out)
    assert [complete for _, complete in plan(suite, out)] == [True, True]
    predictions = out / suite.runs[0].folder / "predictions.jsonl"
    before = predictions.read_text()
    binary = tmp_path / "models" / "binary"
    retrained = AutoModelForSequenceClassification.from_pretrained(binary)
    with torch.no_grad():
        retrained.classifier.bias[0] += 1.0
    retrained.save_pretrained(binary)
    assert [complete for _, complete in plan(suite, out)] == [False, True]
    refused = run_suite(suite, out)
    assert refused[0].status == "failed" and "other model weights" in (refused[0].error or "")
    assert [outcome.status for outcome in run_suite(suite, out, force=True)] == ["done", "done"]
    # The new weights ran, not a copy of the old model cached in this process.
    assert predictions.read_text() != before
