"""A user's first minutes with `nlpsuite eval` (issue 17): a failed run leaves its folder free,
speed is measured after a warm-up batch, and a run off a terminal says how far it has got."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from nlpsuite import NlpsuiteError, executors
from nlpsuite.harness import PARTIAL, evaluate
from nlpsuite.results import EvalRequest, RunResult
from tests.helpers import nlpsuite, nlpsuite_process, one_error_line

PROGRESS = re.compile(r"^nlpsuite: [\d,]+/[\d,]+ examples, ")


def eval_args(model: Path | str, out: Path, *extra: str) -> list[str]:
    return ["eval", "sentiment", "-m", str(model), "-d", "sentiment-mini", "--bootstrap", "0",
            "--out", str(out), *extra]


def config_only(tiny_classifier: Path, tmp_path: Path) -> Path:
    """A model folder whose config loads (so its labels are known) but that has no weights."""
    folder = tmp_path / "config-only"
    folder.mkdir()
    shutil.copy(tiny_classifier / "config.json", folder)
    return folder


# 1. A failed eval leaves nothing that blocks the corrected command.

BAD_MODELS = {
    "missing folder": (lambda tiny, tmp: tmp / "nope", "model directory not found"),
    "folder without weights": (config_only, "has no weights"),
}


@pytest.mark.parametrize("bad", BAD_MODELS, ids=list(BAD_MODELS))
def test_a_model_that_fails_to_load_leaves_no_folder_and_the_fix_runs(
    tiny_classifier: Path, tmp_path: Path, bad: str
) -> None:
    make, said = BAD_MODELS[bad]
    out = tmp_path / "results" / "r1"
    failed = nlpsuite(*eval_args(make(tiny_classifier, tmp_path), out, "-q"))
    assert failed.returncode == 2
    assert said in one_error_line(failed.stderr)
    assert not (tmp_path / "results").exists(), sorted(tmp_path.rglob("*"))

    fixed = nlpsuite(*eval_args(tiny_classifier, out, "-q"))
    assert fixed.returncode == 0, fixed.stderr
    assert json.loads((out / "results.json").read_text())["resumed_examples"] == 0


def test_a_failed_model_in_an_existing_folder_writes_nothing_there(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("the user's own file\n")
    failed = nlpsuite(*eval_args(config_only(tiny_classifier, tmp_path), out, "-q"))
    assert failed.returncode == 2
    assert sorted(path.name for path in out.iterdir()) == ["notes.txt"]


def test_a_bad_label_map_fails_before_the_folder_is_made(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    failed = nlpsuite(*eval_args(tiny_classifier, out, "-q", "--label-map", "POSITIVE=POSITIVE"))
    assert failed.returncode == 2
    assert "dataset label 'NEGATIVE' maps to no label" in one_error_line(failed.stderr)
    assert not out.exists()


def test_a_run_json_without_cached_predictions_is_free_for_another_request(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    # What a failed run of an earlier nlpsuite left: a claim and, at most, a torn first line.
    (out / "run.json").write_text(json.dumps({"identity": "another request"}) + "\n")
    (out / PARTIAL).write_text('{"id": "s01", "predi')
    done = nlpsuite(*eval_args(tiny_classifier, out, "-q", "--limit", "5"))
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "results.json").read_text())["dataset"]["examples"] == 5
    assert len((out / PARTIAL).read_text().splitlines()) == 5


def test_a_run_json_with_cached_predictions_still_holds_its_folder(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert nlpsuite(*eval_args(tiny_classifier, out, "-q", "--limit", "5")).returncode == 0
    (out / "results.json").unlink()  # an interrupted run: only the cache is left
    other = nlpsuite(*eval_args(tiny_classifier, out, "-q", "--limit", "6"))
    assert other.returncode == 2
    assert "holds a run with other arguments" in one_error_line(other.stderr)


class Recording:
    """The real runner, with each call's size (and, if asked, a failure at call ``fail_at``)."""

    def __init__(self, runner: Callable[[Sequence[Any]], list[Any]], calls: list[Any],
                 fail_at: int | None, skip_first: bool) -> None:
        self.runner, self.calls, self.fail_at, self.skip_first = runner, calls, fail_at, skip_first

    def __call__(self, inputs: Sequence[Any]) -> list[Any]:
        self.calls.append(("run", len(inputs)))
        if self.fail_at is not None and len(self.calls) >= self.fail_at:
            raise NlpsuiteError("the runner broke")
        if self.skip_first and len(self.calls) == 1:
            return []  # a warm-up that does nothing: the run as it was before warm-ups
        return self.runner(inputs)


