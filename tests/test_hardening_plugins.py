"""Plugins that misbehave: exiting while they load, taking over commands, and runners that break
the contract (wrong count or type of outputs, printing to stdout). Each is the plugin's fault:
it is named in one line, and the rest of the suite keeps working."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import click.testing
import pytest

from nlpsuite import NlpsuiteError, PluginError, Task, hookimpl, load_runner, run
from nlpsuite.plugins import Registry
from tests.helpers import nlpsuite_process, one_error_line
from tests.test_plugins import GOOD, fake_distribution

PACKAGE = "(nlpsuite-fake 1.2.3)"


class _Exit(BaseException):
    """Not an Exception: what a careless plugin might raise to stop everything."""


def _exits_at_import(statement: str) -> str:
    return f"import sys\n{statement}\n"


@dataclass(frozen=True)
class Text:
    text: str


@dataclass(frozen=True)
class Label:
    label: str
    score: float
    tags: list[str] | None = None


def _task(runner: Callable[[Sequence[Any]], Any], name: str = "labels") -> Task:
    return Task(name, "Labels text.", "none", Text, Label, lambda config: runner)


def _labels(batch: Sequence[Text]) -> list[Label]:
    return [Label(item.text.upper(), 0.5) for item in batch]


class _Hooks:
    """A plugin object whose hooks do what it is given, to test the registry directly."""

    def __init__(
        self,
        tasks: Callable[[Callable[[Task], None]], None] | None = None,
        commands: Callable[[click.Group], None] | None = None,
    ) -> None:
        if tasks is not None:
            self.register_tasks = hookimpl(tasks)
        if commands is not None:
            self.register_commands = hookimpl(commands)


def _raise(error: BaseException) -> Callable[..., None]:
    def hook(*arguments: Any) -> None:
        raise error

    return hook


# 2. A plugin that exits, or raises something that is not an Exception, while it loads.


@pytest.mark.parametrize(
    "error", [SystemExit(0), SystemExit(), SystemExit("bye"), _Exit("stop"), GeneratorExit()]
)
def test_a_hook_that_exits_skips_only_its_plugin(error: BaseException) -> None:
    registry = Registry()
    info = registry.add(_Hooks(tasks=_raise(error)), "exiting", "nlpsuite-fake", "1.2.3")
    assert not info.ok and type(error).__name__ in (info.error or "")
    assert registry.add(_Hooks(tasks=lambda register: register(_task(_labels))), "fine").ok
    assert set(registry.tasks) == {"labels"}


def test_ctrl_c_while_a_plugin_loads_still_stops_the_suite() -> None:
    with pytest.raises(KeyboardInterrupt):
        Registry().add(_Hooks(tasks=_raise(KeyboardInterrupt())), "interrupted")


@pytest.mark.parametrize("statement", ["sys.exit()", "sys.exit(3)", "raise SystemExit('no')"])
def test_a_plugin_that_exits_at_import_is_skipped(
    statement: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    module = f"fake_exit_{abs(hash(statement))}"
    root = fake_distribution(
        tmp_path, {"exiting": module, "shout": f"{module}_good"},
        {module: _exits_at_import(statement), f"{module}_good": GOOD},
    )
    monkeypatch.syspath_prepend(str(root))
    registry = Registry()
    with caplog.at_level(logging.WARNING, logger="nlpsuite"):
        registry.load_entry_points({"exiting", "shout"})
    report = {info.name: info for info in registry.plugins}
    assert "SystemExit" in (report["exiting"].error or "")
    assert report["shout"].ok and "shout" in registry.tasks
    assert [record.getMessage() for record in caplog.records] == [
        f"plugin 'exiting' skipped: {report['exiting'].error}"
    ]


@pytest.fixture
def exiting_plugin(tmp_path: Path) -> dict[str, str]:
    root = fake_distribution(
        tmp_path, {"exiting": "fake_exiting", "shout": "fake_shout"},
        {"fake_exiting": _exits_at_import("sys.exit(0)"), "fake_shout": GOOD},
    )
    return {"PYTHONPATH": str(root), "NLPSUITE_LOAD_PLUGINS": "exiting,shout"}


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (("--help",), "Commands:"),
        (("plugins",), "shout\tnlpsuite-fake 1.2.3\ttasks: shout\tok"),
        (("tasks",), "shout\tUpper-case text."),
        (("run", "shout", "hello"), "HELLO"),
    ],
)
def test_a_plugin_that_exits_at_import_leaves_every_command_working(
    arguments: tuple[str, ...], expected: str, exiting_plugin: dict[str, str]
) -> None:
    done = nlpsuite_process(*arguments, env=exiting_plugin)
    assert done.returncode == 0 and expected in done.stdout, done.stderr
    assert done.stderr.splitlines() == ["nlpsuite: plugin 'exiting' skipped: SystemExit: 0"]


# 2. A plugin whose register_commands replaces a command that is already there.


def _command(name: str, says: str) -> click.Command:
    return click.Command(name, callback=lambda: click.echo(says))


def _built_in_cli() -> click.Group:
    return click.Group("nlpsuite", commands=[_command("eval", "evaluating"),
                                             _command("plugins", "listing")])


def _added(group: click.Group, registry: Registry, caplog: pytest.LogCaptureFixture) -> list[str]:
    with caplog.at_level(logging.WARNING, logger="nlpsuite"):
        registry.add_commands(group)
    return [record.getMessage() for record in caplog.records]


def test_a_plugin_cannot_replace_a_built_in_command(caplog: pytest.LogCaptureFixture) -> None:
    group = _built_in_cli()
    built_in = group.commands["eval"]
    registry = Registry()

    def take_over(cli: click.Group) -> None:
        cli.add_command(_command("mine", "new"))
        cli.add_command(_command("eval", "hijacked"))

    registry.add(_Hooks(commands=take_over), "greedy", "nlpsuite-fake", "1.2.3")
    assert _added(group, registry, caplog) == [
        "plugin 'greedy': register_commands failed: command 'eval' is a built-in command"
    ]
    # None of its commands is kept: a plugin's commands come all or none, like its tasks.
    assert group.commands == {"eval": built_in, "plugins": group.commands["plugins"]}
    assert click.testing.CliRunner().invoke(group, ["eval"]).output == "evaluating\n"


def test_a_plugin_cannot_remove_a_built_in_command(caplog: pytest.LogCaptureFixture) -> None:
    group = _built_in_cli()
    registry = Registry()
    registry.add(_Hooks(commands=lambda cli: cli.commands.pop("plugins")), "remover")
    assert _added(group, registry, caplog) == [
        "plugin 'remover': register_commands failed: command 'plugins' is a built-in command"
    ]
    assert set(group.commands) == {"eval", "plugins"}


def test_a_plugin_cannot_replace_another_plugins_command(
    caplog: pytest.LogCaptureFixture,
) -> None:
    group = _built_in_cli()
    registry = Registry()
    registry.add(_Hooks(commands=lambda cli: cli.add_command(_command("hello", "first"))), "one")
    registry.add(_Hooks(commands=lambda cli: cli.add_command(_command("hello", "second"))), "two")
    assert _added(group, registry, caplog) == [
        "plugin 'two': register_commands failed: command 'hello' is already registered by "
        "plugin 'one'"
    ]
    assert click.testing.CliRunner().invoke(group, ["hello"]).output == "first\n"


@pytest.mark.parametrize("error", [SystemExit(2), _Exit("stop")])
def test_register_commands_that_exits_is_reported_and_undone(
    error: BaseException, caplog: pytest.LogCaptureFixture
) -> None:
    group = _built_in_cli()
    registry = Registry()

    def add_then_exit(cli: click.Group) -> None:
        cli.add_command(_command("half", "half-added"))
        raise error

    registry.add(_Hooks(commands=add_then_exit), "quitter")
    (warning,) = _added(group, registry, caplog)
    assert warning.startswith(f"plugin 'quitter': register_commands failed: {type(error).__name__}")
    assert set(group.commands) == {"eval", "plugins"}


HIJACK = """
    import click
    from nlpsuite import hookimpl

    @hookimpl
    def register_commands(cli):
        @cli.command("eval")
        def hijacked():
            click.echo("hijacked")

        @cli.command("plugins")
        def also_hijacked():
            click.echo("hijacked")
