"""The ``nlpsuite`` command line: a thin layer over :mod:`nlpsuite.tasks` and the plugins."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any

import click

from nlpsuite import __version__
from nlpsuite import plugins as plugin_registry
from nlpsuite.errors import NlpsuiteError, user_message
from nlpsuite.eval_commands import EVAL_COMMANDS
from nlpsuite.explain_commands import EXPLAIN_COMMANDS
from nlpsuite.lookup import list_backends, list_tasks, load_runner
from nlpsuite.model_commands import MODEL_COMMANDS
from nlpsuite.options import parse_key_values
from nlpsuite.records import (
    check_writable,
    to_json,
    write_atomic,
)
from nlpsuite.scales import format_number, scale_label
from nlpsuite.serve_commands import SERVE_COMMANDS
from nlpsuite.task_inputs import example_record, input_fields, input_file_kind, read_inputs
from nlpsuite.tasks import Task, render_score

# Inputs are handed to the runner this many at a time, so output starts before a big file ends.
CHUNK = 1024


class CliError(click.ClickException):
    exit_code = 2

    def show(self, file: Any = None) -> None:
        click.echo(f"nlpsuite: error: {self.message}", err=True)


class _Group(click.Group):
    """Turns :class:`NlpsuiteError` from any command into one line on stderr and its exit code:
    2 (the user's input), 1 for a :class:`~nlpsuite.errors.PluginError` (the plugin's fault)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (NlpsuiteError, OSError, UnicodeDecodeError) as error:
            if isinstance(error, BrokenPipeError):  # click's own handling: quiet, exit 1
                raise
            CliError(user_message(error)).show()
            ctx.exit(getattr(error, "exit_code", 2))


class _RootGroup(_Group):
    """The top-level group; plugins' own commands join it the first time a command is looked up."""

    plugin_commands_added = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        self._add_plugin_commands()
        return super().get_command(ctx, name)

    def _add_plugin_commands(self) -> None:
        if not self.plugin_commands_added:
            self.plugin_commands_added = True
            plugin_registry.registry().add_commands(self)


