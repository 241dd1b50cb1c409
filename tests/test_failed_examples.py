"""An example whose prediction raises: recorded as an error row with its reason, the rest of the
run completes, the run exits 1 naming how many failed, and ``--retry-failed`` predicts only
those examples' chunks again (issue 20, point 3).

The task is a real plugin task whose runner raises on inputs holding "boom" while a flag file
exists, and whose outputs carry the size of the batch they were predicted in: a stand-in for the
float bits that padding changes, so a row predicted alone is told apart from a batched one.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.helpers import nlpsuite_process, one_error_line
from tests.test_plugins import fake_distribution
from tests.test_ray_executor import NLPSUITE, needs_ray

FLAKY = """
    import os
    from dataclasses import dataclass
    from nlpsuite import Task, hookimpl
    from nlpsuite.metrics import ACCURACY

    @dataclass(frozen=True)
    class Text:
        text: str

    @dataclass(frozen=True)
    class Shout:  # no "label" field: not a classifier, so no model config to read
        text: str

    def load(config):
        def run(batch):
            for item in batch:
                if "boom" in item.text and os.path.exists(os.environ["FLAKY_FLAG"]):
                    raise ValueError(f"cannot read {item.text!r}\\nsecond line")
            return [Shout(f"{item.text.upper()}/{len(batch)}") for item in batch]
        return run

    @hookimpl
    def register_tasks(register):
        register(Task("flaky", "Upper-case, failing on boom.", "none", Text, Shout, load,
                      metrics=(ACCURACY,), prediction=lambda output: output.text))
"""
# A plugin's runner failing is reported as the plugin's, with the runner's error after it.
BOOM1 = ("plugin 'flaky' (nlpsuite-fake 1.2.3), task 'flaky': the runner failed: "
         "ValueError: cannot read 'boom1'")
TEXTS = ["a", "b", "boom1", "d", "e", "f", "g", "boom2", "i", "j"]


@pytest.fixture
def flaky(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    """The plugin's environment, its flag file (present: "boom" inputs raise) and a dataset."""
    site = fake_distribution(tmp_path / "site", {"flaky": "fake_flaky"}, {"fake_flaky": FLAKY})
    flag = tmp_path / "flag"
    flag.write_text("fail\n")
    dataset = tmp_path / "flaky.jsonl"
    rows = [{"id": f"e{i}", "text": text, "reference": f"{text.upper()}/4"}
            for i, text in enumerate(TEXTS)]
    dataset.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return {"PYTHONPATH": str(site), "FLAKY_FLAG": str(flag)}, flag, dataset


def _eval(env: dict[str, str], dataset: Path, out: Path, *extra: str) -> tuple[int, str]:
    done = nlpsuite_process(
        "eval", "flaky", "-d", str(dataset), "--out", str(out), "--checkpoint-every", "4",
        "--batch-size", "4", "--bootstrap", "10", "-q", *extra, env=env,
    )
    return done.returncode, done.stderr


def _cache(out: Path) -> dict[str, dict[str, object]]:
    lines = (out / "predictions.partial.jsonl").read_text().splitlines()
    return {row["id"]: row for row in map(json.loads, lines)}


