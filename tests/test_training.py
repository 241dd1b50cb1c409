"""``nlpsuite train``: the shared loop, sentiment and question-answering training, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from nlpsuite.training import Progress, TrainConfig, TrainResult, train
from tests.conftest import SHARED_DATASETS
from tests.helpers import nlpsuite, one_error_line

POSITIVE = ["a great film", "wonderful acting", "i love this movie", "the best story",
            "good fun", "a delightful plot", "great acting and a good story", "love the music"]
NEGATIVE = ["a terrible film", "awful acting", "i hate this movie", "the worst story",
            "dull and boring", "a bad plot", "terrible acting and a bad story", "hate the music"]
# Enough steps at a high rate for a random two-layer BERT to get past its flat start.
TOY = {"epochs": 20, "lr": 3e-3, "batch_size": 4, "warmup": 0.0, "weight_decay": 0.0}
# Tiny models gain nothing from a second thread, and on a busy machine two spinning OpenMP
# threads make each step some 40 times slower. Runs compared for equal weights use the same.
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


# Tiny models gain nothing from a second thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def write_toy(path: Path) -> Path:
    rows = [{"text": t, "reference": "POSITIVE"} for t in POSITIVE]
    rows += [{"text": t, "reference": "NEGATIVE"} for t in NEGATIVE]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def losses(out: Path) -> list[float]:
    rows = [json.loads(line) for line in (out / "training_log.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if "loss" in row]


def weights(out: Path) -> dict[str, Any]:
    from safetensors.torch import load_file

    return load_file(str(out / "model.safetensors"))


@pytest.fixture(scope="module")
def toy_run(tiny_classifier: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    folder = tmp_path_factory.mktemp("toy-run")
    data = write_toy(folder / "toy.jsonl")
    seen: list[Progress] = []
    result = train(
        TrainConfig(task="sentiment", model=str(tiny_classifier), train=str(data),
                    validation=str(data), out=folder / "out", seed=0, **TOY),
        progress=seen.append,
    )
    assert [p.step for p in seen] == list(range(1, result.steps + 1))
    assert all(p.total_steps == result.steps and p.examples_per_second > 0 for p in seen)
    return result


@pytest.mark.slow
def test_classifier_learns_a_toy_set_and_its_loss_falls(toy_run: TrainResult) -> None:
    assert toy_run.metrics["accuracy"] == 1.0
    found = losses(toy_run.out)
    assert len(found) == toy_run.steps == 20 * 4
    assert sum(found[-8:]) / 8 < 0.5 * sum(found[:8]) / 8
    log = [json.loads(line) for line in (toy_run.out / "training_log.jsonl").open()]
    assert all(row["learning_rate"] > 0 for row in log if "loss" in row)
    epochs = [row for row in log if "validation" in row]
    assert [row["epoch"] for row in epochs] == list(range(1, 21))
    assert epochs[-1]["validation"]["accuracy"] == 1.0


@pytest.mark.slow
def test_checkpoint_reloads_and_predicts_identically(toy_run: TrainResult) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = toy_run.out
    assert not (out / "checkpoint").exists()
    texts = POSITIVE + NEGATIVE
    model = AutoModelForSequenceClassification.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.id2label == {0: "NEGATIVE", 1: "POSITIVE"}
    with torch.inference_mode():
        batch = tokenizer(texts, return_tensors="pt", padding=True)
        probabilities = model(**batch).logits.softmax(-1)
    done = nlpsuite("run", "sentiment", "--model", str(out), "--json", *texts)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    for row, p in zip(rows, probabilities, strict=True):
        assert row["label"] == model.config.id2label[int(p.argmax())]
        assert row["score"] == pytest.approx(float(p.max()), abs=1e-5)
    assert [row["label"] for row in rows] == ["POSITIVE"] * 8 + ["NEGATIVE"] * 8

    results = out.parent / "eval"
    data = out.parent / "toy.jsonl"
    done = nlpsuite("eval", "sentiment", "--model", str(out), "--dataset", str(data),
                    "--out", str(results), "--bootstrap", "0", "--quiet")
    assert done.returncode == 0, done.stderr
    scored = json.loads((results / "results.json").read_text())["metrics"]
    assert {name: m["value"] for name, m in scored.items()} == pytest.approx(toy_run.metrics)


@pytest.mark.slow
def test_model_card_records_base_data_hyperparameters_metrics_versions(
    toy_run: TrainResult, tiny_classifier: Path
) -> None:
    from nlpsuite.catalog import dataset_fingerprint

    card = (toy_run.out / "README.md").read_text()
    data = str(toy_run.out.parent / "toy.jsonl")
    assert str(tiny_classifier) in card
    assert dataset_fingerprint(data, "sentiment")["sha256"] in card
    for line in ("| learning rate | 0.003 |", "| batch size | 4 |", "| epochs | 20 |",
                 "| seed | 0 |", "| accuracy | 1.0000 |", "- torch ", "- transformers ",
                 "nlpsuite train sentiment --model"):
        assert line in card


def test_labels_come_from_the_training_data(tiny_classifier: Path, tmp_path: Path) -> None:
    """GLUE's 0/1 labels become the checkpoint's labels, whatever the base model called them."""
    train_file = tmp_path / "train.tsv"
    train_file.write_text("sentence\tlabel\n" + "".join(
        f"{text}\t{int(text in POSITIVE)}\n" for text in POSITIVE + NEGATIVE))
    out = tmp_path / "out"
    result = train(TrainConfig(task="sentiment", model=str(tiny_classifier),
                               train=str(train_file), out=out, epochs=1, batch_size=8))
    assert result.steps == 2 and result.metrics == {}
    config = json.loads((out / "config.json").read_text())
    assert config["id2label"] == {"0": "0", "1": "1"}
    assert config["label2id"] == {"0": 0, "1": 1}


# Resume: a run killed after a checkpoint and resumed ends with the same weights as one that was
# never interrupted.

KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from nlpsuite.training import TrainConfig, train

def progress(p):
    if p.step == {kill_at}:
        os.kill(os.getpid(), signal.SIGKILL)

train(TrainConfig(task="sentiment", model={model!r}, train={data!r}, validation={data!r},
                  out=Path({out!r}), checkpoint_every=3, seed=7, **{toy!r}), progress=progress)
"""