class _TaskGroup(_Group):
    """``nlpsuite run TASK``: one subcommand per registered task, built on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [task.name for task in list_tasks()]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        return _run_command(plugin_registry.registry().task(name))

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        try:
            return super().resolve_command(ctx, args)
        except NlpsuiteError as error:
            raise CliError(str(error)) from None


@click.group(cls=_RootGroup)
@click.version_option(__version__, prog_name="nlpsuite")
def cli() -> None:
    """nlpsuite: NLP tasks as plugins, run and evaluated the same way."""


for _command in (*EVAL_COMMANDS, *EXPLAIN_COMMANDS, *MODEL_COMMANDS, *SERVE_COMMANDS):
    cli.add_command(_command)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per plugin.")
def plugins(as_json: bool) -> None:
    """List plugins, what they provide, and whether they loaded."""
    for info in plugin_registry.registry().plugins:
        if as_json:
            click.echo(json.dumps(dataclasses.asdict(info) | {"ok": info.ok}))
            continue
        status = "ok" if info.ok else f"broken: {info.error}"
        provides = f"tasks: {', '.join(info.tasks) or '-'}"
        if info.backends:
            provides = f"backends: {', '.join(info.backends)}"
        click.echo(f"{info.name}\t{info.package} {info.version}\t{provides}\t{status}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per backend.")
def backends(as_json: bool) -> None:
    """List inference engines for --backend, and whether each is installed."""

    for backend in list_backends():
        installed = backend.installed
        if as_json:
            click.echo(json.dumps({
                "name": backend.name, "description": backend.description,
                "installed": installed, "install": None if installed else backend.install_hint(),
                "auto_classes": list(backend.auto_classes) if backend.auto_classes else None,
                "devices": list(backend.devices),
                "options": [{"name": o.name, "type": o.type.__name__, "default": o.default,
                             "help": o.help} for o in backend.options],
            }))
            continue
        status = "installed" if installed else f"not installed: {backend.install_hint()}"
        options = ", ".join(f"{o.name}={o.default}" for o in backend.options) or "-"
        click.echo(f"{backend.name}\t{status}\t{backend.description}\n    options: {options}")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object per task.")
def tasks(as_json: bool) -> None:
    """List tasks with their default model, metrics, and whether `nlpsuite train` takes them."""
    for task in list_tasks():
        metrics = [
            {"name": metric.name, "higher_is_better": metric.higher_is_better}
            for metric in task.metrics
        ]
        if as_json:
            options = [
                {"name": o.name, "type": o.type.__name__, "default": o.default, "help": o.help}
                for o in task.options
            ]
            click.echo(
                json.dumps(
                    {
                        "name": task.name,
                        "description": task.description,
                        "default_model": task.default_model,
                        "metrics": metrics,
                        "options": options,
                        "trainable": task.train is not None,
                    }
                )
            )
            continue
        shown = ", ".join(f"{m['name']}{'↑' if m['higher_is_better'] else '↓'}" for m in metrics)
        click.echo(
            f"{task.name}\t{task.description}\n    model: {task.default_model}"
            f"\n    metrics: {shown or '-'}"
            f"\n    trainable: {'yes' if task.train is not None else 'no'}"
        )


@cli.command()
@click.argument("task_name", metavar="TASK")
@click.option("--predictions", "-p", required=True, metavar="FILE",
              help="Hypotheses (one per line), SQuAD prediction JSON, or labels (one per line).")
@click.option("--references", "-r", required=True, multiple=True, metavar="FILE",
              help="Reference file; repeat for several references (translation, summarization); "
              "the SQuAD dataset JSON for question-answering.")
@click.option("--metric", "metric_names", multiple=True, metavar="NAME|DIR",
              help="Score with this metric instead of the task's (repeatable): a registered "
              "name or a Hugging Face evaluate metric directory.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def score(task_name: str, predictions: str, references: tuple[str, ...],
          metric_names: tuple[str, ...], as_json: bool) -> None:
    """Score a predictions file against reference files with TASK's metrics (no model)."""

    # start-up: scoring and the SQuAD reader load only when this command runs
    from nlpsuite.scoring import score_files
    report = score_files(task_name, predictions, references, metric_names or None)
    for note in report.notes:
        click.echo(f"nlpsuite: {note}", err=True)
    if as_json:
        click.echo(json.dumps(report.as_dict()))
        return
    for result in report.metrics:
        signature = f"\t{result.signature}" if result.signature else ""
        click.echo(f"{result.name}\t{format_number(result.value, result.scale)}"
                   f"\t({scale_label(result.scale)}){signature}")


@cli.command("datasets")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per dataset.")
def datasets_command(as_json: bool) -> None:
    """List registered datasets with their task, size, licence and description."""
    for name, dataset in sorted(plugin_registry.registry().datasets.items()):
        try:
            size: int | None = len(dataset.load())
        except NlpsuiteError:  # e.g. a dataset whose files are not on this machine
            size = None
        if as_json:
            click.echo(json.dumps({
                "name": name, "task": dataset.task, "examples": size,
                "licence": dataset.licence, "description": dataset.description,
            }))
            continue
        shown = "?" if size is None else str(size)
        click.echo(f"{name}\t{dataset.task}\t{shown} examples\t{dataset.licence}"
                   f"\t{dataset.description}")


@cli.command()
@click.argument("results_dir", metavar="DIR")
@click.option("--format", "formats", default="md", show_default=True, metavar="md,html,json",
              help="Comma-separated formats to write.")
@click.option("--out", metavar="OUTDIR",
              help="Write leaderboard.md/.html/.json here [default: the one format to stdout].")
def leaderboard(results_dir: str, formats: str, out: str | None) -> None:
    """Rank the runs under DIR (every results.json) by each task's primary metric."""
    from pathlib import Path

    # start-up: the leaderboard renderers load only when this command runs
    from nlpsuite.report import build, parse_formats, render, write
    chosen = parse_formats(formats)
    if out is None and len(chosen) > 1:
        raise NlpsuiteError("several formats need --out DIR")
    board = build(Path(results_dir))
    if out is None:
        click.echo(render(board, chosen[0]), nl=False)
        return
    for path in write(board, chosen, Path(out)):
        click.echo(f"wrote {path}")


