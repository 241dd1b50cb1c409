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

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nlpsuite.catalog import resolve_dataset
from nlpsuite.checkpoints import model_size, weights_sha256
from nlpsuite.datasets import Dataset, Example, fingerprint, required_field, select
from nlpsuite.errors import NlpsuiteError
from nlpsuite.executors import (
    ChunkExecutor,
    ExecutorConfig,
    Rows,
    RunnerSpec,
    build_runner,
    open_executor,
)
from nlpsuite.explaining import check_explainable, explain_examples, load_explainer
from nlpsuite.lookup import canonical_backend, find_metric, get_task
from nlpsuite.metrics import Metric, bootstrap, mean_metric
from nlpsuite.models import load_config
from nlpsuite.prompting import (
    ACC_NORM,
    PromptedRunner,
    is_prompted,
    normalised_choices,
    prompted_runner,
)
from nlpsuite.records import check_writable, write_atomic
from nlpsuite.results import (
    DatasetInfo,
    EvalRequest,
    MetricScore,
    ModelInfo,
    PromptInfo,
    RunResult,
    eval_command_line,
    package_versions,
    request_fields,
)
from nlpsuite.scales import CORRELATION
from nlpsuite.tasks import RunConfig, Task

PARTIAL = "predictions.partial.jsonl"
# What the harness writes into a run folder; --force removes exactly these.
RUN_FILES = ("results.json", "predictions.jsonl", PARTIAL, "run.json")
LOCK = "eval.lock"
# The faithfulness of an eval's explanations (--explain): ERASER's measures, averaged over the
# top 1, 5, 10, 20 and 50% of words (nlpsuite.explanations).
FAITHFULNESS = (
    ("comprehensiveness", True, "mean drop in the label's probability without the top words"),
    ("sufficiency", False, "mean drop in the label's probability with only the top words"),
)
logger = logging.getLogger("nlpsuite")


@dataclasses.dataclass(frozen=True)
class Progress:
    """Where a run's predictions stand, for a progress display."""

    done: int  # examples predicted, those resumed from the cache included
    total: int
    chunks_done: int  # of the chunks this run predicts (those not cached)
    chunks_total: int
    workers: int | None = None  # Ray workers alive; None: predicting in this process


def evaluate(
    request: EvalRequest, progress: Callable[[Progress], None] | None = None, *,
    force: bool = False, executor: ExecutorConfig | None = None, retry_failed: bool = False,
) -> dict[str, Any]:
    """Run ``request`` (resuming any earlier partial run in its folder, unless ``force`` starts
    over) and return results.json (the JSON document of the
    :class:`~nlpsuite.results.RunResult` it wrote). ``executor`` says where chunks are predicted
    (:mod:`nlpsuite.executors`; default: in this process); it changes no prediction.

    An example whose prediction raises is cached as an error row and the rest completes; the
    run then raises :class:`FailedExamples` without writing the final files. The same command
    reports those rows again; ``retry_failed`` predicts their chunks again first.

    ``progress`` is called with a :class:`Progress` once when the timed predictions start and
    after each chunk."""
    if request.bootstrap < 0:
        raise NlpsuiteError(f"--bootstrap must be 0 or more, got {request.bootstrap}")
    check_writable(request.out, "results folder", folder=True)
    task = get_task(request.task)
    # One spelling per engine and options, so identities, folders and leaderboards agree.
    request = dataclasses.replace(request, backend=canonical_backend(request.backend))
    # Resolved before any prediction, so a bad metric name fails fast.
    chosen = _metrics(task, request.metrics)
    if request.explain is not None:  # as fast: a task without the hook, a method unknown
        check_explainable(task, request.explain, request.backend)
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
    # All that can fail on the user's arguments (model, labels, options) fails before the folder
    # is made or claimed, so the corrected command finds it as it was.
    started = datetime.now(UTC)
    model = request.model or task.model_for(options)
    spec = RunnerSpec(request.task, request.model, request.device, request.batch_size,
                      request.backend, request.allow_random_head, options)
    # On Ray, the workers load the model and the driver need not (a head node without a GPU
    # can drive --device cuda); a prompted run's template and labels come from its runner.
    runner = build_runner(spec) if _predicts_here(executor, spec, model) else None
    # A causal LM runs the task through a prompt template (nlpsuite.prompting).
    prompted = prompted_runner(runner)
    labels = _model_labels(model, prompted) if _classifies(task) else None
    references = [example.reference for example in examples]
    if labels is not None:
        references = map_labels(references, labels, request.label_map)
    loaded = _Loaded(model, _weights(model), labels, references, runner, spec, started,
                     prompted.prompt if prompted is not None else None, executor)
    made = [folder for folder in (request.out, *request.out.parents) if not folder.exists()]
    with lock_run_folder(request.out):
        try:
            return _evaluate_in_folder(
                request, task, chosen, dataset, examples, options, loaded, progress, force,
                retry_failed,
            )
        except BaseException:
            _drop_unused_claim(request.out, made)
            raise


