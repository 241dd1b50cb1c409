"""Bad data files that used to pass silently or fail obscurely: saved indexes with non-finite
embeddings or edited documents, SQuAD answers with a textual ``answer_start``, CSV headers with
a repeated column or a byte-order mark, unknown metric names, quantized exports that point
outside their folder; and byte-order marks scored as sacrebleu scores them."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import sacrebleu
from nlpsuite_plugins import semantic_search as search
from nlpsuite_plugins.sentiment import SentimentInput

from nlpsuite import NlpsuiteError
from nlpsuite.lookup import find_metric
from nlpsuite.records import read_records
from tests.helpers import nlpsuite, one_error_line

BOM = b"\xef\xbb\xbf"


# Saved indexes.


def saved_index(folder: Path) -> Path:
    """A three-document index saved without a model (the vectors are made up, unit length)."""
    vectors = np.eye(3, 4, dtype=np.float32)
    index = search.Index(("a", "b", "c"), ("first", "second", "third"), vectors, "some/model")
    return index.save(folder)


def test_an_index_with_non_finite_embeddings_is_refused(tmp_path: Path) -> None:
    folder = saved_index(tmp_path / "nan")
    vectors = np.load(folder / "embeddings.npy")
    vectors[1, 2] = np.nan
    np.save(folder / "embeddings.npy", vectors, allow_pickle=False)
    with pytest.raises(NlpsuiteError) as refused:
        search.load_index(folder)
    assert str(refused.value) == (
        f"{folder / 'embeddings.npy'}: 1 of 3 embeddings hold NaN or infinite values "
        "(first: row 2, document 'b'); rebuild the index"
    )

    done = nlpsuite("index", "info", str(folder))
    assert done.returncode == 2
    assert one_error_line(done.stderr).startswith(f"nlpsuite: error: {folder / 'embeddings.npy'}")


def test_building_an_index_with_a_model_that_gives_nan_is_refused(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    from safetensors.numpy import load_file, save_file

    broken = tmp_path / "nan-model"
    shutil.copytree(tiny_classifier, broken)
    weights = load_file(broken / "model.safetensors")
    for name in weights:
        if "word_embeddings" in name:
            weights[name] = np.full_like(weights[name], np.nan)
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text('{"id": "x", "text": "one"}\n{"id": "y", "text": "two"}\n')
    out = tmp_path / "index"
    with pytest.raises(NlpsuiteError) as refused:
        search.build_index(corpus, str(broken), out)
    assert str(refused.value).startswith(
        f"{corpus}: model '{broken}' gave NaN or infinite embeddings for 2 of 2 documents "
        "(first: document 'x')"
    )
    assert not out.exists()


def test_documents_edited_after_saving_are_detected(tmp_path: Path) -> None:
    folder = saved_index(tmp_path / "index")
    docs = folder / "docs.jsonl"
    meta = json.loads((folder / "index.json").read_text())
    assert meta["docs_sha256"] == hashlib.sha256(docs.read_bytes()).hexdigest()
    assert search.load_index(folder).texts == ("first", "second", "third")

    first, second, third = docs.read_text().splitlines(keepends=True)
    docs.write_text(second + first + third)
    with pytest.raises(NlpsuiteError) as refused:
        search.load_index(folder)
    assert str(refused.value) == (
        f"{docs}: its sha256 is not the one index.json records: the documents changed after "
        "the index was saved; rebuild the index"
    )
    done = nlpsuite("index", "info", str(folder))
    assert done.returncode == 2 and f"{docs}: its sha256" in one_error_line(done.stderr)

    # An index saved before the hash was recorded still loads.
    del meta["docs_sha256"]
    (folder / "index.json").write_text(json.dumps(meta))
    assert search.load_index(folder).ids == ("b", "a", "c")


# SQuAD training files.


def test_a_textual_answer_start_is_refused_in_squad_training_data(
    tiny_qa: Path, tmp_path: Path
) -> None:
    context = "The tower is in Paris."
    squad = tmp_path / "train.json"
    squad.write_text(json.dumps({"version": "1.1", "data": [{"title": "t", "paragraphs": [{
        "context": context,
        "qas": [{"id": "q1", "question": "Where is the tower?",
                 "answers": [{"text": "Paris", "answer_start": str(context.find("Paris"))}]}],
    }]}]}, indent=1))
    line = next(n for n, text in enumerate(squad.read_text().splitlines(), 1) if '"q1"' in text)
    done = nlpsuite("train", "question-answering", "--model", str(tiny_qa), "--train", str(squad),
                    "--out", str(tmp_path / "out"), "--epochs", "1", "--quiet")
    assert done.returncode == 2
    assert one_error_line(done.stderr) == (
        f"nlpsuite: error: {squad}:{line}: data[0].paragraphs[0].qas[0]: field "
        "'answers[0].answer_start' should be an integer, got str ('16')"
    )
    assert not (tmp_path / "out").exists()


# CSV and TSV records.


def test_a_csv_header_with_a_repeated_column_is_refused(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    data = tmp_path / "twice.csv"
    data.write_text("text,text\na fine film,a dull film\n")
    with pytest.raises(NlpsuiteError) as refused:
        read_records(data, SentimentInput)
    assert str(refused.value) == f"{data}:1: column 'text' appears twice in the header"
    unnamed = tmp_path / "trailing-commas.csv"  # unnamed columns name no field: they may repeat
    unnamed.write_text("text,,\na fine film,,\n")
    assert read_records(unnamed, SentimentInput) == [SentimentInput("a fine film")]
    done = nlpsuite("run", "sentiment", "--model", str(tiny_classifier), "--input", str(data))
    assert done.returncode == 2
    assert one_error_line(done.stderr) == (
        f"nlpsuite: error: {data}:1: column 'text' appears twice in the header"
    )


@pytest.mark.parametrize("name", ["bom.csv", "bom.tsv"])
def test_a_csv_with_a_byte_order_mark_reads_its_header(
    tiny_classifier: Path, tmp_path: Path, name: str
) -> None:
    data = tmp_path / name
    separator = "\t" if name.endswith(".tsv") else ","
    data.write_bytes(BOM + f"text{separator}id\na fine film{separator}7\n".encode())
    assert read_records(data, SentimentInput) == [SentimentInput("a fine film")]
    done = nlpsuite("run", "sentiment", "--model", str(tiny_classifier), "--input", str(data),
                    "--json")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 1


# Metric names.


def test_an_unknown_metric_offline_first_says_it_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    text = tmp_path / "lines.txt"
    text.write_text("a b c\n")
    done = nlpsuite("score", "translation", "-p", str(text), "-r", str(text),
                    "--metric", "bleurt9")
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert line.startswith("nlpsuite: error: metric 'bleurt9' is not a known metric (known: ")
    assert "accuracy, " in line and "bleu, " in line and "chrf, " in line
    assert "needs the Hugging Face Hub; offline, pass a local metric directory" in line


def test_an_unknown_metric_without_evaluate_first_says_it_is_unknown(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "evaluate" else real(name, *a)
    )
    with pytest.raises(NlpsuiteError) as refused:
        find_metric("bleurt9")
    message = str(refused.value)
    assert message.startswith("metric 'bleurt9' is not a known metric (known: ")
    assert "accuracy, " in message
    assert message.endswith(
        "needs the optional package 'evaluate': pip install 'nlpsuite[evaluate]'")
    # A local metric directory is not an unknown name: only evaluate is missing.
    folder = tmp_path / "my_metric"
    folder.mkdir()
    with pytest.raises(NlpsuiteError) as refused:
        find_metric(str(folder))
    assert str(refused.value).startswith(f"metric '{folder}' needs the optional package")


# Quantized exports.


@pytest.fixture(scope="module")
def int8_export(tiny_classifier: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from nlpsuite.quantization import quantize_checkpoint

    out = tmp_path_factory.mktemp("int8") / "export"
    quantize_checkpoint(str(tiny_classifier), out)
    return out


@pytest.mark.parametrize("where", ["outside", "absolute"])
def test_quantized_weights_outside_the_model_folder_are_refused(
    int8_export: Path, tmp_path: Path, where: str
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(int8_export / "model.int8.pt", elsewhere / "model.int8.pt")
    model = tmp_path / "model"
    shutil.copytree(int8_export, model)
    weights = "../elsewhere/model.int8.pt" if where == "outside" else str(
        elsewhere / "model.int8.pt")
    config = json.loads((model / "config.json").read_text())
    config["nlpsuite_quantization"]["weights"] = weights
    (model / "config.json").write_text(json.dumps(config))
    done = nlpsuite("run", "sentiment", "--model", str(model), "a fine film")
    assert done.returncode == 2
    assert one_error_line(done.stderr).endswith(
        f"{model}/config.json: field 'nlpsuite_quantization.weights': {weights!r} is outside "
        "the model folder"
    )


# Byte-order marks in scored text files: sacrebleu keeps the mark as part of the first line.


def sacrebleu_cli(hypotheses: Path, reference: Path) -> list[float]:
    done = subprocess.run(
        [str(Path(sys.executable).with_name("sacrebleu")), str(reference), "-i", str(hypotheses),
         "-m", "bleu", "chrf", "-b", "-w", "4"],
        capture_output=True, text=True, check=True, timeout=120,
    )
    return [float(value) for value in json.loads(done.stdout)]


def sacrebleu_lines(path: Path) -> list[str]:
    """The lines as the sacrebleu command line reads them (its ``smart_open``, then rstrip)."""
    with path.open(encoding="utf-8", newline="\n") as handle:
        return [line.rstrip() for line in handle]


@pytest.mark.parametrize("marked", ["hypotheses", "reference", "both"])
def test_a_byte_order_mark_scores_as_sacrebleu_scores_it(tmp_path: Path, marked: str) -> None:
    hypotheses, reference = tmp_path / "hyp.de", tmp_path / "ref.de"
    hypothesis_bytes = b"Das ist ein Test.\nGuten Morgen alle.\n"
    reference_bytes = b"Das ist ein Test.\nGuten Morgen alle zusammen.\n"
    hypotheses.write_bytes(BOM * (marked in ("hypotheses", "both")) + hypothesis_bytes)
    reference.write_bytes(BOM * (marked in ("reference", "both")) + reference_bytes)

    done = nlpsuite("score", "translation", "-p", str(hypotheses), "-r", str(reference), "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    scores = {name: entry["value"] for name, entry in result["metrics"].items()}
    hyp_lines, ref_lines = sacrebleu_lines(hypotheses), sacrebleu_lines(reference)
    assert scores == {
        "bleu": sacrebleu.corpus_bleu(hyp_lines, [ref_lines]).score,
        "chrf": sacrebleu.corpus_chrf(hyp_lines, [ref_lines]).score,
    }
    assert [round(scores["bleu"], 4), round(scores["chrf"], 4)] == sacrebleu_cli(
        hypotheses, reference)

    marked_files = [path for path in (hypotheses, reference) if path.read_bytes().startswith(BOM)]
    notes = [line for line in done.stderr.splitlines() if "byte-order mark" in line]
    assert notes == [
        f"nlpsuite: {path} starts with a UTF-8 byte-order mark; it is scored as part of the "
        "first line, as sacrebleu reads it" for path in marked_files
    ]


def test_label_files_with_a_byte_order_mark_still_match_their_labels(tmp_path: Path) -> None:
    predicted, gold = tmp_path / "pred.txt", tmp_path / "gold.txt"
    predicted.write_bytes(BOM + b"POSITIVE\nNEGATIVE\n")
    gold.write_bytes(b"POSITIVE\nNEGATIVE\n")
    done = nlpsuite("score", "sentiment", "-p", str(predicted), "-r", str(gold), "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["metrics"]["accuracy"]["value"] == 1.0


def test_a_reference_file_with_a_byte_order_mark_is_evaluated_as_sacrebleu_reads_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from nlpsuite.catalog import load_dataset
    from nlpsuite.metrics import BLEU

    source, reference = tmp_path / "src.en", tmp_path / "ref.de"
    source.write_bytes(BOM + b"This is a test.\nGood morning all.\n")
    reference.write_bytes(BOM + b"Das ist ein Test.\nGuten Morgen alle zusammen.\n")
    with caplog.at_level("WARNING", logger="nlpsuite"):
        examples = load_dataset(f"{source}:{reference}", "translation")
    assert examples[0].input["text"] == "This is a test."  # the model's input drops the mark
    hypotheses = ["Das ist ein Test.", "Guten Morgen alle."]
    ours = BLEU.compute(hypotheses, [example.reference for example in examples])
    assert ours == sacrebleu.corpus_bleu(hypotheses, [sacrebleu_lines(reference)]).score
    assert [r.getMessage() for r in caplog.records] == [
        f"{reference} starts with a UTF-8 byte-order mark; it is scored as part of the first "
        "line, as sacrebleu reads it"
    ]
