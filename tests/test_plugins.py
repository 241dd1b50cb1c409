"""Plugin discovery: entry points, failure isolation, name clashes, and the load filter."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from nlpsuite import Task, hookimpl
from nlpsuite.plugins import Registry
from tests.helpers import nlpsuite_process

BUILT_IN = {"sentiment", "question-answering", "semantic-search", "translation", "summarization"}


def fake_distribution(root: Path, entry_points: dict[str, str], modules: dict[str, str]) -> Path:
    """An installed-looking package on a folder we can put on ``PYTHONPATH``."""
    info = root / "nlpsuite_fake-1.2.3.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nlpsuite-fake\nVersion: 1.2.3\n")
    lines = "".join(f"{name} = {module}\n" for name, module in entry_points.items())
    (info / "entry_points.txt").write_text(f"[nlpsuite]\n{lines}")
    for module, source in modules.items():
        (root / f"{module}.py").write_text(textwrap.dedent(source))
    return root


GOOD = """
    from dataclasses import dataclass
    from nlpsuite import Task, hookimpl

    @dataclass(frozen=True)
    class Text:
        text: str

    def load(config):
        return lambda batch: [Text(item.text.upper()) for item in batch]

    @hookimpl
    def register_tasks(register):
        register(Task("shout", "Upper-case text.", "none", Text, Text, load))
"""
BROKEN_IMPORT = "raise RuntimeError('this plugin is broken on purpose')\n"
RAISING_HOOK = """
    from nlpsuite import hookimpl

    @hookimpl
    def register_tasks(register):
        raise ValueError('hook exploded')
"""
CLASHING = GOOD.replace('"shout", "Upper-case text."', '"sentiment", "A second sentiment."')
NEWER_CONTRACT = textwrap.dedent(GOOD.replace('"shout"', '"future"')) + "\nNLPSUITE_CONTRACT = 99\n"


@pytest.fixture
def third_party(tmp_path: Path) -> Path:
    return fake_distribution(
        tmp_path,
        {
            "shout": "fake_good",
            "broken": "fake_broken",
            "raising": "fake_raising",
            "clash": "fake_clash",
            "future": "fake_future",
        },
        {
            "fake_good": GOOD,
            "fake_broken": BROKEN_IMPORT,
            "fake_raising": RAISING_HOOK,
            "fake_clash": CLASHING,
            "fake_future": NEWER_CONTRACT,
        },
    )


def test_built_in_tasks_load_through_entry_points() -> None:
    registry = Registry()
    registry.load_entry_points()
    loaded = {info.name: info for info in registry.plugins}
    assert set(registry.tasks) >= BUILT_IN
    assert all(loaded[name].package == "nlpsuite" for name in BUILT_IN)


def test_broken_plugins_are_reported_and_skipped(third_party: Path) -> None:
    done = nlpsuite_process("plugins", "--json", env={"PYTHONPATH": str(third_party)})
    assert done.returncode == 0
    report = {row["name"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert report["shout"]["ok"] and report["shout"]["tasks"] == ["shout"]
    assert report["shout"]["package"] == "nlpsuite-fake" and report["shout"]["version"] == "1.2.3"
    assert "this plugin is broken on purpose" in report["broken"]["error"]
    assert "hook exploded" in report["raising"]["error"]
    assert (
        "task 'sentiment' is already registered by plugin 'sentiment'" in report["clash"]["error"]
    )
    assert "contract 99" in report["future"]["error"]
    assert report["sentiment"]["ok"]
    warnings = [line for line in done.stderr.splitlines() if "skipped" in line]
    assert len(warnings) == 4 and all(line.startswith("nlpsuite: plugin ") for line in warnings)

    shout = nlpsuite_process("run", "shout", "hello", env={"PYTHONPATH": str(third_party)})
    assert shout.stdout == "HELLO\n"


def test_environment_variable_restricts_plugins(third_party: Path) -> None:
    done = nlpsuite_process(
        "tasks",
        "--json",
        env={"PYTHONPATH": str(third_party), "NLPSUITE_LOAD_PLUGINS": "shout,sentiment"},
    )
    assert {json.loads(line)["name"] for line in done.stdout.splitlines()} == {"shout", "sentiment"}
    assert done.stderr == ""
    none = nlpsuite_process("tasks", env={"NLPSUITE_LOAD_PLUGINS": ""})
    assert none.returncode == 0 and none.stdout == ""


class _Plugin:
    """A plugin object registering whatever it is given, to test the registry directly."""

    def __init__(self, register: Callable[[Callable[[Task], None]], None]) -> None:
        self.register_tasks = hookimpl(register)


def _task(name: str) -> Task:
    return Task(name, "", "none", str, str, lambda config: lambda batch: list(batch))


def test_a_failing_plugin_leaves_nothing_half_registered() -> None:
    registry = Registry()

    def register_then_fail(register: Callable[[Task], None]) -> None:
        register(_task("first"))
        raise RuntimeError("second one failed")

    info = registry.add(_Plugin(register_then_fail), "half")
    assert not info.ok and "second one failed" in (info.error or "")
    assert "first" not in registry.tasks
    assert registry.add(_Plugin(lambda register: register(_task("first"))), "whole").ok
    assert "first" in registry.tasks


def test_registering_something_that_is_not_a_task_is_reported() -> None:
    info = Registry().add(_Plugin(lambda register: register("sentiment")), "confused")  # type: ignore[arg-type]
    assert "expected a Task, got str" in (info.error or "")
