"""Benchmark suites: tasks x models x datasets in a TOML file, each run through the harness.

A suite file (``benchmarks/suite-offline.toml`` is one)::

    [suite]
    name = "offline"
    description = "What this suite measures."
    prepare = "python benchmarks/make_tiny_models.py"   # shown when a local model is missing

    [defaults]                  # any run key below, for every run that does not set it
    batch_size = 16

    [models]                    # a short name for each model the runs use
    minilm = "sentence-transformers/all-MiniLM-L6-v2"              # a hub id
    tiny = { path = "out/models/tiny-bert-encoder" }               # a folder, relative to this file

    [[runs]]                    # every model on every dataset of the block
    task = "semantic-search"
    models = ["minilm", "tiny"]
    datasets = ["search-mini"]  # registered names, or files relative to this file
    options = { top_k = 10 }    # task options, as --option gives them

Run keys: ``task``, ``models``, ``datasets`` (or one ``dataset``), ``options``, ``limit``,
``sample``, ``seed``, ``bootstrap``, ``batch_size``, ``device``, ``label_map``, ``metrics``,
``explain`` (an explanation method, as ``nlpsuite eval --explain``).

Each run gets a folder under the output directory named from its task, dataset and model and a
short hash of everything that decides its predictions and scores, so the same suite always
writes to the same folders. A run whose ``results.json`` exists and records the same request is
complete and is skipped; any other is run by :func:`nlpsuite.harness.evaluate`, which resumes
from the predictions an interrupted run left behind.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import tomllib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlpsuite.checkpoints import weights_sha256
from nlpsuite.errors import NlpsuiteError
from nlpsuite.executors import ExecutorConfig, concurrent_runs, ray_session
from nlpsuite.harness import Progress, evaluate
from nlpsuite.lookup import get_task
from nlpsuite.records import decode_utf8
from nlpsuite.results import EvalRequest, PromptInfo, RunResult, request_fields

logger = logging.getLogger("nlpsuite")

RUN_KEYS = {
    "task": str,
    "models": list,
    "datasets": list,
    "dataset": str,
    "options": dict,
    "limit": int,
    "sample": int,
    "seed": int,
    "bootstrap": int,
    "batch_size": int,
    "device": str,
    "label_map": dict,
    "metrics": list,
    "explain": str,
}
DEFAULT_KEYS = set(RUN_KEYS) - {"task", "models", "datasets", "dataset"}


@dataclass(frozen=True)
class Model:
    """A suite's model: its short name and what the harness loads (a hub id or a folder)."""

    name: str
    source: str
    local: bool


@dataclass(frozen=True)
class BenchRun:
    """One task x model x dataset of a suite, with its options."""

    task: str
    dataset: str
    model: Model
    options: Mapping[str, Any] = field(default_factory=dict)
    limit: int | None = None
    sample: int | None = None
    seed: int = 0
    bootstrap: int = 1000
    batch_size: int = 32
    device: str = "cpu"
    label_map: Mapping[str, str] = field(default_factory=dict)
    metrics: tuple[str, ...] | None = None
    # The dataset as the suite spells it (a path may have been made absolute): names folders.
    dataset_key: str = ""
    explain: str | None = None

    @property
    def folder(self) -> str:
        """The run's folder name: readable, and unique to what decides its results."""
        identity = {
            "task": self.task,
            "dataset": self.dataset_key or self.dataset,
            "model": self.model.name if self.model.local else self.model.source,
            "options": dict(self.options),
            "limit": self.limit,
            "sample": self.sample,
            "seed": self.seed,
            "label_map": dict(self.label_map),
            "metrics": list(self.metrics) if self.metrics is not None else None,
        }
        if self.explain is not None:  # so that folders named before it existed stay the same
            identity["explain"] = self.explain
        digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:8]
        parts = (self.task, Path(self.dataset_key or self.dataset).name, self.model.name)
        return "--".join(_slug(part) for part in parts) + f"--{digest}"

    def request(self, out: Path) -> EvalRequest:
        """The harness request that makes this run in ``out``."""
        return EvalRequest(
            task=self.task,
            dataset=self.dataset,
            out=out / self.folder,
            model=self.model.source,
            device=self.device,
            batch_size=self.batch_size,
            options=dict(self.options),
            limit=self.limit,
            sample=self.sample,
            seed=self.seed,
            bootstrap=self.bootstrap,
            label_map=dict(self.label_map),
            metrics=self.metrics,
            model_name=self.model.name,
            explain=self.explain,
        )

    def describe(self) -> str:
        explained = f" · explained by {self.explain}" if self.explain else ""
        return f"{self.task} · {self.dataset_key or self.dataset} · {self.model.name}{explained}"


