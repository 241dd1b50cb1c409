"""The leaderboard as one self-contained HTML page: no network; inline CSS, SVG plots and a few
lines of JavaScript that sort the tables.

The CSS and JavaScript live in ``assets/`` beside this module and are inlined into every page.
"""

from __future__ import annotations

import functools
import html
import importlib.resources
import math
import re
from typing import Any

import nlpsuite
from nlpsuite.report.formatting import (
    DASH,
    Place,
    arrow,
    byte_size,
    command,
    count,
    dataset_sha,
    examples,
    heading,
    model,
    model_text,
    p_value,
    rate,
    score,
    shown_path,
    versions,
)
from nlpsuite.report.ranking import ALPHA, Group, Leaderboard, Run
from nlpsuite.scales import format_interval, format_number, scale_label, titled


@functools.cache
def asset(name: str) -> str:
    """A file shipped in nlpsuite/report/assets, as text (inlined: pages load nothing)."""
    return (importlib.resources.files("nlpsuite.report") / "assets" / name).read_text(
        encoding="utf-8"
    )


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _sort_value(value: float | None) -> str:
    return "" if value is None or math.isnan(value) else repr(float(value))


def to_html(board: Leaderboard) -> str:
    place = Place.of(board)
    nav = " ".join(
        f'<a href="#{group.anchor}">{_e(group.task)} · {_e(shown_path(group.dataset, place))}</a>'
        for group in board.groups
    )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>nlpsuite leaderboard</title>",
        # The newline after <style> (and <script>) keeps pages byte for byte as they were.
        f"<style>\n{asset('leaderboard.css')}</style></head><body>",
        "<header><h1>Leaderboard</h1>",
        f'<p class="lede">{len(board.runs)} runs in {len(board.groups)} task/dataset groups. '
        "Each table ranks models by the task's primary metric (↑ higher is better, ↓ lower is "
        "better; equal scores share a rank, ordered by the next metrics); click a column header "
        "to sort. Scores are on the whole dataset with the 95% "
        "bootstrap confidence interval, on the scale each column's header names (0-100, 0-1, "
        "-1 to 1). <b>p vs #1</b>: paired bootstrap test against the first "
        f"row on the examples both runs share ({board.resamples} resamples, seed {board.seed}); "
        f'<span class="sig">*</span> marks p &lt; {ALPHA}. The plots put each model\'s primary '
        "score (with its interval) against its throughput.</p>",
        f"<nav>{nav}</nav></header><main>",
    ]
    for group in board.groups:
        parts.append(_html_group(group, place))
    if board.skipped:
        items = "".join(f"<li><code>{_e(reason)}</code></li>" for _, reason in board.skipped)
        parts.append(f'<section class="group"><h2>Skipped</h2><ul>{items}</ul></section>')
    parts.append("</main>")
    parts.append(_html_footer(board, place, nlpsuite.__version__))
    parts.append(f"<script>\n{asset('leaderboard.js')}</script></body></html>")
    return "\n".join(parts) + "\n"


def _html_group(group: Group, place: Place) -> str:
    dataset = shown_path(group.dataset, place)
    out = [
        f'<section class="group" id="{group.anchor}">',
        f'<h2>{_e(group.task)} <span class="ds">· {_e(dataset)}</span></h2>',
    ]
    if group.rows:
        out.append(
            f'<p class="meta">Primary metric <b>{_e(group.primary)}</b> '
            f"{arrow(group.higher_is_better)} · {_e(examples(group))} · dataset sha256 "
            f"<code>{_e(dataset_sha(group))}</code></p>"
        )
        out.append(f'<div class="table-wrap">{_html_table(group, place)}</div>')
        out.append(_plot(group))
        notes = [f"{_e(row.model)}: {_e(row.test_note)}" for row in group.rows if row.test_note]
        if group.test_note:
            notes.insert(0, _e(group.test_note))
        if notes:
            out.append('<p class="note">' + "<br>".join(notes) + "</p>")
    if group.not_comparable:
        primary = titled(group.primary, group.scales.get(group.primary))
        items = "".join(
            f"<li><code>{_e(x.run.name)}</code> ({_e(model_text(x.model, x.run, place))}, "
            f"{_e(primary)} {_e(score(x.run, group, group.primary))}): "
            f"{_e('; '.join(x.reasons))}</li>"
            for x in group.not_comparable
        )
        out.append(
            f'<div class="note"><b>Not comparable with the ranked runs</b> (not ranked):'
            f"<ul>{items}</ul></div>"
        )
    out.append("</section>")
    return "\n".join(out)


