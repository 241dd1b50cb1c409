"""Leaderboards from harness results: Markdown, one self-contained HTML page, and JSON.

:func:`build` reads every ``results.json`` under a folder (at any depth), groups the runs by task
and dataset, and ranks each group's models by the task's primary metric: the first metric the
task declares, in the direction its :class:`~nlpsuite.metrics.Metric` gives (the direction
recorded in ``results.json`` when the task is not installed). Every metric is shown with its 95%
bootstrap confidence interval, beside examples per second and model size.

Each ranked run is compared with the first with the paired bootstrap test
(:func:`nlpsuite.metrics.paired_bootstrap`) on the primary metric, over the example ids both runs'
``predictions.jsonl`` share; p < 0.05 is marked significant. Runs of a group that differ from the
ranked runs in dataset sha256, ``limit``, ``sample`` (and its seed) or task options are not
ranked with them: they are listed in a "not comparable" note with the reason.

A ``results.json`` that cannot be read is skipped with a one-line warning; the rest are reported.
The JSON format is versioned (``"schema_version": 1``) and described in
``docs/leaderboard-schema.md``. Nothing in the output depends on the time or on where the
results folder is, so the same results give the same files.
"""

from __future__ import annotations

import html
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlpsuite.errors import NlpsuiteError
from nlpsuite.metrics import Metric

logger = logging.getLogger("nlpsuite")

SCHEMA_VERSION = 1
FORMATS = {"md": "md", "markdown": "md", "html": "html", "json": "json"}
ALPHA = 0.05
DASH = "—"


@dataclass(frozen=True)
class Run:
    """One results folder: its path relative to the leaderboard's root, and its results.json."""

    name: str
    folder: Path
    results: Mapping[str, Any]

    @property
    def task(self) -> str:
        return str(self.results["task"])

    @property
    def dataset(self) -> str:
        return str(self.results["dataset"]["name"])

    @property
    def model_id(self) -> str:
        model = self.results.get("model") or {}
        return str(model.get("id") or "default")

    @property
    def backend(self) -> str:
        """The inference engine that made the predictions (results before backends: torch)."""
        return str(self.results.get("backend") or "torch")

    @property
    def metrics(self) -> Mapping[str, Any]:
        metrics: Mapping[str, Any] = self.results["metrics"]
        return metrics

    def value(self, metric: str) -> float | None:
        score = self.metrics.get(metric)
        return _number(score.get("value")) if isinstance(score, Mapping) else None

    def ci(self, metric: str) -> tuple[float | None, float | None]:
        score = self.metrics.get(metric)
        ci = score.get("ci95") if isinstance(score, Mapping) else None
        if isinstance(ci, list | tuple) and len(ci) == 2:
            return _number(ci[0]), _number(ci[1])
        return None, None

    @property
    def examples_per_second(self) -> float | None:
        return _number(self.results.get("examples_per_second"))

    @property
    def weights_bytes(self) -> int | None:
        value = (self.results.get("model") or {}).get("weights_bytes")
        return int(value) if isinstance(value, int | float) else None

    @property
    def parameters(self) -> int | None:
        value = (self.results.get("model") or {}).get("parameters")
        return int(value) if isinstance(value, int | float) else None

    @property
    def command(self) -> str:
        recorded = self.results.get("command")
        return str(recorded) if recorded else _command_from_fields(self)


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
            results = _read_results(file, shown)
        except NlpsuiteError as error:
            logger.warning("skipping a run: %s", error)
            skipped.append((shown, str(error)))
            continue
        runs.append(Run(name, file.parent, results))
    return runs, skipped


def _read_results(file: Path, shown: str) -> dict[str, Any]:
    try:
        results = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise NlpsuiteError(f"{shown}:{error.lineno}: not valid JSON ({error.msg})") from None
    except UnicodeDecodeError:
        raise NlpsuiteError(f"{shown}: not UTF-8 text") from None
    except OSError as error:
        raise NlpsuiteError(f"{shown}: cannot read ({error.strerror})") from None
    if not isinstance(results, dict):
        raise NlpsuiteError(f"{shown}: expected a JSON object, got {type(results).__name__}")
    if not isinstance(results.get("task"), str):
        raise NlpsuiteError(f"{shown}: missing field 'task'")
    dataset = results.get("dataset")
    if not isinstance(dataset, dict) or not isinstance(dataset.get("name"), str):
        raise NlpsuiteError(f"{shown}: missing field 'dataset.name'")
    metrics = results.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        raise NlpsuiteError(f"{shown}: missing field 'metrics'")
    for metric, score in metrics.items():
        if not isinstance(score, dict) or not isinstance(score.get("value"), int | float | None):
            raise NlpsuiteError(f"{shown}: metric '{metric}' has no value")
    return results


