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
from nlpsuite.lookup import canonical_backend, list_backends, list_tasks, load_runner
from nlpsuite.model_commands import MODEL_COMMANDS
from nlpsuite.options import parse_key_values
from nlpsuite.records import (
    check_writable,
    iter_records,
    stdin_lines,
    text_lines,
    to_json,
    write_atomic,
)
from nlpsuite.results import EvalRequest
from nlpsuite.scales import format_interval, format_number, scale_from_json, scale_label
from nlpsuite.serve_commands import SERVE_COMMANDS
from nlpsuite.task_inputs import example_record, input_fields, input_file_kind
from nlpsuite.tasks import Task, render_score

# Inputs are handed to the runner this many at a time, so output starts before a big file ends.
CHUNK = 1024
# eval and bench: how their progress shows (see _eval_progress).
QUIET = click.option("--quiet", "-q", is_flag=True, help="No progress bar or progress lines.")
PROGRESS_EVERY = click.option(
    "--progress-every", default=30.0, show_default=True, metavar="SECONDS",
    type=click.FloatRange(min=0),
    help="Off a terminal (a log, CI): seconds between progress lines on stderr.")


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


for _command in (*MODEL_COMMANDS, *SERVE_COMMANDS):
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


@cli.command("eval")
@click.argument("task_name", metavar="TASK")
@click.option("--dataset", "-d", required=True, help="A registered dataset name or a file/folder.")
@click.option("--model", "-m", metavar="ID|DIR", help="Hub id or local directory.")
@click.option("--out", "out", metavar="DIR",
              help="Results folder [default: results/TASK--MODEL--DATASET].")
@click.option("--device", default="cpu", show_default=True,
              type=click.Choice(["cpu", "cuda", "auto"]))
@click.option("--batch-size", "-b", default=32, show_default=True, type=int)
@click.option("--option", "-O", multiple=True, metavar="KEY=VALUE", help="Task option.")
@click.option("--limit", type=int, help="Only the first N examples.")
@click.option("--sample", type=int, help="A seeded random sample of N examples.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--bootstrap", default=1000, show_default=True, type=int,
              help="Bootstrap resamples for the 95% confidence intervals (0 for none).")
@click.option("--label-map", metavar="D=M,...",
              help="Dataset label to model label, e.g. 0=NEGATIVE,1=POSITIVE.")
@QUIET
@PROGRESS_EVERY
@click.option("--backend", default="torch", show_default=True, metavar="NAME[:KEY=VALUE,...]",
              help="Inference engine, e.g. onnx or ctranslate2:compute_type=int8 "
              "(see nlpsuite backends).")
@click.option("--metric", "metric_names", multiple=True, metavar="NAME|DIR",
              help="Score with this metric instead of the task's (repeatable): a registered "
              "name or a Hugging Face evaluate metric directory.")
@click.option("--force", is_flag=True,
              help="Discard the folder's cached predictions and start over.")
@click.option("--allow-random-head", is_flag=True,
              help="Run a checkpoint that lacks the task's trained head with a random one.")
@click.option("--retry-failed", is_flag=True,
              help="Predict again the examples an earlier run recorded as failed.")
@click.option("--checkpoint-every", default=256, show_default=True, type=int,
              help="Examples per chunk: what a kill can lose, and a Ray worker's unit of work.")
@click.option("--executor", default="local", show_default=True, metavar="local|ray[:address=A]",
              help="Where chunks are predicted: here, or by Ray actors on a cluster of their own "
              "or at address A (HOST:PORT, auto). Same predictions either way.")
@click.option("--workers", default=1, show_default=True, type=int, help="Ray actors.")
@click.option("--cpus-per-worker", default=1.0, show_default=True, type=float)
@click.option("--gpus-per-worker", default=0.0, show_default=True, type=float)
def eval_command(task_name: str, dataset: str, model: str | None, out: str | None, device: str,
                 batch_size: int, option: tuple[str, ...], limit: int | None,
                 sample: int | None, seed: int, bootstrap: int, label_map: str | None,
                 quiet: bool, progress_every: float, backend: str, metric_names: tuple[str, ...],
                 force: bool, allow_random_head: bool, checkpoint_every: int, executor: str,
                 workers: int, cpus_per_worker: float, gpus_per_worker: float,
                 retry_failed: bool) -> None:
    """Evaluate TASK with its metrics on a dataset; resumes an interrupted run."""
    from pathlib import Path

    # start-up: the executors load the task registry only when this command runs
    from nlpsuite.executors import parse_executor
    where = parse_executor(executor, workers, cpus_per_worker, gpus_per_worker)

    backend = canonical_backend(backend)
    parts = (task_name, model or "default", dataset) + ((backend,) if backend != "torch" else ())
    folder = Path(out) if out else Path("results") / "--".join(_slug(part) for part in parts)
    request = EvalRequest(
        task=task_name, dataset=dataset, out=folder, model=model, device=device,
        batch_size=batch_size, options=parse_key_values(option, "--option"), limit=limit,
        sample=sample, seed=seed, bootstrap=bootstrap, checkpoint_every=checkpoint_every,
        label_map=parse_key_values(tuple(label_map.split(",")) if label_map else (), "--label-map"),
        backend=backend, metrics=metric_names or None, allow_random_head=allow_random_head,
    )
    # start-up: the harness and its data machinery load only when this command runs
    from nlpsuite.harness import evaluate
    results = evaluate(request, progress=_eval_progress(quiet, progress_every), force=force,
                       executor=where, retry_failed=retry_failed)
    if not quiet and sys.stderr.isatty():
        click.echo(err=True)  # ends the bar's line
    for name, score in results["metrics"].items():
        scale = scale_from_json(score.get("scale"))
        value = "null" if score["value"] is None else format_number(score["value"], scale)
        low, high = score["ci95"]
        interval = format_interval(low, high, scale)  # none without resamples (--bootstrap 0)
        shown = f"{value}\t{interval}" if interval else value
        click.echo(f"{name}\t{shown}\t({scale_label(scale)})")
    click.echo(f"results: {folder / 'results.json'}")


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
@click.argument("suite_file", metavar="SUITE")
@click.option("--out", required=True, metavar="DIR", help="Results folder: one subfolder per run.")
@click.option("--list", "list_only", is_flag=True,
              help="List the runs and whether each is complete; run nothing.")
