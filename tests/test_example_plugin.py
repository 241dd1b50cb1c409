"""The example third-party plugin, pip-installed into a fresh environment, used like any task.

The fresh virtual environment sees this one's packages through a ``.pth`` file (so torch is not
installed again, and the install takes seconds), but the example is installed into it alone:
its task exists there and not here, which is what shows that installing a package is all it
takes, with no change to nlpsuite.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "nlpsuite-zeroshot"

pytestmark = pytest.mark.slow


def _environment() -> dict[str, str]:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    for name in ("PYTHONPATH", "NLPSUITE_LOAD_PLUGINS", "PYTEST_ADDOPTS"):
        environment.pop(name, None)
    return environment


def _python(python: Path | str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # cwd is a scratch folder: run from the checkout, Python would import nlpsuite (and read
    # its metadata) from the source tree instead of what is installed.
    done = subprocess.run(
        [str(python), *args],
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{args}\n{done.stdout}\n{done.stderr}"
    return done


def _jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the example installed by pip; its python."""
    root = tmp_path_factory.mktemp("third-party")
    # A copy, because building writes build/ and *.egg-info beside the sources.
    source = shutil.copytree(
        EXAMPLE,
        root / "nlpsuite-zeroshot",
        ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", ".pytest_cache"),
    )
    venv.EnvBuilder(with_pip=False).create(root / "venv")
    python = root / "venv" / "bin" / "python"
    site_packages = _python(
        python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=root
    ).stdout.strip()
    # addsitedir, not a bare path: it also runs this environment's own .pth files, among them
    # the one that makes the editable nlpsuite importable.
    here = sysconfig.get_paths()["purelib"]
    (Path(site_packages) / "outer-environment.pth").write_text(
        f"import site; site.addsitedir({here!r})\n"
    )
    # pip and setuptools come from the outer environment; nothing is downloaded.
    _python(
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        str(source),
        cwd=root,
    )
    return python


def test_the_task_is_not_there_without_the_package(tmp_path: Path) -> None:
    tasks = _python(sys.executable, "-m", "nlpsuite", "tasks", "--json", cwd=tmp_path)
    assert "zero-shot" not in {row["name"] for row in _jsonl(tasks.stdout)}, (
        "nlpsuite-zeroshot is installed in the test environment itself; uninstall it"
    )


def test_plugins_and_tasks_list_it(installed: Path, tmp_path: Path) -> None:
    plugins = {
        row["name"]: row
        for row in _jsonl(
            _python(installed, "-m", "nlpsuite", "plugins", "--json", cwd=tmp_path).stdout
        )
    }
    assert plugins["zero-shot"] == {
        "name": "zero-shot",
        "package": "nlpsuite-zeroshot",
        "version": "0.1.0",
        "tasks": ["zero-shot"],
        "datasets": ["topics-mini"],
        "metrics": ["balanced_accuracy", "accuracy", "macro_f1"],
        "error": None,
        "backends": [],
        "formats": ["fastText labels"],
        "ok": True,
    }
    assert all(row["ok"] for row in plugins.values())

    tasks = {
        row["name"]: row
        for row in _jsonl(
            _python(installed, "-m", "nlpsuite", "tasks", "--json", cwd=tmp_path).stdout
        )
    }
    assert tasks["zero-shot"]["default_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert {"name": "balanced_accuracy", "higher_is_better": True} in tasks["zero-shot"]["metrics"]
    assert [o["name"] for o in tasks["zero-shot"]["options"]] == [
        "labels",
        "template",
        "temperature",
    ]
    assert {"sentiment", "semantic-search"} <= set(tasks)

    datasets = {
        row["name"]: row
        for row in _jsonl(
            _python(installed, "-m", "nlpsuite", "datasets", "--json", cwd=tmp_path).stdout
        )
    }
    assert datasets["topics-mini"]["examples"] == 40
    assert datasets["topics-mini"]["licence"] == "CC0-1.0"


def test_listing_does_not_load_the_model_libraries(installed: Path, tmp_path: Path) -> None:
    probe = (
        "import sys; from nlpsuite.plugins import registry; assert 'zero-shot' in registry().tasks;"
        " print(sorted({'torch', 'transformers', 'sklearn'} & set(sys.modules)))"
    )
    assert _python(installed, "-c", probe, cwd=tmp_path).stdout.strip() == "[]"


def test_run_classifies_with_labels_from_an_option_or_the_input(
    installed: Path, tmp_path: Path
) -> None:
    records = tmp_path / "in.jsonl"
    rows = [
        {"text": "The striker scored twice in the final."},
        {
            "text": "Whisk the eggs, then fold in the flour.",
            "candidate_labels": ["baking", "football"],
        },
        {"text": "Snow closed every road in the valley."},
    ]
    records.write_text("".join(json.dumps(row) + "\n" for row in rows))
    _python(
        installed,
        "-m",
        "nlpsuite",
        "run",
        "zero-shot",
        "--labels",
        "sports,politics,weather",
        "--input",
        str(records),
        "--output",
        str(tmp_path / "out.jsonl"),
        cwd=tmp_path,
    )
    outputs = _jsonl((tmp_path / "out.jsonl").read_text())
    assert [output["top_label"] for output in outputs] == ["sports", "baking", "weather"]
    first = outputs[0]
    assert isinstance(first["scores"], dict) and next(iter(first["scores"])) == "sports"
    assert sum(first["scores"].values()) == pytest.approx(1.0, abs=1e-5)
    assert set(outputs[1]["scores"]) == {"baking", "football"}  # its own labels, not the option's


def test_eval_scores_it_on_its_dataset(installed: Path, tmp_path: Path) -> None:
    out = tmp_path / "results" / "zero-shot"
    _python(
        installed,
        "-m",
        "nlpsuite",
        "eval",
        "zero-shot",
        "--dataset",
        "topics-mini",
        "--out",
        str(out),
        "--bootstrap",
        "200",
        cwd=tmp_path,
    )
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "zero-shot" and results["dataset"]["examples"] == 40
    assert set(results["metrics"]) == {"accuracy", "macro_f1", "balanced_accuracy"}
    assert results["metrics"]["accuracy"]["value"] >= 0.9
    low, high = results["metrics"]["balanced_accuracy"]["ci95"]
    assert low <= results["metrics"]["balanced_accuracy"]["value"] <= high
    assert results["options"]["labels"] == "sports,politics,technology,food,weather"

    # The leaderboard reads results folders; it knows nothing of tasks, so this one shows too.
    commands = _python(installed, "-m", "nlpsuite", "--help", cwd=tmp_path).stdout
    if "leaderboard" not in commands:
        pytest.skip("this nlpsuite has no leaderboard command yet")
    board = _python(
        installed, "-m", "nlpsuite", "leaderboard", str(tmp_path / "results"), cwd=tmp_path
    )
    assert "zero-shot" in board.stdout and "topics-mini" in board.stdout


def test_the_packages_own_tests_pass_with_the_conformance_fixture(
    installed: Path, tmp_path: Path
) -> None:
    # What a plugin author runs: pytest finds nlpsuite_conformance through the pytest11 entry
    # point of the installed nlpsuite.
    done = _python(
        installed,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        str(installed.parents[2] / "nlpsuite-zeroshot" / "tests"),
        cwd=tmp_path,
    )
    assert " passed" in done.stdout and "failed" not in done.stdout
