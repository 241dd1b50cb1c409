"""Evaluate the built-in tasks on the real benchmark files, through ``nlpsuite.harness.evaluate``.

    .venv/bin/python benchmarks/eval_real_data.py [DATASETS] [--skip-scifact] [--resume]

DATASETS is the folder of shared benchmark files (default: ``../shared/datasets`` beside the
repository). The runs:

- semantic-search on BEIR SciFact (test split, 300 queries over 5,183 abstracts), with the real
  all-MiniLM-L6-v2; embedding the corpus takes 5-10 minutes on two CPU cores (``--skip-scifact``);
- sentence-similarity on STS Benchmark dev (1,500 pairs), with the real all-MiniLM-L6-v2;
- sentiment on GLUE SST-2 dev and Poem Sentiment dev, and question-answering on a seeded sample
  of 500 SQuAD v1.1 dev questions; translation on samples of WMT17 newstest2017 and FLORES-200
  devtest, and summarization on SciTLDR-A test, all with tiny **random** checkpoints from
  ``tests/tiny_models.py``: no sentiment or QA checkpoint is available offline, so those figures
  check that loading, batching, label mapping, windowing and scoring run end to end on real
  files. They say nothing about any model's quality.

Prints a Markdown table (each metric with its 95% bootstrap interval, and throughput) and writes
``benchmarks/out/eval_real_data.json`` and ``.md``; each run's predictions and results.json are in
``benchmarks/out/runs/NAME/``. Runs start afresh so that throughput is measured; ``--resume``
keeps earlier predictions instead (the harness computes only what is missing).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from timing import machine

from nlpsuite.errors import NlpsuiteError

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
RUNS = OUT / "runs"
MINILM = "sentence-transformers/all-MiniLM-L6-v2"
RANDOM_NOTE = (
    "Rows marked *random weights* use tiny untrained BERT checkpoints (tests/tiny_models.py): "
    "their figures are a pipeline check on real files, not a quality claim."
)


@dataclass(frozen=True)
class Run:
    """One task x model x dataset evaluation. ``model`` builds the checkpoint (or names it)."""

    name: str
    task: str
    dataset: str  # relative to the datasets folder
    model_label: str
    model: Callable[[Path], str]
    random_weights: bool = False
    sample: int | None = None
    label_map: dict[str, str] = field(default_factory=dict)


def _minilm(_: Path) -> str:
    return MINILM


def _tiny_classifier(models: Path) -> str:
    from tests import tiny_models

    return str(tiny_models.build_bert_classifier(models / "bert-cls-2way", max_length=512))


def _tiny_classifier_3way(models: Path) -> str:
    from tests import tiny_models

    labels = ("negative", "no_impact", "positive")
    folder = models / "bert-cls-3way"
    return str(tiny_models.build_bert_classifier(folder, labels, max_length=512, seed=1))


def _tiny_qa(models: Path) -> str:
    from tests import tiny_models

    return str(tiny_models.build_bert_qa(models / "bert-qa", max_length=384))


def _tiny_marian(models: Path) -> str:
    from tests import tiny_seq2seq

    folder = models / "marian"
    return str(folder if folder.is_dir() else tiny_seq2seq.build_marian(folder))


def _tiny_t5(models: Path) -> str:
    from tests import tiny_seq2seq

    # A 512-token window holds most SciTLDR abstracts whole. (A random byte-level BART is no use
    # here: its random tokens decode to text that re-tokenizes dozens of times longer, so the
    # map-reduce over a long abstract cannot shrink it.)
    folder = models / "t5-512"
    return str(folder if folder.is_dir() else tiny_seq2seq.build_t5(folder, window=512))


PLAN = [
    Run("scifact", "semantic-search", "beir-scifact", "all-MiniLM-L6-v2", _minilm),
    Run("sts-dev", "sentence-similarity", "stsbenchmark/sts-dev.csv", "all-MiniLM-L6-v2", _minilm),
    Run(
        "sst2-dev",
        "sentiment",
        "glue-sst2/dev.tsv",
        "tiny BERT, 2 labels",
        _tiny_classifier,
        random_weights=True,
    ),
    # Poem Sentiment's labels are -1/0/1, which no integer-id rule can map to a model's labels.
    Run(
        "poem-dev",
        "sentiment",
        "poem-sentiment/dev.tsv",
        "tiny BERT, 3 labels",
        _tiny_classifier_3way,
        random_weights=True,
        label_map={"-1": "negative", "0": "no_impact", "1": "positive"},
    ),
    Run(
        "squad-v1.1-dev",
        "question-answering",
        "squad-v1.1/dev-v1.1.json",
        "tiny BERT QA",
        _tiny_qa,
        random_weights=True,
        sample=500,
    ),
    Run(
        "wmt17-en-de",
        "translation",
        "wmt17-en-de-systems/newstest2017.src.en:wmt17-en-de-systems/newstest2017.ref.de",
        "tiny Marian",
        _tiny_marian,
        random_weights=True,
        sample=200,
    ),
    Run(
        "flores-en-de",
        "translation",
        "flores200-devtest-en-de/eng_Latn.devtest:flores200-devtest-en-de/deu_Latn.devtest",
        "tiny Marian",
        _tiny_marian,
        random_weights=True,
        sample=200,
    ),
    Run(
        "scitldr-test",
        "summarization",
        "scitldr-a/test.jsonl",
        "tiny T5",
        _tiny_t5,
        random_weights=True,
        sample=100,
    ),
]


def evaluate_run(run: Run, datasets: Path, args: argparse.Namespace) -> dict[str, Any]:
    from nlpsuite.harness import evaluate
    from nlpsuite.results import EvalRequest

    out = RUNS / run.name
    if not args.resume and out.exists():
        shutil.rmtree(out)  # a resumed run predicts nothing, so it would have no throughput
    started = time.perf_counter()
    request = EvalRequest(
        task=run.task,
        # A parallel-text dataset is SOURCE:REFERENCE, each relative to the datasets folder.
        dataset=":".join(str(datasets / part) for part in run.dataset.split(":")),
        out=out,
        model=run.model(RUNS / "models"),
        device=args.device,
        batch_size=args.batch_size,
        sample=run.sample,
        bootstrap=args.bootstrap,
        label_map=run.label_map,
    )
    results = evaluate(request, progress=_progress(run.name))
    print(file=sys.stderr)
    return {
        "name": run.name,
        "task": run.task,
        "model_label": run.model_label,
        "random_weights": run.random_weights,
        "dataset_label": run.dataset + (f" (sample of {run.sample})" if run.sample else ""),
        # Loading the model and, for search, embedding the corpus count here but not in the
        # harness's examples_per_second, which times predictions only.
        "wall_seconds": time.perf_counter() - started,
        "results": results,
        "out": str(out),
    }


def _progress(name: str) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        print(f"\r{name}: {done}/{total} examples", end="", file=sys.stderr, flush=True)

    return show


def markdown(rows: list[dict[str, Any]], skipped: list[str]) -> str:
    lines = [
        "| Task | Model | Dataset | Examples | Metric | Value | 95% CI | Examples/s | Wall s |",
        "|---|---|---|---:|---|---:|---|---:|---:|",
    ]
    for row in rows:
        results = row["results"]
        model = row["model_label"] + (" (*random weights*)" if row["random_weights"] else "")
        rate = results["examples_per_second"]
        first = True
        for metric, score in results["metrics"].items():
            low, high = score["ci95"]
            head = (
                [row["task"], model, row["dataset_label"], str(results["dataset"]["examples"])]
                if first
                else ["", "", "", ""]
            )
            tail = (
                [f"{rate:.1f}" if rate else "-", f"{row['wall_seconds']:.0f}"]
                if first
                else ["", ""]
            )
            cells = [*head, metric, f"{score['value']:.4f}", f"{low:.4f} - {high:.4f}", *tail]
            lines.append("| " + " | ".join(cells) + " |")
            first = False
    notes = ["", RANDOM_NOTE]
    notes += [f"Skipped: {reason}." for reason in skipped]
    return "\n".join(lines + notes) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "datasets",
        nargs="?",
        type=Path,
        default=ROOT.parent / "shared" / "datasets",
        help="folder of shared benchmark files [../shared/datasets]",
    )
    parser.add_argument(
        "--skip-scifact",
        action="store_true",
        help="leave out BEIR SciFact (embedding its corpus takes minutes)",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="keep earlier predictions in benchmarks/out/runs/ and add to them",
    )
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda", "auto"])
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # every model here is local or cached
    sys.path.insert(0, str(ROOT))  # for tests.tiny_models

    datasets: Path = args.datasets.resolve()
    if not datasets.is_dir():
        parser.error(f"datasets folder not found: {datasets}")
    print(RANDOM_NOTE, file=sys.stderr)
    rows: list[dict[str, Any]] = []
    skipped: list[str] = []
    for run in PLAN:
        if run.name == "scifact" and args.skip_scifact:
            skipped.append("BEIR SciFact (--skip-scifact)")
            continue
        if not all((datasets / part).exists() for part in run.dataset.split(":")):
            skipped.append(f"{run.name} ({datasets / run.dataset} not found)")
            continue
        print(f"{run.name}: {run.task} with {run.model_label}", file=sys.stderr)
        try:
            rows.append(evaluate_run(run, datasets, args))
        except NlpsuiteError as error:  # one failed run should not cost the others' figures
            skipped.append(f"{run.name} (failed: {error})")
            print(f"{run.name}: failed: {error}", file=sys.stderr)

    table = markdown(rows, skipped)
    report = {
        "benchmark": "eval_real_data",
        "datasets_folder": str(datasets),
        "machine": machine(device=args.device),
        "note": RANDOM_NOTE,
        "runs": rows,
        "skipped": skipped,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "eval_real_data.json").write_text(json.dumps(report, indent=2) + "\n")
    (OUT / "eval_real_data.md").write_text(table)
    print(table)
    print(f"wrote {OUT / 'eval_real_data.json'} and {OUT / 'eval_real_data.md'}")


if __name__ == "__main__":
    main()
