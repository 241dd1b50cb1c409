"""The leaderboard as Markdown: a ranked table per task and dataset, then every run's command."""

from __future__ import annotations

from nlpsuite.report.formatting import (
    Place,
    arrow,
    byte_size,
    command,
    count,
    dataset_sha,
    examples,
    heading,
    model_text,
    p_value,
    rate,
    score,
    shown_path,
    versions,
)
from nlpsuite.report.ranking import ALPHA, Leaderboard
from nlpsuite.scales import titled


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(board: Leaderboard) -> str:
    place = Place.of(board)
    lines = [
        "# Leaderboard",
        "",
        f"{len(board.runs)} runs in {len(board.groups)} task/dataset groups. Each table ranks "
        "models by the task's primary metric (↑ higher is better, ↓ lower is better); equal "
        "scores share a rank, ordered by the next metrics. Scores are on the whole dataset, "
        "with the 95% bootstrap confidence interval in brackets, on the scale each column's "
        "header names (0-100, 0-1, -1 to 1). "
        f"**p vs #1**: paired bootstrap test against the first row on the examples both runs "
        f"share ({board.resamples} resamples, seed {board.seed}); * marks p < {ALPHA}.",
    ]
    for group in board.groups:
        lines += ["", f"## {_md(group.task)} · {_md(shown_path(group.dataset, place))}", ""]
        if group.rows:
            lines.append(
                f"Primary metric **{_md(group.primary)}** {arrow(group.higher_is_better)} · "
                f"{examples(group)} · dataset sha256 `{dataset_sha(group)}`"
            )
            lines.append("")
            header = ["#", "model"]
            header += [_md(heading(group, m)) for m in group.metrics]
            header += ["p vs #1", "examples/s", "parameters", "weights"]
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "|".join(["--:", ":--"] + ["--:"] * (len(header) - 2)) + "|")
            for row in group.rows:
                cells = [str(row.rank), _md(model_text(row.model, row.run, place))]
                cells += [score(row.run, group, m) for m in group.metrics]
                cells += [
                    p_value(row),
                    rate(row.run.examples_per_second),
                    count(row.run.parameters),
                    byte_size(row.run.weights_bytes),
                ]
                lines.append("| " + " | ".join(cells) + " |")
            notes = [f"- {row.model}: {row.test_note}" for row in group.rows if row.test_note]
            if group.test_note:
                notes.insert(0, f"- {group.test_note}")
            if notes:
                lines += ["", *notes]
        if group.not_comparable:
            lines += ["", "Not comparable with the ranked runs (not ranked):", ""]
            primary = titled(group.primary, group.scales.get(group.primary))
            for excluded in group.not_comparable:
                shown = score(excluded.run, group, group.primary)
                label = model_text(excluded.model, excluded.run, place)
                lines.append(
                    f"- `{_md(excluded.run.name)}` ({_md(label)}, {_md(primary)} "
                    f"{shown}): {'; '.join(excluded.reasons)}"
                )
    if board.skipped:
        lines += ["", "## Skipped", ""]
        lines += [f"- {_md(reason)}" for _, reason in board.skipped]
    lines += ["", "## Runs", "", place.note(), ""]
    for run in board.runs:
        lines.append(f"- `{_md(run.name)}`: `{command(run, place)}`")
        weights = run.results.model.weights_sha256
        detail = [f"weights sha256 {weights[:12]}" if weights else "weights sha256 unknown"]
        detail.append(f"dataset sha256 {str(run.results.dataset.sha256)[:12]}")
        if run.results.device:
            detail.append(f"device {run.results.device}")
        if versions(run):
            detail.append(versions(run))
        lines.append(f"  ({'; '.join(detail)})")
    return "\n".join(lines) + "\n"
