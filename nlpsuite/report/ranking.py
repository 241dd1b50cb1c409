"""Reading runs and ranking them: the :class:`Leaderboard` that every format renders.

:func:`build` reads every ``results.json`` under a folder (at any depth), groups the runs by task
and dataset, and ranks each group's models by the task's primary metric: the first metric the
task declares, in the direction its :class:`~nlpsuite.metrics.Metric` gives (the direction
recorded in ``results.json`` when the task is not installed).

Each ranked run is compared with the first with the paired bootstrap test
(:func:`nlpsuite.metrics.paired_bootstrap`) on the primary metric, over the example ids both runs'
``predictions.jsonl`` share; p < 0.05 is marked significant. Runs of a group that differ from the
ranked runs in dataset sha256, ``limit``, ``sample`` (and its seed) or task options are not
ranked with them: they are listed in a "not comparable" note with the reason. How a causal LM was
prompted (template, shots) is not such an option: it names the row, like the model does.

A ``results.json`` that cannot be read is skipped with a one-line warning; the rest are reported.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlpsuite import plugins
from nlpsuite.errors import NlpsuiteError
from nlpsuite.metrics import Metric, paired_bootstrap
from nlpsuite.prompting import PROMPT_OPTIONS
from nlpsuite.results import MetricScore, PromptInfo, RunResult, eval_command_line
from nlpsuite.scales import Scale

PROMPT_OPTION_NAMES = frozenset(option.name for option in PROMPT_OPTIONS)

logger = logging.getLogger("nlpsuite")

ALPHA = 0.05

# A run's predictions by example id, or why they could not be read: {id: (scored, reference)}.
Predictions = dict[str, tuple[Any, Any]]
PredictionCache = dict[str, Predictions | str]


@dataclass(frozen=True)
class Run:
    """One results folder: its path relative to the leaderboard's root, and its results.json."""

    name: str
    folder: Path
    results: RunResult

    @property
    def task(self) -> str:
        return self.results.task

    @property
    def dataset(self) -> str:
        return self.results.dataset.name

    @property
    def model_id(self) -> str:
        return self.results.model.id

    @property
    def model_name(self) -> str | None:
        """What the suite calls the model, for runs made by ``nlpsuite bench``."""
        name = (self.results.request or {}).get("model_name")
        return name if isinstance(name, str) and name else None

    @property
    def backend(self) -> str:
        """The inference engine that made the predictions (results before backends: torch)."""
        return self.results.backend

    @property
    def metrics(self) -> Mapping[str, MetricScore]:
        return self.results.metrics

    def value(self, metric: str) -> float | None:
        return self.results.value(metric)

    def ci(self, metric: str) -> tuple[float | None, float | None]:
        return self.results.ci(metric)

    @property
    def examples_per_second(self) -> float | None:
        return self.results.examples_per_second

    @property
    def weights_bytes(self) -> int | None:
        return self.results.model.weights_bytes

    @property
    def parameters(self) -> int | None:
        return self.results.model.parameters

    @property
    def command(self) -> str:
        """The recorded command line; for older results, one rebuilt with the run's folder
        (relative to the leaderboard's root) as ``--out``."""
        return self.results.command or eval_command_line(
            self.results.reproducing_request(Path(self.name))
        )


@dataclass
class Row:
    """A ranked run, with its paired test against the group's first row."""

    run: Run
    model: str
    rank: int = 0
    p_value: float | None = None
    shared_examples: int | None = None
    test_note: str | None = None

    @property
    def significant(self) -> bool | None:
        return None if self.p_value is None else self.p_value < ALPHA


@dataclass
class Excluded:
    """A run of a group that cannot be ranked with the others, and why."""

    run: Run
    model: str
    reasons: list[str]