def _html_table(group: Group, place: Place) -> str:
    heads = [
        '<th data-type="num" data-key="rank">#</th>',
        '<th class="text" data-key="model">model</th>',
    ]
    for metric in group.metrics:
        key = "primary" if metric == group.primary else f"metric:{metric}"
        heads.append(f'<th data-type="num" data-key="{_e(key)}">{_e(heading(group, metric))}</th>')
    heads += [
        '<th data-type="num" data-key="p">p vs #1</th>',
        '<th data-type="num" data-key="rate">examples/s</th>',
        '<th data-type="num" data-key="parameters">parameters</th>',
        '<th data-type="num" data-key="weights">weights</th>',
    ]
    rows = []
    for row in group.rows:
        run = row.run
        label, source = model(row.model, run, place)
        beside = f'<span class="ci">{_e(source)}</span>' if source else ""
        cells = [
            f'<td data-sort="{row.rank}">{row.rank}</td>',
            f'<td class="text model" data-sort="{_e(label)}" title="{_e(source or label)}">'
            f"{_e(label)}{beside}</td>",
        ]
        for metric in group.metrics:
            value = run.value(metric)
            scale = group.scales.get(metric)
            shown = DASH if value is None else format_number(value, scale)
            interval = format_interval(*run.ci(metric), scale)
            if value is not None and interval:
                shown += f' <span class="ci">{interval}</span>'
            cells.append(f'<td data-sort="{_sort_value(value)}">{shown}</td>')
        p = p_value(row)
        p_html = f'<span class="sig">{_e(p)}</span>' if row.significant else _e(p)
        cells += [
            f'<td data-sort="{_sort_value(row.p_value)}">{p_html}</td>',
            f'<td data-sort="{_sort_value(run.examples_per_second)}">'
            f"{rate(run.examples_per_second)}</td>",
            f'<td data-sort="{_sort_value(_float(run.parameters))}">{count(run.parameters)}</td>',
            f'<td data-sort="{_sort_value(_float(run.weights_bytes))}">'
            f"{byte_size(run.weights_bytes)}</td>",
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
    scale = group.scales.get(group.primary)
    axis = titled(group.primary, scale)
    caption = (
        f"{_e(axis)} {arrow(group.higher_is_better)} against examples per "
        "second (log scale when they span more than a factor of 10); bars: 95% CI."
    )
    if missing:
        caption += " Not plotted (no throughput recorded): " + _e(", ".join(missing)) + "."
    rates = [float(row.run.examples_per_second or 0.0) for row in points]
    ys: list[float] = []
    for row in points:
        value = row.run.value(group.primary)
        low, high = row.run.ci(group.primary)
        ys += [y for y in (value, low, high) if y is not None and math.isfinite(y)]
    zero = format_number(0.0, scale)
    if ys and all(format_number(abs(y), scale) == zero for y in ys):
        # Random models score 0: an axis around one point would be made up, not measured.
        return (
            f"<figure><figcaption>Not plotted: every {_e(group.primary)} score "
            f"({_e(scale_label(scale))}) is {zero}, intervals included: nothing to plot."
            f"</figcaption></figure>"
        )
    if not points:
        return f"<figure><figcaption>{caption}</figcaption></figure>"
    width, height = 440, 280
    left, right, top, bottom = 56, 16, 14, 40
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

    def sx(speed: float) -> float:
        value = math.log10(speed) if log else speed
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
            f'text-anchor="middle">{rate(tick) if log else f"{tick:g}"}</text>'
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
        f'text-anchor="middle">{_e(axis)}</text>'
    )
    placed: list[tuple[float, float, float]] = []  # label boxes: left, right, baseline
    for row, speed in zip(points, rates, strict=True):
        value = row.run.value(group.primary)
        assert value is not None
        x, y = sx(speed), sy(value)
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
            f"{_e(row.model)}: {format_number(value, scale)} at {speed:.1f} examples/s</title>"
            "</circle>"
            f'<text x="{x + dx:.1f}" y="{label_y:.1f}" text-anchor="{anchor}">'
            f"{_e(label)}</text>"
        )
    out.append(f"</svg><figcaption>{caption}</figcaption></figure>")
    return "".join(out)


def _run_name(run: Run) -> str:
    """The run's folder name, able to wrap only between its parts (``task--dataset--...``)."""
    parts = [part for part in re.split(r"(?<=--)|(?<=/)", run.name) if part]
    return "<wbr>".join(f'<span class="nowrap">{_e(part)}</span>' for part in parts)


def _html_footer(board: Leaderboard, place: Place, version: str) -> str:
    rows = []
    for run in board.runs:
        results = run.results
        weights = results.model.weights_sha256
        dataset = results.dataset
        rows.append(
            "<tr>"
            f"<td><code>{_run_name(run)}</code></td>"
            f'<td>{_e(shown_path(run.model_id, place))}<br><span class="ci">weights sha256 '
            f"<code>{_e(str(weights)[:16] if weights else 'unknown')}</code></span></td>"
            f'<td>{_e(shown_path(dataset.name, place))}<br><span class="ci">sha256 '
            f"<code>{_e(str(dataset.sha256)[:16])}</code></span></td>"
            f'<td>{_e(versions(run))}<br><span class="ci">device '
            f"{_e('?' if results.device is None else results.device)}</span></td>"
            f"<td><code>{_e(command(run, place))}</code></td>"
            "</tr>"
        )
    return (
        '<footer><h2 style="margin-top:18px">Reproducibility</h2>'
        '<p class="note">Each run, the exact weights and data it used, the software that ran it, '
        "and the command that makes it again. "
        + place.note(lambda text: f"<code>{_e(text)}</code>")
        + "</p>"
        "<table><thead><tr><th>run</th><th>model</th><th>dataset</th><th>versions</th>"
        "<th>command</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
        f'<p class="note">Made by nlpsuite {_e(version)} from <code>{_e(place.root)}/</code>'
        f"{' (' + str(len(board.skipped)) + ' unreadable runs skipped)' if board.skipped else ''}"
        ".</p></footer>"
    )
