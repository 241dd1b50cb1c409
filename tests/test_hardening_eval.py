"""Hardening `nlpsuite eval`: a damaged prediction cache, two runs in one folder, --bootstrap."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from nlpsuite.errors import NlpsuiteError
from nlpsuite.harness import PARTIAL, Progress, evaluate, lock_run_folder
from nlpsuite.metrics import ACCURACY, bootstrap
from nlpsuite.results import EvalRequest
from tests.helpers import nlpsuite, one_error_line


def eval_args(model: Path, out: Path, *extra: str) -> list[str]:
    return ["eval", "sentiment", "-m", str(model), "-d", "sentiment-mini", "--bootstrap", "0",
            "--out", str(out), "-q", *extra]


@pytest.fixture()
def cached_run(tiny_classifier: Path, tmp_path: Path) -> Path:
    """A finished sentiment-mini run whose partial file holds all 40 predictions."""
    out = tmp_path / "run"
    done = nlpsuite(*eval_args(tiny_classifier, out))
    assert done.returncode == 0, done.stderr
    assert len((out / PARTIAL).read_text().splitlines()) == 40
    return out


def _edit_row(change: Callable[[dict], object]) -> Callable[[list[str]], None]:
    def edit(lines: list[str]) -> None:
        lines[4] = json.dumps(change(json.loads(lines[4])))

    return edit


def _drop(field: str) -> Callable[[dict], object]:
    return lambda row: {key: value for key, value in row.items() if key != field}


def _repeat_first(lines: list[str]) -> None:
    lines[4] = lines[0]


# Each damage to line 5 of the cache, and what the error line must say about it.
DAMAGED = {
    "not json": (lambda lines: lines.__setitem__(4, lines[4][:30] + "}"), "not a JSON object"),
    "not an object": (lambda lines: lines.__setitem__(4, "[1, 2]"), "not a JSON object"),
    "no scored field": (_edit_row(_drop("scored")), "missing field 'scored'"),
    "no id field": (_edit_row(_drop("id")), "missing field 'id'"),
    "unknown id": (_edit_row(lambda row: {**row, "id": "s99"}), "id 's99' is no example"),
    "repeated id": (_repeat_first, "id 's01' appears twice"),
    "other reference": (
        _edit_row(lambda row: {**row, "reference": "sideways"}),
        "the reference of example 's05' is not the dataset's",
    ),
    "label of no model": (
        _edit_row(lambda row: {**row, "scored": "BANANA"}),
        "label 'BANANA' is not one of the model's (NEGATIVE, POSITIVE)",
    ),
}


@pytest.mark.parametrize("damage", DAMAGED, ids=list(DAMAGED))
def test_a_damaged_cache_is_one_error_line_and_force_starts_over(
    tiny_classifier: Path, cached_run: Path, damage: str
) -> None:
    edit, said = DAMAGED[damage]
    clean = json.loads((cached_run / "results.json").read_text())
    partial = cached_run / PARTIAL
    lines = partial.read_text().splitlines()
    edit(lines)
    partial.write_text("\n".join(lines) + "\n")

    done = nlpsuite(*eval_args(tiny_classifier, cached_run))
    assert done.returncode == 2
    error = one_error_line(done.stderr)
    assert f"{partial}:5:" in error and said in error and "--force" in error, error

    forced = nlpsuite(*eval_args(tiny_classifier, cached_run, "--force"))
    assert forced.returncode == 0, forced.stderr
    again = json.loads((cached_run / "results.json").read_text())
    assert again["resumed_examples"] == 0 and again["metrics"] == clean["metrics"]
    assert len(partial.read_text().splitlines()) == 40


def test_force_starts_over_in_a_folder_of_other_arguments(
    tiny_classifier: Path, cached_run: Path
) -> None:
    other = nlpsuite(*eval_args(tiny_classifier, cached_run, "--limit", "5"))
    assert other.returncode == 2
    assert "holds a run with other arguments" in one_error_line(other.stderr)
    forced = nlpsuite(*eval_args(tiny_classifier, cached_run, "--limit", "5", "--force"))
    assert forced.returncode == 0, forced.stderr
    results = json.loads((cached_run / "results.json").read_text())
    assert results["dataset"]["examples"] == 5 and results["resumed_examples"] == 0
    assert "--force" not in results["command"] and "force" not in results["request"]


def test_an_intact_cache_is_still_resumed(tiny_classifier: Path, cached_run: Path) -> None:
    (cached_run / "results.json").unlink()
    done = nlpsuite(*eval_args(tiny_classifier, cached_run))
    assert done.returncode == 0, done.stderr
    assert json.loads((cached_run / "results.json").read_text())["resumed_examples"] == 40


def test_a_chunk_cut_short_leaves_the_cache_before_it_is_predicted_again(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    request = EvalRequest("sentiment", "sentiment-mini", tmp_path, model=str(tiny_classifier),
                          bootstrap=0, batch_size=8, checkpoint_every=8)
    evaluate(request)
    partial = tmp_path / PARTIAL
    lines = partial.read_text().splitlines(keepends=True)
    partial.write_text("".join(lines[:10]) + lines[10][:25])  # killed in the second chunk
    assert evaluate(request)["resumed_examples"] == 8
    ids = [json.loads(line)["id"] for line in partial.read_text().splitlines()]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 40
    assert evaluate(request)["resumed_examples"] == 40


HOLD_THE_LOCK = """
import sys, time
from pathlib import Path
from nlpsuite.harness import lock_run_folder
with lock_run_folder(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(300)
"""


def test_a_folder_in_use_by_another_process_is_refused_until_it_dies(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", HOLD_THE_LOCK, str(out)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        busy = nlpsuite(*eval_args(tiny_classifier, out))
        assert busy.returncode == 2
        error = one_error_line(busy.stderr)
        assert str(out) in error and "in use by another nlpsuite eval" in error
        assert not (out / PARTIAL).exists() and not (out / "run.json").exists()
    finally:
        holder.send_signal(signal.SIGKILL)  # a killed run leaves no lock behind
        holder.wait()
    done = nlpsuite(*eval_args(tiny_classifier, out))
    assert done.returncode == 0, done.stderr
    assert len((out / PARTIAL).read_text().splitlines()) == 40


def test_the_lock_is_held_for_the_whole_run_and_released_after(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    seen = []

    def try_to_enter(progress: Progress) -> None:
        try:
            with lock_run_folder(tmp_path):
                seen.append("entered")
        except NlpsuiteError as refused:
            seen.append(str(refused))

    evaluate(EvalRequest("sentiment", "sentiment-mini", tmp_path, model=str(tiny_classifier),
                         bootstrap=0, limit=5), progress=try_to_enter)
    assert seen and all("in use by another nlpsuite eval" in line for line in seen), seen
    with lock_run_folder(tmp_path):
        pass


def test_negative_bootstrap_is_refused_before_predicting(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    done = nlpsuite(*eval_args(tiny_classifier, out), "--bootstrap", "-10")
    assert done.returncode == 2
    assert "--bootstrap must be 0 or more, got -10" in one_error_line(done.stderr)
    assert not (out / PARTIAL).exists()


def test_no_resamples_give_no_interval(tiny_classifier: Path, tmp_path: Path) -> None:
    score = bootstrap(ACCURACY, ["a", "b", "a"], ["a", "b", "b"], resamples=0)
    assert (score.low, score.high) == (None, None)

    out = tmp_path / "results" / "run"
    done = nlpsuite(*eval_args(tiny_classifier, out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("accuracy\t")
    assert "[" not in done.stdout
    results = json.loads((out / "results.json").read_text())
    assert all(score["ci95"] == [None, None] for score in results["metrics"].values())
    board = nlpsuite("leaderboard", str(tmp_path / "results"), "--format", "md,html,json",
                     "--out", str(tmp_path / "board"))
    assert board.returncode == 0, board.stderr


def test_a_cache_holding_a_line_separator_character_resumes(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    # JSON written with ensure_ascii=False keeps U+2028 as is; str.splitlines() would cut the
    # cached row there and call the cache damaged.
    data = tmp_path / "odd.jsonl"
    rows = [{"id": f"a\u2028{i}", "text": "fine", "reference": "POSITIVE"} for i in range(3)]
    data.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    request = EvalRequest("sentiment", str(data), tmp_path / "run", model=str(tiny_classifier),
                          bootstrap=10)
    first = evaluate(request)
    (tmp_path / "run" / "results.json").unlink()
    again = evaluate(request)
    assert again["resumed_examples"] == 3
    assert again["metrics"]["accuracy"] == first["metrics"]["accuracy"]
