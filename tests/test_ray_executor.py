"""``nlpsuite eval --executor ray`` on a real local Ray cluster: the same bytes as a local run,
whatever the number of workers or the batch size, after a worker is killed, and after the driver
is killed and the run resumed with another number of workers.

Ray will not use 127.0.0.1 as its node address, and traffic here may only go to loopback, so each
Ray run happens inside a private network namespace (``unshare -n``, loopback brought up) that the
test starts; CI runs as root, where that is allowed.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SHARED_DATASETS

SST2_DEV = SHARED_DATASETS / "glue-sst2" / "dev.tsv"
NLPSUITE = Path(sys.executable).parent / "nlpsuite"


def _can_unshare() -> bool:
    try:
        done = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _has_ray() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


needs_ray = pytest.mark.skipif(
    not (_has_ray() and _can_unshare() and SST2_DEV.exists()),
    reason="needs ray, SST-2 dev beside the checkout and `unshare -n` (root) for a loopback-only "
    "Ray cluster",
)


def _eval_words(model: Path, out: Path, *extra: str, limit: int = 96,
                quiet: bool = True) -> list[str]:
    shown = ["-q"] if quiet else ["--progress-every", "0"]  # off a terminal: a line per chunk
    return [str(NLPSUITE), "eval", "sentiment", "-m", str(model), "-d", str(SST2_DEV),
            "--limit", str(limit), "--checkpoint-every", "8", "--batch-size", "8",
            "--bootstrap", "200", "--out", str(out), *shown, *extra]


def _in_namespace(words: list[str], home: Path) -> tuple[list[str], dict[str, str]]:
    """``words`` run in a private network namespace with loopback up; Ray's token auth off and
    its files under ``home``, so no ~/.ray/auth_token is left behind."""
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "HOME": str(home),
           "RAY_USAGE_STATS_ENABLED": "0"}
    command = ["unshare", "-n", "bash", "-c", f"ip link set lo up && exec {shlex.join(words)}"]
    return command, env


def _ray_eval(model: Path, out: Path, home: Path, *extra: str, limit: int = 96,
              ) -> subprocess.CompletedProcess[str]:
    command, env = _in_namespace(_eval_words(model, out, "--executor", "ray", *extra,
                                             limit=limit), home)
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def _local_eval(model: Path, out: Path, *extra: str, limit: int = 96) -> None:
    done = subprocess.run(_eval_words(model, out, *extra, limit=limit), capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def _same_results(first: Path, second: Path) -> None:
    """predictions.jsonl byte for byte; results.json's metrics with their intervals too."""
    assert (first / "predictions.jsonl").read_bytes() == (second / "predictions.jsonl").read_bytes()
    metrics = [json.dumps(json.loads((folder / "results.json").read_text())["metrics"])
               for folder in (first, second)]
    assert metrics[0] == metrics[1]


def _rows(folder: Path) -> int:
    partial = folder / "predictions.partial.jsonl"
    return partial.read_bytes().count(b"\n") if partial.exists() else 0