@dataclasses.dataclass(frozen=True)
class _Loaded:
    """What a run loads before it claims its folder."""

    model: str
    weights: str | None
    labels: list[str] | None
    references: list[Any]  # as the model names them, for a classifier
    runner: Callable[[Sequence[Any]], list[Any]] | None  # None: the executor's workers load it
    spec: RunnerSpec  # what loaded ``runner``: how an executor's workers load theirs
    started: datetime
    prompt: PromptInfo | None = None
    executor: ExecutorConfig | None = None  # None: predict in this process


def _evaluate_in_folder(
    request: EvalRequest, task: Task, chosen: tuple[Metric, ...], dataset: Dataset,
    examples: list[Example], options: dict[str, Any], loaded: _Loaded,
    progress: Callable[[Progress], None] | None, force: bool, retry_failed: bool = False,
) -> dict[str, Any]:
    if force:
        for name in (*RUN_FILES, *_explanation_files(request)):
            (request.out / name).unlink(missing_ok=True)
    identity = _identity(request, task, options, loaded.weights, loaded.prompt)
    done = _resume(request.out, identity, examples, loaded.labels)
    if retry_failed:
        _forget_failed(request.out, done)
    chunks = _chunks(examples, max(request.checkpoint_every, request.batch_size))
    # A chunk only partly cached is predicted again whole: batches then hold the same examples
    # as in an uninterrupted run, so padding, and with it every float, comes out the same.
    missing = [chunk for chunk in chunks if any(example.id not in done for example in chunk)]
    _forget_cut_chunks(request.out, done, missing)
    warmed, elapsed = 0, 0.0
    if missing:  # a finished run starts no executor (nor a Ray cluster)
        with open_executor(loaded.executor, loaded.spec, task, loaded.runner) as executor:
            warmed = _warm_up(executor, missing, request.batch_size)
            elapsed = _predict(executor, missing, request, done, progress, len(examples))
    predicted = sum(len(chunk) for chunk in missing)
    ordered = [done[example.id] for example in examples]
    _raise_if_failed(ordered)
    _write_predictions(request.out, ordered)

    predictions = [row["scored"] for row in ordered]
    references = loaded.references
    metrics = {metric.name: _score(metric, predictions, references, request)
               for metric in chosen}
    # Choices by length-normalised log-likelihood (prompted runs) are scored as lm-eval does.
    normalised = normalised_choices([row["prediction"] for row in ordered])
    if normalised is not None and request.metrics is None:
        metrics[ACC_NORM.name] = _score(ACC_NORM, normalised, references, request)
    if request.explain is not None:
        metrics.update(_faithfulness(request, examples, options))
    result = RunResult(
        task=task.name,
        model=ModelInfo(loaded.model, loaded.weights, **model_size(loaded.model)),
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
        started=loaded.started.isoformat(), finished=datetime.now(UTC).isoformat(),
        examples_per_second=predicted / elapsed if predicted and elapsed > 0 else None,
        resumed_examples=len(examples) - predicted,
        warmup_examples=warmed, timed_examples=predicted,
        label_mapping=_label_mapping(task, examples, references),
        prompt=loaded.prompt,
        request=request_fields(request),
        command=eval_command_line(request),
    )
    document = result.to_json()
    write_atomic(request.out / "results.json", json.dumps(document, indent=2) + "\n")
    return document


