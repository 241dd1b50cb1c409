"""Leaderboards from harness results: Markdown, one self-contained HTML page, and JSON.

:func:`build` reads every ``results.json`` under a folder (at any depth) as a
:class:`~nlpsuite.results.RunResult`, groups the runs by task and dataset, and ranks each group's
models by the task's primary metric (:mod:`nlpsuite.report.ranking`, which also runs the paired
bootstrap test of each run against the first). Every metric is shown with its 95% bootstrap
confidence interval, beside examples per second and model size: as Markdown
(:mod:`~nlpsuite.report.markdown`), HTML (:mod:`~nlpsuite.report.html_report`) or versioned JSON
(:mod:`~nlpsuite.report.json_report`, schema in ``docs/leaderboard-schema.md``).

Nothing in the output depends on the time, so the same results give the same files. The Markdown
and HTML show paths relative to the folder that holds the results folder (the JSON keeps them as
recorded), so they carry no absolute paths of the machine that made the runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from nlpsuite.errors import NlpsuiteError
from nlpsuite.records import write_atomic
from nlpsuite.report.html_report import to_html
from nlpsuite.report.json_report import SCHEMA_VERSION, to_json, to_json_text
from nlpsuite.report.markdown import to_markdown
from nlpsuite.report.ranking import (
    ALPHA,
    Excluded,
    Group,
    Leaderboard,
    Row,
    Run,
    build,
    collect,
)

__all__ = [
    "ALPHA",
    "FORMATS",
    "SCHEMA_VERSION",
    "Excluded",
    "Group",
    "Leaderboard",
    "Row",
    "Run",
    "build",
    "collect",
    "parse_formats",
    "render",
    "to_html",
    "to_json",
    "to_markdown",
    "write",
]

FORMATS = {"md": "md", "markdown": "md", "html": "html", "json": "json"}


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
        return to_json_text(board)
    raise NlpsuiteError(f"unknown leaderboard format '{fmt}' (known: md, html, json)")


def write(board: Leaderboard, formats: Sequence[str], out: Path) -> list[Path]:
    """Write ``leaderboard.<format>`` into ``out`` for each format (atomically)."""
    written = []
    for fmt in formats:
        path = out / f"leaderboard.{fmt}"
        write_atomic(path, render(board, fmt))
        written.append(path)
    return written