def _predictions(run: Run) -> dict[str, tuple[Any, Any]]:
    """``{id: (scored, reference)}`` from the run's predictions.jsonl."""
    file = run.folder / "predictions.jsonl"
    if not file.is_file():
        raise NlpsuiteError(f"{run.name}: no predictions.jsonl")
    rows: dict[str, tuple[Any, Any]] = {}
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
    cache: dict[str, dict[str, tuple[Any, Any]] | str] = {}
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
    cache: dict[str, dict[str, tuple[Any, Any]] | str],
) -> Group:
    from nlpsuite.plugins import registry

    loaded = registry()
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
        recorded = (run.metrics.get(name) or {}).get("higher_is_better")
        if isinstance(recorded, bool):
            return recorded
    return True


def _has_label(task: Any) -> bool:
    import dataclasses

    return "label" in {f.name for f in dataclasses.fields(task.output_type)}


def _model_names(runs: Sequence[Run]) -> dict[str, str]:
    """A short name per run: the hub id, or a local checkpoint's folder name (the full path where
    two different checkpoints share a folder name)."""
    short = {run.name: _short_model(run.model_id) for run in runs}
    ids: dict[str, set[str]] = {}
    for run in runs:
        ids.setdefault(short[run.name], set()).add(run.model_id)
    # Another engine on the same weights is labelled, so its row reads beside the torch one.
    return {
        run.name: (short[run.name] if len(ids[short[run.name]]) == 1 else run.model_id)
        + (f" [{run.backend}]" if run.backend != "torch" else "")
        for run in runs
    }


def _short_model(model_id: str) -> str:
    path = Path(model_id)
    if path.is_absolute() or model_id.startswith((".", "~")) or model_id.count("/") > 1:
        return path.name or model_id
    return model_id