@dataclass(frozen=True)
class Suite:
    path: Path
    name: str
    description: str
    prepare: str | None
    runs: tuple[BenchRun, ...]

    def missing_models(self) -> list[Model]:
        """Local models whose folder does not exist (yet)."""
        seen = {run.model for run in self.runs}
        return sorted(
            (m for m in seen if m.local and not Path(m.source).is_dir()), key=lambda m: m.name
        )


@dataclass(frozen=True)
class Outcome:
    run: BenchRun
    status: str  # "done", "skipped" or "failed"
    seconds: float = 0.0
    error: str | None = None
    results: Mapping[str, Any] | None = None


def load_suite(path: str | Path) -> Suite:
    """Read and check a suite file; every problem is one line naming the file."""
    file = Path(path)
    if not file.is_file():
        raise NlpsuiteError(f"suite file not found: {file}")
    try:
        data = tomllib.loads(decode_utf8(file.read_bytes(), str(file)))
    except tomllib.TOMLDecodeError as error:
        raise NlpsuiteError(f"{file}: not valid TOML ({error})") from None
    unknown = sorted(set(data) - {"suite", "defaults", "models", "runs"})
    if unknown:
        raise NlpsuiteError(
            f"{file}: unknown table '{unknown[0]}' (known: suite, defaults, models, runs)"
        )
    header = _table(data.get("suite", {}), f"{file}: [suite]")
    defaults = _table(data.get("defaults", {}), f"{file}: [defaults]")
    for key in defaults:
        if key not in DEFAULT_KEYS:
            known = ", ".join(sorted(DEFAULT_KEYS))
            raise NlpsuiteError(f"{file}: [defaults]: unknown key '{key}' (known: {known})")
    models = _models(_table(data.get("models", {}), f"{file}: [models]"), file)
    blocks = data.get("runs", [])
    if not isinstance(blocks, list) or not blocks:
        raise NlpsuiteError(f"{file}: no [[runs]] blocks")
    runs: list[BenchRun] = []
    for number, block in enumerate(blocks, 1):
        runs += _block(
            _table(block, f"{file}: [[runs]] #{number}"),
            defaults,
            models,
            f"{file}: [[runs]] #{number}",
            file,
        )
    folders: dict[str, BenchRun] = {}
    for run in runs:
        if run.folder in folders:
            raise NlpsuiteError(f"{file}: {run.describe()} is listed twice")
        folders[run.folder] = run
    prepare = header.get("prepare")
    return Suite(
        path=file,
        name=str(header.get("name", file.stem)),
        description=str(header.get("description", "")),
        prepare=str(prepare) if prepare else None,
        runs=tuple(runs),
    )


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise NlpsuiteError(f"{where}: expected a table, got {type(value).__name__}")
    return value


def _models(table: Mapping[str, Any], file: Path) -> dict[str, Model]:
    models = {}
    for name, value in table.items():
        where = f"{file}: [models] {name}"
        if isinstance(value, str):
            models[name] = Model(name, value, local=False)
            continue
        spec = _table(value, where)
        if set(spec) == {"id"} and isinstance(spec["id"], str):
            models[name] = Model(name, spec["id"], local=False)
        elif set(spec) == {"path"} and isinstance(spec["path"], str):
            folder = (file.parent / spec["path"]).resolve()
            models[name] = Model(name, str(folder), local=True)
        else:
            raise NlpsuiteError(
                f'{where}: give a hub id string, {{ id = "..." }} or {{ path = "..." }}'
            )
    return models