@cli.group(cls=_TaskGroup)
def run() -> None:
    """Run a task on text arguments, stdin lines, or an --input file (JSONL, CSV, TSV, .txt)."""


def _run_command(task: Task) -> click.Command:
    fields = dataclasses.fields(task.input_type)
    # A field named like an option overrides the option for its record (in an --input file);
    # on the command line, the flag sets the option.
    options_named = {o.name for o in task.options}
    primary = fields[0].name
    extra_fields = [f.name for f in fields[1:] if f.name not in options_named]

    def command(
        texts: tuple[str, ...],
        input_path: str | None,
        output_path: str | None,
        as_json: bool,
        model: str | None,
        device: str,
        batch_size: int,
        option: tuple[str, ...],
        trust_remote_code: bool,
        backend: str,
        allow_random_head: bool,
        **flags: Any,
    ) -> None:
        options = parse_key_values(option, "--option")
        options.update({k: v for k, v in flags.items() if k not in extra_fields and v is not None})
        shared = {k: v for k, v in flags.items() if k in extra_fields and v is not None}
        if output_path is not None:  # refused now, not after the model has loaded
            check_writable(output_path, "output file")
        if input_path is not None:  # likewise a file of a kind --input does not read
            input_file_kind(input_path)
        # What the plugin prints goes to stderr: stdout carries only the outputs (JSONL: --json).
        with contextlib.redirect_stdout(sys.stderr):
            runner = load_runner(task, model, device=device, batch_size=batch_size, options=options,
                                 trust_remote_code=trust_remote_code, backend=backend,
                                 allow_random_head=allow_random_head)
        records = read_inputs(task, texts, input_path, primary, shared)
        stream = getattr(runner.runner, "stream", None)
        if stream is not None and output_path is None and not as_json and sys.stdout.isatty():
            _stream(stream, records)
            return
        write = _writer(task, output_path, as_json)
        with write:
            for chunk in _chunks(records, CHUNK):
                with contextlib.redirect_stdout(sys.stderr):
                    outputs = runner(chunk)
                for output in outputs:
                    write(output)

    params: list[click.Parameter] = [
        click.Argument(["texts"], nargs=-1),
        click.Option(
            ["--input", "-i", "input_path"],
            metavar="FILE",
            help="JSONL, CSV or TSV with the fields "
            + ", ".join(f.name for f in fields)
            + f", or .txt with one '{primary}' per line ('-' for JSONL on stdin).",
        ),
        click.Option(
            ["--output", "-o", "output_path"],
            metavar="FILE",
            help="Write JSONL here (atomically) instead of printing.",
        ),
        click.Option(["--json", "as_json"], is_flag=True, help="Print JSONL."),
        click.Option(
            ["--model", "-m"],
            metavar="ID|DIR",
            help=f"Hub id or local directory [default: {task.default_model}].",
        ),
        click.Option(
            ["--device"],
            default="cpu",
            show_default=True,
            type=click.Choice(["cpu", "cuda", "auto"]),
        ),
        click.Option(["--batch-size", "-b"], default=32, show_default=True, type=int),
        click.Option(
            ["--option", "-O"], multiple=True, metavar="KEY=VALUE", help="Task option; see below."
        ),
        click.Option(
            ["--trust-remote-code"],
            is_flag=True,
            help="Allow a checkpoint to run its own Python code.",
        ),
        click.Option(
            ["--backend"],
            default="torch",
            show_default=True,
            metavar="NAME[:KEY=VALUE,...]",
            help="Inference engine, e.g. onnx or ctranslate2:compute_type=int8 "
            "(see nlpsuite backends).",
        ),
        click.Option(["--allow-random-head"], is_flag=True,
                     help="Run a checkpoint that lacks the task's trained head with a random one."),
    ]
    params += [
        click.Option(
            [f"--{name.replace('_', '-')}", name],
            metavar="TEXT",
            help=f"'{name}' for every argument.",
        )
        for name in extra_fields
    ]
    params += [
        click.Option(
            [f"--{o.name.replace('_', '-')}", o.name],
            default=None,
            metavar=o.type.__name__.upper(),
            help=f"{o.help} [default: {o.default}]",
        )
        if o.type is not bool else
        click.Option(  # a switch: --chat, --no-chat
            [f"--{o.name.replace('_', '-')}/--no-{o.name.replace('_', '-')}", o.name],
            default=None,
            help=f"{o.help} [default: {'on' if o.default else 'off'}]",
        )
        for o in task.options
        if o.name not in extra_fields
    ]
    return _TaskCommand(task, callback=command, params=params, help=task.description)


