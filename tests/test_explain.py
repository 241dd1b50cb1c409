"""nlpsuite explain: attributions that find the word a model keys on, IG's completeness, the
ONNX backend agreeing with torch, faithfulness measures, question answering, and the CLI."""

from __future__ import annotations

import json
import random
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from nlpsuite.errors import NlpsuiteError
from nlpsuite.explanations import (
    DELETED,
    Explanation,
    Prepared,
    WordSpan,
    align_tokens,
    faithfulness,
    merge_to_words,
    split_words,
    top_k_count,
)
from tests import tiny_models
from tests.helpers import nlpsuite, one_error_line

pytest.importorskip("captum")

KEY = "great"
NEUTRAL = (
    "the", "a", "film", "movie", "story", "plot", "actors", "acting", "was", "is", "it", "and",
    "of", "this", "that", "one", "two", "old", "new", "long", "short", "book", "music", "art",
    "city", "house", "day", "night", "time", "people",
)
SENTENCES = [
    "the film was great and the plot was long",
    "a great story of this old city",
    "music and art were great",
    "great acting in one long movie",
]
METHODS = ("ig", "occlusion", "lime", "shap")


def synthetic(count: int, seed: int) -> list[tuple[str, int]]:
    """Sentences of neutral words; those with "great" somewhere are POSITIVE (1)."""
    chooser = random.Random(seed)
    made = []
    for _ in range(count):
        words = chooser.choices(NEUTRAL, k=chooser.randint(3, 9))
        positive = chooser.random() < 0.5
        if positive:
            words.insert(chooser.randint(0, len(words)), KEY)
        made.append((" ".join(words), int(positive)))
    return made