@dataclass
class Group:
    task: str
    dataset: str
    primary: str
    higher_is_better: bool
    direction_source: str  # "task" (the installed task's metric) or "results" (as recorded)
    metrics: list[str]
    directions: dict[str, bool]
    rows: list[Row] = field(default_factory=list)
    not_comparable: list[Excluded] = field(default_factory=list)
    test_note: str | None = None
    scales: dict[str, Scale | None] = field(default_factory=dict)  # None: unknown

    @property
    def anchor(self) -> str:
        return "g-" + "".join(ch if ch.isalnum() else "-" for ch in f"{self.task}-{self.dataset}")

    @property
    def reference(self) -> Run | None:
        return self.rows[0].run if self.rows else None


@dataclass
class Leaderboard:
    source: str
    groups: list[Group]
    runs: list[Run]
    skipped: list[tuple[str, str]]
    resamples: int
    seed: int


# Reading results.


def collect(root: Path) -> tuple[list[Run], list[tuple[str, str]]]:
    """Every readable results.json under ``root``, and (path, reason) for those skipped."""
    if not root.is_dir():
        raise NlpsuiteError(f"results folder not found: {root}")
    runs, skipped = [], []
    for file in sorted(root.rglob("results.json")):
        name = file.parent.relative_to(root).as_posix()
        shown = file.relative_to(root).as_posix()
        try:
            results = RunResult.read(file, shown)
        except NlpsuiteError as error:
            logger.warning("skipping a run: %s", error)
            skipped.append((shown, str(error)))
            continue
        runs.append(Run(name, file.parent, results))
    return runs, skipped


def _predictions(run: Run) -> Predictions:
    """``{id: (scored, reference)}`` from the run's predictions.jsonl."""
    file = run.folder / "predictions.jsonl"
    if not file.is_file():
        raise NlpsuiteError(f"{run.name}: no predictions.jsonl")
    rows: Predictions = {}
    with file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                rows[str(row["id"])] = (row["scored"], row["reference"])
            except (ValueError, KeyError, TypeError):
                raise NlpsuiteError(
                    f"{run.name}/predictions.jsonl:{number}: not a prediction row"
                ) from None
    return rows


# Building the leaderboard.


def build(root: Path, *, resamples: int = 1000, seed: int = 0) -> Leaderboard:
    """Read every run under ``root`` and rank each task x dataset group."""
    runs, skipped = collect(root)
    if not runs:
        detail = f" ({len(skipped)} unreadable, skipped)" if skipped else ""
        raise NlpsuiteError(f"no results under {root}{detail}")
    by_group: dict[tuple[str, str], list[Run]] = {}
    for run in runs:
        by_group.setdefault((run.task, run.dataset), []).append(run)
    cache: PredictionCache = {}
    groups = [
        _group(task, dataset, members, resamples, seed, cache)
        for (task, dataset), members in sorted(by_group.items())
    ]
    return Leaderboard(str(root), groups, runs, skipped, resamples, seed)


def _group(
    task_name: str,
    dataset: str,
    runs: list[Run],
    resamples: int,
    seed: int,
    cache: PredictionCache,
) -> Group:
    loaded = plugins.registry()
    task = loaded.tasks.get(task_name)
    declared = {m.name: m for m in task.metrics} if task is not None else {}
    present = list(dict.fromkeys(name for run in runs for name in run.metrics))
    order = [name for name in declared if name in present]
    order += [name for name in present if name not in declared]
    directions = {name: _direction(name, declared, runs) for name in order}
    primary = next(iter(declared), order[0]) if declared else order[0]
    if primary not in present:
        primary = order[0]
    source = "task" if primary in declared else "results"
    group = Group(
        task_name, dataset, primary, directions.get(primary, True), source, order, directions
    )
    group.scales = {name: _scale(name, declared, loaded.metrics, runs) for name in order}

    names = _model_names(runs)
    scored = [run for run in runs if run.value(primary) is not None]
    for run in runs:
        if run.value(primary) is None:
            group.not_comparable.append(Excluded(run, names[run.name], [f"has no {primary} score"]))
    clusters: dict[str, list[Run]] = {}
    for run in scored:
        clusters.setdefault(json.dumps(_comparability(run), sort_keys=True), []).append(run)
    if clusters:
        # The largest set of mutually comparable runs is ranked; on a tie, the first by name.
        ranked = min(clusters.values(), key=lambda c: (-len(c), c[0].name))
        reference = _comparability(ranked[0])
        for members in clusters.values():
            if members is ranked:
                continue
            for run in members:
                reasons = _differences(_comparability(run), reference)
                group.not_comparable.append(Excluded(run, names[run.name], reasons))
        group.rows = _rank(ranked, primary, order, directions, names)
    group.not_comparable.sort(key=lambda excluded: excluded.run.name)

    metric = declared.get(primary) or loaded.metrics.get(primary)
    if metric is None:
        group.test_note = f"no significance test: metric '{primary}' is not installed"
    elif len(group.rows) > 1:
        label_task = task is not None and _has_label(task)
        for row in group.rows[1:]:
            _test(metric, group.rows[0], row, label_task, resamples, seed, cache)
    return group


