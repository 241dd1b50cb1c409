"""A checkpoint without the task's head is refused rather than run at random: ``run`` and
``eval`` name the model and its newly initialized weights and point at ``nlpsuite train``;
``--allow-random-head`` runs it anyway; training still starts from a base model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlpsuite import NlpsuiteError, load_runner, run
from nlpsuite.bench import BenchRun, Model, is_complete
from nlpsuite.harness import evaluate
from nlpsuite.lookup import load_model
from nlpsuite.models import load_model as load_torch_model
from tests import tiny_models
from tests.helpers import nlpsuite, one_error_line

MINILM = "sentence-transformers/all-MiniLM-L6-v2"
ALLOW = "or pass --allow-random-head to run it anyway"

# Tiny models gain nothing from a second thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random two-layer BERT saved as a base model: encoder weights, no task head, and no
    pooler (as some sentence encoders are saved)."""
    import torch
    from transformers import BertModel

    folder = tmp_path_factory.mktemp("bert-base")
    tokenizer = tiny_models.bert_tokenizer(folder)
    torch.manual_seed(0)
    BertModel(tiny_models.bert_config(tokenizer.vocab_size, 128),
              add_pooling_layer=False).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def refusal(model: str, head: str, keys: str, train: str) -> str:
    return (f"model '{model}' has no trained {head} head ({keys} are newly initialized): "
            f"fine-tune it with {train}, {ALLOW}")


def test_run_sentiment_on_a_sentence_encoder_is_refused_in_one_line(minilm: Path) -> None:
    done = nlpsuite("run", "sentiment", "--model", MINILM, "A delightful film.")
    assert done.returncode == 2 and done.stdout == ""
    assert one_error_line(done.stderr) == "nlpsuite: error: " + refusal(
        MINILM, "sequence-classification", "classifier.bias, classifier.weight",
        f"nlpsuite train sentiment --model {MINILM} --train FILE --out DIR",
    )


def test_allow_random_head_runs_it_anyway(minilm: Path) -> None:
    done = nlpsuite("run", "sentiment", "--model", MINILM, "--allow-random-head",
                    "A delightful film.")
    assert done.returncode == 0, done.stderr
    label, score = done.stdout.strip().split("\t")
    assert label in {"LABEL_0", "LABEL_1"} and 0.0 < float(score) <= 1.0


def test_question_answering_on_a_sentence_encoder_is_refused(minilm: Path) -> None:
    question = ("run", "question-answering", "--model", str(minilm),
                "--context", "The Eiffel Tower is in Paris.", "Where is the Eiffel Tower?")
    done = nlpsuite(*question)
    assert done.returncode == 2 and done.stdout == ""
    assert one_error_line(done.stderr) == "nlpsuite: error: " + refusal(
        str(minilm), "question-answering", "qa_outputs.bias, qa_outputs.weight",
        f"nlpsuite train question-answering --model {minilm} --train FILE --out DIR",
    )
    allowed = nlpsuite(*question, "--allow-random-head", "--json")
    assert allowed.returncode == 0, allowed.stderr
    assert "answer" in json.loads(allowed.stdout)