def _explanation_files(request: EvalRequest) -> tuple[str, ...]:
    if request.explain is None:
        return ()
    return (f"explanations.{request.explain}.partial.jsonl",
            f"explanations.{request.explain}.jsonl")


def _faithfulness(request: EvalRequest, examples: Sequence[Example],
                  options: Mapping[str, Any]) -> dict[str, MetricScore]:
    """Every example explained toward its predicted label (in this process, on any executor),
    kept beside the predictions, and the means of comprehensiveness (higher: the top words
    matter) and sufficiency (lower: they suffice) with their bootstrap intervals."""
    method = request.explain or "ig"
    explainer = load_explainer(request.task, request.model, method=method,
                               device=request.device, backend=request.backend, options=options,
                               seed=request.seed, batch_size=request.batch_size)
    partial, final = _explanation_files(request)
    rows = explain_examples(explainer, examples, request.out / partial)
    write_atomic(request.out / final, _jsonl(rows))
    scores = {}
    for measure, higher, meaning in FAITHFULNESS:
        metric = mean_metric(f"{measure}[{method}]", higher, f"{method} explanations: {meaning}",
                             scale=CORRELATION)
        scores[metric.name] = _score(metric, [row[measure] for row in rows],
                                     [None] * len(rows), request)
    return scores


class FailedExamples(NlpsuiteError):
    """Examples whose prediction raised: the run's own failure (exit 1), not a wrong argument.
    Metrics over the others would pass for the dataset's, so no results.json is written."""

    exit_code = 1


def _raise_if_failed(rows: Sequence[dict[str, Any]]) -> None:
    failed = [row for row in rows if "error" in row]
    if failed:
        first = failed[0]
        raise FailedExamples(
            f"{len(failed)} of {len(rows)} examples failed (first: id {first['id']}: "
            f"{first['error']}); rerun with --retry-failed to predict only those"
        )


def _forget_failed(out: Path, done: dict[str, dict[str, Any]]) -> None:
    """Error rows leave the cache, so their chunks count as missing and are predicted again
    (whole and batched, as in a run where nothing failed)."""
    failed = [example_id for example_id, row in done.items() if "error" in row]
    for example_id in failed:
        del done[example_id]
    if failed:
        write_atomic(out / PARTIAL, _jsonl(done.values()))


def _score(metric: Metric, predictions: Sequence[Any], references: Sequence[Any],
           request: EvalRequest) -> MetricScore:
    try:
        score = bootstrap(metric, predictions, references, request.bootstrap, request.seed)
    except NlpsuiteError as undefined:  # e.g. a correlation of constant scores
        logger.warning("metric '%s' recorded as null: %s", metric.name, undefined)
        return MetricScore(None, (None, None), metric.higher_is_better, metric.description,
                           scale=metric.scale)
    return MetricScore(
        score.value, (score.low, score.high), metric.higher_is_better, metric.description,
        metric.signature(references) if metric.signature else None, metric.scale,
    )


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


def _warm_up(executor: ChunkExecutor, chunks: list[list[Example]], batch_size: int) -> int:
    """Run the first batch once, untimed, its outputs discarded, and return its size: the first
    call in a process pays for one-off work (the first forward pass at a shape, weights paged
    in), which would make whichever model a benchmark runs first look slower. Runners are
    deterministic, so the predictions recorded after it are the same."""
    if not chunks:
        return 0
    batch = chunks[0][:batch_size]
    executor.warm_up(batch)
    return len(batch)


