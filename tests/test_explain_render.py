"""Explanations rendered for people (issue 21, parts 3 and 4): the terminal in plain and coloured
form, and the HTML heatmap with its attention view, opened in headless Chromium where a word is
clicked and the attention shown follows it; a screenshot is saved."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest

from nlpsuite import NlpsuiteError
from nlpsuite.report.explanations import (
    NEGATIVE_RGB,
    POSITIVE_RGB,
    ExplanationRecord,
    render_html,
    render_terminal,
    script_json,
    shade,
)
from tests.helpers import browse, chromium
from tests.test_report import ARTIFACTS

ANSI = re.compile(r"\x1b\[[0-9;]*m")
SCORE = re.compile(r"\[[+-][0-9.e+-]+\]")


def words(text: str, scored: list[tuple[str, float]], field: str = "text") -> list[dict[str, Any]]:
    """Word records for ``scored`` (each word found after the previous one) in ``text``."""
    out, cursor = [], 0
    for word, score in scored:
        start = text.index(word, cursor)
        cursor = start + len(word)
        out.append({"word": word, "start": start, "end": cursor, "score": score, "field": field})
    return out


def attention(layers: int, heads: int, count: int) -> dict[str, Any]:
    """Weights that differ by layer, head and from-word; each row sums to 1."""
    def row(layer: int, head: int, source: int) -> list[float]:
        focus = (source + head + layer) % count  # each head looks mostly at one word
        raw = [(6.0 if to == focus else 0.0) + 1.0 + (layer + head * 2 + source * to) % 5
               for to in range(count)]
        return [value / sum(raw) for value in raw]

    weights = [[[row(layer, head, source) for source in range(count)] for head in range(heads)]
               for layer in range(layers)]
    return {"layers": layers, "heads": heads, "weights": weights}


SENTIMENT_TEXT = "The plot was  great,\nbut the acting? Not good."
SENTIMENT: dict[str, Any] = {
    "task": "sentiment", "method": "ig", "label": "POSITIVE", "probability": 0.93,
    "input": {"text": SENTIMENT_TEXT},
    "words": words(SENTIMENT_TEXT, [("The", 0.01), ("plot", 0.05), ("was", 0.0), ("great", 0.61),
                                    ("but", -0.08), ("the", 0.0004), ("acting", 0.02),
                                    ("Not", -0.3), ("good", 0.12)]),
    "comprehensiveness": 0.41, "sufficiency": 0.05, "convergence_delta": 0.001,
    "attention": attention(2, 3, 9),
}
QUESTION, CONTEXT = "Who wrote it?", "It was written by Ada Lovelace in 1843."
QA: dict[str, Any] = {
    "task": "question-answering", "method": "occlusion", "label": "Ada Lovelace",
    "probability": 0.71, "input": {"question": QUESTION, "context": CONTEXT},
    "words": words(QUESTION, [("Who", 0.2), ("wrote", 0.3), ("it", -0.05)], "question")
    + words(CONTEXT, [("It", 0.0), ("was", 0.01), ("written", 0.2), ("by", 0.1), ("Ada", 0.9),
                      ("Lovelace", 0.8), ("in", -0.02), ("1843", -0.4)], "context"),
    "comprehensiveness": 0.52, "sufficiency": 0.1, "convergence_delta": None, "attention": None,
}
HOSTILE_TEXT = 'Use <b>bold</b> & "</script><script>document.title=\'x\'</script>" <!-- ok'
HOSTILE: dict[str, Any] = {
    "task": "sentiment", "method": "lime", "label": "<i>NEG</i>", "probability": 0.6,
    "input": {"text": HOSTILE_TEXT},
    "words": words(HOSTILE_TEXT, [("Use", 0.1), ("<b>bold</b>", -0.5), ("</script>", 0.3),
                                  ("<!--", -0.1), ("ok", 0.02)]),
    "comprehensiveness": 0.2, "sufficiency": 0.3, "convergence_delta": None,
    "attention": attention(1, 2, 5),
}
RECORDS = [SENTIMENT, QA, HOSTILE]


# The terminal.

def test_plain_terminal_keeps_the_text_and_shows_signed_scores() -> None:
    text, footer = render_terminal(SENTIMENT, color=False).rsplit("\n", 1)
    assert SCORE.sub("", text) == SENTIMENT_TEXT  # spaces, newline and punctuation as they were
    assert "great[+0.61]," in text and "Not[-0.30]" in text and "but[-0.08]" in text
    assert "the[+4.0e-04]" in text  # a tiny score is not shown as +0.00
    assert ANSI.search(text) is None
    assert footer == ("label POSITIVE  probability 0.9300  method ig  comprehensiveness 0.4100  "
                      "sufficiency 0.0500  convergence delta +1.0e-03")


def test_question_answering_gets_one_line_per_field() -> None:
    lines = render_terminal(QA, color=False).splitlines()
    assert [line.split(":", 1)[0] for line in lines[:2]] == ["question", "context"]
    assert SCORE.sub("", lines[0]) == f"question: {QUESTION}"
    assert SCORE.sub("", lines[1]) == f"context: {CONTEXT}"
    assert "Ada[+0.90]" in lines[1] and "1843[-0.40]" in lines[1]
    assert lines[2].startswith("label Ada Lovelace  probability 0.7100  method occlusion")
    assert "convergence" not in lines[2]  # occlusion has no convergence delta


def backgrounds(coloured: str) -> dict[str, tuple[int, int, int]]:
    """Each coloured word and its 24-bit background."""
    found = re.findall(r"\x1b\[48;2;(\d+);(\d+);(\d+)m\x1b\[38;2;[\d;]+m([^\x1b]*)\x1b\[0m",
                       coloured)
    return {word: (int(r), int(g), int(b)) for r, g, b, word in found}


def test_colour_terminal_is_green_for_positive_and_red_for_negative() -> None:
    coloured = render_terminal(SENTIMENT, color=True)
    text = coloured.rsplit("\n", 1)[0]
    assert ANSI.sub("", text) == SENTIMENT_TEXT and "[+" not in text
    shown = backgrounds(coloured)
    assert shown["great"] == POSITIVE_RGB  # the largest |score| gets the full colour
    red, green, _ = shown["Not"]
    assert red > green  # negative: red
    red, green, _ = shown["good"]
    assert green > red  # positive: green
    # Intensity follows |score| / max |score|: a weaker word is nearer white.
    assert sum(shown["plot"]) > sum(shown["good"]) > sum(shown["great"])
    assert shown["was"] == (255, 255, 255)


def test_shade_spans_white_to_the_full_colours() -> None:
    assert shade(0.0, 1.0) == (255, 255, 255)
    assert shade(2.0, 2.0) == POSITIVE_RGB and shade(-5.0, 2.0) == NEGATIVE_RGB
    assert shade(float("nan"), 1.0) == (255, 255, 255)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"words": [{"word": "x", "start": 3, "end": 99, "score": 0.1}]},
         "offsets 3:99 lie outside field 'text'"),
        ({"words": [{"word": "x", "start": 0, "end": 2, "score": 0.1, "field": "context"}]},
         "field 'context' is not in the record's input"),
        ({"words": [{"word": "x", "start": 0, "end": 2}]}, "missing field 'score'"),
        ({"input": None}, "missing field 'input'"),
        ({"attention": {"layers": 1, "heads": 1, "weights": [[[[1.0]]]]}},
         "'attention' must be null or"),
        ({"attention": {**SENTIMENT["attention"], "layers": 3}}, "'attention' must be null or"),
        ({"attention": {"layers": 1, "heads": 1, "weights": [[["a"]]]}},
         "'attention' must be null or"),
        ({"probability": "high"}, "field 'probability' must be a number or null"),
    ],
)
def test_a_bad_record_is_a_one_line_error(change: dict[str, Any], message: str) -> None:
    with pytest.raises(NlpsuiteError, match=re.escape(message)) as raised:
        render_terminal({**SENTIMENT, **change}, color=False)
    assert "\n" not in str(raised.value)
    with pytest.raises(NlpsuiteError, match=r"^explanation record 2: "):
        render_html([SENTIMENT, {**SENTIMENT, **change}])


# The HTML page.

def test_html_escapes_every_text_and_has_a_row_per_record() -> None:
    page = render_html(RECORDS, title="<my> explanations")
    assert page.count('<tr class="example"') == 3
    assert page.count('<tr class="attention-row"') == 2  # the QA record has no attention
    assert "<b>bold</b>" not in page and "&lt;b&gt;bold&lt;/b&gt;" in page
    assert "<i>NEG</i>" not in page and "&lt;i&gt;NEG&lt;/i&gt;" in page
    assert "<title>&lt;my&gt; explanations</title>" in page
    # Only the page's own script and the two data blocks open or close a <script>.
    assert page.count("<script") == 3 and page.count("</script>") == 3
    assert "<!--" not in page
    # Self-contained: nothing is fetched.
    assert not re.search(r"https?://|<link|\bsrc=", page)
    blocks = re.findall(r'<script type="application/json" class="attention-data">(.*?)</script>',
                        page, re.S)
    data = json.loads(blocks[1])
    assert data["words"] == [word["word"] for word in HOSTILE["words"]]
    sent = HOSTILE["attention"]["weights"][0][1][2]
    assert data["weights"][0][1][2] == [round(w, 4) for w in sent]


def test_script_json_cannot_close_its_element() -> None:
    text = script_json({"w": "</script><!-- & -->"})
    assert "<" not in text and ">" not in text and "&" not in text
    assert json.loads(text) == {"w": "</script><!-- & -->"}


def test_an_empty_page_and_a_record_without_words_render() -> None:
    assert '<tr class="example"' not in render_html([])
    bare = {**SENTIMENT, "words": [], "attention": None}
    assert render_terminal(bare, color=True).startswith(SENTIMENT_TEXT)
    assert ExplanationRecord.of(bare).scale == 1.0


def rgb(css: str) -> tuple[int, int, int]:
    red, green, blue = (int(part) for part in re.findall(r"\d+", css)[:3])
    return red, green, blue


def rounded(weights: list[list[list[list[float]]]], source: int) -> list[list[list[float]]]:
    return [[[round(w, 4) for w in head[source]] for head in layer] for layer in weights]


def test_html_in_a_browser_colours_words_and_follows_the_clicked_word(tmp_path: Path) -> None:
    assert chromium()
    page = tmp_path / "explain.html"
    page.write_text(render_html(RECORDS), encoding="utf-8")
    dumped = browse(page.as_uri() + "#selftest", "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    found = re.search(r'data-selftest="([^"]*)"', dumped.stdout)
    assert found, "the page's self-test did not run"
    report = json.loads(html.unescape(found.group(1)))

    rows = report["rows"]
    assert [row["record"] for row in rows] == ["1", "2", "3"]
    assert rows[0]["text"] == SENTIMENT_TEXT and rows[2]["text"] == HOSTILE_TEXT
    assert rows[1]["text"] == f"question {QUESTION}context {CONTEXT}"
    for row, record in zip(rows, RECORDS, strict=True):
        assert [word["score"] for word in row["words"]] == [w["score"] for w in record["words"]]
        for word in row["words"]:
            red, green, _ = rgb(word["background"])
            if word["score"] > 0.05:
                assert green > red, word
            if word["score"] < -0.05:
                assert red > green, word
    great = next(word for word in rows[0]["words"] if word["text"] == "great")
    assert rgb(great["background"]) == POSITIVE_RGB and great["title"] == "great: +0.6100"
    assert [word["text"] for word in rows[2]["words"]][1:3] == ["<b>bold</b>", "</script>"]

    views = {view["record"]: view for view in report["attention"]}
    assert set(views) == {"1", "3"}
    for number, record in (("1", SENTIMENT), ("3", HOSTILE)):
        view, last = views[number], len(record["words"]) - 1
        weights = record["attention"]["weights"]
        assert view["before"]["from"] == 0 and view["before"]["select"] == "0"
        assert view["before"]["weights"] == rounded(weights, 0)
        assert view["clicked"] == last
        assert view["after"]["from"] == last and view["after"]["select"] == str(last)
        assert view["after"]["weights"] == rounded(weights, last) != view["before"]["weights"]

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "explain-heatmap.png"
    shot.unlink(missing_ok=True)
    done = browse(page.as_uri(), f"--screenshot={shot}", "--window-size=1280,1300")
    assert done.returncode == 0 and shot.stat().st_size > 10_000, done.stderr[-2000:]


# A record from the explanation engine itself, as `nlpsuite explain --json` prints it.

def test_an_engine_record_renders_in_the_terminal_and_the_browser(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    pytest.importorskip("captum")
    from nlpsuite.explaining import explain

    text = "A great film,  not bad at all!"
    explained = explain("sentiment", str(tiny_classifier), [{"text": text}], method="ig",
                        attention=True, steps=8)
    record = json.loads(json.dumps(explained[0].to_json()))  # what a saved JSONL line holds
    plain = render_terminal(record, color=False).splitlines()
    assert SCORE.sub("", plain[0]) == text and plain[1].startswith(f"label {record['label']}")
    assert ANSI.sub("", render_terminal(record, color=True).splitlines()[0]) == text

    page = tmp_path / "engine.html"
    page.write_text(render_html([record]), encoding="utf-8")
    dumped = browse(page.as_uri() + "#selftest", "--dump-dom")
    found = re.search(r'data-selftest="([^"]*)"', dumped.stdout)
    assert found, dumped.stderr[-2000:]
    report = json.loads(html.unescape(found.group(1)))
    assert report["rows"][0]["text"] == text
    (view,) = report["attention"]
    last = len(record["words"]) - 1
    assert view["after"]["weights"] == rounded(record["attention"]["weights"], last)
