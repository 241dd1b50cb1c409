"""How the Markdown and HTML leaderboards write numbers, scores and run details."""

from __future__ import annotations

import math

from nlpsuite.report.ranking import Group, Row, Run

DASH = "—"


def decimals(group: Group, metric: str) -> int:
    """4 decimals for metrics on a 0-1 scale, 2 for those on a 0-100 scale."""
    numbers = []
    for row in group.rows:
        numbers += [row.run.value(metric), *row.run.ci(metric)]
    finite = [abs(x) for x in numbers if x is not None and math.isfinite(x)]
    return 4 if all(x <= 1.5 for x in finite) else 2


def score(run: Run, metric: str, places: int) -> str:
    """The value with its 95% interval in brackets (the interval left out where undefined)."""
    value = run.value(metric)
    if value is None:
        return DASH
    low, high = run.ci(metric)
    text = f"{value:.{places}f}"
    if low is not None and high is not None and not (math.isnan(low) or math.isnan(high)):
        text += f" [{low:.{places}f}, {high:.{places}f}]"
    return text


def rate(value: float | None) -> str:
    """Examples per second, to about three significant figures."""
    if value is None:
        return DASH
    if value >= 100:
        return f"{value:.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def count(value: int | None) -> str:
    """A parameter count: 25.3k, 67.0M, 1.2B."""
    if value is None:
        return DASH
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return str(value)


def byte_size(value: int | None) -> str:
    """A size on disk in decimal units: 105.6 kB, 267.8 MB."""
    if value is None:
        return DASH
    for size, unit in ((1e9, "GB"), (1e6, "MB"), (1e3, "kB")):
        if value >= size:
            return f"{value / size:.1f} {unit}"
    return f"{value} B"


def p_value(row: Row) -> str:
    """The paired test's p-value, starred where significant."""
    if row.p_value is None:
        return DASH
    text = "< 0.001" if row.p_value < 0.001 else f"{row.p_value:.3f}"
    return text + ("*" if row.significant else "")


def arrow(higher: bool) -> str:
    return "↑" if higher else "↓"


def versions(run: Run) -> str:
    """The software versions the run recorded, as ``name version, ...``."""
    return ", ".join(f"{k} {v}" for k, v in run.results.versions.items())


def examples(group: Group) -> str:
    """How many examples the group's ranked runs scored."""
    reference = group.reference
    number = reference.results.dataset.examples if reference else None
    return f"{number} examples" if number is not None else "examples: unknown"


def dataset_sha(group: Group, length: int = 12) -> str:
    """The start of the sha256 of the dataset the group's ranked runs scored."""
    reference = group.reference
    sha = reference.results.dataset.sha256 if reference else None
    return str(sha)[:length] if sha else "unknown"