def cli_args(model: Path, data: Path, out: Path, **extra: Any) -> list[str]:
    args = ["train", "sentiment", "--model", str(model), "--train", str(data),
            "--validation", str(data), "--out", str(out), "--seed", "7", "--quiet"]
    for key, value in {**extra, "checkpoint-every": 3}.items():
        args += [f"--{key}", str(value)]
    return args


@pytest.mark.slow
def test_resume_after_a_kill_gives_the_same_final_weights(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    import torch

    data = write_toy(tmp_path / "toy.jsonl")
    toy = {"epochs": 3, "lr": 3e-3, "batch_size": 4}
    killed = tmp_path / "killed"
    code = KILLED_RUN.format(kill_at=7, model=str(tiny_classifier), data=str(data),
                             out=str(killed), toy=toy)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1", **ONE_THREAD})
    assert done.returncode == -9, done.stderr
    assert (killed / "checkpoint" / "state.pt").is_file()
    assert not (killed / "README.md").exists()

    assert one_error_line(nlpsuite(*cli_args(tiny_classifier, data, killed, **{
        "batch-size": 4, "epochs": 3, "lr": 3e-3})).stderr).endswith(
        "is not empty; pass --resume to continue its interrupted run")
    changed = nlpsuite(*cli_args(tiny_classifier, data, killed, **{
        "batch-size": 4, "epochs": 3, "lr": 1e-3}), "--resume")
    assert "--lr differs from the interrupted run" in one_error_line(changed.stderr)

    options = {"batch-size": 4, "epochs": 3, "lr": 3e-3}
    resumed = nlpsuite(*cli_args(tiny_classifier, data, killed, **options), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    whole = tmp_path / "whole"
    uninterrupted = nlpsuite(*cli_args(tiny_classifier, data, whole, **options))
    assert uninterrupted.returncode == 0, uninterrupted.stderr

    # The same validation metrics.
    assert resumed.stdout.splitlines()[:-1] == uninterrupted.stdout.splitlines()[:-1]
    assert "resumed at step 6 of 12" in resumed.stderr
    a, b = weights(killed), weights(whole)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[name], b[name]) for name in a)
    steps = [json.loads(line)["step"] for line in (killed / "training_log.jsonl").open()
             if "loss" in line]
    assert steps == list(range(1, 13))
    assert losses(killed) == losses(whole)
    assert "nothing to resume" in one_error_line(
        nlpsuite(*cli_args(tiny_classifier, data, killed, **options), "--resume").stderr)