"""


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [(("eval", "--help"), "Evaluate TASK"), (("plugins",), "hijack\tnlpsuite-fake 1.2.3")],
)
def test_the_cli_keeps_its_own_commands(
    arguments: tuple[str, ...], expected: str, tmp_path: Path
) -> None:
    root = fake_distribution(tmp_path, {"hijack": "fake_hijack"}, {"fake_hijack": HIJACK})
    done = nlpsuite_process(
        *arguments, env={"PYTHONPATH": str(root), "NLPSUITE_LOAD_PLUGINS": "hijack"}
    )
    assert done.returncode == 0 and expected in done.stdout and "hijacked" not in done.stdout
    assert done.stderr.splitlines() == [
        "nlpsuite: plugin 'hijack': register_commands failed: command 'eval' is a built-in command"
    ]


# 7. A runner that breaks the contract at run time.


@pytest.mark.parametrize(
    ("runner", "problem"),
    [
        (lambda batch: _labels(batch)[:-1], "the runner gave 1 output for 2 inputs"),
        (lambda batch: _labels(batch) * 2, "the runner gave 4 outputs for 2 inputs"),
        (lambda batch: [], "the runner gave 0 outputs for 2 inputs"),
        (lambda batch: tuple(_labels(batch)), "the runner returned tuple, not a list"),
        (lambda batch: None, "the runner returned NoneType, not a list"),
        (lambda batch: [{"label": "A"} for _ in batch],
         "output 0 is dict, not the task's output_type Label"),
        (lambda batch: [Text("A") for _ in batch],
         "output 0 is Text, not the task's output_type Label"),
        (lambda batch: [Label(1, 0.5) for _ in batch],  # type: ignore[arg-type]
         "output 0: field 'label' should be str, got int"),
        (lambda batch: [Label("A", "0.5") for _ in batch],  # type: ignore[arg-type]
         "output 0: field 'score' should be float, got str"),
        (lambda batch: [Label("A", True) for _ in batch],
         "output 0: field 'score' should be float, got bool"),
        (lambda batch: [Label("A", 0.5, "x") for _ in batch],  # type: ignore[arg-type]
         "output 0: field 'tags' should be list[str] | None, got str"),
    ],
)
def test_a_runner_that_breaks_the_contract_is_named(
    runner: Callable[[Sequence[Any]], Any], problem: str
) -> None:
    with pytest.raises(PluginError) as raised:
        run(_task(runner), ["a", "b"])
    assert str(raised.value) == f"task 'labels': {problem}"
    assert isinstance(raised.value, NlpsuiteError) and raised.value.exit_code == 1


def test_a_runner_that_raises_is_named_and_a_user_error_passes_through() -> None:
    def crash(batch: Sequence[Any]) -> list[Any]:
        raise ZeroDivisionError("division by zero\nmore detail")

    with pytest.raises(PluginError) as raised:
        run(_task(crash), ["a"])
    assert str(raised.value) == (
        "task 'labels': the runner failed: ZeroDivisionError: division by zero"
    )
    assert isinstance(raised.value.__cause__, ZeroDivisionError)

    def refuse(batch: Sequence[Any]) -> list[Any]:
        raise NlpsuiteError("field 'text' is too odd")

    with pytest.raises(NlpsuiteError) as refused:
        run(_task(refuse), ["a"])
    assert not isinstance(refused.value, PluginError)


def test_outputs_that_keep_the_contract_come_back_unchanged() -> None:
    given: list[Label] = []

    def runner(batch: Sequence[Text]) -> list[Label]:
        # An int where a float is declared, and None for an optional field, are both fine.
        given[:] = [Label(item.text, 1, ["x"] if item.text == "b" else None) for item in batch]
        return given

    checked = load_runner(_task(runner))
    outputs = checked([Text("a"), Text("b")])
    assert outputs is given
    assert checked([]) == []


def test_a_load_that_gives_no_runner_is_named() -> None:
    task = Task("labels", "", "none", Text, Label, lambda config: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(PluginError, match=r"^task 'labels': load returned NoneType, not a runner$"):
        load_runner(task)


def test_the_registry_says_which_plugin_registered_a_task() -> None:
    registry = Registry()
    registry.add(_Hooks(tasks=lambda register: register(_task(_labels))), "maker", "pkg", "2.0")
    owner = registry.plugin_of("task", "labels")
    assert owner is not None
    assert (owner.name, owner.package, owner.version) == ("maker", "pkg", "2.0")
    assert registry.plugin_of("task", "nothing") is None


MISBEHAVING = """
    from dataclasses import dataclass
    from nlpsuite import Task, hookimpl

    print("imported the plugin")

    @dataclass(frozen=True)
    class Text:
        text: str

    @dataclass(frozen=True)
    class Label:
        label: str
        score: float

    def loader(kind):
        def load(config):
            print("loading the model")

            def run(batch):
                print("running a batch")
                outputs = [Label(item.text.upper(), 0.5) for item in batch]
                if kind == "too-few":
                    return outputs[:-1]
                if kind == "dicts":
                    return [{"label": output.label} for output in outputs]
                if kind == "int-label":
                    return [Label(len(output.label), 0.5) for output in outputs]
                return outputs

            return run

        return load

    @hookimpl
    def register_tasks(register):
        for kind in ("too-few", "dicts", "int-label", "chatty"):
            register(Task(kind, "Misbehaves.", "none", Text, Label, loader(kind)))