def _direction(name: str, declared: Mapping[str, Metric], runs: Sequence[Run]) -> bool:
    if name in declared:
        return declared[name].higher_is_better
    for run in runs:
        score = run.metrics.get(name)
        if score is not None and score.higher_is_better is not None:
            return score.higher_is_better
    return True


def _scale(
    name: str, declared: Mapping[str, Metric], installed: Mapping[str, Metric], runs: Sequence[Run]
) -> Scale | None:
    """The scale the runs recorded; for results from before scales, the installed metric's."""
    for run in runs:
        score = run.metrics.get(name)
        if score is not None and score.scale is not None:
            return score.scale
    metric = declared.get(name) or installed.get(name)
    return metric.scale if metric is not None else None


def _has_label(task: Any) -> bool:
    return "label" in {f.name for f in dataclasses.fields(task.output_type)}


def _model_names(runs: Sequence[Run]) -> dict[str, str]:
    """A short name per run: what the suite calls the model (runs of ``nlpsuite bench``), else
    the hub id or a local checkpoint's folder name; the full id where one name stands for two
    different models."""
    short = {run.name: run.model_name or _short_model(run.model_id) for run in runs}
    ids: dict[str, set[str]] = {}
    for run in runs:
        ids.setdefault(short[run.name], set()).add(run.model_id)
    # Another engine on the same weights is labelled, so its row reads beside the torch one.
    return {
        run.name: (short[run.name] if len(ids[short[run.name]]) == 1 else run.model_id)
        + (f" [{run.backend}]" if run.backend != "torch" else "")
        + _prompt_label(run.results.prompt)
        for run in runs
    }


def _prompt_label(prompt: PromptInfo | None) -> str:
    """How a causal LM was prompted, so its zero- and few-shot rows read apart."""
    if prompt is None:
        return ""
    shots = f"{prompt.shots}-shot" if prompt.shots else "zero-shot"
    return f" ({Path(prompt.template).stem}, {shots})"


def _short_model(model_id: str) -> str:
    path = Path(model_id)
    if path.is_absolute() or model_id.startswith((".", "~")) or model_id.count("/") > 1:
        return path.name or model_id
    return model_id


def _comparability(run: Run) -> dict[str, Any]:
    """What must be equal for two runs' scores to be compared."""
    results = run.results
    return {
        "dataset sha256": results.dataset.sha256,
        "limit": results.limit,
        "sample": results.sample,
        "sample seed": results.seed if results.sample is not None else None,
        # How a causal LM is prompted is part of the system under test, like its weights, not
        # a condition of the test: zero- and few-shot rows rank beside the encoders.
        "options": {name: value for name, value in results.options.items()
                    if name not in PROMPT_OPTION_NAMES},
    }


