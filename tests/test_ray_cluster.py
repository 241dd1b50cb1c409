"""``nlpsuite eval --executor ray:address=...`` on a two-node Ray cluster: a head and a second
node, each started with ``ray start`` and one CPU, so the run's two actors sit one on each node.
The predictions and metrics are a local run's bytes, for a classifier and for a seq2seq task.

The cluster runs once for the module, in one shell script, inside a private network namespace
(Ray will not use 127.0.0.1 otherwise; see tests/test_ray_executor.py) and a private PID
namespace: ``ray stop`` kills every Ray process it can see, and must not see another test's or
another user's; and when the script ends, the kernel ends whatever the namespace still holds.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.test_ray_executor import (
    NLPSUITE,
    _eval_words,
    _in_namespace,
    _local_eval,
    _same_results,
    needs_ray,
)

PLUGIN_DATA = Path(__file__).resolve().parents[1] / "plugins" / "data"
TRANSLATION_SET = PLUGIN_DATA / "translation-en-de.jsonl"
HEAD = "127.0.0.1:6379"  # the namespace is private: every port in it is free
RAY = NLPSUITE.parent / "ray"
# Ray's own processes: none may be left once `ray stop` has run.
SHELL_ONLY = {"bash", "ps", "grep", "sort", "tr", "sleep"}

pytestmark = [pytest.mark.slow, needs_ray]


@dataclass(frozen=True)
class ClusterRun:
    out: Path  # ray-sentiment/ and ray-translation/: the runs made on the cluster
    log: str  # the script's stdout and stderr
    returncode: int
    network: str  # the namespace's id (readlink /proc/self/ns/net), to look for leftovers


def _translation_words(model: Path, out: Path, *extra: str) -> list[str]:
    return [str(NLPSUITE), "eval", "translation", "-m", str(model), "-d", str(TRANSLATION_SET),
            "--checkpoint-every", "4", "--batch-size", "4", "--bootstrap", "200",
            "--out", str(out), "-q", *extra]


def _cluster_script(classifier: Path, marian: Path, out: Path, ray_tmp: Path) -> str:
    """Start a head and a second node, report the cluster, evaluate on it twice, stop it, and
    list what is left in the namespace."""
    executor = ("--executor", f"ray:address={HEAD}", "--workers", "2")
    sentiment = shlex.join(_eval_words(classifier, out / "ray-sentiment", *executor))
    translation = shlex.join(_translation_words(marian, out / "ray-translation", *executor))
    nodes = ("import json, ray; ray.init(address='" + HEAD + "', logging_level='ERROR'); "
             "print('NODES', json.dumps([n['Resources'].get('CPU', 0) for n in ray.nodes() "
             "if n['Alive']]))")
    ray, temp_dir = shlex.quote(str(RAY)), shlex.quote(str(ray_tmp))
    return f"""
set -u
echo "NETWORK $(readlink /proc/self/ns/net)"
stop() {{
    {ray} stop --force >/dev/null 2>&1
    for _ in $(seq 100); do  # SIGKILLed processes take a moment to be reaped
        [ -z "$(ps -e -o comm= | grep -v -x -E 'bash|ps|grep|sleep')" ] && break
        sleep 0.1
    done
    echo "LEFT $(ps -e -o comm= | sort -u | tr '\\n' ' ')"
}}
trap stop EXIT
{ray} start --head --port=6379 --num-cpus=1 --node-ip-address=127.0.0.1 \\
    --temp-dir={temp_dir} --include-dashboard=false --disable-usage-stats >/dev/null || exit 3
{ray} start --address={HEAD} --num-cpus=1 --node-ip-address=127.0.0.1 \\
    --disable-usage-stats >/dev/null || exit 4
{shlex.join([str(NLPSUITE.parent / "python"), "-c", nodes])} || exit 5
{sentiment}; echo "SENTIMENT $?"
{translation}; echo "TRANSLATION $?"
"""


@pytest.fixture(scope="module")
def cluster_run(
    tiny_classifier: Path, tiny_marian: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ClusterRun]:
    out = tmp_path_factory.mktemp("cluster")
    # Ray's sockets live under its temp dir, and a socket path may not exceed 107 bytes.
    ray_tmp = Path(tempfile.mkdtemp(prefix="nlpsuite-ray-"))
    script = out / "cluster.sh"
    script.write_text(_cluster_script(tiny_classifier, tiny_marian, out, ray_tmp))
    command, env = _in_namespace(
        ["unshare", "--pid", "--fork", "--mount-proc", "bash", str(script)], out
    )
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
        network = next((line.split()[1] for line in done.stdout.splitlines()
                        if line.startswith("NETWORK ")), "")
        yield ClusterRun(out, done.stdout + done.stderr, done.returncode, network)
    finally:
        shutil.rmtree(ray_tmp, ignore_errors=True)


def _reported(run: ClusterRun, key: str) -> str:
    lines = [line for line in run.log.splitlines() if line.startswith(key + " ")]
    assert lines, f"no {key} line; the cluster script said:\n{run.log}"
    return lines[-1].split(" ", 1)[1]


def _in_network(network: str) -> list[int]:
    """Processes still in the test's network namespace, seen from outside it."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and os.readlink(entry / "ns" / "net") == network:
                found.append(int(entry.name))
        except OSError:  # gone meanwhile
            continue
    return found


def test_two_nodes_one_actor_each_give_a_local_runs_bytes(
    cluster_run: ClusterRun, tiny_classifier: Path, tmp_path: Path
) -> None:
    assert cluster_run.returncode == 0, cluster_run.log
    # Two live nodes of one CPU each, and two actors of one CPU: one actor on each node (the
    # warm-up waits for every actor, so a run that finished had both placed).
    assert json.loads(_reported(cluster_run, "NODES")) == [1.0, 1.0]
    assert _reported(cluster_run, "SENTIMENT") == "0", cluster_run.log
    _local_eval(tiny_classifier, tmp_path / "local")
    _same_results(tmp_path / "local", cluster_run.out / "ray-sentiment")
    results = json.loads((cluster_run.out / "ray-sentiment" / "results.json").read_text())
    assert results["timed_examples"] == 96


def test_seq2seq_on_the_cluster_gives_a_local_runs_bytes(
    cluster_run: ClusterRun, tiny_marian: Path, tmp_path: Path
) -> None:
    assert _reported(cluster_run, "TRANSLATION") == "0", cluster_run.log
    local = subprocess.run(_translation_words(tiny_marian, tmp_path / "local"),
                           capture_output=True, text=True, timeout=300)
    assert local.returncode == 0, local.stderr
    _same_results(tmp_path / "local", cluster_run.out / "ray-translation")
    predictions = (tmp_path / "local" / "predictions.jsonl").read_bytes().splitlines()
    assert len(predictions) == 16


def test_the_cluster_leaves_nothing_behind(cluster_run: ClusterRun) -> None:
    # Inside the namespace, after `ray stop`: only the shell and ps.
    assert set(_reported(cluster_run, "LEFT").split()) <= SHELL_ONLY, cluster_run.log
    assert cluster_run.network and not _in_network(cluster_run.network)
    assert not (cluster_run.out / ".ray" / "auth_token").exists()
