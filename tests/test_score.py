"""``nlpsuite score`` on the real benchmark files, against the reference figures; its errors; and
``nlpsuite datasets`` with the embedded evaluation sets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nlpsuite import NlpsuiteError
from nlpsuite.metrics import ROUGE, normalize_answer
from nlpsuite.scoring import score_files
from tests.conftest import SHARED_DATASETS
from tests.helpers import nlpsuite, one_error_line
from tests.test_metrics import needs_evaluate, write_metric_dir

WMT = SHARED_DATASETS / "wmt17-en-de-systems"
REFERENCE_DE = WMT / "newstest2017.ref.de"
SQUAD1 = SHARED_DATASETS / "squad-v1.1"
SQUAD2 = SHARED_DATASETS / "squad-v2.0"
QA_DATA = Path(__file__).resolve().parents[1] / "plugins" / "data" / "qa-eval.jsonl"

# From squad-v1.1/README.md: the official v1.1 evaluation (missing ids 0, extra ids ignored).
SQUAD1_OFFICIAL = {
    "bert-ensemble-google-ai": (86.20624408703878, 92.19557978351145),
    "logistic-regression-baseline-stanford": (40.14191106906339, 50.98153647324461),
}
# From squad-v2.0/README.md: the official v2.0 evaluation of the BERT single-model predictions.
SQUAD2_OFFICIAL = {"exact": 78.7417, "f1": 81.7753, "HasAns_exact": 74.1059, "NoAns_exact": 83.3642}


def score_json(*args: str) -> dict[str, Any]:
    done = nlpsuite("score", *args, "--json")
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def values(result: dict[str, Any]) -> dict[str, float]:
    return {name: entry["value"] for name, entry in result["metrics"].items()}


# Translation: the four WMT17 submissions, as sacrebleu scores them.


@pytest.mark.skipif(not WMT.is_dir(), reason="shared WMT17 files not present")
@pytest.mark.parametrize("system", ["uedin-nmt", "LIUM-NMT", "online-B", "PROMT-Rule-based"])
def test_wmt17_systems_score_as_sacrebleu(system: str) -> None:
    import sacrebleu

    hypotheses = WMT / "systems" / f"{system}.de"
    result = score_json("translation", "-p", str(hypotheses), "-r", str(REFERENCE_DE))
    hyp_lines = hypotheses.read_text(encoding="utf-8").split("\n")[:-1]
    ref_lines = REFERENCE_DE.read_text(encoding="utf-8").split("\n")[:-1]
    assert result["examples"] == 3004
    assert values(result) == {
        "bleu": sacrebleu.corpus_bleu(hyp_lines, [ref_lines]).score,
        "chrf": sacrebleu.corpus_chrf(hyp_lines, [ref_lines]).score,
    }
    assert result["metrics"]["bleu"]["signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")


@pytest.mark.skipif(not WMT.is_dir(), reason="shared WMT17 files not present")
def test_text_output_and_several_references(tmp_path: Path) -> None:
    import sacrebleu

    head = 200
    lines = REFERENCE_DE.read_text(encoding="utf-8").split("\n")[:head]
    system = (WMT / "systems" / "online-B.de").read_text(encoding="utf-8").split("\n")[:head]
    hyp, ref_a, ref_b = tmp_path / "hyp.de", tmp_path / "a.de", tmp_path / "b.de"
    hyp.write_text("\n".join(system) + "\n", encoding="utf-8")
    ref_a.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # A second reference: the first with its word order of each line reversed.
    reversed_lines = [" ".join(reversed(line.split())) for line in lines]
    ref_b.write_text("\n".join(reversed_lines) + "\n", encoding="utf-8")
    done = nlpsuite("score", "translation", "-p", str(hyp), "-r", str(ref_a), "-r", str(ref_b))
    assert done.returncode == 0, done.stderr
    bleu_line, chrf_line = done.stdout.splitlines()
    name, value, scale, signature = bleu_line.split("\t")
    expected = sacrebleu.corpus_bleu(system, [lines, reversed_lines]).score
    # BLEU is on sacrebleu's 0-100 scale: 2 decimals, and the scale beside them.
    assert name == "bleu" and value == f"{expected:.2f}" and scale == "(0-100)"
    assert signature.startswith("nrefs:2|")
    assert chrf_line.startswith("chrf\t")


def test_summaries_score_with_rouge(tmp_path: Path) -> None:
    summaries = ["The cat sat on the mat. It slept.", "Rain fell all day in the town."]
    references = ["A cat sat on a mat and slept.", "It rained all day."]
    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp.write_text("\n".join(summaries) + "\n")
    ref.write_text("\n".join(references) + "\n")
    result = score_json("summarization", "-p", str(hyp), "-r", str(ref))
    assert values(result) == {
        metric.name: metric.compute(summaries, [[r] for r in references]) for metric in ROUGE
    }


# Question answering: the official SQuAD figures.


@pytest.mark.skipif(not (SQUAD1 / "dev-v1.1.json").is_file(), reason="SQuAD v1.1 not present")
@pytest.mark.parametrize("name", list(SQUAD1_OFFICIAL))
def test_squad_v1_predictions_score_the_official_figures(name: str) -> None:
    predictions = SQUAD1 / "predictions" / f"{name}.dev-v1.1.json"
    done = nlpsuite(
        "score",
        "question-answering",
        "-p",
        str(predictions),
        "-r",
        str(SQUAD1 / "dev-v1.1.json"),
        "--json",
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert values(result) == dict(zip(("exact_match", "f1"), SQUAD1_OFFICIAL[name], strict=True))
    assert result["squad_version"] == "v1.1" and result["examples"] == 10570
    if name.startswith("logistic"):  # the imperfect real file: 13 missing, 28 unknown ids
        assert (result["missing_predictions"], result["ignored_predictions"]) == (13, 28)
        assert "13 of 10570 questions have no prediction" in done.stderr
    else:
        assert (result["missing_predictions"], result["ignored_predictions"]) == (0, 0)


@pytest.mark.skipif(
    not (SQUAD2 / "dev-v2.0.reconstructed.json").is_file(), reason="SQuAD v2.0 not present"
)
def test_squad_v2_predictions_score_the_official_figures() -> None:
    result = score_json(
        "question-answering",
        "-p", str(SQUAD2 / "predictions" / "bert-single-google-ai.dev-v2.0.json"),
        "-r", str(SQUAD2 / "dev-v2.0.reconstructed.json"),
    )  # fmt: skip
    scores = values(result)
    assert list(scores) == ["exact", "f1", "HasAns_exact", "HasAns_f1", "NoAns_exact", "NoAns_f1"]
    assert {name: round(scores[name], 4) for name in SQUAD2_OFFICIAL} == SQUAD2_OFFICIAL
    # Unanswerable questions score the same by EM and F1: an empty prediction or nothing.
    assert scores["NoAns_exact"] == scores["NoAns_f1"]
    assert (result["total"], result["HasAns_total"], result["NoAns_total"]) == (11873, 5928, 5945)
    assert result["squad_version"] == "v2.0"


def _squad_file(path: Path, questions: list[tuple[str, list[str], bool]]) -> Path:
    qas = [
        {"id": qid, "question": "q?", "answers": [{"text": t, "answer_start": 0} for t in golds],
         "is_impossible": impossible}
        for qid, golds, impossible in questions
    ]  # fmt: skip
    document = {"version": "v2.0", "data": [{"title": "t", "paragraphs": [
        {"qas": qas, "context": "Paris is big. An apple."}]}]}  # fmt: skip
    path.write_text(json.dumps(document))
    return path


def test_squad_v2_rules_by_hand(tmp_path: Path) -> None:
    dataset = _squad_file(
        tmp_path / "dev.json",
        [
            ("a1", ["Paris", "Paris is big"], False),
            ("a2", ["An", "apple"], False),  # "An" normalises to "", so it is dropped
            ("n1", [], True),
            ("n2", [], True),
            ("n3", [], True),
        ],
    )
    predictions = tmp_path / "pred.json"
    # a2 predicts "the": right under v1.1 rules against "An", wrong under v2.0 rules.
    # n1 empty (right), n2 an article only (normalises to "": right), n3 missing (wrong),
    # and one prediction for an unknown question, ignored.
    predictions.write_text(
        json.dumps({"a1": "paris", "a2": "the", "n1": "", "n2": "The", "x": "?"})
    )
    report = score_files("question-answering", predictions, [dataset])
    scores = {m.name: m.value for m in report.metrics}
    assert scores["HasAns_exact"] == 50.0 and scores["NoAns_exact"] == pytest.approx(200 / 3)
    assert scores["exact"] == 60.0
    assert report.details["missing_predictions"] == 1 and report.details["ignored_predictions"] == 1
    assert normalize_answer("An") == ""


def test_squad_input_errors(tmp_path: Path) -> None:
    dataset = _squad_file(tmp_path / "dev.json", [("a1", ["Paris"], False)])
    bad_json = tmp_path / "bad.json"
    bad_json.write_text('{"a1": "Paris",\n')
    not_text = tmp_path / "list.json"
    not_text.write_text(json.dumps({"a1": ["Paris"]}))
    for predictions, expected in (
        (bad_json, f"{bad_json}:2: not valid JSON"),
        (not_text, f"{not_text}: the prediction for 'a1' should be a string, got list"),
        (tmp_path / "none.json", f"predictions file not found: {tmp_path / 'none.json'}"),
    ):
        done = nlpsuite("score", "question-answering", "-p", str(predictions), "-r", str(dataset))
        assert done.returncode == 2
        assert one_error_line(done.stderr).startswith(f"nlpsuite: error: {expected}")
    two = nlpsuite(
        "score", "question-answering", "-p", str(not_text), "-r", str(dataset), "-r", str(dataset)
    )
    assert "takes one reference file, got 2" in one_error_line(two.stderr)


# Sentiment: label files.


def test_label_files_score_with_sklearn(tmp_path: Path) -> None:
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    gold = ["pos", "neg", "neg", "pos", "neu", "pos"]
    predicted = ["pos", "neg", "pos", "pos", "neg", "neu"]
    hyp, ref = tmp_path / "pred.txt", tmp_path / "gold.txt"
    hyp.write_text("\n".join(predicted) + "\n")
    ref.write_text("\r\n".join(gold))  # CRLF and no final newline are fine
    result = score_json("sentiment", "-p", str(hyp), "-r", str(ref))
    assert values(result) == {
        "accuracy": accuracy_score(gold, predicted),
        "macro_f1": f1_score(gold, predicted, average="macro", zero_division=0),
        "mcc": matthews_corrcoef(gold, predicted),
    }
    only_accuracy = score_json("sentiment", "-p", str(hyp), "-r", str(ref), "--metric", "accuracy")
    assert list(only_accuracy["metrics"]) == ["accuracy"]
    hyp.write_text("pos\n\nneg\npos\nneg\nneu\n")
    done = nlpsuite("score", "sentiment", "-p", str(hyp), "-r", str(ref))
    assert one_error_line(done.stderr) == f"nlpsuite: error: {hyp}:2: empty label"


@needs_evaluate
def test_score_with_a_local_evaluate_metric(tmp_path: Path) -> None:
    folder = write_metric_dir(tmp_path / "metrics", "label_match")
    hyp, ref = tmp_path / "pred.txt", tmp_path / "gold.txt"
    hyp.write_text("a\nb\nc\nd\n")
    ref.write_text("a\nb\nx\ny\n")
    result = score_json("sentiment", "-p", str(hyp), "-r", str(ref), "--metric", str(folder))
    assert values(result) == {"label_match": 0.5}


def test_a_hub_metric_offline_from_the_cli(tmp_path: Path) -> None:
    hyp = tmp_path / "pred.txt"
    hyp.write_text("a\n")
    done = nlpsuite("score", "sentiment", "-p", str(hyp), "-r", str(hyp), "--metric", "sacrebleu")
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert line.startswith("nlpsuite: error: metric 'sacrebleu' is not a known metric (known: ")
    assert line.endswith("needs the Hugging Face Hub; offline, pass a local metric directory")


# Errors are one line naming the file.


def test_misaligned_and_missing_files_are_one_line(tmp_path: Path) -> None:
    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    hyp.write_text("one\ntwo\n")
    ref.write_text("one\ntwo\nthree\n")
    done = nlpsuite("score", "translation", "-p", str(hyp), "-r", str(ref))
    assert done.returncode == 2
    assert one_error_line(done.stderr) == (
        f"nlpsuite: error: {ref} has 3 lines but {hyp} has 2; predictions and references must "
        "be aligned line by line"
    )
    missing = nlpsuite("score", "translation", "-p", str(hyp), "-r", str(tmp_path / "nope"))
    assert one_error_line(missing.stderr) == (
        f"nlpsuite: error: references file not found: {tmp_path / 'nope'}"
    )
    (tmp_path / "latin1.txt").write_bytes(b"one\ntw\xf6\n")
    bad = nlpsuite("score", "translation", "-p", str(tmp_path / "latin1.txt"), "-r", str(ref))
    assert (
        one_error_line(bad.stderr)
        == f"nlpsuite: error: {tmp_path / 'latin1.txt'}:2: not UTF-8 text (byte 0xf6 at column 3)"
    )


def test_tasks_without_a_file_format_are_refused() -> None:
    done = nlpsuite("score", "semantic-search", "-p", "x", "-r", "y")
    assert "score reads files for translation, summarization" in one_error_line(done.stderr)
    unknown = nlpsuite("score", "no-such-task", "-p", "x", "-r", "y")
    assert "unknown task 'no-such-task'" in one_error_line(unknown.stderr)
    with pytest.raises(NlpsuiteError, match="at least one reference"):
        score_files("translation", "x", [])


# nlpsuite datasets, and the embedded QA set.


def test_datasets_lists_the_embedded_sets() -> None:
    done = nlpsuite("datasets")
    assert done.returncode == 0, done.stderr
    lines = {line.split("\t")[0]: line.split("\t") for line in done.stdout.splitlines()}
    assert lines["sentiment-mini"][1:4] == ["sentiment", "40 examples", "CC0-1.0"]
    assert lines["qa-mini"][1:4] == ["question-answering", "24 examples", "CC0-1.0"]
    listed = {
        row["name"]: row
        for row in map(json.loads, nlpsuite("datasets", "--json").stdout.split("\n")[:-1])
    }
    assert listed["qa-mini"]["examples"] == 24 and listed["qa-mini"]["task"] == "question-answering"
    assert "written for nlpsuite" in listed["qa-mini"]["description"]


def test_the_qa_set_is_well_formed() -> None:
    from nlpsuite.catalog import load_dataset

    rows = [json.loads(line) for line in QA_DATA.read_text(encoding="utf-8").splitlines()]
    assert 15 <= len(rows) <= 25
    assert len({row["id"] for row in rows}) == len(rows)
    for row in rows:
        assert set(row) == {"id", "question", "context", "reference"}
        assert row["reference"] and all(answer in row["context"] for answer in row["reference"])
        assert 2 <= row["context"].count(". ") + 1 <= 5
    examples = load_dataset("qa-mini", "question-answering")
    assert [example.id for example in examples] == [row["id"] for row in rows]
    assert examples[0].reference == rows[0]["reference"]
    listed = (QA_DATA.parent / "README.md").read_text(encoding="utf-8")
    for data_file in QA_DATA.parent.iterdir():
        if data_file.name != "README.md":
            assert f"`{data_file.name}`" in listed, data_file.name


@pytest.mark.parametrize("args", [["datasets"], ["score", "--help"]])
def test_listing_datasets_and_score_help_stay_light(args: list[str]) -> None:
    probe = (
        "import sys\nfrom nlpsuite.cli import main\n"
        f"sys.argv = ['nlpsuite', *{args!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'transformers', 'sklearn', 'evaluate')\n"
        "         if m in sys.modules]\n"
        "print('HEAVY:', ','.join(heavy))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "HEAVY: "
