"""How the Markdown and HTML leaderboards write numbers, scores, models, paths and commands.

Paths: the Markdown and HTML show every absolute path (in commands, model ids, dataset names)
relative to the folder that holds the results folder, and a run's ``--out`` as its folder there,
so a published leaderboard carries no paths of the machine that ran it; leaderboard.json keeps
them as the runs recorded them.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from nlpsuite.report.ranking import Group, Leaderboard, Row, Run
from nlpsuite.scales import format_score, titled

DASH = "—"


def heading(group: Group, metric: str) -> str:
    """A metric's column header: name, scale and direction, e.g. ``exact_match (0-100) ↑``."""
    return f"{titled(metric, group.scales.get(metric))} {arrow(group.directions[metric])}"


def score(run: Run, group: Group, metric: str) -> str:
    """The value with its 95% interval in brackets (the interval left out where undefined), at
    the precision of the metric's scale."""
    return format_score(run.value(metric), *run.ci(metric), group.scales.get(metric), DASH)


@dataclass(frozen=True)
class Place:
    """Where the results are: ``base`` holds the results folder, which is called ``root``."""

    base: Path
    root: str

    @classmethod
    def of(cls, board: Leaderboard) -> Place:
        results = Path(os.path.abspath(board.source))
        return cls(results.parent, results.name)

    def note(self, quote: Callable[[str], str] = lambda text: f"`{text}`") -> str:
        """The rule, naming folders by ``quote`` (Markdown code by default)."""
        return (f"Paths are relative to the folder that holds the results folder "
                f"{quote(f'{self.root}/')}; {quote('leaderboard.json')} keeps them as the runs "
                "recorded them.")


# An absolute path at the start of a word or after ":" (SOURCE:REFERENCE) or "=" (key=value);
# "//" (a URL's host) is no path.
_ABSOLUTE = re.compile(r"(^|[:=])(/(?!/)[^:]*)")


def shown_path(text: str, place: Place) -> str:
    """``text`` with each absolute path in it made relative to ``place.base``."""
    return _ABSOLUTE.sub(lambda m: m[1] + os.path.relpath(m[2], place.base), text)


def command(run: Run, place: Place) -> str:
    """The run's command with paths shown relative, and ``--out`` the run's folder as it is now."""
    try:
        words = shlex.split(run.command)
    except ValueError:  # hand-edited results: shown as recorded
        return run.command
    shown = [
        str(PurePosixPath(place.root) / run.name) if before == "--out" else shown_path(word, place)
        for before, word in zip(["", *words], words, strict=False)
    ]
    return shlex.join(shown)


def model(label: str, run: Run, place: Place) -> tuple[str, str | None]:
    """A row's model label, and the hub id or path to show beside it (None where the label is
    that id already)."""
    label, source = shown_path(label, place), shown_path(run.model_id, place)
    if not run.model_name:  # not a suite's name: the label is the model's own id or folder
        return label, None
    return label, None if label in (source, f"{source} [{run.backend}]") else source


def model_text(label: str, run: Run, place: Place) -> str:
    """``minilm (sentence-transformers/all-MiniLM-L6-v2)``, or the label alone."""
    label, source = model(label, run, place)
    return f"{label} ({source})" if source else label


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