def test_failing_examples_are_error_rows_and_retry_predicts_only_them(
    flaky: tuple[dict[str, str], Path, Path], tmp_path: Path
) -> None:
    env, flag, dataset = flaky
    out = tmp_path / "run"
    code, stderr = _eval(env, dataset, out)
    assert code == 1, stderr
    assert one_error_line(stderr) == (
        f"nlpsuite: error: 2 of 10 examples failed (first: id e2: {BOOM1}); "
        "rerun with --retry-failed to predict only those"
    )
    assert not (out / "results.json").exists() and not (out / "predictions.jsonl").exists()
    cache = _cache(out)
    assert set(cache) == {f"e{i}" for i in range(10)}  # the rest completed
    assert cache["e2"] == {"id": "e2", "error": BOOM1}  # one line: the second one is dropped
    assert str(cache["e7"]["error"]).endswith("ValueError: cannot read 'boom2'")
    # Chunks of 4: e0-e3 and e4-e7 raised as batches, so their rows came from single runs;
    # e8-e9 is the batched pass of an untouched chunk.
    assert cache["e0"]["scored"] == "A/1" and cache["e6"]["scored"] == "G/1"
    assert cache["e8"]["scored"] == "I/2"

    # The same command again predicts nothing and reports the same failures: no silent retry.
    before = (out / "predictions.partial.jsonl").read_bytes()
    flag.unlink()  # "fixed", but only --retry-failed looks again
    code, stderr = _eval(env, dataset, out)
    assert code == 1 and "2 of 10 examples failed" in one_error_line(stderr)
    assert (out / "predictions.partial.jsonl").read_bytes() == before

    code, stderr = _eval(env, dataset, out, "--retry-failed")
    assert code == 0, stderr
    results = json.loads((out / "results.json").read_text())
    assert results["resumed_examples"] == 2  # e8, e9: only the failed examples' chunks ran
    assert results["timed_examples"] == 8
    # Byte for byte what a run where nothing failed writes: the chunks ran batched again.
    clean = tmp_path / "clean"
    code, stderr = _eval(env, dataset, clean)
    assert code == 0, stderr
    assert (out / "predictions.jsonl").read_bytes() == (clean / "predictions.jsonl").read_bytes()
    assert results["metrics"] == json.loads((clean / "results.json").read_text())["metrics"]
    assert len(_cache(out)) == 10  # each example once in the cache


def test_an_error_row_in_the_cache_is_checked_like_any_other(
    flaky: tuple[dict[str, str], Path, Path], tmp_path: Path
) -> None:
    env, _, dataset = flaky
    out = tmp_path / "run"
    assert _eval(env, dataset, out)[0] == 1
    partial = out / "predictions.partial.jsonl"
    lines = partial.read_text().splitlines()
    number = next(i for i, line in enumerate(lines, 1) if '"error"' in line)
    lines[number - 1] = json.dumps({"id": "e2", "error": 3})
    partial.write_text("\n".join(lines) + "\n")
    code, stderr = _eval(env, dataset, out)
    assert code == 2
    assert f"predictions.partial.jsonl:{number}: field 'error' should be str, got int" in (
        one_error_line(stderr)
    )


@pytest.mark.slow
@needs_ray
def test_on_ray_failing_examples_are_error_rows_too(
    flaky: tuple[dict[str, str], Path, Path], tmp_path: Path
) -> None:
    env, flag, dataset = flaky
    out, home = tmp_path / "run", tmp_path / "home"
    home.mkdir()
    words = [str(NLPSUITE), "eval", "flaky", "-d", str(dataset), "--out", str(out),
             "--checkpoint-every", "4", "--batch-size", "4", "--bootstrap", "10", "-q",
             "--executor", "ray", "--workers", "2"]
    done = _in_namespace(words, home, env)
    assert done.returncode == 1, done.stderr
    assert "2 of 10 examples failed (first: id e2: " in one_error_line(done.stderr)
    cache = _cache(out)
    assert cache["e2"] == {"id": "e2", "error": BOOM1} and "error" in cache["e7"]
    assert cache["e8"]["scored"] == "I/2"

    flag.unlink()
    done = _in_namespace([*words, "--retry-failed"], home, env)
    assert done.returncode == 0, done.stderr
    clean = tmp_path / "clean"
    assert _eval(env, dataset, clean)[0] == 0
    assert (out / "predictions.jsonl").read_bytes() == (clean / "predictions.jsonl").read_bytes()


def _in_namespace(
    words: list[str], home: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``words`` run where Ray can start, as tests/test_ray_executor.py runs them: a private
    network namespace with loopback up, Ray's token auth off, its files under ``home``."""
    environment = {**os.environ, **env, "RAY_AUTH_MODE": "disabled", "HOME": str(home),
                   "RAY_USAGE_STATS_ENABLED": "0"}
    command = ["unshare", "-n", "bash", "-c", f"ip link set lo up && exec {shlex.join(words)}"]
    return subprocess.run(command, env=environment, capture_output=True, text=True, timeout=300)