class _TaskCommand(click.Command):
    """``nlpsuite run TASK``. Its help ends with the fields the task reads and an example line,
    made only when help is shown: the example may load a dataset."""

    def __init__(self, task: Task, **kwargs: Any) -> None:
        super().__init__(task.name, **kwargs)
        self.task = task

    def format_epilog(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        fields = input_fields(self.task)
        options_named = {o.name for o in self.task.options}  # their flags set the option
        flags = ", ".join(f"--{field.name.replace('_', '-')}" for field in fields[1:]
                          if field.name not in options_named)
        with formatter.section("Input fields"):
            formatter.write_text(
                f"Text arguments, stdin lines and .txt --input files (one text per line) fill "
                f"'{fields[0].name}'" + (f", with {flags} for the other fields" if flags else "")
                + "; JSONL, CSV and TSV --input files give every field by name."
            )
            formatter.write_paragraph()
            formatter.write_dl([(field.name, field.summary()) for field in fields])
        with formatter.section("Example --input line (JSONL)"):
            line = json.dumps(example_record(self.task), ensure_ascii=False)
            formatter.write(f"{'':>{formatter.current_indent}}{line}\n")  # unwrapped: one line
        super().format_epilog(ctx, formatter)


def _stream(stream: Callable[[Any], Iterator[str]], records: Iterator[Any]) -> None:
    """Each output's text as it is made, for a person at a terminal: a task's runner with a
    ``stream(record)`` method yielding text pieces gets its records one at a time."""
    for record in records:
        pieces = stream(record)
        while True:
            with contextlib.redirect_stdout(sys.stderr):  # what the plugin prints, as above
                piece = next(pieces, None)
            if piece is None:
                break
            click.echo(piece, nl=False)
        click.echo()


def _chunks(records: Iterator[Any], size: int) -> Iterator[list[Any]]:
    chunk: list[Any] = []
    for record in records:
        chunk.append(record)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _writer:
    """Prints outputs as text or JSONL, or collects JSONL for one atomic write to a file."""

    def __init__(self, task: Task, path: str | None, as_json: bool) -> None:
        self.path = path
        self.lines: list[str] = []
        self.format: Callable[[Any], str]
        if path is not None or as_json:

            self.format = to_json
        else:
            self.format = task.render or _render_fields

    def __call__(self, output: Any) -> None:
        line = self.format(output)
        if self.path is None:
            click.echo(line)
        else:
            self.lines.append(line + "\n")

    def __enter__(self) -> _writer:
        return self

    def __exit__(self, kind: Any, *rest: Any) -> None:
        if self.path is not None and kind is None:

            write_atomic(self.path, "".join(self.lines))
            count = len(self.lines)
            click.echo(f"nlpsuite: {count} record{'' if count == 1 else 's'} written to "
                       f"{self.path}", err=True)


def _render_fields(output: Any) -> str:
    values = dataclasses.asdict(output).values()
    return "\t".join(render_score(v) if isinstance(v, float) else str(v) for v in values)


def _log_to_stderr() -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("nlpsuite: %(message)s"))
    logger = logging.getLogger("nlpsuite")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def main() -> None:
    _log_to_stderr()
    cli(prog_name="nlpsuite")