def _block(
    block: Mapping[str, Any],
    defaults: Mapping[str, Any],
    models: Mapping[str, Model],
    where: str,
    file: Path,
) -> list[BenchRun]:
    for key in block:
        if key not in RUN_KEYS:
            raise NlpsuiteError(
                f"{where}: unknown key '{key}' (known: {', '.join(sorted(RUN_KEYS))})"
            )
    merged = {**defaults, **block}
    for key, value in merged.items():
        kind = RUN_KEYS[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise NlpsuiteError(
                f"{where}: '{key}' should be {'a table' if kind is dict else kind.__name__}, "
                f"got {value!r}"
            )
    if "task" not in merged:
        raise NlpsuiteError(f"{where}: missing key 'task'")
    if "dataset" in merged and "datasets" in merged:
        raise NlpsuiteError(f"{where}: give 'dataset' or 'datasets', not both")
    datasets = merged.get("datasets") or ([merged["dataset"]] if "dataset" in merged else [])
    names = merged.get("models", [])
    if not datasets or not names:
        raise NlpsuiteError(f"{where}: needs at least one of 'models' and of 'datasets'")
    for name in names:
        if name not in models:
            known = ", ".join(models) or "none"
            raise NlpsuiteError(f"{where}: model '{name}' is not in [models] (known: {known})")
    runs = []
    for dataset in datasets:
        if not isinstance(dataset, str):
            raise NlpsuiteError(f"{where}: datasets are names or paths, got {dataset!r}")
        # A path relative to the suite file, unless it is a registered name.
        beside = file.parent / dataset
        resolved = str(beside.resolve()) if beside.exists() else dataset
        metrics = merged.get("metrics")
        for name in names:
            runs.append(
                BenchRun(
                    task=merged["task"],
                    dataset=resolved,
                    model=models[name],
                    options=dict(merged.get("options", {})),
                    limit=merged.get("limit"),
                    sample=merged.get("sample"),
                    seed=merged.get("seed", 0),
                    bootstrap=merged.get("bootstrap", 1000),
                    batch_size=merged.get("batch_size", 32),
                    device=merged.get("device", "cpu"),
                    label_map={str(k): str(v) for k, v in merged.get("label_map", {}).items()},
                    metrics=tuple(str(m) for m in metrics) if metrics is not None else None,
                    dataset_key=dataset,
                    explain=merged.get("explain"),
                )
            )
    return runs


def is_complete(run: BenchRun, out: Path) -> bool:
    """Whether ``out`` holds this run's results, made from the same request, weights and prompt
    (a model retrained in its folder, or a template file edited since, must be evaluated
    again)."""
    results_file = out / run.folder / "results.json"
    try:
        results = RunResult.read(results_file)
    except NlpsuiteError:
        return False
    wanted = request_fields(run.request(out))
    if results.request is None or not _same_request(results.request, wanted):
        return False
    if results.prompt is not None and _template_edited(results.prompt):
        return False
    weights = results.model.weights_sha256
    return weights is None or weights == weights_sha256(results.model.id)


def _template_edited(prompt: PromptInfo) -> bool:
    """Whether the user's template file a prompted run read has changed since (a shipped
    template, named rather than a path, changes only with nlpsuite itself)."""
    path = Path(prompt.template)
    try:
        return path.is_file() and decode_utf8(path.read_bytes(), str(path)) != prompt.text
    except (OSError, NlpsuiteError):  # unreadable now: not the text the run read
        return True


def _same_request(recorded: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    # The output folder may be spelt differently (relative or absolute); the folder is the same.
    # The model's suite name is a label (and part of the folder's name): runs recorded before
    # it was stay complete.
    ignore = {"out", "model_name"}
    # A field added since the run was recorded had its default then (results.py's rule).
    recorded = {**request_fields(EvalRequest(task="", dataset="", out=Path())), **recorded}
    return {k: v for k, v in recorded.items() if k not in ignore} == {
        k: v for k, v in wanted.items() if k not in ignore
    }


def run_suite(
    suite: Suite,
    out: Path,
    *,
    force: bool = False,
    report: Callable[[int, int, Outcome], None] | None = None,
    progress: Callable[[], Callable[[Progress], None] | None] | None = None,
    executor: ExecutorConfig | None = None,
) -> list[Outcome]:
    """Run every incomplete run of ``suite`` into ``out``; a run that fails is reported and the
    rest go on. ``force`` runs complete ones again, from scratch. ``progress`` makes each run's
    progress callback (see :func:`nlpsuite.harness.evaluate`).

    On Ray (``executor``), runs go at once, each with its own group of ``executor.workers``
    actors, as many as the cluster's CPUs (and GPUs) hold; a run's chunks still come back to
    this process, which writes every run's folder as a local bench does, so the results and
    the leaderboard are the same. ``report`` then comes in the order runs finish, and there is
    no per-run progress (the runs' bars would mix)."""
    missing = suite.missing_models()
    if missing:
        hint = f"; build them with: {suite.prepare}" if suite.prepare else ""
        names = ", ".join(f"{m.name} ({m.source})" for m in missing)
        raise NlpsuiteError(f"{suite.path}: model folders not found: {names}{hint}")
    for run in suite.runs:  # every task known before any run starts (and the registry loaded)
        get_task(run.task)
    if executor is None or executor.kind == "local":
        return _run_in_turn(suite, out, force, report, progress)
    with ray_session(executor):
        return _run_at_once(suite, out, force, report, executor)


def _run_in_turn(
    suite: Suite, out: Path, force: bool, report: Callable[[int, int, Outcome], None] | None,
    progress: Callable[[], Callable[[Progress], None] | None] | None,
) -> list[Outcome]:
    outcomes = []
    for number, run in enumerate(suite.runs, 1):
        outcome = _run_one(run, out, force, progress() if progress is not None else None, None)
        outcomes.append(outcome)
        if report is not None:
            report(number, len(suite.runs), outcome)
    return outcomes


def _run_at_once(
    suite: Suite, out: Path, force: bool, report: Callable[[int, int, Outcome], None] | None,
    executor: ExecutorConfig,
) -> list[Outcome]:
    # Threads only wait here: the actors predict, and this process writes what comes back.
    with ThreadPoolExecutor(concurrent_runs(executor)) as pool:
        pending = {pool.submit(_run_one, run, out, force, None, executor): index
                   for index, run in enumerate(suite.runs)}
        outcomes: dict[int, Outcome] = {}
        for number, future in enumerate(as_completed(pending), 1):
            outcomes[pending[future]] = outcome = future.result()
            if report is not None:
                report(number, len(suite.runs), outcome)
    return [outcomes[index] for index in range(len(suite.runs))]


def _run_one(
    run: BenchRun, out: Path, force: bool, progress: Callable[[Progress], None] | None,
    executor: ExecutorConfig | None,
) -> Outcome:
    if not force and is_complete(run, out):
        return Outcome(run, "skipped")
    start = time.perf_counter()
    try:
        # The harness discards the folder's files under its lock on the folder.
        results = evaluate(run.request(out), force=force, progress=progress, executor=executor)
    except NlpsuiteError as error:
        return Outcome(run, "failed", time.perf_counter() - start, str(error))
    return Outcome(run, "done", time.perf_counter() - start, results=results)


def plan(suite: Suite, out: Path) -> list[tuple[BenchRun, bool]]:
    """Each run of ``suite`` and whether ``out`` already holds it complete."""
    return [(run, is_complete(run, out)) for run in suite.runs]


def summary(outcomes: Sequence[Outcome]) -> str:
    counts = {
        status: sum(o.status == status for o in outcomes)
        for status in ("done", "skipped", "failed")
    }
    return (
        f"{len(outcomes)} runs: {counts['done']} done, {counts['skipped']} already complete, "
        f"{counts['failed']} failed"
    )


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in text.strip("/."))[-60:]
