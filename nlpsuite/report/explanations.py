"""Word attributions shown to people: coloured in the terminal, and as one self-contained HTML
heatmap page with an attention view.

Both take the JSONL records that ``nlpsuite explain --json`` prints (plain dicts), so a saved
file renders the same as a fresh explanation. A record names the explained ``label``, its
``probability``, the ``method``, the ``input`` fields and ``words``: ``{word, start, end, score,
field}`` in text order, offsets into ``input[field]``. The text is shown exactly as it was, the
characters between words included; each word's colour says the sign of its score (green: toward
the label, red: away from it) and, by its strength, ``|score|`` over the record's largest
``|score|``. Comprehensiveness (higher is more faithful) and sufficiency (lower is more faithful)
are shown beside it.

The HTML page needs no network: its CSS (the leaderboard's, plus ``assets/explanations.css``)
and JavaScript (``assets/explanations.js``) are inlined. A record with ``attention``
(``[layer][head][from_word][to_word]``) gets a section under its row that shows, for a word
chosen by a click or a select box, that word's attention to every word, one table per layer
with the heads as rows; its data travels as JSON in a ``<script type="application/json">``.
"""

from __future__ import annotations

import functools
import html
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nlpsuite.errors import NlpsuiteError
from nlpsuite.report.html_report import asset

POSITIVE_RGB = (0, 128, 60)  # a word's full colour when it pushes toward the label
NEGATIVE_RGB = (200, 30, 30)  # ... and when it pushes away from it
WHITE = (255, 255, 255)
DARK_TEXT = (20, 20, 20)
# Above this intensity the background is dark enough that white text reads better.
LIGHT_TEXT_FROM = 0.55
DASH = "—"
RESET = "\x1b[0m"
Weights = tuple[tuple[tuple[tuple[float, ...], ...], ...], ...]


@dataclass(frozen=True)
class RecordWord:
    """One attributed word: ``text`` is the input's characters at ``start:end`` in ``field``."""

    index: int  # position in the record's ``words``
    word: str
    start: int
    end: int
    score: float
    field: str


@dataclass(frozen=True)
class ExplanationRecord:
    """An ``nlpsuite explain --json`` record, checked: the offsets lie in their fields and the
    attention, when there is one, is ``layers x heads x words x words``."""

    task: str
    method: str
    label: str
    probability: float | None
    inputs: Mapping[str, str]
    words: tuple[RecordWord, ...]
    comprehensiveness: float | None
    sufficiency: float | None
    convergence_delta: float | None
    attention: Weights | None  # [layer][head][from_word][to_word]

    @classmethod
    def of(cls, record: Mapping[str, Any], where: str = "explanation record") -> ExplanationRecord:
        if not isinstance(record, Mapping):
            raise NlpsuiteError(f"{where}: not a JSON object")
        inputs = record.get("input")
        if not isinstance(inputs, Mapping) or not inputs:
            raise NlpsuiteError(f"{where}: missing field 'input' (an object of text fields)")
        raw_words = record.get("words")
        if not isinstance(raw_words, list):
            raise NlpsuiteError(f"{where}: missing field 'words' (a list)")
        texts = {str(name): str(value) for name, value in inputs.items()}
        words = tuple(
            _word(raw, index, texts, f"{where}: word {index}")
            for index, raw in enumerate(raw_words)
        )
        return cls(
            task=str(record.get("task", "")),
            method=str(record.get("method", "")),
            label=str(record.get("label", "")),
            probability=_number(record, "probability", where),
            inputs=texts,
            words=words,
            comprehensiveness=_number(record, "comprehensiveness", where),
            sufficiency=_number(record, "sufficiency", where),
            convergence_delta=_number(record, "convergence_delta", where),
            attention=_attention(record.get("attention"), len(words), where),
        )

    @property
    def fields(self) -> tuple[str, ...]:
        """The input fields that hold words, in the order the words come (question, context)."""
        return tuple(dict.fromkeys(word.field for word in self.words)) or tuple(self.inputs)

    @property
    def scale(self) -> float:
        """The largest ``|score|``: a word with it gets the full colour."""
        return max((abs(word.score) for word in self.words), default=0.0) or 1.0

    def pieces(self, field: str) -> list[tuple[str, RecordWord | None]]:
        """``field``'s text cut into words and the characters between them (``None``)."""
        text, cursor = self.inputs[field], 0
        out: list[tuple[str, RecordWord | None]] = []
        for word in sorted((w for w in self.words if w.field == field), key=lambda w: w.start):
            start = max(word.start, cursor)  # overlapping words: each character shown once
            if start > cursor:
                out.append((text[cursor:start], None))
            out.append((text[start:word.end], word))
            cursor = max(cursor, word.end)
        if cursor < len(text):
            out.append((text[cursor:], None))
        return out