def test_eval_is_refused_before_predicting_and_records_the_flag(
    minilm: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    words = ("eval", "question-answering", "--model", MINILM, "--dataset", "qa-mini",
             "--limit", "4", "--bootstrap", "0", "--out", str(out))
    done = nlpsuite(*words)
    assert done.returncode == 2
    assert "has no trained question-answering head" in one_error_line(done.stderr)
    assert not (out / "results.json").exists() and not (out / "predictions.jsonl").exists()

    allowed = nlpsuite(*words, "--allow-random-head")
    assert allowed.returncode == 0, allowed.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["request"]["allow_random_head"] is True
    assert results["command"].endswith("--allow-random-head")


def test_library_loads_refuse_a_base_model_as_a_classifier(
    tiny_base: Path, tiny_classifier: Path
) -> None:
    # Saved without a pooler: the pooler the classifier reads is as random as the classifier.
    expected = refusal(
        str(tiny_base), "sequence-classification",
        "bert.pooler.dense.bias, bert.pooler.dense.weight, classifier.bias, classifier.weight",
        "nlpsuite train TASK --model " + str(tiny_base) + " --train FILE --out DIR",
    )
    for load in (load_model, load_torch_model):
        with pytest.raises(NlpsuiteError) as refused:
            load("AutoModelForSequenceClassification", str(tiny_base))
        assert str(refused.value) == expected
        allowed = load("AutoModelForSequenceClassification", str(tiny_base),
                       allow_random_head=True)
        assert type(allowed).__name__ == "BertForSequenceClassification"
        # The permission is not cached with the model: the next plain load is refused again.
        with pytest.raises(NlpsuiteError, match="has no trained sequence-classification head"):
            load("AutoModelForSequenceClassification", str(tiny_base))
    # What the checkpoint is, and a checkpoint that has its head, load as before.
    assert type(load_model("AutoModel", str(tiny_base))).__name__ == "BertModel"
    load_model("AutoModelForSequenceClassification", str(tiny_classifier))


def test_a_runner_names_the_task_to_train(tiny_base: Path) -> None:
    with pytest.raises(NlpsuiteError) as refused:
        load_runner("question-answering", str(tiny_base))
    assert str(refused.value) == refusal(
        str(tiny_base), "question-answering", "qa_outputs.bias, qa_outputs.weight",
        f"nlpsuite train question-answering --model {tiny_base} --train FILE --out DIR",
    )
    [output] = run("sentiment", ["a great film"], str(tiny_base), allow_random_head=True)
    assert output.label in {"LABEL_0", "LABEL_1"}


def test_onnx_backend_refuses_a_random_head_too(
    tiny_base: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("NLPSUITE_CACHE", str(tmp_path))
    with pytest.raises(NlpsuiteError, match=r"has no trained sequence-classification head \("
                                            r"bert\.pooler\.dense\.bias"):
        load_model("AutoModelForSequenceClassification", str(tiny_base), backend="onnx")
    allowed = load_model("AutoModelForSequenceClassification", str(tiny_base), backend="onnx",
                         allow_random_head=True)
    assert type(allowed).__name__ == "OnnxModel"
    with pytest.raises(NlpsuiteError, match="has no trained sequence-classification head"):
        load_model("AutoModelForSequenceClassification", str(tiny_base), backend="onnx")


def test_train_still_starts_from_a_base_model(tiny_base: Path, tmp_path: Path) -> None:
    data = tmp_path / "toy.jsonl"
    data.write_text("".join(json.dumps({"text": text, "reference": label}) + "\n" for text, label in
                            [("a great film", "POSITIVE"), ("an awful film", "NEGATIVE")] * 2),
                    encoding="utf-8")
    out = tmp_path / "trained"
    done = nlpsuite("train", "sentiment", "--model", str(tiny_base), "--train", str(data),
                    "--validation", str(data), "--out", str(out), "--epochs", "1", "-q")
    assert done.returncode == 0, done.stderr
    # The head it trained is no longer new: the checkpoint runs without the flag.
    ran = nlpsuite("run", "sentiment", "--model", str(out), "a great film")
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split("\t")[0] in {"POSITIVE", "NEGATIVE"}


def test_bench_runs_recorded_before_the_flag_stay_complete(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    run = BenchRun("sentiment", "sentiment-mini", Model("tiny", str(tiny_classifier), True),
                   limit=4, bootstrap=0)
    evaluate(run.request(tmp_path))
    results = tmp_path / run.folder / "results.json"
    document = json.loads(results.read_text())
    assert document["request"].pop("allow_random_head") is False
    results.write_text(json.dumps(document))  # as nlpsuite wrote it before the flag existed
    assert is_complete(run, tmp_path)