def _comparability(run: Run) -> dict[str, Any]:
    """What must be equal for two runs' scores to be compared."""
    results = run.results
    sample = results.get("sample")
    return {
        "dataset sha256": results["dataset"].get("sha256"),
        "limit": results.get("limit"),
        "sample": sample,
        "sample seed": results.get("seed") if sample is not None else None,
        "options": results.get("options") or {},
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


def _test(
    metric: Metric,
    leader: Row,
    row: Row,
    label_task: bool,
    resamples: int,
    seed: int,
    cache: dict[str, dict[str, tuple[Any, Any]] | str],
) -> None:
    """The paired bootstrap p-value of ``row`` against ``leader`` on their shared examples."""
    from nlpsuite.metrics import paired_bootstrap

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


def _cached(
    run: Run, cache: dict[str, dict[str, tuple[Any, Any]] | str]
) -> dict[str, tuple[Any, Any]]:
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
    to_leader = leader.results.get("label_mapping") or {}
    to_other = other.results.get("label_mapping") or {}
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


# Output.


def parse_formats(text: str) -> list[str]:
    """``md,html,json`` to a list of formats; an unknown one is a one-line error."""
    chosen: list[str] = []
    for part in text.split(","):
        name = part.strip().lower()
        if name not in FORMATS:
            raise NlpsuiteError(
                f"unknown leaderboard format '{part.strip()}' (known: md, html, json)"
            )
        if FORMATS[name] not in chosen:
            chosen.append(FORMATS[name])
    return chosen


def render(board: Leaderboard, fmt: str) -> str:
    if fmt == "md":
        return to_markdown(board)
    if fmt == "html":
        return to_html(board)
    if fmt == "json":
        return json.dumps(to_json(board), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
    raise NlpsuiteError(f"unknown leaderboard format '{fmt}' (known: md, html, json)")


def write(board: Leaderboard, formats: Sequence[str], out: Path) -> list[Path]:
    """Write ``leaderboard.<format>`` into ``out`` for each format (atomically)."""
    from nlpsuite.records import write_atomic

    written = []
    for fmt in formats:
        path = out / f"leaderboard.{fmt}"
        write_atomic(path, render(board, fmt))
        written.append(path)
    return written


# Formatting numbers.


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _decimals(group: Group, metric: str) -> int:
    """4 decimals for metrics on a 0-1 scale, 2 for those on a 0-100 scale."""
    numbers = []
    for row in group.rows:
        numbers += [row.run.value(metric), *row.run.ci(metric)]
    finite = [abs(x) for x in numbers if x is not None and math.isfinite(x)]
    return 4 if all(x <= 1.5 for x in finite) else 2


def _score(run: Run, metric: str, decimals: int) -> str:
    value = run.value(metric)
    if value is None:
        return DASH
    low, high = run.ci(metric)
    text = f"{value:.{decimals}f}"
    if low is not None and high is not None and not (math.isnan(low) or math.isnan(high)):
        text += f" [{low:.{decimals}f}, {high:.{decimals}f}]"
    return text


def _rate(value: float | None) -> str:
    if value is None:
        return DASH
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def _count(value: int | None) -> str:
    if value is None:
        return DASH
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return str(value)


def _bytes(value: int | None) -> str:
    if value is None:
        return DASH
    for size, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"


def _p(row: Row) -> str:
    if row.p_value is None:
        return DASH
    text = "< 0.001" if row.p_value < 0.001 else f"{row.p_value:.3f}"
    return text + ("*" if row.significant else "")


def _arrow(higher: bool) -> str:
    return "↑" if higher else "↓"


def _versions(run: Run) -> str:
    versions = run.results.get("versions") or {}
    return ", ".join(f"{k} {v}" for k, v in versions.items())


def _examples(group: Group) -> str:
    reference = group.reference
    count = reference.results["dataset"].get("examples") if reference else None
    return f"{count} examples" if count is not None else "examples: unknown"


def _sha(group: Group, length: int = 12) -> str:
    reference = group.reference
    sha = reference.results["dataset"].get("sha256") if reference else None
    return str(sha)[:length] if sha else "unknown"


def _command_from_fields(run: Run) -> str:
    """An ``nlpsuite eval`` command rebuilt from an older results.json without one."""
    import shlex

    results = run.results
    words = ["nlpsuite", "eval", run.task, "--dataset", run.dataset]
    model = (results.get("model") or {}).get("id")
    if model:
        words += ["--model", str(model)]
    words += ["--out", run.name]
    for flag, key in (
        ("--limit", "limit"),
        ("--sample", "sample"),
        ("--seed", "seed"),
        ("--bootstrap", "bootstrap_resamples"),
        ("--batch-size", "batch_size"),
        ("--device", "device"),
    ):
        if results.get(key) is not None:
            words += [flag, str(results[key])]
    if run.backend != "torch":
        words += ["--backend", run.backend]
    for key, value in (results.get("options") or {}).items():
        if value is not None:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            words += ["--option", f"{key}={text}"]
    return shlex.join(words)


# Markdown.


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(board: Leaderboard) -> str:
    lines = [
        "# Leaderboard",
        "",
        f"{len(board.runs)} runs in {len(board.groups)} task/dataset groups. Each table ranks "
        "models by the task's primary metric (↑ higher is better, ↓ lower is better); equal "
        "scores share a rank, ordered by the next metrics. Scores are on the whole dataset, "
        "with the 95% bootstrap confidence interval in brackets. "
        f"**p vs #1**: paired bootstrap test against the first row on the examples both runs "
        f"share ({board.resamples} resamples, seed {board.seed}); * marks p < {ALPHA}.",
    ]
    for group in board.groups:
        lines += ["", f"## {_md(group.task)} · {_md(group.dataset)}", ""]
        if group.rows:
            lines.append(
                f"Primary metric **{_md(group.primary)}** {_arrow(group.higher_is_better)} · "
                f"{_examples(group)} · dataset sha256 `{_sha(group)}`"
            )
            lines.append("")
            decimals = {m: _decimals(group, m) for m in group.metrics}
            header = ["#", "model"]
            header += [f"{_md(m)} {_arrow(group.directions[m])}" for m in group.metrics]
            header += ["p vs #1", "examples/s", "parameters", "weights"]
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "|".join(["--:", ":--"] + ["--:"] * (len(header) - 2)) + "|")
            for row in group.rows:
                cells = [str(row.rank), _md(row.model)]
                cells += [_score(row.run, m, decimals[m]) for m in group.metrics]
                cells += [
                    _p(row),
                    _rate(row.run.examples_per_second),
                    _count(row.run.parameters),
                    _bytes(row.run.weights_bytes),
                ]
                lines.append("| " + " | ".join(cells) + " |")
            notes = [f"- {row.model}: {row.test_note}" for row in group.rows if row.test_note]
            if group.test_note:
                notes.insert(0, f"- {group.test_note}")
            if notes:
                lines += ["", *notes]
        if group.not_comparable:
            lines += ["", "Not comparable with the ranked runs (not ranked):", ""]
            for excluded in group.not_comparable:
                score = _score(excluded.run, group.primary, 4)
                lines.append(
                    f"- `{_md(excluded.run.name)}` ({_md(excluded.model)}, {group.primary} "
                    f"{score}): {'; '.join(excluded.reasons)}"
                )
    if board.skipped:
        lines += ["", "## Skipped", ""]
        lines += [f"- {_md(reason)}" for _, reason in board.skipped]
    lines += ["", "## Runs", ""]
    for run in board.runs:
        lines.append(f"- `{_md(run.name)}`: `{run.command}`")
        weights = (run.results.get("model") or {}).get("weights_sha256")
        detail = [f"weights sha256 {str(weights)[:12]}" if weights else "weights sha256 unknown"]
        detail.append(f"dataset sha256 {str(run.results['dataset'].get('sha256'))[:12]}")
        if run.results.get("device"):
            detail.append(f"device {run.results['device']}")
        if _versions(run):
            detail.append(_versions(run))
        lines.append(f"  ({'; '.join(detail)})")
    return "\n".join(lines) + "\n"


# JSON.


def _clean(value: Any) -> Any:
    """JSON values with NaN and infinities as null (the output must be strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _run_json(run: Run, model: str) -> dict[str, Any]:
    results = run.results
    model_info = results.get("model") or {}
    return {
        "run": run.name,
        "model": model,
        "model_id": run.model_id,
        "weights_sha256": model_info.get("weights_sha256"),
        "parameters": run.parameters,
        "weights_bytes": run.weights_bytes,
        "metrics": {
            name: {
                "value": run.value(name),
                "ci95": list(run.ci(name)),
                "higher_is_better": (score or {}).get("higher_is_better"),
            }
            for name, score in run.metrics.items()
        },
        "examples_per_second": run.examples_per_second,
        "dataset_sha256": results["dataset"].get("sha256"),
        "examples": results["dataset"].get("examples"),
        "limit": results.get("limit"),
        "sample": results.get("sample"),
        "seed": results.get("seed"),
        "options": results.get("options") or {},
        "device": results.get("device"),
        "backend": run.backend,
        "versions": results.get("versions") or {},
        "command": run.command,
    }


def to_json(board: Leaderboard) -> dict[str, Any]:
    """The leaderboard as JSON values (schema: docs/leaderboard-schema.md)."""
    from nlpsuite import __version__

    groups = []
    for group in board.groups:
        reference = group.reference
        groups.append(
            {
                "task": group.task,
                "dataset": group.dataset,
                "dataset_sha256": reference.results["dataset"].get("sha256") if reference else None,
                "examples": reference.results["dataset"].get("examples") if reference else None,
                "primary_metric": {
                    "name": group.primary,
                    "higher_is_better": group.higher_is_better,
                    "direction_from": group.direction_source,
                },
                "metrics": [
                    {"name": m, "higher_is_better": group.directions[m]} for m in group.metrics
                ],
                "significance_note": group.test_note,
                "rows": [
                    {
                        "rank": row.rank,
                        **_run_json(row.run, row.model),
                        "p_vs_first": row.p_value,
                        "significant": row.significant,
                        "shared_examples": row.shared_examples,
                        "test_note": row.test_note,
                    }
                    for row in group.rows
                ],
                "not_comparable": [
                    {**_run_json(excluded.run, excluded.model), "reasons": excluded.reasons}
                    for excluded in group.not_comparable
                ],
            }
        )
    return _clean(
        {
            "schema_version": SCHEMA_VERSION,
            "generator": {"name": "nlpsuite", "version": __version__},
            "source": board.source,
            "significance": {
                "test": "paired bootstrap",
                "resamples": board.resamples,
                "seed": board.seed,
                "alpha": ALPHA,
                "against": "rank 1",
            },
            "groups": groups,
            "skipped": [{"path": path, "error": reason} for path, reason in board.skipped],
        }
    )


# HTML: one file, no network; inline CSS, SVG and a few lines of JavaScript.

_CSS = """
:root { --fg: #1d2330; --muted: #5f6b7a; --line: #dde2ea; --accent: #2f6fdf; --lead: #e0762b;
  --band: #f6f8fb; --sig: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: var(--fg); background: #fff; }
header, main, footer { max-width: 1180px; margin: 0 auto; padding: 0 24px; }
header { padding-top: 24px; }
h1 { font-size: 26px; margin: 0 0 6px; }
h2 { font-size: 19px; margin: 0 0 4px; }
h2 .ds { color: var(--muted); font-weight: 400; }
.lede, .meta, .note { color: var(--muted); }
div.note { margin-top: 12px; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
section.group { border-top: 1px solid var(--line); padding: 18px 0 8px; margin-top: 12px; }
.table-wrap { overflow-x: auto; }
figure { margin: 14px 0 0; max-width: 560px; }
figcaption { color: var(--muted); font-size: 12px; }
table { border-collapse: collapse; width: 100%; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 9px; border-bottom: 1px solid var(--line); text-align: right;
  white-space: nowrap; }
th.text, td.text { text-align: left; }
thead th { background: var(--band); font-weight: 600; position: sticky; top: 0; }
table.sortable thead th { cursor: pointer; user-select: none; }
table.sortable thead th::after { content: " \\2195"; color: #aab3c0; font-size: 11px; }
table.sortable thead th[aria-sort=ascending]::after { content: " \\25B2"; color: var(--accent); }
table.sortable thead th[aria-sort=descending]::after { content: " \\25BC"; color: var(--accent); }
tbody tr:hover { background: #f1f5fd; }
td.model { white-space: normal; overflow-wrap: anywhere; min-width: 9em; max-width: 16em; }
tr.leader td.model { font-weight: 600; }
.ci { color: var(--muted); font-size: 11px; }
td .ci { display: block; line-height: 1.2; }
.sig { color: var(--sig); font-weight: 600; }
code { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, monospace; }
footer { border-top: 2px solid var(--line); margin-top: 28px; padding-bottom: 40px; }
footer td, footer th { white-space: normal; text-align: left; vertical-align: top; }
footer code { word-break: break-all; }
svg text { font: 11px system-ui, sans-serif; fill: var(--fg); }
svg .axis { stroke: #8a94a3; }
svg .grid { stroke: #edf0f4; }
svg .bar { stroke: var(--accent); stroke-width: 1.5; }
svg circle { fill: var(--accent); }
svg circle.leader { fill: var(--lead); }
"""

_SCRIPT = """
(function () {
  function key(cell, numeric) {
    var raw = cell.getAttribute('data-sort');
    if (numeric) { return raw === null || raw === '' ? null : parseFloat(raw); }
    return (raw === null ? cell.textContent : raw).toLowerCase();
  }
  function sortTable(table, column, direction) {
    var header = table.tHead.rows[0].cells[column];
    var numeric = header.getAttribute('data-type') === 'num';
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = key(a.cells[column], numeric), y = key(b.cells[column], numeric);
      if (x === null || y === null) { return x === y ? 0 : (x === null ? 1 : -1); }
      var order = x < y ? -1 : (x > y ? 1 : 0);
      return direction === 'ascending' ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.setAttribute('aria-sort', 'none');
    });
    header.setAttribute('aria-sort', direction);
  }
  document.querySelectorAll('table.sortable').forEach(function (table) {
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, column) {
      th.tabIndex = 0;
      th.addEventListener('click', function () {
        var next = th.getAttribute('aria-sort') === 'ascending' ? 'descending' : 'ascending';
        sortTable(table, column, next);
      });
      th.addEventListener('keydown', function (event) {
        if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); th.click(); }
      });
    });
  });
  // Self-test for headless browsers: open the file with #selftest, read body[data-selftest].
  if (location.hash === '#selftest') {
    var report = { tables: [], plots: [] };
    document.querySelectorAll('table.sortable').forEach(function (table) {
      var heads = table.tHead.rows[0].cells;
      function column(name) {
        for (var i = 0; i < heads.length; i++) {
          if (heads[i].getAttribute('data-key') === name) { return i; }
        }
        return -1;
      }
      function values(name) {
        var c = column(name);
        return Array.prototype.map.call(table.tBodies[0].rows, function (row) {
          return row.cells[c].getAttribute('data-sort');
        });
      }
      var entry = { group: table.getAttribute('data-group'), before: values('model') };
      heads[column('model')].click();
      entry.by_model = values('model');
      heads[column('primary')].click();
      entry.primary_ascending = values('primary');
      heads[column('primary')].click();
      entry.primary_descending = values('primary');
      heads[column('rank')].click();
      entry.restored = values('model');
      report.tables.push(entry);
    });
    document.querySelectorAll('svg.plot').forEach(function (svg) {
      var box = svg.getBoundingClientRect();
      report.plots.push({ group: svg.getAttribute('data-group'), width: box.width,
        height: box.height, points: svg.querySelectorAll('circle').length,
        bars: svg.querySelectorAll('line.bar').length });
    });
    document.body.setAttribute('data-selftest', JSON.stringify(report));
  }
})();
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _sort_value(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else repr(float(value))


def to_html(board: Leaderboard) -> str:
    from nlpsuite import __version__

    nav = " ".join(
        f'<a href="#{group.anchor}">{_e(group.task)} · {_e(group.dataset)}</a>'
        for group in board.groups
    )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>nlpsuite leaderboard</title>",
        f"<style>{_CSS}</style></head><body>",
        "<header><h1>Leaderboard</h1>",
        f'<p class="lede">{len(board.runs)} runs in {len(board.groups)} task/dataset groups. '
        "Each table ranks models by the task's primary metric (↑ higher is better, ↓ lower is "
        "better; equal scores share a rank, ordered by the next metrics); click a column header "
        "to sort. Scores are on the whole dataset with the 95% "
        "bootstrap confidence interval. <b>p vs #1</b>: paired bootstrap test against the first "
        f"row on the examples both runs share ({board.resamples} resamples, seed {board.seed}); "
        f'<span class="sig">*</span> marks p &lt; {ALPHA}. The plots put each model\'s primary '
        "score (with its interval) against its throughput.</p>",
        f"<nav>{nav}</nav></header><main>",
    ]
    for group in board.groups:
        parts.append(_html_group(group))
    if board.skipped:
        items = "".join(f"<li><code>{_e(reason)}</code></li>" for _, reason in board.skipped)
        parts.append(f'<section class="group"><h2>Skipped</h2><ul>{items}</ul></section>')
    parts.append("</main>")
    parts.append(_html_footer(board, __version__))
    parts.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(parts) + "\n"


def _html_group(group: Group) -> str:
    out = [
        f'<section class="group" id="{group.anchor}">',
        f'<h2>{_e(group.task)} <span class="ds">· {_e(group.dataset)}</span></h2>',
    ]
    if group.rows:
        out.append(
            f'<p class="meta">Primary metric <b>{_e(group.primary)}</b> '
            f"{_arrow(group.higher_is_better)} · {_e(_examples(group))} · dataset sha256 "
            f"<code>{_e(_sha(group))}</code></p>"
        )
        out.append(f'<div class="table-wrap">{_html_table(group)}</div>')
        out.append(_plot(group))
        notes = [f"{_e(row.model)}: {_e(row.test_note)}" for row in group.rows if row.test_note]
        if group.test_note:
            notes.insert(0, _e(group.test_note))
        if notes:
            out.append('<p class="note">' + "<br>".join(notes) + "</p>")
    if group.not_comparable:
        items = "".join(
            f"<li><code>{_e(x.run.name)}</code> ({_e(x.model)}, {_e(group.primary)} "
            f"{_e(_score(x.run, group.primary, 4))}): {_e('; '.join(x.reasons))}</li>"
            for x in group.not_comparable
        )
        out.append(
            f'<div class="note"><b>Not comparable with the ranked runs</b> (not ranked):'
            f"<ul>{items}</ul></div>"
        )
    out.append("</section>")
    return "\n".join(out)


def _html_table(group: Group) -> str:
    decimals = {m: _decimals(group, m) for m in group.metrics}
    heads = [
        '<th data-type="num" data-key="rank">#</th>',
        '<th class="text" data-key="model">model</th>',
    ]
    for metric in group.metrics:
        key = "primary" if metric == group.primary else f"metric:{metric}"
        heads.append(
            f'<th data-type="num" data-key="{_e(key)}">{_e(metric)} '
            f"{_arrow(group.directions[metric])}</th>"
        )
    heads += [
        '<th data-type="num" data-key="p">p vs #1</th>',
        '<th data-type="num" data-key="rate">examples/s</th>',
        '<th data-type="num" data-key="parameters">parameters</th>',
        '<th data-type="num" data-key="weights">weights</th>',
    ]
    rows = []
    for row in group.rows:
        run = row.run
        cells = [
            f'<td data-sort="{row.rank}">{row.rank}</td>',
            f'<td class="text model" data-sort="{_e(row.model)}" title="{_e(run.model_id)}">'
            f"{_e(row.model)}</td>",
        ]
        for metric in group.metrics:
            value = run.value(metric)
            low, high = run.ci(metric)
            d = decimals[metric]
            shown = DASH if value is None else f"{value:.{d}f}"
            if value is not None and low is not None and high is not None:
                shown += f' <span class="ci">[{low:.{d}f}, {high:.{d}f}]</span>'
            cells.append(f'<td data-sort="{_sort_value(value)}">{shown}</td>')
        p = _p(row)
        p_html = f'<span class="sig">{_e(p)}</span>' if row.significant else _e(p)
        cells += [
            f'<td data-sort="{_sort_value(row.p_value)}">{p_html}</td>',
            f'<td data-sort="{_sort_value(run.examples_per_second)}">'
            f"{_rate(run.examples_per_second)}</td>",
            f'<td data-sort="{_sort_value(_float(run.parameters))}">{_count(run.parameters)}</td>',
            f'<td data-sort="{_sort_value(_float(run.weights_bytes))}">'
            f"{_bytes(run.weights_bytes)}</td>",
        ]
        leader = ' class="leader"' if row.rank == 1 else ""
        rows.append(f"<tr{leader}>" + "".join(cells) + "</tr>")
    return (
        f'<table class="sortable" data-group="{_e(group.anchor)}"><thead><tr>'
        + "".join(heads)
        + "</tr></thead><tbody>\n"
        + "\n".join(rows)
        + "\n</tbody></table>"
    )


def _float(value: int | None) -> float | None:
    return None if value is None else float(value)


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    span = high - low
    raw = span / max(count, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + 1e-9 * step:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _plot(group: Group) -> str:
    """Primary score (with its CI) against examples per second, as inline SVG."""
    points = [
        row
        for row in group.rows
        if row.run.examples_per_second and row.run.value(group.primary) is not None
    ]
    missing = [row.model for row in group.rows if row not in points]
    caption = (
        f"{_e(group.primary)} {_arrow(group.higher_is_better)} against examples per "
        "second (log scale when they span more than a factor of 10); bars: 95% CI."
    )
    if missing:
        caption += " Not plotted (no throughput recorded): " + _e(", ".join(missing)) + "."
    if not points:
        return f"<figure><figcaption>{caption}</figcaption></figure>"
    width, height = 440, 280
    left, right, top, bottom = 56, 16, 14, 40
    rates = [float(row.run.examples_per_second or 0.0) for row in points]
    ys: list[float] = []
    for row in points:
        value = row.run.value(group.primary)
        low, high = row.run.ci(group.primary)
        ys += [y for y in (value, low, high) if y is not None and math.isfinite(y)]
    y_low, y_high = min(ys), max(ys)
    never_negative = y_low >= 0
    if y_high - y_low < 1e-12:
        pad = max(abs(y_high) * 0.1, 0.05)
        y_low, y_high = y_low - pad, y_high + pad
    else:
        pad = (y_high - y_low) * 0.08
        y_low, y_high = y_low - pad, y_high + pad
    if never_negative:  # scores that cannot go below 0 get no negative axis
        y_low = max(y_low, 0.0)
    log = max(rates) / min(rates) > 10
    if log:
        x_low, x_high = math.log10(min(rates)) - 0.15, math.log10(max(rates)) + 0.15
    else:  # at least a fifth of the largest rate wide, so near-equal rates look near-equal
        pad = max((max(rates) - min(rates)) * 0.12, max(rates) * 0.1)
        x_low, x_high = max(min(rates) - pad, 0.0), max(rates) + pad

    def sx(rate: float) -> float:
        value = math.log10(rate) if log else rate
        return left + (value - x_low) / (x_high - x_low) * (width - left - right)

    def sy(value: float) -> float:
        return top + (y_high - value) / (y_high - y_low) * (height - top - bottom)

    out = [
        f'<figure><svg class="plot" data-group="{_e(group.anchor)}" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{_e(group.primary)} against examples per second">'
    ]
    for tick in _ticks(y_low, y_high):
        y = sy(tick)
        out.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" '
            f'y2="{y:.1f}"/><text x="{left - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{tick:g}</text>'
        )
    if log:
        x_ticks = [10.0**p for p in range(math.ceil(x_low), math.floor(x_high) + 1)]
        if len(x_ticks) < 2:
            x_ticks = [10 ** (x_low + (x_high - x_low) * f) for f in (0.2, 0.5, 0.8)]
    else:
        x_ticks = _ticks(x_low, x_high, 4)
    for tick in x_ticks:
        x = sx(tick)
        out.append(
            f'<line class="grid" x1="{x:.1f}" x2="{x:.1f}" y1="{top}" '
            f'y2="{height - bottom}"/><text x="{x:.1f}" y="{height - bottom + 15}" '
            f'text-anchor="middle">{_rate(tick) if log else f"{tick:g}"}</text>'
        )
    out.append(
        f'<line class="axis" x1="{left}" x2="{width - right}" y1="{height - bottom}" '
        f'y2="{height - bottom}"/><line class="axis" x1="{left}" x2="{left}" '
        f'y1="{top}" y2="{height - bottom}"/>'
    )
    out.append(
        f'<text x="{(left + width - right) / 2:.0f}" y="{height - 6}" '
        f'text-anchor="middle">examples per second{" (log)" if log else ""}</text>'
    )
    out.append(
        f'<text transform="translate(14 {(top + height - bottom) / 2:.0f}) rotate(-90)" '
        f'text-anchor="middle">{_e(group.primary)}</text>'
    )
    placed: list[tuple[float, float, float]] = []  # label boxes: left, right, baseline
    for row, rate in zip(points, rates, strict=True):
        value = row.run.value(group.primary)
        assert value is not None
        x, y = sx(rate), sy(value)
        low, high = row.run.ci(group.primary)
        if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
            y1, y2 = sy(low), sy(high)
            out.append(
                f'<line class="bar" x1="{x:.1f}" x2="{x:.1f}" y1="{y1:.1f}" '
                f'y2="{y2:.1f}"/><line class="bar" x1="{x - 4:.1f}" x2="{x + 4:.1f}" '
                f'y1="{y1:.1f}" y2="{y1:.1f}"/><line class="bar" x1="{x - 4:.1f}" '
                f'x2="{x + 4:.1f}" y1="{y2:.1f}" y2="{y2:.1f}"/>'
            )
        leader = ' class="leader"' if row.rank == 1 else ""
        # Labels are about 6 px a character: to the right of the point unless that runs off the
        # plot; one that would overlap a label already placed moves down.
        label = row.model.rsplit("/", 1)[-1]  # a hub id's organisation only in the tooltip
        span = 6.2 * len(label)
        fits_right = x + 7 + span <= width
        anchor = "start" if fits_right or width - x > x else "end"
        dx = -7 if anchor == "end" else 7
        x0 = x + dx - span if anchor == "end" else x + dx
        label_y = y - 7
        while any(x0 < b and x0 + span > a and abs(label_y - base) < 12 for a, b, base in placed):
            label_y += 12
        placed.append((x0, x0 + span, label_y))
        out.append(
            f'<circle{leader} cx="{x:.1f}" cy="{y:.1f}" r="4.5"><title>'
            f"{_e(row.model)}: {value:g} at {rate:.1f} examples/s</title></circle>"
            f'<text x="{x + dx:.1f}" y="{label_y:.1f}" text-anchor="{anchor}">'
            f"{_e(label)}</text>"
        )
    out.append(f"</svg><figcaption>{caption}</figcaption></figure>")
    return "".join(out)


def _html_footer(board: Leaderboard, version: str) -> str:
    rows = []
    for run in board.runs:
        results = run.results
        weights = (results.get("model") or {}).get("weights_sha256")
        dataset = results["dataset"]
        rows.append(
            "<tr>"
            f"<td><code>{_e(run.name)}</code></td>"
            f'<td>{_e(run.model_id)}<br><span class="ci">weights sha256 '
            f"<code>{_e(str(weights)[:16] if weights else 'unknown')}</code></span></td>"
            f'<td>{_e(dataset.get("name"))}<br><span class="ci">sha256 '
            f"<code>{_e(str(dataset.get('sha256'))[:16])}</code></span></td>"
            f'<td>{_e(_versions(run))}<br><span class="ci">device '
            f"{_e(results.get('device', '?'))}</span></td>"
            f"<td><code>{_e(run.command)}</code></td>"
            "</tr>"
        )
    return (
        '<footer><h2 style="margin-top:18px">Reproducibility</h2>'
        '<p class="note">Each run, the exact weights and data it used, the software that ran it, '
        "and the command that makes it again.</p>"
        "<table><thead><tr><th>run</th><th>model</th><th>dataset</th><th>versions</th>"
        "<th>command</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        f'<p class="note">Made by nlpsuite {_e(version)} from <code>{_e(board.source)}</code>'
        f"{' (' + str(len(board.skipped)) + ' unreadable runs skipped)' if board.skipped else ''}"
        ".</p></footer>"
    )