def _word(raw: Any, index: int, texts: Mapping[str, str], where: str) -> RecordWord:
    if not isinstance(raw, Mapping):
        raise NlpsuiteError(f"{where}: not a JSON object")
    field = str(raw.get("field") or next(iter(texts)))
    if field not in texts:
        raise NlpsuiteError(f"{where}: field '{field}' is not in the record's input")
    try:
        start, end, score = int(raw["start"]), int(raw["end"]), float(raw["score"])
    except KeyError as missing:
        raise NlpsuiteError(f"{where}: missing field {missing}") from None
    except (TypeError, ValueError):
        raise NlpsuiteError(f"{where}: start, end and score must be numbers") from None
    if not 0 <= start <= end <= len(texts[field]):
        raise NlpsuiteError(
            f"{where}: offsets {start}:{end} lie outside field '{field}' "
            f"({len(texts[field])} characters)"
        )
    word = str(raw.get("word", texts[field][start:end]))
    return RecordWord(index, word, start, end, score, field)


def _number(record: Mapping[str, Any], name: str, where: str) -> float | None:
    value = record.get(name)
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise NlpsuiteError(f"{where}: field '{name}' must be a number or null") from None


def _attention(raw: Any, words: int, where: str) -> Weights | None:
    if raw is None:
        return None
    problem = NlpsuiteError(
        f"{where}: 'attention' must be null or {{layers, heads, weights}} with weights "
        f"[layer][head][from_word][to_word] over the record's {words} words"
    )
    if not isinstance(raw, Mapping) or not isinstance(raw.get("weights"), list):
        raise problem
    try:
        table = tuple(
            tuple(tuple(tuple(float(w) for w in row) for row in head) for head in layer)
            for layer in raw["weights"]
        )
    except (TypeError, ValueError):
        raise problem from None
    square = all(len(head) == words and all(len(row) == words for row in head)
                 for layer in table for head in layer)
    heads = {len(layer) for layer in table}
    if not square or len(table) != raw.get("layers") or heads not in (set(), {raw.get("heads")}):
        raise problem
    return table


def intensity(score: float, scale: float) -> float:
    """How strong a word's colour is: ``|score| / scale``, at most 1."""
    return min(abs(score) / scale, 1.0) if scale > 0 and math.isfinite(score) else 0.0


def shade(score: float, scale: float) -> tuple[int, int, int]:
    """The background for ``score``: white blended toward green (positive) or red (negative)."""
    full, share = POSITIVE_RGB if score >= 0 else NEGATIVE_RGB, intensity(score, scale)
    red, green, blue = (round(w + (f - w) * share) for w, f in zip(WHITE, full, strict=True))
    return red, green, blue


def ink(score: float, scale: float) -> tuple[int, int, int]:
    """The text colour that reads on :func:`shade`'s background."""
    return WHITE if intensity(score, scale) > LIGHT_TEXT_FROM else DARK_TEXT


def signed(score: float) -> str:
    """A score as ``+0.61``; a tiny nonzero one in exponent form rather than ``+0.00``."""
    return f"{score:+.2f}" if score == 0 or abs(score) >= 0.005 else f"{score:+.1e}"


