"""The evaluation commands: ``nlpsuite eval`` (one run) and ``nlpsuite bench`` (a suite).

A thin layer like the rest of the command line: flags become an
:class:`~nlpsuite.results.EvalRequest` (or a suite and where to run it) for the harness, and
the harness, the models and Ray load only when a command runs. Progress shows on stderr: a bar
on a terminal, a line now and then off one.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from nlpsuite.errors import NlpsuiteError
from nlpsuite.lookup import canonical_backend
from nlpsuite.options import parse_key_values
from nlpsuite.results import EvalRequest
from nlpsuite.scales import format_interval, format_number, scale_from_json, scale_label

if TYPE_CHECKING:
    from nlpsuite.executors import ExecutorConfig
    from nlpsuite.harness import Progress

# eval and bench: how their progress shows (see _eval_progress).
QUIET = click.option("--quiet", "-q", is_flag=True, help="No progress bar or progress lines.")
PROGRESS_EVERY = click.option(
    "--progress-every", default=30.0, show_default=True, metavar="SECONDS",
    type=click.FloatRange(min=0),
    help="Off a terminal (a log, CI): seconds between progress lines on stderr.")


def executor_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """``--executor``, ``--workers`` and what each worker reserves: eval's and bench's."""
    for option in reversed((
        click.option("--executor", default="local", show_default=True,
                     metavar="local|ray[:address=A]",
                     help="Where chunks are predicted: here, or by Ray actors on a cluster of "
                     "their own or at address A (HOST:PORT, auto). Same predictions either way."),
        click.option("--workers", default=1, show_default=True, type=int,
                     help="Ray actors (per run, for bench)."),
        click.option("--cpus-per-worker", default=1.0, show_default=True, type=float,
                     help="CPUs each Ray worker reserves, and so its torch threads."),
        click.option("--gpus-per-worker", default=0.0, show_default=True, type=float,
                     help="GPUs each Ray worker reserves (with --device cuda)."),
    )):
        command = option(command)
    return command


def where_to_run(executor: str, workers: int, cpus_per_worker: float,
                 gpus_per_worker: float) -> ExecutorConfig:
    # start-up: the executors load the task registry only when a command runs
    from nlpsuite.executors import parse_executor

    return parse_executor(executor, workers, cpus_per_worker, gpus_per_worker)


@click.command("eval")
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
@click.option("--explain", metavar="ig|occlusion|lime|shap",
              help="Explain every example too (bound the cost with --sample N): the "
              "explanations' mean comprehensiveness and sufficiency join the metrics "
              "(pip install 'nlpsuite[explain]').")
@click.option("--checkpoint-every", default=256, show_default=True, type=int,
              help="Examples per chunk: what a kill can lose, and a Ray worker's unit of work.")
@executor_options
def eval_command(task_name: str, dataset: str, model: str | None, out: str | None, device: str,
                 batch_size: int, option: tuple[str, ...], limit: int | None,
                 sample: int | None, seed: int, bootstrap: int, label_map: str | None,
                 quiet: bool, progress_every: float, backend: str, metric_names: tuple[str, ...],
                 force: bool, allow_random_head: bool, checkpoint_every: int, executor: str,
                 workers: int, cpus_per_worker: float, gpus_per_worker: float,
                 retry_failed: bool, explain: str | None) -> None:
    """Evaluate TASK with its metrics on a dataset; resumes an interrupted run."""
    from pathlib import Path

    where = where_to_run(executor, workers, cpus_per_worker, gpus_per_worker)

    backend = canonical_backend(backend)
    parts = (task_name, model or "default", dataset) + ((backend,) if backend != "torch" else ())
    parts += (f"explain-{explain}",) if explain else ()
    folder = Path(out) if out else Path("results") / "--".join(_slug(part) for part in parts)
    request = EvalRequest(
        task=task_name, dataset=dataset, out=folder, model=model, device=device,
        batch_size=batch_size, options=parse_key_values(option, "--option"), limit=limit,
        sample=sample, seed=seed, bootstrap=bootstrap, checkpoint_every=checkpoint_every,
        label_map=parse_key_values(tuple(label_map.split(",")) if label_map else (), "--label-map"),
        backend=backend, metrics=metric_names or None, allow_random_head=allow_random_head,
        explain=explain,
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


@click.command()
@click.argument("suite_file", metavar="SUITE")
@click.option("--out", required=True, metavar="DIR", help="Results folder: one subfolder per run.")
@click.option("--list", "list_only", is_flag=True,
              help="List the runs and whether each is complete; run nothing.")
@click.option("--force", is_flag=True, help="Run complete runs again, from scratch.")
@QUIET
@PROGRESS_EVERY
@executor_options
def bench(suite_file: str, out: str, list_only: bool, force: bool, quiet: bool,
          progress_every: float, executor: str, workers: int, cpus_per_worker: float,
          gpus_per_worker: float) -> None:
    """Run a benchmark suite (TOML: tasks x models x datasets); skips complete runs.

    With --executor ray, runs go at once, each on its own --workers Ray actors."""
    from pathlib import Path

    where = where_to_run(executor, workers, cpus_per_worker, gpus_per_worker)

    # start-up: suites and the harness load only when this command runs
    from nlpsuite.bench import load_suite, plan, run_suite, summary
    suite = load_suite(suite_file)
    if list_only:
        for run, complete in plan(suite, Path(out)):
            click.echo(f"{'complete' if complete else 'to run'}\t{run.describe()}\t{run.folder}")
        return

    bar = not quiet and sys.stderr.isatty() and where.kind == "local"

    def report(number: int, total: int, outcome: Any) -> None:
        if bar and outcome.status != "skipped":
            click.echo(err=True)  # ends the bar's line
        shown = {"skipped": "already complete", "failed": f"FAILED: {outcome.error}"}.get(
            outcome.status, f"done in {outcome.seconds:.1f} s")
        click.echo(f"[{number}/{total}] {outcome.run.describe()}: {shown}")

    outcomes = run_suite(suite, Path(out), force=force, report=report,
                         progress=lambda: _eval_progress(quiet, progress_every), executor=where)
    click.echo(f"{summary(outcomes)}; results in {out}")
    failed = sum(outcome.status == "failed" for outcome in outcomes)
    if failed:
        raise NlpsuiteError(f"{failed} of {len(outcomes)} runs failed (see above)")


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text.strip("/."))[-60:]


def _eval_progress(quiet: bool, every: float) -> Callable[[Progress], None] | None:
    """Progress of one eval on stderr: a bar on a terminal; off one (a log, CI), a line every
    ``every`` seconds and at the end, so a long run is not silent."""
    if quiet:
        return None
    return _progress_bar() if sys.stderr.isatty() else _progress_lines(every)


def _pace() -> Callable[[Progress], tuple[float, float]]:
    """Examples per second and seconds left, counted from the first call (the harness makes it as
    its timed predictions start), so loading and cached predictions do not count."""
    first: list[tuple[float, int]] = []

    def pace(progress: Progress) -> tuple[float, float]:
        now = time.perf_counter()
        if not first:
            first.append((now, progress.done))
        began, done_then = first[0]
        rate = (progress.done - done_then) / (now - began) if now > began else 0.0
        return rate, (progress.total - progress.done) / rate if rate > 0 else 0.0

    return pace


def _workers(progress: Progress) -> str:
    """How many Ray workers are alive, for a Ray run: one that died shows at once."""
    if progress.workers is None:
        return ""
    return f", {progress.workers} worker{'s' if progress.workers != 1 else ''} alive"


def _progress_bar() -> Callable[[Progress], None]:
    pace = _pace()

    def show(progress: Progress) -> None:
        rate, left = pace(progress)
        if rate == 0 and progress.done < progress.total:  # the start: no rate yet
            return
        click.echo(f"\r{progress.done}/{progress.total} examples, chunk "
                   f"{progress.chunks_done}/{progress.chunks_total}, {rate:.1f}/s, "
                   f"{left:.0f}s left{_workers(progress)}   ", err=True, nl=False)

    return show


def _progress_lines(every: float) -> Callable[[Progress], None]:
    pace = _pace()
    last: list[float] = []

    def show(progress: Progress) -> None:
        rate, left = pace(progress)
        now = time.perf_counter()
        last[:] = last or [now]  # the first call: the clock starts, no rate yet
        finished = progress.done >= progress.total
        if not finished and (now - last[0] < every or rate == 0):
            return
        last[0] = now
        shown = f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}"  # a slow model: 0.4 ex/s
        when = "done" if finished else f"about {_duration(left)} left"
        click.echo(f"nlpsuite: {progress.done:,}/{progress.total:,} examples, {shown} ex/s, "
                   f"{when}{_workers(progress)}", err=True)

    return show


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


EVAL_COMMANDS = (eval_command, bench)