def _predict(
    executor: ChunkExecutor, chunks: list[list[Example]], request: EvalRequest,
    done: dict[str, dict[str, Any]], progress: Callable[[Progress], None] | None, total: int,
) -> float:
    """Predict ``chunks``, appending each finished chunk to the partial file as it comes back
    (in any order: the final files follow the dataset's)."""
    start = time.perf_counter()
    chunks_done = 0

    def show() -> None:
        if progress is not None:
            progress(Progress(len(done), total, chunks_done, len(chunks), executor.workers()))

    if chunks:
        show()
    with (request.out / PARTIAL).open("a", encoding="utf-8") as partial:

        def finished(rows: Rows) -> None:
            nonlocal chunks_done
            for row in rows:
                done[row["id"]] = row
            partial.write(_jsonl(rows))
            partial.flush()
            chunks_done += 1
            show()

        executor.run(chunks, finished)
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


def _model_labels(model: str, prompted: PromptedRunner | None) -> list[str]:
    """The labels a classifier predicts: its template's on a causal LM, else its config's."""
    if prompted is not None and prompted.labels:
        return list(prompted.labels)
    config = load_config(model)
    return [config.id2label[i] for i in range(config.num_labels)]


def _identity(
    request: EvalRequest, task: Task, options: Mapping[str, Any], weights: str | None,
    prompt: PromptInfo | None = None,
) -> str:
    """What must match for cached predictions to be reused: a model retrained into the same
    folder has other weights, and its predictions are not the old ones."""
    key = {"task": task.name, "model": request.model, "dataset": request.dataset,
           "options": options, "limit": request.limit,
           "sample": request.sample, "seed": request.seed, "label_map": request.label_map}
    if weights is not None:
        key["weights_sha256"] = weights
    if prompt is not None:  # a template file edited since is another prompt
        key["prompt_sha256"] = hashlib.sha256(prompt.text.encode()).hexdigest()
    if request.backend != "torch":  # so that runs made before backends existed still resume
        key["backend"] = request.backend
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()


@contextlib.contextmanager
def lock_run_folder(out: Path) -> Iterator[None]:
    """Hold run folder ``out`` for this process: two runs appending to one cache would each
    predict everything. The lock is the kernel's (flock), so a killed run leaves none behind."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / LOCK).open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise NlpsuiteError(
                f"{out} is in use by another nlpsuite eval; wait for it or choose another --out"
            ) from None
        yield


def _resume(
    out: Path, identity: str, examples: Sequence[Example], labels: Sequence[str] | None
) -> dict[str, dict[str, Any]]:
    """Predictions cached by an earlier run of the same request; a torn last line is dropped,
    any other damage is an error (it would change the scores silently)."""
    marker, partial = out / "run.json", out / PARTIAL
    claimed = json.loads(marker.read_text()).get("identity") if marker.exists() else identity
    if claimed != identity and _holds_predictions(out):
        raise NlpsuiteError(
            f"{out} holds a run with other arguments or other model weights; "
            "choose another --out or delete it"
        )
    write_atomic(marker, json.dumps({"identity": identity}) + "\n")
    done: dict[str, dict[str, Any]] = {}
    if partial.exists():
        text = partial.read_text(encoding="utf-8")
        complete = text[: text.rfind("\n") + 1]  # kill -9 can cut the last line short
        # Compared as they come back from JSON, where a tuple is a list.
        references = {e.id: json.loads(json.dumps(e.reference)) for e in examples}
        lines: dict[str, int] = {}
        # Split on "\n" only: a prediction may hold U+2028, which splitlines() splits on.
        for number, line in enumerate(complete.split("\n")[:-1], 1):
            where = f"{partial}:{number}"
            try:
                row = _cached_row(line, where, references, lines, labels)
            except NlpsuiteError as damage:
                raise NlpsuiteError(f"{damage}; run again with --force to start over") from None
            lines[row["id"]] = number
            done[row["id"]] = row
        if len(complete) != len(text):
            write_atomic(partial, complete)
    return done


def _holds_predictions(out: Path) -> bool:
    """Whether ``out`` caches a run's predictions (its results, or a whole line of them): only
    then does its run.json keep the folder for that run's request."""
    partial = out / PARTIAL
    return (out / "results.json").exists() or (partial.exists() and b"\n" in partial.read_bytes())