@pytest.fixture(scope="session")
def keyed_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny BERT trained here to say POSITIVE exactly when "great" is in the text."""
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    folder = tiny_models.build_bert_classifier(tmp_path_factory.mktemp("keyed"), seed=3)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = BertForSequenceClassification.from_pretrained(str(folder))
    model.train()
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4)
    data = synthetic(3200, seed=1)
    for step in range(150):
        chunk = data[(step * 16) % len(data):][:16]
        batch = tokenizer([text for text, _ in chunk], padding=True, return_tensors="pt")
        loss = model(**batch, labels=torch.tensor([label for _, label in chunk])).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    model.save_pretrained(folder)
    return folder


def explain(model: Path, method: str, texts: list[str], **options: Any) -> list[Explanation]:
    from nlpsuite.explaining import load_explainer

    return load_explainer("sentiment", str(model), method=method, **options).explain(texts)


def without_words(prepared: Prepared, masks: list[list[bool]]) -> list[float]:
    return prepared.probability([prepared.masked(mask, DELETED) for mask in masks])


def top_word(explanation: Explanation) -> str:
    return max(explanation.words, key=lambda word: word.score).word


# Pure arithmetic.

def test_words_and_sub_tokens_merge() -> None:
    words = split_words("Un-great, film!", "text")
    assert [(w.word, w.start, w.end) for w in words] == [
        ("Un", 0, 2), ("-", 2, 3), ("great", 3, 8), (",", 8, 9), ("film", 10, 14), ("!", 14, 15)]
    # CLS, "gr" "##eat" (one word), "film", SEP; "Un" "-" "," "!" cut off by truncation.
    offsets = [(0, 0), (3, 5), (5, 8), (10, 14), (0, 0)]
    kept, token_words = align_tokens([words], offsets, [None, 0, 0, 0, None])
    assert [w.word for w in kept] == ["great", "film"]
    assert token_words == (None, 0, 0, 1, None)
    assert merge_to_words([9.0, 0.25, 0.5, -1.0, 9.0], token_words, 2) == [0.75, -1.0]


def test_faithfulness_by_hand() -> None:
    # Ten words, word 3 ranked first. Bins: 1% and 5% are 0 words (skipped, ferret's floor),
    # 10% is 1 word, 20% 2 words, 50% 5 words.
    assert [top_k_count(k, 10) for k in (0.01, 0.05, 0.1, 0.2, 0.5)] == [0, 0, 1, 2, 5]
    scores = [0.5, 0.4, 0.3, 0.9, 0.2, 0.1, 0.0, -0.1, -0.2, -0.3]
    asked: list[list[bool]] = []

    def probability(masks: list[list[bool]]) -> list[float]:
        asked.extend(masks)
        return [0.2 + 0.1 * sum(mask) / len(mask) if mask[3] else 0.1 for mask in masks]

    comprehensiveness, sufficiency = faithfulness(scores, [], 0.8, probability)
    # Removed top 1, 2, 5 (word 3 always among them): p = 0.1 each -> 0.7.
    assert comprehensiveness == pytest.approx(0.7)
    # Kept top 1, 2, 5: p = 0.2 + 0.1 * n / 10.
    assert sufficiency == pytest.approx(0.8 - (0.21 + 0.22 + 0.25) / 3)
    assert len(asked) == 6 and not asked[0][3] and asked[1] == [i == 3 for i in range(10)]


def test_faithfulness_never_removes_what_is_not_removable() -> None:
    scores = [5.0, 1.0, 0.0, -1.0]
    removable = [False, True, True, True]  # word 0: the answer
    masks: list[list[bool]] = []

    def probability(given: list[list[bool]]) -> list[float]:
        masks.extend(given)
        return [0.5] * len(given)

    faithfulness(scores, removable, 1.0, probability)
    assert masks and all(mask[0] for mask in masks)


def test_explanation_record_schema(keyed_classifier: Path) -> None:
    record = explain(keyed_classifier, "occlusion", [SENTENCES[1]])[0].to_json()
    assert set(record) == {"task", "method", "label", "probability", "input", "words",
                           "comprehensiveness", "sufficiency", "convergence_delta", "attention"}
    assert record["input"] == {"text": SENTENCES[1]} and record["convergence_delta"] is None
    for word in record["words"]:
        assert SENTENCES[1][word["start"]:word["end"]] == word["word"]
        assert word["field"] == "text"
    json.dumps(record)


# Sanity: every method finds the word the model keys on.

@pytest.mark.parametrize("method", METHODS)
def test_every_method_ranks_the_key_word_first(keyed_classifier: Path, method: str) -> None:
    explanations = explain(keyed_classifier, method, SENTENCES)
    for explanation in explanations:
        assert explanation.label == "POSITIVE" and explanation.probability > 0.9
        assert top_word(explanation) == KEY, explanation.words


def test_lime_and_shap_are_seeded(keyed_classifier: Path) -> None:
    first = explain(keyed_classifier, "lime", SENTENCES[:1], seed=7)[0]
    again = explain(keyed_classifier, "lime", SENTENCES[:1], seed=7)[0]
    assert first.words == again.words


def test_integrated_gradients_are_complete(keyed_classifier: Path) -> None:
    import torch

    from nlpsuite.explaining import integrated_gradients, load_explainer

    explainer = load_explainer("sentiment", str(keyed_classifier))
    prepared = explainer.explainable.prepare(explainer.task.make_input(SENTENCES[0], "t"), None)
    # The trained model's probability jumps from ~0 to ~1 within a short stretch of the path
    # from the PAD baseline: it takes a few hundred steps for the integral to converge.
    token_scores, delta = integrated_gradients(prepared, 400, 100)
    assert prepared.gradients is not None
    forward = prepared.gradients.forwards[0]
    with torch.no_grad():
        full = float(forward(torch.tensor([list(prepared.input_ids)]))[0])
        baseline = float(forward(torch.tensor([prepared.baseline_ids()]))[0])
    # captum's delta is sum(attributions) - (f(x) - f(baseline)).
    assert sum(token_scores) - (full - baseline) == pytest.approx(delta, abs=1e-4)
    assert abs(delta) < 0.05
    assert full == pytest.approx(prepared.probability([list(prepared.input_ids)])[0], abs=1e-5)


def test_label_can_be_chosen_and_unknown_labels_are_refused(keyed_classifier: Path) -> None:
    against = explain(keyed_classifier, "occlusion", SENTENCES[:1], label="NEGATIVE")[0]
    assert against.label == "NEGATIVE" and against.probability < 0.1
    assert min(against.words, key=lambda word: word.score).word == KEY
    with pytest.raises(NlpsuiteError, match=r"unknown label 'MAYBE'.*NEGATIVE, POSITIVE"):
        explain(keyed_classifier, "occlusion", SENTENCES[:1], label="MAYBE")


def test_attention_is_word_to_word(keyed_classifier: Path) -> None:
    explanation = explain(keyed_classifier, "occlusion", SENTENCES[:1], attention=True)[0]
    attention = explanation.attention
    assert attention is not None and (attention.layers, attention.heads) == (2, 2)
    count = len(explanation.words)
    for layer in attention.weights:
        for head in layer:
            assert len(head) == count and all(len(row) == count for row in head)
            # Rows sum to 1 less what the dropped CLS/SEP tokens took.
            assert all(0.0 < sum(row) <= 1.0001 for row in head)


# Faithfulness on the trained model.

def test_ig_is_more_comprehensive_than_a_random_ranking(keyed_classifier: Path) -> None:
    from nlpsuite.explaining import load_explainer

    explainer = load_explainer("sentiment", str(keyed_classifier), method="ig")
    chooser = random.Random(0)
    ig_total = random_total = 0.0
    for text in SENTENCES:
        found = explainer.explain([text])[0]
        ig_total += found.comprehensiveness
        prepared = explainer.explainable.prepare(explainer.task.make_input(text, "t"), None)
        shuffled = [chooser.random() for _ in prepared.words]
        random_total += faithfulness(shuffled, (), found.probability,
                                     partial(without_words, prepared))[0]
        # Keeping the top words keeps "great": the label barely moves.
        assert found.sufficiency < 0.1
    assert ig_total > random_total + 0.5


# Backends.

def test_onnx_occlusion_agrees_with_torch(keyed_classifier: Path) -> None:
    pytest.importorskip("onnxruntime")
    on_torch = explain(keyed_classifier, "occlusion", SENTENCES)
    on_onnx = explain(keyed_classifier, "occlusion", SENTENCES, backend="onnx")
    for ours, theirs in zip(on_onnx, on_torch, strict=True):
        assert [w.word for w in ours.words] == [w.word for w in theirs.words]
        assert top_word(ours) == top_word(theirs)
        for mine, other in zip(ours.words, theirs.words, strict=True):
            assert mine.score == pytest.approx(other.score, abs=1e-3)
        assert ours.comprehensiveness == pytest.approx(theirs.comprehensiveness, abs=1e-3)


def test_ig_on_onnx_is_refused() -> None:
    from nlpsuite.explaining import check_method

    with pytest.raises(NlpsuiteError, match="method ig needs gradients; backend onnx has none"):
        check_method("ig", "onnx")


# Question answering.

@pytest.mark.parametrize("method", ["ig", "occlusion"])
def test_question_answering_explains_the_span(tiny_qa: Path, method: str) -> None:
    from nlpsuite.explaining import load_explainer

    record = {"question": "where is the tower", "context": "the tower is in paris , france ."}
    explanation = load_explainer("question-answering", str(tiny_qa),
                                 method=method).explain([record])[0]
    fields = [word.field for word in explanation.words]
    assert "question" in fields and "context" in fields
    assert fields == sorted(fields, key=lambda f: f != "question")  # question words first
    assert all(abs(word.score) < 1e6 for word in explanation.words)
    assert explanation.label and explanation.label in record["context"]
    from nlpsuite.lookup import run

    answered = run("question-answering", [record], str(tiny_qa))[0]
    assert explanation.label == answered.answer
    assert explanation.probability == pytest.approx(answered.score, abs=1e-4)
    if method == "ig":
        assert explanation.convergence_delta is not None


# The command line.

def test_cli_terminal_json_and_html(keyed_classifier: Path, tmp_path: Path) -> None:
    model = str(keyed_classifier)
    shown = nlpsuite("explain", "sentiment", "--model", model, "--method", "occlusion",
                     SENTENCES[0])
    assert shown.returncode == 0, shown.stderr
    assert "great[+" in shown.stdout and "POSITIVE" in shown.stdout
    as_json = nlpsuite("explain", "sentiment", "--model", model, "--method", "shap", "--json",
                       *SENTENCES[:2])
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert len(records) == 2 and {"words", "comprehensiveness", "label"} <= set(records[0])
    page = tmp_path / "explain.html"
    written = nlpsuite("explain", "sentiment", "--model", model, "--html", str(page),
                       "--attention", "--steps", "8", "--input", "-",
                       stdin=json.dumps({"text": SENTENCES[2]}) + "\n")
    assert written.returncode == 0, written.stderr
    assert page.read_text().startswith("<!doctype html>") and "great" in page.read_text()


@pytest.mark.parametrize(("args", "message"), [
    (["--method", "saliency"], "unknown method 'saliency' (methods: ig, occlusion, lime, shap)"),
    (["--backend", "onnx"], "method ig needs gradients; backend onnx has none: use occlusion, "
                            "lime or shap"),
    (["--label", "MAYBE"], "unknown label 'MAYBE'"),
])
def test_cli_errors_are_one_line_and_exit_2(keyed_classifier: Path, args: list[str],
                                           message: str) -> None:
    done = nlpsuite("explain", "sentiment", "--model", str(keyed_classifier), *args, "fine")
    assert done.returncode == 2
    assert message in one_error_line(done.stderr)


def test_cli_task_without_hook() -> None:
    done = nlpsuite("explain", "translation", "text")
    assert done.returncode == 2
    assert one_error_line(done.stderr) == (
        "nlpsuite: error: task translation cannot be explained (its plugin gives no explain "
        "hook)")


def test_word_spans_are_values() -> None:
    assert WordSpan("a", 0, 1, "text") == split_words("a", "text")[0]


def test_missing_captum_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    from nlpsuite.explaining import require_captum

    monkeypatch.setitem(sys.modules, "captum", None)  # import captum now raises ImportError
    with pytest.raises(NlpsuiteError, match=r"^nlpsuite explain needs captum: pip install "
                                            r"'nlpsuite\[explain\]'$"):
        require_captum()


def test_cli_help_names_the_methods() -> None:
    shown = nlpsuite("explain", "--help")
    assert shown.returncode == 0 and "ig|occlusion|lime|shap" in shown.stdout


# nlpsuite eval --explain: faithfulness as metrics, explanations cached beside the predictions.

def keyed_dataset(folder: Path) -> Path:
    data = folder / "keyed.jsonl"
    rows = [{"id": f"k{i}", "text": text, "reference": "POSITIVE" if label else "NEGATIVE"}
            for i, (text, label) in enumerate(synthetic(12, seed=9))]
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return data


def explained_eval(model: Path, data: Path, out: Path, *extra: str) -> dict[str, Any]:
    done = nlpsuite("eval", "sentiment", "-m", str(model), "-d", str(data), "--out", str(out),
                    "--bootstrap", "200", "-q", *extra)
    assert done.returncode == 0, done.stderr
    results: dict[str, Any] = json.loads((out / "results.json").read_text())
    return results


def test_eval_explain_adds_faithfulness_with_intervals(keyed_classifier: Path,
                                                       tmp_path: Path) -> None:
    data = keyed_dataset(tmp_path)
    results = explained_eval(keyed_classifier, data, tmp_path / "run", "--explain", "occlusion")
    rows = [json.loads(line) for line in
            (tmp_path / "run" / "explanations.occlusion.jsonl").read_text().splitlines()]
    assert [row["id"] for row in rows] == [f"k{i}" for i in range(12)]
    for measure in ("comprehensiveness", "sufficiency"):
        score = results["metrics"][f"{measure}[occlusion]"]
        mean = sum(row[measure] for row in rows) / len(rows)
        assert score["value"] == pytest.approx(mean, abs=1e-12)
        low, high = score["ci95"]
        assert low <= score["value"] <= high and low < high
    assert results["metrics"]["comprehensiveness[occlusion]"]["higher_is_better"] is True
    assert results["metrics"]["sufficiency[occlusion]"]["higher_is_better"] is False
    assert results["request"]["explain"] == "occlusion"
    assert "--explain occlusion" in results["command"]


def test_eval_explain_resumes_from_its_cache(keyed_classifier: Path, tmp_path: Path) -> None:
    data = keyed_dataset(tmp_path)
    out = tmp_path / "run"
    first = explained_eval(keyed_classifier, data, out, "--explain", "occlusion")
    partial = out / "explanations.occlusion.partial.jsonl"
    lines = partial.read_text().splitlines(keepends=True)
    # An interrupted run: four explanations cached, the fifth cut short, no final files.
    partial.write_text("".join(lines[:4]) + lines[4][:20])
    (out / "results.json").unlink()
    (out / "explanations.occlusion.jsonl").unlink()
    again = explained_eval(keyed_classifier, data, out, "--explain", "occlusion")
    assert again["metrics"] == first["metrics"]
    assert partial.read_text() == "".join(lines)


@pytest.mark.parametrize(("task", "method", "message"), [
    ("translation", "ig", "task translation cannot be explained"),
    ("sentiment", "saliency", "unknown method 'saliency'"),
])
def test_eval_explain_refuses_before_predicting(task: str, method: str, message: str,
                                                tmp_path: Path) -> None:
    done = nlpsuite("eval", task, "-d", "sentiment-mini", "--out", str(tmp_path / "run"),
                    "--explain", method)
    assert done.returncode == 2 and message in one_error_line(done.stderr)
    assert not (tmp_path / "run").exists()


def test_a_suite_compares_explanation_methods_on_the_leaderboard(keyed_classifier: Path,
                                                                 tmp_path: Path) -> None:
    suite = tmp_path / "suite.toml"
    suite.write_text(f"""
[models]
keyed = {{ path = "{keyed_classifier}" }}
[defaults]
bootstrap = 100
[[runs]]
task = "sentiment"
models = ["keyed"]
dataset = "{keyed_dataset(tmp_path)}"
explain = "occlusion"
[[runs]]
task = "sentiment"
models = ["keyed"]
dataset = "{keyed_dataset(tmp_path)}"
explain = "shap"
""")
    done = nlpsuite("bench", str(suite), "--out", str(tmp_path / "results"), "-q")
    assert done.returncode == 0, done.stderr
    assert "explained by occlusion" in done.stdout and "explained by shap" in done.stdout
    board = nlpsuite("leaderboard", str(tmp_path / "results"))
    assert board.returncode == 0, board.stderr
    for column in ("comprehensiveness[occlusion]", "sufficiency[shap]"):
        assert column in board.stdout