def _wait_for_rows(folder: Path, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 240
    while _rows(folder) == 0:
        assert process.poll() is None, process.communicate()[1]
        assert time.monotonic() < deadline, "no chunk was predicted"
        time.sleep(0.02)


def _descendants(root: int) -> dict[int, str]:
    """pid -> command line of every process below ``root``."""
    parents: dict[int, int] = {}
    lines: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            lines[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:  # gone meanwhile
            continue
        parents[int(entry.name)] = int(stat[stat.rfind(")") + 2 :].split()[1])
    found: dict[int, str] = {}
    frontier = [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found[pid] = lines.get(pid, "")
                frontier.append(pid)
    return found


def test_without_ray_the_executor_says_how_to_install_it(tmp_path: Path) -> None:
    blocker = tmp_path / "no_ray"
    blocker.mkdir()
    (blocker / "ray.py").write_text("raise ImportError(\"No module named 'ray'\")\n")
    env = {**os.environ, "PYTHONPATH": str(blocker)}
    done = subprocess.run(
        [str(NLPSUITE), "eval", "sentiment", "-d", "sentiment-mini", "--executor", "ray",
         "--out", str(tmp_path / "run")], capture_output=True, text=True, env=env, timeout=120,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].endswith("pip install 'nlpsuite[ray]'")
    assert not (tmp_path / "run").exists()


def test_bad_executor_settings_name_the_flag(tmp_path: Path) -> None:
    for extra, flag in ((["--executor", "dask"], "--executor"),
                        (["--executor", "ray:port=1"], "--executor ray takes no setting 'port'"),
                        (["--workers", "0"], "--workers")):
        done = subprocess.run(
            [str(NLPSUITE), "eval", "sentiment", "-d", "sentiment-mini", *extra,
             "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 2
        assert flag in done.stderr


@pytest.mark.slow
@needs_ray
def test_ray_with_one_or_two_workers_and_another_batch_size_gives_local_bytes(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    _local_eval(tiny_classifier, tmp_path / "local")
    two = _ray_eval(tiny_classifier, tmp_path / "two", tmp_path, "--workers", "2")
    assert two.returncode == 0, two.stderr
    _same_results(tmp_path / "local", tmp_path / "two")
    # Chunks stay of 8 (--checkpoint-every); the batches inside them halve.
    one = _ray_eval(tiny_classifier, tmp_path / "one", tmp_path, "--workers", "1",
                    "--batch-size", "4")
    assert one.returncode == 0, one.stderr
    _same_results(tmp_path / "local", tmp_path / "one")
    results = json.loads((tmp_path / "two" / "results.json").read_text())
    assert results["timed_examples"] == 96 and results["resumed_examples"] == 0
    assert not (tmp_path / ".ray" / "auth_token").exists()


@pytest.mark.slow
@needs_ray
def test_a_killed_driver_resumes_with_another_worker_count(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    limit = 872  # all of SST-2 dev: long enough to be killed mid-run
    _local_eval(tiny_classifier, tmp_path / "local", limit=limit)
    out = tmp_path / "ray"
    command, env = _in_namespace(
        _eval_words(tiny_classifier, out, "--executor", "ray", "--workers", "2", limit=limit),
        tmp_path,
    )
    driver = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        _wait_for_rows(out, driver)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.communicate()
    assert not (out / "results.json").exists()
    resumed = _ray_eval(tiny_classifier, out, tmp_path, "--workers", "1", limit=limit)
    assert resumed.returncode == 0, resumed.stderr
    _same_results(tmp_path / "local", out)
    results = json.loads((out / "results.json").read_text())
    assert results["resumed_examples"] > 0 and results["timed_examples"] > 0
    assert results["resumed_examples"] + results["timed_examples"] == limit


@pytest.mark.slow
@needs_ray
def test_a_killed_worker_has_its_chunks_run_again(tiny_classifier: Path, tmp_path: Path) -> None:
    limit = 872
    _local_eval(tiny_classifier, tmp_path / "local", limit=limit)
    out = tmp_path / "ray"
    words = _eval_words(tiny_classifier, out, "--executor", "ray", "--workers", "2", limit=limit,
                        quiet=False)
    command, env = _in_namespace(words, tmp_path)
    driver = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        _wait_for_rows(out, driver)
        workers = [pid for pid, line in _descendants(driver.pid).items()
                   if line.startswith("ray::ChunkWorker")]
        assert workers, "no Ray worker found below the driver"
        os.kill(workers[0], signal.SIGKILL)
        _, stderr = driver.communicate(timeout=300)
    finally:
        if driver.poll() is None:
            os.killpg(driver.pid, signal.SIGKILL)
    assert driver.returncode == 0, stderr
    assert "a Ray worker died" in stderr
    # The driver's progress says how many workers are alive, before and after the kill.
    assert "examples" in stderr and ", 2 workers alive" in stderr and ", 1 worker alive" in stderr
    _same_results(tmp_path / "local", out)


def _suite(folder: Path, model: Path) -> Path:
    """Four runs: two datasets x two option settings of one tiny classifier."""
    suite = folder / "suite.toml"
    suite.write_text(f"""
[suite]
name = "ray-bench"
[defaults]
batch_size = 8
bootstrap = 200
[models]
tiny = {{ path = "{model}" }}
[[runs]]
task = "sentiment"
models = ["tiny"]
datasets = ["{SST2_DEV}", "sentiment-mini"]
limit = 64
[[runs]]
task = "sentiment"
models = ["tiny"]
datasets = ["{SST2_DEV}", "sentiment-mini"]
limit = 64
options = {{ top_k = 2 }}
""")
    return suite


def _leaderboard(results: Path) -> dict[str, object]:
    done = subprocess.run([str(NLPSUITE), "leaderboard", str(results), "--format", "json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    board: dict[str, object] = json.loads(done.stdout)
    return board


@pytest.mark.slow
@needs_ray
def test_bench_on_ray_spreads_the_runs_and_gives_the_local_leaderboard(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    suite = _suite(tmp_path, tiny_classifier)
    local = subprocess.run([str(NLPSUITE), "bench", str(suite), "--out", str(tmp_path / "local"),
                            "-q"], capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stderr
    words = [str(NLPSUITE), "bench", str(suite), "--out", str(tmp_path / "ray"), "-q",
             "--executor", "ray", "--workers", "1"]
    command, env = _in_namespace(words, tmp_path)
    on_ray = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert on_ray.returncode == 0, on_ray.stderr
    assert "4 runs: 4 done" in on_ray.stdout
    folders = sorted(path.name for path in (tmp_path / "local").iterdir())
    assert len(folders) == 4 and folders == sorted(p.name for p in (tmp_path / "ray").iterdir())
    for name in folders:
        _same_results(tmp_path / "local" / name, tmp_path / "ray" / name)
    # Only the times differ: the leaderboard ranks the same runs with the same scores.
    boards = [_leaderboard(tmp_path / where) for where in ("local", "ray")]
    assert _without_times(boards[0]) == _without_times(boards[1])
    # Each run is resumable as before: a second Ray bench finds every run complete.
    again = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "4 already complete" in again.stdout, again.stderr
    assert not (tmp_path / ".ray" / "auth_token").exists()


def _without_times(value: object) -> object:
    """``value`` without what a clock decides (dates, durations, speeds) and the folders."""
    timed = ("second", "started", "finished", "generated", "duration", "time", "source",
             "command")  # the command names its --out folder
    if isinstance(value, dict):
        return {key: _without_times(item) for key, item in value.items()
                if not any(word in key for word in timed)}
    if isinstance(value, list):
        return [_without_times(item) for item in value]
    return value