@pytest.fixture()
def calls(monkeypatch: pytest.MonkeyPatch) -> Callable[..., list[Any]]:
    """Wrap the runners the harness loads from now on; returns the list their calls go to."""
    real = executors.load_runner  # the one place the harness's runners are loaded

    def wrap(fail_at: int | None = None, skip_first: bool = False) -> list[Any]:
        seen: list[Any] = []

        def load(*args: Any, **kwargs: Any) -> Recording:
            return Recording(real(*args, **kwargs), seen, fail_at, skip_first)

        monkeypatch.setattr(executors, "load_runner", load)
        return seen

    return wrap


def test_a_runner_failing_before_any_prediction_is_cached_leaves_no_folder(
    tiny_classifier: Path, tmp_path: Path, calls: Callable[..., list[Any]]
) -> None:
    calls(fail_at=1)
    out = tmp_path / "results" / "run"
    request = EvalRequest("sentiment", "sentiment-mini", out, model=str(tiny_classifier),
                          bootstrap=0)
    with pytest.raises(NlpsuiteError, match="the runner broke"):
        evaluate(request)
    assert not (tmp_path / "results").exists()


def test_a_runner_failing_after_a_chunk_keeps_the_cache_to_resume(
    tiny_classifier: Path, tmp_path: Path, calls: Callable[..., list[Any]]
) -> None:
    calls(fail_at=3)  # warm-up, first chunk, then the second chunk fails
    request = EvalRequest("sentiment", "sentiment-mini", tmp_path / "run",
                          model=str(tiny_classifier), bootstrap=0, batch_size=8,
                          checkpoint_every=16)
    with pytest.raises(NlpsuiteError, match="the runner broke"):
        evaluate(request)
    assert len((tmp_path / "run" / PARTIAL).read_text().splitlines()) == 16
    calls()
    assert evaluate(request)["resumed_examples"] == 16