def _differences(key: Mapping[str, Any], reference: Mapping[str, Any]) -> list[str]:
    reasons = []
    for name, value in key.items():
        wanted = reference[name]
        if value == wanted or (name == "sample seed" and key["sample"] != reference["sample"]):
            continue
        if name == "options":
            changed = sorted(set(value) | set(wanted))
            shown = [k for k in changed if value.get(k) != wanted.get(k)]
            mine = ", ".join(f"{k}={_plain(value.get(k))}" for k in shown)
            theirs = ", ".join(f"{k}={_plain(wanted.get(k))}" for k in shown)
            reasons.append(f"options {mine} (ranked runs: {theirs})")
        elif name == "dataset sha256":
            reasons.append(f"dataset sha256 {str(value)[:12]} (ranked runs: {str(wanted)[:12]})")
        elif name == "sample":
            mine = f"sample {_plain(value)}" + (f", seed {key['sample seed']}" if value else "")
            theirs = _plain(wanted) + (f", seed {reference['sample seed']}" if wanted else "")
            reasons.append(f"{mine} (ranked runs: {theirs})")
        else:
            reasons.append(f"{name} {_plain(value)} (ranked runs: {_plain(wanted)})")
    return reasons


def _plain(value: Any) -> str:
    if value is None:
        return "none"
    return json.dumps(value) if isinstance(value, dict | list) else str(value)


def _rank(
    runs: list[Run],
    primary: str,
    metrics: Sequence[str],
    directions: Mapping[str, bool],
    names: Mapping[str, str],
) -> list[Row]:
    """Rows best first by the primary metric; equal primary scores share a rank and are
    ordered by the other metrics in turn, then by model name."""

    def better(run: Run, metric: str) -> tuple[bool, float]:
        value = run.value(metric)
        if value is None or math.isnan(value):
            return (True, 0.0)
        return (False, -value if directions[metric] else value)

    def key(run: Run) -> tuple[Any, ...]:
        order = [primary, *(m for m in metrics if m != primary)]
        return (*(better(run, metric) for metric in order), names[run.name], run.name)

    rows: list[Row] = []
    previous: float | None = None
    for position, run in enumerate(sorted(runs, key=key), 1):
        value = run.value(primary)
        rank = rows[-1].rank if rows and value == previous else position
        rows.append(Row(run, names[run.name], rank))
        previous = value
    return rows


# The paired bootstrap test against the first row.


def _test(
    metric: Metric,
    leader: Row,
    row: Row,
    label_task: bool,
    resamples: int,
    seed: int,
    cache: PredictionCache,
) -> None:
    """The paired bootstrap p-value of ``row`` against ``leader`` on their shared examples."""
    try:
        first, other = _cached(leader.run, cache), _cached(row.run, cache)
        shared = [example for example in first if example in other]
        row.shared_examples = len(shared)
        if len(shared) < 2:
            raise NlpsuiteError(f"{len(shared)} shared examples")
        references = [first[example][1] for example in shared]
        if references != [other[example][1] for example in shared]:
            raise NlpsuiteError("the references of shared examples differ")
        mine = [other[example][0] for example in shared]
        theirs = [first[example][0] for example in shared]
        if label_task:
            references, mine = _same_labels(leader.run, row.run, references, mine)
        row.p_value = paired_bootstrap(metric, mine, theirs, references, resamples, seed)
    except NlpsuiteError as error:
        row.test_note = f"not tested: {error}"


def _cached(run: Run, cache: PredictionCache) -> Predictions:
    if run.name not in cache:
        try:
            cache[run.name] = _predictions(run)
        except NlpsuiteError as error:
            cache[run.name] = str(error)
    found = cache[run.name]
    if isinstance(found, str):
        raise NlpsuiteError(found)
    return found


def _same_labels(
    leader: Run, other: Run, references: list[Any], predictions: list[Any]
) -> tuple[list[Any], list[Any]]:
    """Classification references in the leader's label names, and the other run's predictions
    translated into them (its model may name the same classes differently)."""
    to_leader = leader.results.label_mapping or {}
    to_other = other.results.label_mapping or {}
    mapped = [to_leader.get(str(reference), reference) for reference in references]
    if to_other == to_leader:
        return mapped, predictions
    back: dict[Any, str] = {}
    for dataset_label, model_label in to_other.items():
        if model_label in back:
            raise NlpsuiteError("two dataset labels map to one model label")
        back[model_label] = dataset_label
    # A label with no dataset counterpart is wrong whatever the leader calls its classes.
    translated = [
        to_leader.get(back[p], back[p]) if p in back else f"\0unmapped {p}" for p in predictions
    ]
    return mapped, translated