def counted(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def decimals(value: float | None) -> str:
    return DASH if value is None else f"{value:.4f}"


def delta(value: float) -> str:
    """Integrated gradients' convergence delta: often around 1e-5, so in exponent form."""
    return f"{value:+.1e}"


def summary(record: ExplanationRecord) -> str:
    """The line under the text: label, probability, method and the faithfulness measures."""
    parts = [
        f"label {record.label}",
        f"probability {decimals(record.probability)}",
        f"method {record.method}",
        f"comprehensiveness {decimals(record.comprehensiveness)}",
        f"sufficiency {decimals(record.sufficiency)}",
    ]
    if record.convergence_delta is not None:
        parts.append(f"convergence delta {delta(record.convergence_delta)}")
    return "  ".join(parts)


# The terminal.

def render_terminal(record: Mapping[str, Any], color: bool) -> str:
    """``record``'s text with each word coloured by its score (ANSI 24-bit background), or with
    plain ``word[+0.61]`` scores when ``color`` is False; then the summary line. Records with
    several fields (question answering) get one line per field, named."""
    shown = ExplanationRecord.of(record)
    named = len(shown.fields) > 1
    lines = [
        (f"{field}: " if named else "")
        + "".join(_terminal_piece(text, word, shown.scale, color)
                  for text, word in shown.pieces(field))
        for field in shown.fields
    ]
    return "\n".join([*lines, summary(shown)])


def _terminal_piece(text: str, word: RecordWord | None, scale: float, color: bool) -> str:
    if word is None:
        return text
    if not color:
        return f"{text}[{signed(word.score)}]"
    # Both colours are set, so the word reads on a dark or a light terminal alike.
    back, fore = shade(word.score, scale), ink(word.score, scale)
    return f"\x1b[48;2;{_ansi(back)}m\x1b[38;2;{_ansi(fore)}m{text}{RESET}"


def _ansi(rgb: tuple[int, int, int]) -> str:
    return ";".join(map(str, rgb))


# The HTML page.

@functools.cache
def _css(rgb: tuple[int, int, int]) -> str:
    return f"rgb({rgb[0]},{rgb[1]},{rgb[2]})"


def render_html(records: Sequence[Mapping[str, Any]], title: str = "nlpsuite explain") -> str:
    """One self-contained HTML page: a row per record with its text as a heatmap (exact scores
    in the tooltips), label, probability, method, comprehensiveness and sufficiency; a colour
    legend; and under each record that has attention weights, the attention view."""
    shown = [ExplanationRecord.of(record, f"explanation record {number}")
             for number, record in enumerate(records, 1)]
    rows = "\n".join(_html_row(record, number) for number, record in enumerate(shown, 1))
    return "\n".join([
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title>",
        f"<style>\n{asset('leaderboard.css')}{asset('explanations.css')}</style></head><body>",
        f"<header><h1>{html.escape(title)}</h1>",
        f'<p class="lede">{counted(len(shown), "explanation")}. '
        "Each word's background is its attribution: green pushes toward the explained label, "
        "red away from it, and the stronger the colour, the larger |score| is against the "
        "example's largest. Hover a word for its exact score. <b>Comprehensiveness</b> ↑: how "
        "much the label's probability falls when the top-scored words are removed; "
        "<b>sufficiency</b> ↓: how much it falls when only they are kept (each averaged over "
        "the top 1, 5, 10, 20 and 50% of words). Where a row has attention weights, the section "
        "under it shows a word's attention per layer and head: click a word to choose it.</p>",
        _legend(),
        "</header><main>",
        '<div class="table-wrap"><table class="explanations"><thead><tr>'
        '<th>#</th><th class="text">text</th><th class="text">label</th><th>probability</th>'
        '<th class="text">method</th><th>comprehensiveness ↑</th><th>sufficiency ↓</th>'
        f"</tr></thead><tbody>\n{rows}\n</tbody></table></div>",
        "</main>",
        f"<script>\n{asset('explanations.js')}</script></body></html>",
    ]) + "\n"


def _legend() -> str:
    steps = (-1.0, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.0)
    swatches = "".join(
        f'<span class="swatch" style="background:{_css(shade(step, 1.0))};'
        f'color:{_css(ink(step, 1.0))}">{step:+.2f}</span>'
        for step in steps
    )
    return (
        f'<p class="legend" aria-label="colour legend">score / largest |score|: {swatches} '
        '<span class="ci">red: against the label · green: toward it</span></p>'
    )


def _html_row(record: ExplanationRecord, number: int) -> str:
    fields = "".join(_html_field(record, field) for field in record.fields)
    converged = ("" if record.convergence_delta is None else
                 f'<span class="ci">convergence δ {delta(record.convergence_delta)}</span>')
    task = f'<span class="ci">{html.escape(record.task)}</span>' if record.task else ""
    row = (
        f'<tr class="example" id="example-{number}" data-record="{number}">'
        f'<td>{number}</td><td class="text heat">{fields}</td>'
        f'<td class="text">{html.escape(record.label)}{task}</td>'
        f"<td>{decimals(record.probability)}</td>"
        f'<td class="text">{html.escape(record.method)}{converged}</td>'
        f"<td>{decimals(record.comprehensiveness)}</td><td>{decimals(record.sufficiency)}</td>"
        "</tr>"
    )
    return row if record.attention is None else row + "\n" + _attention_row(record, number)


def _html_field(record: ExplanationRecord, field: str) -> str:
    named = len(record.fields) > 1
    name = f'<span class="field-name">{html.escape(field)}</span> ' if named else ""
    body = "".join(
        html.escape(text) if word is None else _html_word(text, word, record.scale)
        for text, word in record.pieces(field)
    )
    return f'<div class="field" data-field="{html.escape(field)}">{name}{body}</div>'


def _html_word(text: str, word: RecordWord, scale: float) -> str:
    return (
        f'<span class="w" data-i="{word.index}" data-score="{word.score!r}" '
        f'title="{html.escape(word.word)}: {word.score:+.4f}" '
        f'style="background:{_css(shade(word.score, scale))};'
        f'color:{_css(ink(word.score, scale))}">{html.escape(text)}</span>'
    )


def _attention_row(record: ExplanationRecord, number: int) -> str:
    assert record.attention is not None
    layers, heads = len(record.attention), len(record.attention[0]) if record.attention else 0
    data = {
        "words": [word.word for word in record.words],
        "weights": [[[[round(w, 4) for w in row] for row in head] for head in layer]
                    for layer in record.attention],
    }
    return (
        f'<tr class="attention-row" data-record="{number}"><td></td><td colspan="6">'
        f'<div class="attention" data-record="{number}">'
        f'<p class="meta">Attention from <select class="from" aria-label="attention from word">'
        f"</select> to every word ({counted(layers, 'layer')} by {counted(heads, 'head')}; click "
        "a word in the text above to choose it). Darker blue: more attention; hover a cell for "
        "its weight.</p>"
        '<div class="grids"></div>'
        f'<script type="application/json" class="attention-data">{script_json(data)}</script>'
        "</div></td></tr>"
    )


def script_json(value: Any) -> str:
    """``value`` as JSON that cannot end its ``<script>`` element or open a comment in it."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