def test_bench_leaves_no_folder_for_a_run_whose_model_fails(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    broken = config_only(tiny_classifier, tmp_path)
    suite = tmp_path / "suite.toml"
    suite.write_text(
        f'[models]\ntiny = {{ path = "{tiny_classifier}" }}\nbroken = {{ path = "{broken}" }}\n'
        '[[runs]]\ntask = "sentiment"\nmodels = ["broken", "tiny"]\n'
        'datasets = ["sentiment-mini"]\nlimit = 4\nbootstrap = 0\n'
    )
    out = tmp_path / "out"
    done = nlpsuite("bench", str(suite), "--out", str(out))
    assert done.returncode == 2
    assert "broken: FAILED: " in done.stdout.splitlines()[0]
    folders = [path.name for path in out.iterdir()]
    assert len(folders) == 1 and "--tiny--" in folders[0], folders


# 4. Throughput is measured after a warm-up batch.


def test_the_runner_warms_up_on_one_batch_before_the_timed_chunks(
    tiny_classifier: Path, tmp_path: Path, calls: Callable[..., list[Any]]
) -> None:
    seen = calls()
    request = EvalRequest("sentiment", "sentiment-mini", tmp_path / "run",
                          model=str(tiny_classifier), bootstrap=0, batch_size=8,
                          checkpoint_every=16)
    results = evaluate(request, progress=lambda now: seen.append(
        ("progress", now.done, now.chunks_done, now.chunks_total, now.workers)))
    # The warm-up batch comes before the clock starts (the first progress call).
    assert seen == [("run", 8), ("progress", 0, 0, 3, None), ("run", 16),
                    ("progress", 16, 1, 3, None), ("run", 16), ("progress", 32, 2, 3, None),
                    ("run", 8), ("progress", 40, 3, 3, None)]
    assert results["warmup_examples"] == 8 and results["timed_examples"] == 40
    assert results["examples_per_second"] > 0
    read = RunResult.read(tmp_path / "run" / "results.json")
    assert (read.warmup_examples, read.timed_examples) == (8, 40)

    seen.clear()  # everything cached: nothing to warm up, nothing timed
    (tmp_path / "run" / "results.json").unlink()
    again = evaluate(request)
    assert seen == [] and again["resumed_examples"] == 40
    assert (again["warmup_examples"], again["timed_examples"]) == (0, 0)
    assert again["examples_per_second"] is None


def test_predictions_are_byte_identical_with_and_without_the_warm_up(
    tiny_classifier: Path, tmp_path: Path, calls: Callable[..., list[Any]]
) -> None:
    request = EvalRequest("sentiment", "sentiment-mini", tmp_path / "warm",
                          model=str(tiny_classifier), bootstrap=0, batch_size=8)
    evaluate(request)
    calls(skip_first=True)
    cold = tmp_path / "cold"
    evaluate(EvalRequest("sentiment", "sentiment-mini", cold, model=str(tiny_classifier),
                         bootstrap=0, batch_size=8))
    warm = (tmp_path / "warm" / "predictions.jsonl").read_bytes()
    assert warm == (cold / "predictions.jsonl").read_bytes() and len(warm.splitlines()) == 40


def test_results_written_before_the_warm_up_fields_still_read(tmp_path: Path) -> None:
    old = tmp_path / "results.json"
    old.write_text(json.dumps({"task": "sentiment", "dataset": {"name": "d"},
                               "metrics": {"accuracy": {"value": 0.5}}}))
    read = RunResult.read(old)
    assert (read.warmup_examples, read.timed_examples) == (None, None)


# 5. Off a terminal, a long run prints a progress line now and then; --quiet none.


def test_off_a_terminal_eval_prints_progress_lines_to_stderr(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    done = nlpsuite_process(*eval_args(tiny_classifier, tmp_path / "run", "--progress-every",
                                       "0", "--batch-size", "8"))
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if PROGRESS.match(line)]
    assert lines, done.stderr
    assert re.fullmatch(r"nlpsuite: 40/40 examples, [\d.,]+ ex/s, done", lines[-1]), lines
    assert "\r" not in done.stderr and done.stdout.startswith("accuracy\t")


def test_progress_lines_come_at_the_end_of_a_short_run_and_never_with_quiet(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    shown = nlpsuite(*eval_args(tiny_classifier, tmp_path / "a"))
    assert shown.returncode == 0, shown.stderr
    # A run shorter than the 30 s interval: one line, at its end.
    assert [line for line in shown.stderr.splitlines() if PROGRESS.match(line)] == [
        line for line in shown.stderr.splitlines() if line.startswith("nlpsuite: 40/40 ")
    ] != []
    quiet = nlpsuite(*eval_args(tiny_classifier, tmp_path / "b", "--quiet",
                                "--progress-every", "0"))
    assert quiet.returncode == 0, quiet.stderr
    assert not [line for line in quiet.stderr.splitlines() if PROGRESS.match(line)]


def test_a_negative_progress_interval_is_refused(tiny_classifier: Path, tmp_path: Path) -> None:
    done = nlpsuite(*eval_args(tiny_classifier, tmp_path / "run", "--progress-every", "-1"))
    assert done.returncode == 2
    assert "-1" in done.stderr and not (tmp_path / "run").exists()


def test_bench_prints_progress_lines_off_a_terminal_and_none_with_quiet(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(
        f'[models]\ntiny = {{ path = "{tiny_classifier}" }}\n'
        '[[runs]]\ntask = "sentiment"\nmodels = ["tiny"]\ndatasets = ["sentiment-mini"]\n'
        'limit = 4\nbootstrap = 0\n'
    )
    shown = nlpsuite("bench", str(suite), "--out", str(tmp_path / "a"), "--progress-every", "0")
    assert shown.returncode == 0, shown.stderr
    assert "nlpsuite: 4/4 examples, " in shown.stderr
    quiet = nlpsuite("bench", str(suite), "--out", str(tmp_path / "b"), "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert not [line for line in quiet.stderr.splitlines() if PROGRESS.match(line)]
