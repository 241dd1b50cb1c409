"""The commands that make models: ``nlpsuite train``, ``distill`` and ``quantize``.

A thin layer like the rest of the command line: each parses its flags, calls one library
function (:mod:`nlpsuite.training`, :mod:`nlpsuite.distillation`, :mod:`nlpsuite.quantization`,
loaded only when the command runs) and prints what it made.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from nlpsuite.errors import NlpsuiteError
from nlpsuite.models import resolve_device
from nlpsuite.options import parse_key_values
from nlpsuite.quantized import QUANTIZE_MODES
from nlpsuite.tasks import TrainConfig


@click.command("train")
@click.argument("task_name", metavar="TASK")
@click.option("--model", "-m", required=True, metavar="ID|DIR", help="Base model to fine-tune.")
@click.option("--train", "train_data", required=True, metavar="FILE|NAME",
              help="Training data: any dataset `nlpsuite eval` reads (GLUE TSV, JSONL, CSV, "
              "SQuAD JSON, a registered name).")
@click.option("--validation", metavar="FILE|NAME",
              help="Scored with the task's metrics after each epoch.")
@click.option("--out", required=True, metavar="DIR", help="Where the checkpoint is saved.")
@click.option("--epochs", default=3, show_default=True, type=int)
@click.option("--lr", default=5e-5, show_default=True, type=float, help="Peak learning rate.")
@click.option("--batch-size", "-b", default=16, show_default=True, type=int)
@click.option("--max-length", type=int,
              help="Tokens per input [default: sentiment 128, question-answering 384].")
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--warmup", default=0.1, show_default=True, type=float,
              help="Fraction of the steps with a rising learning rate.")
@click.option("--weight-decay", default=0.01, show_default=True, type=float)
@click.option("--limit", type=int, help="Only the first N training examples.")
@click.option("--option", "-O", multiple=True, metavar="KEY=VALUE",
              help="Task option, e.g. doc_stride=128.")
@click.option("--checkpoint-every", default=200, show_default=True, type=int,
              help="Save a resumable checkpoint every N steps (and at each epoch's end).")
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out.")
@click.option("--device", default="cpu", show_default=True,
              type=click.Choice(["cpu", "cuda", "auto"]))
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def train_command(task_name: str, model: str, train_data: str, validation: str | None, out: str,
                  epochs: int, lr: float, batch_size: int, max_length: int | None, seed: int,
                  warmup: float, weight_decay: float, limit: int | None, option: tuple[str, ...],
                  checkpoint_every: int, resume: bool, device: str, quiet: bool) -> None:
    """Fine-tune MODEL for TASK and save a Hugging Face checkpoint with its log and model card."""
    from pathlib import Path


    config = TrainConfig(
        task=task_name, model=model, train=train_data, out=Path(out), validation=validation,
        epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length, seed=seed,
        warmup=warmup, weight_decay=weight_decay, options=parse_key_values(option, "--option"),
        limit=limit, checkpoint_every=checkpoint_every, resume=resume,
        device=resolve_device(device),
    )
    show = not quiet and sys.stderr.isatty()
    # start-up: the training loop and its data machinery load only when this command runs
    from nlpsuite.training import train
    result = train(config, progress=training_bar if show else None)
    if show:
        click.echo(err=True)
    if result.resumed_from_step:
        click.echo(f"nlpsuite: resumed at step {result.resumed_from_step} of {result.steps}",
                   err=True)
    for name, value in result.metrics.items():
        click.echo(f"{name}\t{value:.4f}")
    click.echo(f"model: {result.out} ({result.steps} steps, {result.seconds:.1f} s)")


def training_bar(progress: Any) -> None:
    minutes, seconds = divmod(int(progress.seconds_left), 60)
    click.echo(f"\rstep {progress.step}/{progress.total_steps}  epoch {progress.epoch}/"
               f"{progress.epochs}  loss {progress.loss:.4f}  {progress.examples_per_second:.1f} "
               f"ex/s  {minutes}m{seconds:02d}s left   ", err=True, nl=False)


@click.command("distill")
@click.argument("task_name", metavar="TASK")
@click.option("--teacher", required=True, metavar="DIR",
              help="The fine-tuned classifier to learn from (its tokenizer reads the data).")
@click.option("--student", metavar="DIR",
              help="Train this smaller checkpoint instead of cutting layers from the teacher.")
@click.option("--student-layers", type=int,
              help="Keep this many of the teacher's layers, evenly spaced from the first "
              "(3 of 6: 0,2,4) [default: half].")
@click.option("--keep-layers", metavar="I,J,...", help="Keep exactly these teacher layers.")
@click.option("--temperature", default=2.0, show_default=True, type=float,
              help="Softens both models' probabilities in the teacher term.")
@click.option("--alpha", default=0.5, show_default=True, type=float,
              help="Weight of the teacher term; 1 - alpha goes to the hard labels.")
@click.option("--train", "train_data", required=True, metavar="FILE|NAME",
              help="Training data with labels, as for `nlpsuite train`.")
@click.option("--validation", metavar="FILE|NAME",
              help="Scored after each epoch, and for the teacher/student comparison.")
@click.option("--out", required=True, metavar="DIR", help="Where the student is saved.")
@click.option("--epochs", default=3, show_default=True, type=int)
@click.option("--lr", default=1e-4, show_default=True, type=float, help="Peak learning rate.")
@click.option("--batch-size", "-b", default=32, show_default=True, type=int)
@click.option("--max-length", type=int, help="Tokens per input [default: 128].")
@click.option("--seed", default=42, show_default=True, type=int)
@click.option("--warmup", default=0.1, show_default=True, type=float)
@click.option("--weight-decay", default=0.01, show_default=True, type=float)
@click.option("--limit", type=int, help="Only the first N training examples.")
@click.option("--checkpoint-every", default=200, show_default=True, type=int)
@click.option("--resume", is_flag=True, help="Continue the interrupted run in --out.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
def distill_command(task_name: str, teacher: str, student: str | None,
                    student_layers: int | None, keep_layers: str | None, temperature: float,
                    alpha: float, train_data: str, validation: str | None, out: str, epochs: int,
                    lr: float, batch_size: int, max_length: int | None, seed: int, warmup: float,
                    weight_decay: float, limit: int | None, checkpoint_every: int, resume: bool,
                    quiet: bool) -> None:
    """Distill TEACHER into a smaller student for TASK (sentiment); the model card compares
    teacher and student (accuracy, examples/s, size)."""
    from pathlib import Path


    keep = None
    if keep_layers is not None:
        try:
            keep = tuple(int(part) for part in keep_layers.split(","))
        except ValueError:
            raise NlpsuiteError(
                f"--keep-layers expects layer numbers like 0,2,4, got {keep_layers!r}"
            ) from None
    # start-up: distillation and training load only when this command runs
    from nlpsuite.distillation import DistillConfig, distill
    config = DistillConfig(
        train=TrainConfig(
            task=task_name, model=teacher, train=train_data, out=Path(out),
            validation=validation, epochs=epochs, lr=lr, batch_size=batch_size,
            max_length=max_length, seed=seed, warmup=warmup, weight_decay=weight_decay,
            limit=limit, checkpoint_every=checkpoint_every, resume=resume,
        ),
        student=student, keep_layers=keep, student_layers=student_layers,
        temperature=temperature, alpha=alpha,
    )
    show = not quiet and sys.stderr.isatty()
    result = distill(config, progress=training_bar if show else None)
    if show:
        click.echo(err=True)
    for figures in (result.teacher, result.student):
        shown = "  ".join(f"{name} {value:.4f}" for name, value in figures.metrics.items())
        click.echo(f"{figures.role}\t{figures.layers} layers\t{shown}\t"
                   f"{figures.examples_per_second:.1f} ex/s\t"
                   f"{(figures.weights_bytes or 0) / 2**20:.1f} MiB")
    click.echo(f"model: {result.train.out} ({result.train.steps} steps, "
               f"{result.train.seconds:.1f} s)")


@click.command("quantize")
@click.argument("model", metavar="DIR")
@click.option("--out", required=True, metavar="DIR2", help="Where the int8 export is written.")
@click.option("--mode", default="int8", show_default=True,
              type=click.Choice(list(QUANTIZE_MODES)),
              help="int8: every linear layer int8. int8-mixed: all but the feed-forward output "
                   "projections, which stay float32 (more accurate, less speed-up).")
def quantize_command(model: str, out: str, mode: str) -> None:
    """Export DIR with dynamic int8 linear layers to DIR2 (CPU). DIR2 loads with nlpsuite
    only (`nlpsuite run/eval --model DIR2`), not with plain transformers."""
    from pathlib import Path

    # start-up: the export and training load only when this command runs
    from nlpsuite.quantization import quantize_checkpoint
    result = quantize_checkpoint(model, Path(out), mode=mode)
    before = f"{result.bytes_before / 2**20:.1f} MiB" if result.bytes_before else "unknown"
    click.echo(f"weights: {before} -> {result.bytes_after / 2**20:.1f} MiB ({result.mode})")
    click.echo(f"model: {result.out} (loads with nlpsuite only)")


MODEL_COMMANDS = (train_command, distill_command, quantize_command)
