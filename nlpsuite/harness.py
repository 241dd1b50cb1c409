"""One evaluation harness for every task x model x dataset.

A run writes into its own folder:

- ``predictions.partial.jsonl``: appended and flushed batch by batch, so a run that is killed and
  started again with the same arguments computes only what is missing;
- ``predictions.jsonl``: each example's id, prediction and reference, in dataset order;
- ``results.json``: the task, model, dataset fingerprint, metrics with 95% bootstrap confidence
  intervals, options, seed, versions, device, times and throughput.

The final files are written atomically: a crash never leaves half a ``results.json``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nlpsuite.catalog import resolve_dataset
from nlpsuite.checkpoints import model_size, weights_sha256
from nlpsuite.datasets import Example, fingerprint, select
from nlpsuite.errors import NlpsuiteError
from nlpsuite.lookup import canonical_backend, find_metric, get_task, load_runner
from nlpsuite.metrics import Metric, bootstrap
from nlpsuite.models import load_config
from nlpsuite.records import write_atomic
from nlpsuite.results import (
    DatasetInfo,
    EvalRequest,
    MetricScore,
    ModelInfo,
    RunResult,
    eval_command_line,
    package_versions,
    request_fields,
)
from nlpsuite.tasks import Task

PARTIAL = "predictions.partial.jsonl"


def evaluate(
    request: EvalRequest, progress: Callable[[int, int], None] | None = None
) -> dict[str, Any]:
    """Run ``request`` (resuming any earlier partial run in its folder) and return results.json
    (the JSON document of the :class:`~nlpsuite.results.RunResult` it wrote)."""
    task = get_task(request.task)
    # One spelling per engine and options, so identities, folders and leaderboards agree.
    request = dataclasses.replace(request, backend=canonical_backend(request.backend))
    # Resolved before any prediction, so a bad metric name fails fast.
    chosen = _metrics(task, request.metrics)
    dataset = resolve_dataset(request.dataset, task.name)
    # A dataset may score a metric by its own rules (a SQuAD v2.0 file: the official v2.0 ones).
    own_rules = {metric.name: metric for metric in dataset.metrics}
    chosen = tuple(own_rules.get(metric.name, metric) for metric in chosen)
    examples = select(
        dataset.load(), limit=request.limit, sample=request.sample, seed=request.seed
    )
    if not examples:
        raise NlpsuiteError(f"dataset '{request.dataset}' has no examples")
    # A dataset may need options to be evaluated at all (a retrieval corpus); the user's win.
    options = task.parse_options({**dataset.options, **request.options})
    request.out.mkdir(parents=True, exist_ok=True)
    started = datetime.now(UTC)
    model = request.model or task.model_for(options)
    weights = _weights(model)
    done = _resume(request.out, _identity(request, task, options, weights))
    runner = load_runner(
        task, request.model, device=request.device, batch_size=request.batch_size, options=options,
        backend=request.backend,
    )
    chunks = _chunks(examples, max(request.checkpoint_every, request.batch_size))
    # A chunk only partly cached is predicted again whole: batches then hold the same examples
    # as in an uninterrupted run, so padding, and with it every float, comes out the same.
    missing = [chunk for chunk in chunks if any(example.id not in done for example in chunk)]
    elapsed = _predict(task, runner, missing, request, done, progress, len(examples))
    predicted = sum(len(chunk) for chunk in missing)
    ordered = [done[example.id] for example in examples]
    _write_predictions(request.out, ordered)

    predictions = [row["scored"] for row in ordered]
    references = [example.reference for example in examples]
    if "label" in {f.name for f in dataclasses.fields(task.output_type)}:
        references = map_labels(references, _model_labels(model, request), request.label_map)
    metrics = {}
    for metric in chosen:
        score = bootstrap(metric, predictions, references, request.bootstrap, request.seed)
        metrics[metric.name] = MetricScore(
            score.value, (score.low, score.high), metric.higher_is_better, metric.description,
            metric.signature(references) if metric.signature else None,
        )
    result = RunResult(
        task=task.name,
        model=ModelInfo(model, weights, **model_size(model)),
        dataset=DatasetInfo(name=request.dataset, examples=len(examples),
                            **_fingerprint_fields(fingerprint(dataset))),
        metrics=metrics,
        options=options,
        limit=request.limit, sample=request.sample, seed=request.seed,
        bootstrap_resamples=request.bootstrap,
        batch_size=request.batch_size,
        device=request.device,
        backend=request.backend,
        versions=package_versions(request.backend),
        started=started.isoformat(), finished=datetime.now(UTC).isoformat(),
        examples_per_second=predicted / elapsed if predicted and elapsed > 0 else None,
        resumed_examples=len(examples) - predicted,
        label_mapping=_label_mapping(task, examples, references),
        request=request_fields(request),
        command=eval_command_line(request),
    )
    document = result.to_json()
    write_atomic(request.out / "results.json", json.dumps(document, indent=2) + "\n")
    return document


def _fingerprint_fields(found: Mapping[str, Any]) -> dict[str, Any]:
    return {**found, "files": tuple(found["files"])}


def _metrics(task: Task, names: Sequence[str] | None) -> tuple[Metric, ...]:
    if names is None:
        return task.metrics
    if not names:
        raise NlpsuiteError("no metrics named; leave metrics unset for the task's own")
    return tuple(find_metric(name) for name in names)


def _chunks(examples: list[Example], size: int) -> list[list[Example]]:
    return [examples[begin : begin + size] for begin in range(0, len(examples), size)]


def _predict(
    task: Task, runner: Callable[[Sequence[Any]], list[Any]], chunks: list[list[Example]],
    request: EvalRequest, done: dict[str, dict[str, Any]],
    progress: Callable[[int, int], None] | None, total: int,
) -> float:
    """Predict ``chunks`` one at a time, appending each finished chunk to the partial file."""
    start = time.perf_counter()
    with (request.out / PARTIAL).open("a", encoding="utf-8") as partial:
        for chunk in chunks:
            inputs = [task.make_input(example.input, f"example {example.id}") for example in chunk]
            rows = []
            for example, output in zip(chunk, runner(inputs), strict=True):
                # "scored" is what the metrics read, so a resumed run needs no output records.
                row = {"id": example.id, "prediction": dataclasses.asdict(output),
                       "scored": task.prediction(output), "reference": example.reference}
                done[example.id] = row
                rows.append(json.dumps(row, ensure_ascii=False) + "\n")
            partial.write("".join(rows))
            partial.flush()
            if progress is not None:
                progress(len(done), total)
    return time.perf_counter() - start


def map_labels(
    references: Sequence[str], model_labels: Sequence[str], label_map: Mapping[str, str]
) -> list[str]:
    """Dataset labels as the model names them: by ``label_map``, by name ignoring case, or by
    integer id into the model's labels (GLUE's 0/1)."""
    by_name = {label.lower(): label for label in model_labels}
    mapped = []
    for reference in references:
        key = str(reference)
        if label_map:
            label = label_map.get(key)
        elif key.lower() in by_name:
            label = by_name[key.lower()]
        elif key.lstrip("-").isdigit() and 0 <= int(key) < len(model_labels):
            label = model_labels[int(key)]
        else:
            label = None
        if label is None or label not in model_labels:
            raise NlpsuiteError(
                f"dataset label '{key}' maps to no label of the model "
                f"({', '.join(model_labels)}); pass --label-map, e.g. 0={model_labels[0]}"
            )
        mapped.append(label)
    return mapped


def _model_labels(model: str, request: EvalRequest) -> list[str]:
    config = load_config(model)
    return [config.id2label[i] for i in range(config.num_labels)]


def _identity(
    request: EvalRequest, task: Task, options: Mapping[str, Any], weights: str | None
) -> str:
    """What must match for cached predictions to be reused: a model retrained into the same
    folder has other weights, and its predictions are not the old ones."""
    key = {"task": task.name, "model": request.model, "dataset": request.dataset,
           "options": options, "limit": request.limit,
           "sample": request.sample, "seed": request.seed, "label_map": request.label_map}
    if weights is not None:
        key["weights_sha256"] = weights
    if request.backend != "torch":  # so that runs made before backends existed still resume
        key["backend"] = request.backend
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


def _resume(out: Path, identity: str) -> dict[str, dict[str, Any]]:
    """Predictions cached by an earlier run of the same request; a torn last line is dropped."""
    marker, partial = out / "run.json", out / PARTIAL
    if marker.exists() and json.loads(marker.read_text()).get("identity") != identity:
        raise NlpsuiteError(
            f"{out} holds a run with other arguments or other model weights; "
            "choose another --out or delete it"
        )
    write_atomic(marker, json.dumps({"identity": identity}) + "\n")
    done: dict[str, dict[str, Any]] = {}
    if partial.exists():
        text = partial.read_text(encoding="utf-8")
        complete = text[: text.rfind("\n") + 1]  # kill -9 can cut the last line short
        for line in complete.splitlines():
            row = json.loads(line)
            done[row["id"]] = row
        if len(complete) != len(text):
            partial.write_text(complete, encoding="utf-8")
    return done


def _write_predictions(out: Path, rows: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    write_atomic(out / "predictions.jsonl", text)


def _weights(model: str) -> str | None:
    try:
        return weights_sha256(model)
    except NlpsuiteError:
        return None


def _label_mapping(
    task: Task, examples: Sequence[Example], references: Sequence[Any]
) -> dict[str, str] | None:
    """For classification: each dataset label and the model label the metrics compared with."""
    if "label" not in {f.name for f in dataclasses.fields(task.output_type)}:
        return None
    pairs = zip((str(example.reference) for example in examples), references, strict=True)
    return dict(sorted(pairs))