@click.option("--force", is_flag=True, help="Run complete runs again, from scratch.")
@QUIET
@PROGRESS_EVERY
def bench(suite_file: str, out: str, list_only: bool, force: bool, quiet: bool,
          progress_every: float) -> None:
    """Run a benchmark suite (TOML: tasks x models x datasets); skips complete runs."""
    from pathlib import Path

    # start-up: suites and the harness load only when this command runs
    from nlpsuite.bench import load_suite, plan, run_suite, summary
    suite = load_suite(suite_file)
    if list_only:
        for run, complete in plan(suite, Path(out)):
            click.echo(f"{'complete' if complete else 'to run'}\t{run.describe()}\t{run.folder}")
        return

    bar = not quiet and sys.stderr.isatty()

    def report(number: int, total: int, outcome: Any) -> None:
        if bar and outcome.status != "skipped":
            click.echo(err=True)  # ends the bar's line
        shown = {"skipped": "already complete", "failed": f"FAILED: {outcome.error}"}.get(
            outcome.status, f"done in {outcome.seconds:.1f} s")
        click.echo(f"[{number}/{total}] {outcome.run.describe()}: {shown}")

    outcomes = run_suite(suite, Path(out), force=force, report=report,
                         progress=lambda: _eval_progress(quiet, progress_every))
    click.echo(f"{summary(outcomes)}; results in {out}")
    failed = sum(outcome.status == "failed" for outcome in outcomes)
    if failed:
        raise NlpsuiteError(f"{failed} of {len(outcomes)} runs failed (see above)")


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


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text.strip("/."))[-60:]


def _eval_progress(quiet: bool, every: float) -> Callable[[int, int], None] | None:
    """Progress of one eval on stderr: a bar on a terminal; off one (a log, CI), a line every
    ``every`` seconds and at the end, so a long run is not silent."""
    if quiet:
        return None
    return _progress_bar() if sys.stderr.isatty() else _progress_lines(every)


def _pace() -> Callable[[int, int], tuple[float, float]]:
    """Examples per second and seconds left, counted from the first call (the harness makes it as
    its timed predictions start), so loading and cached predictions do not count."""
    import time

    first: list[tuple[float, int]] = []

    def pace(done: int, total: int) -> tuple[float, float]:
        now = time.perf_counter()
        if not first:
            first.append((now, done))
        began, done_then = first[0]
        rate = (done - done_then) / (now - began) if now > began else 0.0
        return rate, (total - done) / rate if rate > 0 else 0.0

    return pace


def _progress_bar() -> Callable[[int, int], None]:
    pace = _pace()

    def show(done: int, total: int) -> None:
        rate, left = pace(done, total)
        if rate == 0 and done < total:  # the start: no rate yet
            return
        click.echo(f"\r{done}/{total} examples  {rate:.1f}/s  {left:.0f}s left   ",
                   err=True, nl=False)

    return show


def _progress_lines(every: float) -> Callable[[int, int], None]:
    import time

    pace = _pace()
    last: list[float] = []

    def show(done: int, total: int) -> None:
        rate, left = pace(done, total)
        now = time.perf_counter()
        last[:] = last or [now]  # the first call: the clock starts, no rate yet
        if done < total and (now - last[0] < every or rate == 0):
            return
        last[0] = now
        shown = f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}"  # a slow model: 0.4 ex/s
        when = "done" if done >= total else f"about {_duration(left)} left"
        click.echo(f"nlpsuite: {done:,}/{total:,} examples, {shown} ex/s, {when}", err=True)

    return show


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


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
        records = _inputs(task, texts, input_path, primary, shared)
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


def _inputs(
    task: Task, texts: tuple[str, ...], input_path: str | None, primary: str, shared: dict[str, str]
) -> Iterator[Any]:

    if input_path is not None:
        if texts:
            raise NlpsuiteError("give text arguments or --input, not both")
        if input_file_kind(input_path) == "records":
            yield from iter_records(input_path, task.input_type)
            return
        lines: Any = ((f"{input_path}:{n}", line) for n, line in text_lines(input_path))
    elif texts:
        lines = ((f"argument {i}", text) for i, text in enumerate(texts, 1))
    elif sys.stdin.isatty():
        raise NlpsuiteError(
            f"no input: give text arguments, pipe lines to stdin, or --input FILE "
            f"(try 'nlpsuite run {task.name} --help')"
        )
    else:
        lines = ((f"<stdin>:{n}", line) for n, line in stdin_lines())
    for where, text in lines:
        yield task.make_input({primary: text, **shared}, where)


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
