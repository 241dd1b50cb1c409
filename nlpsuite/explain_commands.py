"""``nlpsuite explain TASK``: which words made the model say what it said.

A thin layer like the rest of the command line: inputs are read as ``nlpsuite run`` reads them
(:func:`nlpsuite.task_inputs.read_inputs`), :func:`nlpsuite.explaining.load_explainer` does the
work, and :mod:`nlpsuite.report.explanations` renders the records. torch and captum load only
when the command runs.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys

import click

from nlpsuite.errors import NlpsuiteError
from nlpsuite.lookup import get_task
from nlpsuite.options import parse_key_values
from nlpsuite.records import check_writable, write_atomic
from nlpsuite.task_inputs import input_file_kind, read_inputs


@click.command("explain")
@click.argument("task_name", metavar="TASK")
@click.argument("texts", metavar="[TEXT]...", nargs=-1)
@click.option("--model", "-m", metavar="ID|DIR", help="Hub id or local directory "
              "[default: the task's default model].")
@click.option("--method", default="ig", show_default=True, metavar="ig|occlusion|lime|shap",
              help="Attribution method (ig needs gradients: --backend torch).")
@click.option("--label", metavar="LABEL",
              help="Explain this label instead of the predicted one (classification).")
@click.option("--input", "-i", "input_path", metavar="FILE",
              help="JSONL, CSV or TSV records, or .txt with one text per line ('-': JSONL on "
              "stdin), as nlpsuite run reads them.")
@click.option("--field", "-F", "fields", multiple=True, metavar="NAME=TEXT",
              help="A field of every text argument's record, e.g. context=TEXT for "
              "question answering.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON record per input.")
@click.option("--html", "html_path", metavar="FILE", help="Write the heatmap page here.")
@click.option("--attention", is_flag=True,
              help="Add word-to-word attention per layer and head (torch encoders).")
@click.option("--steps", default=50, show_default=True, type=click.IntRange(1),
              help="Integrated-gradients steps.")
@click.option("--seed", default=0, show_default=True, type=int,
              help="Seed for LIME's and KernelSHAP's samples.")
@click.option("--backend", default="torch", show_default=True, metavar="NAME[:KEY=VALUE,...]",
              help="Inference engine (gradient-free methods run on any).")
@click.option("--device", default="cpu", show_default=True,
              type=click.Choice(["cpu", "cuda", "auto"]))
@click.option("--batch-size", "-b", default=32, show_default=True, type=click.IntRange(1),
              help="Perturbed texts or IG steps per forward pass.")
@click.option("--option", "-O", multiple=True, metavar="KEY=VALUE", help="Task option.")
@click.option("--trust-remote-code", is_flag=True, help="Run code that a model repository ships.")
def explain_command(task_name: str, texts: tuple[str, ...], model: str | None, method: str,
                    label: str | None, input_path: str | None, fields: tuple[str, ...],
                    as_json: bool, html_path: str | None, attention: bool, steps: int,
                    seed: int, backend: str, device: str, batch_size: int,
                    option: tuple[str, ...], trust_remote_code: bool) -> None:
    """Explain TASK's predictions on TEXTs, stdin lines or an --input file: each word's
    attribution toward the predicted (or --label) target, with comprehensiveness and
    sufficiency (ERASER)."""
    from nlpsuite.explaining import load_explainer
    from nlpsuite.report.explanations import render_html, render_terminal

    task = get_task(task_name)
    if html_path is not None:  # refused now, not after the model has loaded
        check_writable(html_path, "HTML file")
    if input_path is not None:
        input_file_kind(input_path)
    primary = dataclasses.fields(task.input_type)[0].name
    shared = parse_key_values(fields, "--field")
    with contextlib.redirect_stdout(sys.stderr):  # what the plugin prints stays off stdout
        explainer = load_explainer(
            task.name, model, method=method, label=label, device=device, backend=backend,
            options=parse_key_values(option, "--option"), attention=attention, steps=steps,
            seed=seed, batch_size=batch_size, trust_remote_code=trust_remote_code,
        )
    records = list(read_inputs(task, texts, input_path, primary, shared, command="explain"))
    if not records:
        raise NlpsuiteError("no input records to explain")
    color = sys.stdout.isatty() and "NO_COLOR" not in os.environ
    explained = []
    for record in records:
        with contextlib.redirect_stdout(sys.stderr):
            found = explainer.explain_one(record).to_json()
        explained.append(found)
        if as_json:
            click.echo(json.dumps(found, ensure_ascii=False))
        else:
            click.echo(render_terminal(found, color))
    if html_path is not None:
        write_atomic(html_path, render_html(explained))
        click.echo(f"nlpsuite: {len(explained)} explanation"
                   f"{'' if len(explained) == 1 else 's'} written to {html_path}", err=True)


EXPLAIN_COMMANDS = (explain_command,)