# Question answering.


def squad_sample(path: Path, questions: int) -> list[tuple[str, str, int, str]]:
    """(question, context, answer_start, text) for every gold answer of the first questions."""
    from nlpsuite.records import read_json

    found = []
    asked = 0
    for article in read_json(path)["data"]:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                asked += 1
                found += [(qa["question"], paragraph["context"], a["answer_start"], a["text"])
                          for a in qa["answers"]]
                if asked == questions:
                    return found
    return found


def plain(text: str) -> str:
    """Text as an uncased WordPiece decode gives it back: lower case, no accents, no spaces."""
    from nlpsuite.metrics import normalize_answer

    stripped = "".join(c for c in unicodedata.normalize("NFD", text)
                       if unicodedata.category(c) != "Mn")
    return "".join(normalize_answer(stripped).split())


@pytest.mark.slow
def test_qa_features_map_every_gold_answer_to_its_tokens(minilm: Path) -> None:
    """All gold answers of 1,000 SQuAD v1.1 questions, in the windows inference reads."""
    from nlpsuite_plugins.question_answering import (
        TASK,
        GoldSpan,
        _settings,
        answer_tokens,
        question_windows,
    )

    from nlpsuite.models import load_tokenizer

    squad = SHARED_DATASETS / "squad-v1.1" / "dev-v1.1.json"
    if not squad.is_file():
        pytest.skip(f"{squad} not found")
    sample = squad_sample(squad, 1000)
    tokenizer = load_tokenizer(str(minilm))
    settings = _settings(TASK.parse_options({}), 512)
    assert (settings.max_length, settings.doc_stride) == (384, 128)
    golds = [GoldSpan(start, start + len(text)) for _, _, start, text in sample]
    windows = question_windows(tokenizer, [s[0] for s in sample], [s[1] for s in sample],
                               settings)
    mapped: set[int] = set()
    inside_a_token = 0
    for window in windows:
        gold, (_, context, _, text) = golds[window.example], sample[window.example]
        first, last = answer_tokens(window, gold)
        if first == window.null_index:
            assert last == first
            continue
        mapped.add(window.example)
        assert window.context_mask[first] and window.context_mask[last] and first <= last
        (begin, _), (_, end) = window.offsets[first], window.offsets[last]
        # The fewest tokens that cover the answer...
        assert begin <= gold.start < window.offsets[first][1]
        assert window.offsets[last][0] < gold.end <= end
        if (begin, end) == (gold.start, gold.end):
            # ...which, where the answer starts and ends on token boundaries, decode to it.
            assert context[begin:end] == text
            decoded = tokenizer.decode(window.features["input_ids"][first : last + 1])
            assert plain(decoded) == plain(text), (decoded, text)
        else:  # an annotation inside a word ("8" of "18", "gold" of "golden")
            inside_a_token += 1
    assert mapped == set(range(len(sample)))
    assert len(sample) > 2500 and inside_a_token < 0.01 * len(sample)


def write_squad(path: Path, rows: list[dict[str, Any]]) -> Path:
    """qa-mini style rows as a SQuAD v1.1 file, one paragraph per distinct context."""
    paragraphs: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        answers = [{"text": text, "answer_start": row["context"].find(text)}
                   for text in row["reference"]]
        paragraphs.setdefault(row["context"], []).append(
            {"id": row["id"], "question": row["question"], "answers": answers})
    data = [{"title": "mini", "paragraphs": [{"context": c, "qas": q}
                                             for c, q in paragraphs.items()]}]
    path.write_text(json.dumps({"version": "1.1", "data": data}, indent=1), encoding="utf-8")
    return path