"""


@pytest.fixture
def misbehaving(tmp_path: Path) -> dict[str, str]:
    root = fake_distribution(tmp_path / "plugin", {"odd": "fake_odd"}, {"fake_odd": MISBEHAVING})
    return {"PYTHONPATH": str(root), "NLPSUITE_LOAD_PLUGINS": "odd"}


@pytest.mark.parametrize(
    ("task", "problem"),
    [
        ("too-few", "the runner gave 1 output for 2 inputs"),
        ("dicts", "output 0 is dict, not the task's output_type Label"),
        ("int-label", "output 0: field 'label' should be str, got int"),
    ],
)
@pytest.mark.parametrize("json_flag", [(), ("--json",)])
def test_the_cli_names_the_plugin_at_fault_and_exits_1(
    task: str, problem: str, json_flag: tuple[str, ...], misbehaving: dict[str, str]
) -> None:
    done = nlpsuite_process("run", task, *json_flag, "a", "bc", env=misbehaving)
    assert done.returncode == 1 and done.stdout == ""
    assert one_error_line(done.stderr) == (
        f"nlpsuite: error: plugin 'odd' {PACKAGE}, task '{task}': {problem}"
    )


def test_eval_names_the_plugin_at_fault_and_exits_1(
    misbehaving: dict[str, str], tiny_classifier: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data.jsonl"
    # Labels the model has: the harness checks the dataset's labels before anything runs.
    data.write_text(
        '{"text": "a", "reference": "NEGATIVE"}\n{"text": "b", "reference": "POSITIVE"}\n'
    )
    # The harness fingerprints the model's weights; the plugin itself never opens them.
    done = nlpsuite_process(
        "eval", "too-few", "--dataset", str(data), "--model", str(tiny_classifier),
        "--out", str(tmp_path / "run"), env=misbehaving,
    )
    assert done.returncode == 1
    assert one_error_line(done.stderr) == (
        f"nlpsuite: error: plugin 'odd' {PACKAGE}, task 'too-few': "
        "the runner gave 1 output for 2 inputs"
    )


def test_a_user_error_still_exits_2(misbehaving: dict[str, str]) -> None:
    done = nlpsuite_process("run", "chatty", "--input", "missing.jsonl", env=misbehaving)
    assert done.returncode == 2 and "missing.jsonl" in one_error_line(done.stderr)


def test_what_a_plugin_prints_never_reaches_json_output(misbehaving: dict[str, str]) -> None:
    done = nlpsuite_process("run", "chatty", "--json", "a", "bc", env=misbehaving)
    assert done.returncode == 0, done.stderr
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        {"label": "A", "score": 0.5}, {"label": "BC", "score": 0.5},
    ]
    for printed in ("imported the plugin", "loading the model", "running a batch"):
        assert printed in done.stderr


def test_what_a_plugin_prints_never_reaches_plugins_json(misbehaving: dict[str, str]) -> None:
    done = nlpsuite_process("plugins", "--json", env=misbehaving)
    assert [json.loads(line)["name"] for line in done.stdout.splitlines()] == ["odd"]
    assert "imported the plugin" in done.stderr


def test_outputs_through_the_library_keep_their_values() -> None:
    assert run(_task(_labels), ["a", "bc"]) == [Label("A", 0.5), Label("BC", 0.5)]