def _drop_unused_claim(out: Path, made: Sequence[Path]) -> None:
    """After a failed run: a claim with no prediction cached under it goes, and so do the
    folders this run made, so a failure leaves no stub behind."""
    with contextlib.suppress(OSError):  # the run's own error is the one to report
        if _holds_predictions(out):
            return
        for name in ("run.json", PARTIAL):
            (out / name).unlink(missing_ok=True)
        if made:
            (out / LOCK).unlink(missing_ok=True)
        for folder in made:  # innermost first; one holding other files now stays
            folder.rmdir()


def _cached_row(
    line: str, where: str, references: Mapping[str, Any], lines: Mapping[str, int],
    labels: Sequence[str] | None,
) -> dict[str, Any]:
    """One line of the partial file as :func:`_predict` wrote it, or an error saying how not."""
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        row = None
    if not isinstance(row, dict):
        raise NlpsuiteError(f"{where}: not a JSON object")
    example_id = required_field(row, "id", str, where)
    failed = "error" in row  # an example whose prediction raised (executors.predict_chunk)
    required_field(row, "error" if failed else "prediction", str if failed else dict, where)
    for name in () if failed else ("scored", "reference"):
        if name not in row:
            raise NlpsuiteError(f"{where}: missing field '{name}'")
    if example_id not in references:
        raise NlpsuiteError(f"{where}: id '{example_id}' is no example of the dataset")
    if example_id in lines:
        raise NlpsuiteError(
            f"{where}: id '{example_id}' appears twice (first on line {lines[example_id]})"
        )
    if failed:
        return row
    if row["reference"] != references[example_id]:
        raise NlpsuiteError(
            f"{where}: the reference of example '{example_id}' is not the dataset's"
        )
    if labels is not None and row["scored"] not in labels:
        raise NlpsuiteError(
            f"{where}: label {row['scored']!r} is not one of the model's ({', '.join(labels)})"
        )
    return row


def _forget_cut_chunks(
    out: Path, done: dict[str, dict[str, Any]], missing: list[list[Example]]
) -> None:
    """Rows of a chunk cut short leave the cache before the chunk is predicted again, so the
    cache holds each example once."""
    cut = [example.id for chunk in missing for example in chunk if example.id in done]
    for example_id in cut:
        del done[example_id]
    if cut:
        write_atomic(out / PARTIAL, _jsonl(done.values()))


def _write_predictions(out: Path, rows: list[dict[str, Any]]) -> None:
    write_atomic(out / "predictions.jsonl", _jsonl(rows))


def _jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def _weights(model: str) -> str | None:
    try:
        return weights_sha256(model)
    except NlpsuiteError:
        return None


def _predicts_here(executor: ExecutorConfig | None, spec: RunnerSpec, model: str) -> bool:
    """Whether this process loads the runner: it predicts, or a prompted run needs its
    template."""
    if executor is None or executor.kind == "local":
        return True
    try:
        return is_prompted(RunConfig(model, options=spec.options))
    except NlpsuiteError:  # no config to read: no causal LM; the workers load it their own way
        return False


def _classifies(task: Task) -> bool:
    """Whether the task's outputs are labels of the model (mapped onto the dataset's)."""
    return "label" in {f.name for f in dataclasses.fields(task.output_type)}


def _label_mapping(
    task: Task, examples: Sequence[Example], references: Sequence[Any]
) -> dict[str, str] | None:
    """For classification: each dataset label and the model label the metrics compared with."""
    if not _classifies(task):
        return None
    pairs = zip((str(example.reference) for example in examples), references, strict=True)
    return dict(sorted(pairs))