@pytest.mark.slow
def test_question_answering_trains_on_squad_json(tiny_qa: Path, tmp_path: Path) -> None:
    from nlpsuite_plugins.question_answering import EVAL_SET

    rows = [json.loads(line) for line in EVAL_SET.read_text().splitlines()]
    squad = write_squad(tmp_path / "train.json", rows)
    out = tmp_path / "out"
    done = nlpsuite("train", "question-answering", "--model", str(tiny_qa), "--train", str(squad),
                    "--validation", str(squad), "--out", str(out), "--epochs", "2",
                    "--batch-size", "8", "--lr", "1e-3", "--option", "doc_stride=16", "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("exact_match\t") and "\nf1\t" in done.stdout
    card = (out / "README.md").read_text()
    assert "pipeline_tag: question-answering" in card
    # tiny_qa reads 64 tokens: the contexts need several windows, most without the answer.
    assert "window: 64 tokens, document stride 16" in card
    windows = int(card.split("- windows: ")[1].split()[0])
    assert windows > 2 * len(rows)
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == ["BertForQuestionAnswering"]
    asked = nlpsuite("run", "question-answering", "--model", str(out), "--json",
                     "--context", rows[0]["context"], rows[0]["question"])
    assert asked.returncode == 0, asked.stderr
    answer = json.loads(asked.stdout)
    assert rows[0]["context"][answer["start"] : answer["end"]] == answer["answer"]


# Errors the user can cause: one line naming the file, line and field, exit code 2.


def test_bad_training_data_is_one_line_naming_file_line_and_field(
    tiny_classifier: Path, tiny_qa: Path, tmp_path: Path
) -> None:
    def error(task: str, model: Path, data: Path) -> str:
        done = nlpsuite("train", task, "--model", str(model), "--train", str(data),
                        "--out", str(tmp_path / f"out-{data.name}"), "--quiet")
        assert done.returncode == 2
        return one_error_line(done.stderr)

    no_label = tmp_path / "no-label.csv"
    no_label.write_text("text\na great film\na dull film\n")
    assert error("sentiment", tiny_classifier, no_label).endswith(
        f"{no_label}:2: missing field 'reference'")
    no_label_column = tmp_path / "no-label.tsv"
    no_label_column.write_text("sentence\tscore\na great film\t1\n")
    assert f"{no_label_column}:1: unrecognised TSV layout: expected a header with 'sentence' " \
           "and 'label'" in error("sentiment", tiny_classifier, no_label_column)

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert error("sentiment", tiny_classifier, empty).endswith(
        f"{empty}:1: the file is empty: no examples")
    header_only = tmp_path / "header.tsv"
    header_only.write_text("sentence\tlabel\n")
    assert error("sentiment", tiny_classifier, header_only).endswith(
        f"{header_only}:2: no examples after line 1")

    rows = [{"id": "q1", "question": "Where is the tower?", "context": "The tower is in Paris.",
             "reference": ["Paris"]},
            {"id": "q2", "question": "Which city?", "context": "The tower is in Paris.",
             "reference": ["Berlin"]}]
    squad = write_squad(tmp_path / "bad.json", rows)
    line = next(n for n, text in enumerate(squad.read_text().splitlines(), 1) if '"q2"' in text)
    assert error("question-answering", tiny_qa, squad).endswith(
        f"{squad}:{line}: data[0].paragraphs[0].qas[1]: field 'answers[0].text': answer "
        "'Berlin' is not in its context")
    shifted = json.loads(squad.read_text())
    shifted["data"][0]["paragraphs"][0]["qas"][1]["answers"] = [
        {"text": "Paris", "answer_start": 3}]
    squad.write_text(json.dumps(shifted, indent=1))
    assert error("question-answering", tiny_qa, squad).endswith(
        "field 'answers[0].answer_start': answer 'Paris' is not at 3 in its context (it is at 16)")


def test_untrainable_tasks_and_bad_settings_say_so_in_one_line(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    data = write_toy(tmp_path / "toy.jsonl")

    def error(*args: str) -> str:
        done = nlpsuite("train", *args)
        assert done.returncode == 2
        return one_error_line(done.stderr)

    assert error("translation", "--model", "x", "--train", str(data), "--out", "o") == (
        "nlpsuite: error: task 'translation' cannot be trained (it declares no training "
        "recipe; trainable tasks: question-answering, sentiment)")
    base = ["sentiment", "--model", str(tiny_classifier), "--train", str(data)]
    assert "--warmup is a fraction" in error(*base, "--out", str(tmp_path / "a"), "--warmup", "5")
    assert "--lr must be a positive number" in error(*base, "--out", str(tmp_path / "a"),
                                                     "--lr", "0")
    assert error(*base, "--out", str(tmp_path / "b"), "--resume").endswith(
        "no interrupted training run to resume")
    listed = {json.loads(line)["name"]: json.loads(line)["trainable"]
              for line in nlpsuite("tasks", "--json").stdout.splitlines()}
    assert listed["sentiment"] and listed["question-answering"] and not listed["translation"]
