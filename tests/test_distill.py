"""``nlpsuite distill`` and ``nlpsuite quantize`` on tiny checkpoints."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from nlpsuite.distillation import DistillConfig, DistillResult, distill, spread_layers
from nlpsuite.training import TrainConfig, TrainResult, train
from tests.helpers import nlpsuite, one_error_line
from tests.test_training import NEGATIVE, POSITIVE, TOY, losses, write_toy

# Tiny models gain nothing from a second thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def teacher(tiny_classifier: Path, tmp_path_factory: pytest.TempPathFactory) -> TrainResult:
    """The tiny classifier fine-tuned on the toy set: a teacher that knows the answers."""
    folder = tmp_path_factory.mktemp("teacher")
    data = write_toy(folder / "toy.jsonl")
    return train(TrainConfig(task="sentiment", model=str(tiny_classifier), train=str(data),
                             validation=str(data), out=folder / "out", seed=0, **TOY))


@pytest.fixture(scope="module")
def student(teacher: TrainResult, tmp_path_factory: pytest.TempPathFactory) -> DistillResult:
    folder = tmp_path_factory.mktemp("student")
    data = str(teacher.out.parent / "toy.jsonl")
    config = TrainConfig(task="sentiment", model=str(teacher.out), train=data, validation=data,
                         out=folder / "out", seed=0, **{**TOY, "epochs": 10})
    return distill(DistillConfig(train=config, keep_layers=(1,), temperature=2.0, alpha=0.7))


@pytest.fixture(scope="module")
def random_student(teacher: TrainResult, tiny_classifier: Path,
                   tmp_path_factory: pytest.TempPathFactory) -> DistillResult:
    """A --student checkpoint that knows nothing yet: its loss has somewhere to fall from."""
    folder = tmp_path_factory.mktemp("random-student")
    data = str(teacher.out.parent / "toy.jsonl")
    config = TrainConfig(task="sentiment", model=str(teacher.out), train=data, validation=data,
                         out=folder / "out", seed=0, **TOY)
    return distill(DistillConfig(train=config, student=str(tiny_classifier)))


def test_spread_layers_keeps_every_other_layer_as_distilbert() -> None:
    assert spread_layers(6, 3) == (0, 2, 4)
    assert spread_layers(12, 6) == (0, 2, 4, 6, 8, 10)
    assert spread_layers(2, 1) == (0,)


def test_student_from_teacher_copies_the_chosen_layers(teacher: TrainResult) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification

    from nlpsuite.distillation import student_from_teacher

    model = AutoModelForSequenceClassification.from_pretrained(teacher.out)
    small = student_from_teacher(model, (1,))
    assert small.config.num_hidden_layers == 1 and model.config.num_hidden_layers == 2
    big, cut = model.state_dict(), small.state_dict()
    assert len(small.bert.encoder.layer) == 1
    for name, tensor in cut.items():
        source = name.replace("encoder.layer.0.", "encoder.layer.1.")
        assert torch.equal(tensor, big[source]), name
    # The teacher itself is untouched.
    assert len(model.bert.encoder.layer) == 2


@pytest.mark.slow
def test_distillation_loss_falls(random_student: DistillResult) -> None:
    found = losses(random_student.train.out)
    assert len(found) == random_student.train.steps == 20 * 4
    assert sum(found[-8:]) / 8 < 0.5 * sum(found[:8]) / 8
    assert random_student.student.metrics["accuracy"] == 1.0
    assert random_student.keep_layers is None
    card = (random_student.train.out / "README.md").read_text()
    assert "--student " in card and "--keep-layers" not in card


@pytest.mark.slow
def test_distilled_student_is_saved_with_its_layers(
    teacher: TrainResult, student: DistillResult
) -> None:
    import torch
    from safetensors.torch import load_file

    out = student.train.out
    config = json.loads((out / "config.json").read_text())
    assert config["num_hidden_layers"] == 1
    assert student.keep_layers == (1,)
    assert len(losses(out)) == student.train.steps == 10 * 4
    assert student.student.metrics["accuracy"] == 1.0
    # Embeddings are the teacher's starting point: the student moved away from them, but its
    # shapes, vocabulary and labels are the teacher's.
    weights = load_file(str(out / "model.safetensors"))
    original = load_file(str(teacher.out / "model.safetensors"))
    name = "bert.embeddings.word_embeddings.weight"
    assert weights[name].shape == original[name].shape
    assert not torch.equal(weights[name], original[name])
    assert config["id2label"] == json.loads((teacher.out / "config.json").read_text())["id2label"]


@pytest.mark.slow
def test_card_compares_teacher_and_student(student: DistillResult) -> None:
    card = (student.train.out / "README.md").read_text()
    assert "## Teacher and student" in card
    assert card.index("## Teacher and student") < card.index("## Versions")
    for line in ("| teacher `out` | 2 | 1.0000", "| student `out` | 1 | 1.0000",
                 "nlpsuite distill sentiment --teacher", "--keep-layers 1",
                 "distilled from", "temperature 2.0, alpha 0.7"):
        assert line in card, line
    assert student.teacher.examples_per_second > 0 and student.student.examples_per_second > 0
    assert student.student.parameters is not None and student.teacher.parameters is not None
    assert student.student.parameters < student.teacher.parameters


def test_distillation_loss_is_kl_to_the_teacher_plus_cross_entropy() -> None:
    import torch

    from nlpsuite.distillation import distillation_loss

    class Model:
        def __call__(self, **batch: Any) -> Any:
            return type("Out", (), {"logits": batch["input_ids"].float()})()

    student = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    teacher = torch.tensor([[1.0, 0.0], [0.0, 3.0]])
    labels = torch.tensor([0, 1])
    batch = {"input_ids": student, "teacher_logits": teacher, "labels": labels}
    got = distillation_loss(2.0, 0.25)(Model(), dict(batch))
    p_teacher = (teacher / 2).softmax(-1)
    kl = (p_teacher * (p_teacher.log() - (student / 2).log_softmax(-1))).sum(-1).mean()
    ce = torch.nn.functional.cross_entropy(student, labels)
    assert float(got) == pytest.approx(float(0.25 * 4 * kl + 0.75 * ce), rel=1e-5)
    # Same logits as the teacher, all weight on it: nothing to learn.
    same = {"input_ids": teacher, "teacher_logits": teacher, "labels": labels}
    assert float(distillation_loss(2.0, 1.0)(Model(), same)) == pytest.approx(0.0, abs=1e-6)


# Quantization: an int8 export that nlpsuite reloads.


@pytest.fixture(scope="module")
def exported(teacher: TrainResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("int8") / "model"
    done = nlpsuite("quantize", str(teacher.out), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "MiB ->" in done.stdout and "loads with nlpsuite only" in done.stdout
    return out


@pytest.mark.slow
def test_quantized_export_reloads_and_agrees_with_float(teacher: TrainResult,
                                                        exported: Path) -> None:
    config = json.loads((exported / "config.json").read_text())
    assert config["nlpsuite_quantization"]["mode"] == "dynamic-int8"
    assert (exported / "model.int8.pt").is_file()
    assert not list(exported.glob("*.safetensors"))
    assert "needs nlpsuite to load" in (exported / "README.md").read_text()
    texts = POSITIVE + NEGATIVE
    rows = {}
    for model in (teacher.out, exported):
        done = nlpsuite("run", "sentiment", "--model", str(model), "--json", *texts)
        assert done.returncode == 0, done.stderr
        rows[model] = [json.loads(line) for line in done.stdout.splitlines()]
    labels = [[row["label"] for row in rows[model]] for model in (teacher.out, exported)]
    assert labels[0] == labels[1] == ["POSITIVE"] * 8 + ["NEGATIVE"] * 8
    for a, b in zip(rows[teacher.out], rows[exported], strict=True):
        assert b["score"] == pytest.approx(a["score"], abs=0.05)


@pytest.mark.slow
def test_harness_evaluates_the_export_and_records_its_size(teacher: TrainResult, exported: Path,
                                                           tmp_path: Path) -> None:
    data = teacher.out.parent / "toy.jsonl"
    done = nlpsuite("eval", "sentiment", "--model", str(exported), "--dataset", str(data),
                    "--out", str(tmp_path / "eval"), "--bootstrap", "0", "--quiet")
    assert done.returncode == 0, done.stderr
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["metrics"]["accuracy"]["value"] == 1.0
    assert results["model"]["weights_bytes"] == (exported / "model.int8.pt").stat().st_size
    assert results["model"]["weights_sha256"]


@pytest.mark.slow
def test_int8_mixed_export_reloads_as_load_time_quantization(teacher: TrainResult,
                                                             tmp_path: Path) -> None:
    import torch

    from nlpsuite.models import load_model

    out = tmp_path / "mixed"
    done = nlpsuite("quantize", str(teacher.out), "--mode", "int8-mixed", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "(int8-mixed)" in done.stdout
    config = json.loads((out / "config.json").read_text())
    assert config["nlpsuite_quantization"]["mode"] == "dynamic-int8-mixed"
    card = (out / "README.md").read_text()
    assert "except the feed-forward output projections" in card and "--mode int8-mixed" in card
    reloaded = load_model("AutoModelForSequenceClassification", str(out))
    floats = {n for n, m in reloaded.named_modules() if type(m) is torch.nn.Linear}
    assert floats and all(n.endswith(".output.dense") and "attention" not in n for n in floats)
    texts = POSITIVE + NEGATIVE
    labels = []
    for model, extra in ((out, ()), (teacher.out, ("--option", "quantize=int8-mixed"))):
        done = nlpsuite("run", "sentiment", "--model", str(model), *extra, "--json", *texts)
        assert done.returncode == 0, done.stderr
        labels.append([json.loads(line)["label"] for line in done.stdout.splitlines()])
    assert labels[0] == labels[1] == ["POSITIVE"] * 8 + ["NEGATIVE"] * 8


# One-line errors.


def test_distill_errors_are_one_line(teacher: TrainResult, tiny_classifier_3way: Path,
                                     tmp_path: Path) -> None:
    data = str(teacher.out.parent / "toy.jsonl")
    base = ["distill", "sentiment", "--teacher", str(teacher.out), "--train", data, "--quiet"]
    cases = {
        ("--keep-layers", "0,5"): "layer 5 does not exist (the teacher has 2 layers, 0 to 1)",
        ("--keep-layers", "0,1"): "keeps 2 of the teacher's 2 layers; keep fewer",
        ("--keep-layers", "0,x"): "--keep-layers expects layer numbers like 0,2,4",
        ("--student-layers", "1", "--keep-layers", "0"): "not both",
        ("--student", str(tiny_classifier_3way), "--keep-layers", "0"): "not both",
        ("--alpha", "1.5"): "--alpha is a weight in [0, 1], got 1.5",
        ("--temperature", "0"): "--temperature must be a positive number",
    }
    for extra, message in cases.items():
        done = nlpsuite(*base, "--out", str(tmp_path / "out"), *extra)
        assert done.returncode == 2, extra
        assert message in one_error_line(done.stderr), (extra, done.stderr)
    done = nlpsuite("distill", "question-answering", "--teacher", str(teacher.out),
                    "--train", data, "--out", str(tmp_path / "qa"))
    assert done.returncode == 2
    assert "cannot be distilled (distillable: sentiment)" in one_error_line(done.stderr)
    other = tmp_path / "other.jsonl"
    other.write_text("".join(json.dumps({"text": t, "reference": lab}) + "\n"
                             for t, lab in (("good", "yes"), ("bad", "no"))))
    done = nlpsuite("distill", "sentiment", "--teacher", str(teacher.out), "--train", str(other),
                    "--out", str(tmp_path / "labels"), "--quiet")
    assert done.returncode == 2
    assert "are not the teacher's (NEGATIVE, POSITIVE)" in one_error_line(done.stderr)


def test_quantize_errors_are_one_line(teacher: TrainResult, tmp_path: Path) -> None:
    done = nlpsuite("quantize", str(tmp_path / "missing"), "--out", str(tmp_path / "q"))
    assert done.returncode == 2
    assert "model directory not found" in one_error_line(done.stderr)
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "file").write_text("x")
    done = nlpsuite("quantize", str(teacher.out), "--out", str(busy))
    assert done.returncode == 2
    assert f"output folder {busy} is not empty" in one_error_line(done.stderr)
    done = nlpsuite("quantize", str(teacher.out), "--mode", "int4", "--out", str(tmp_path / "q"))
    assert done.returncode == 2
    assert "'int4' is not one of 'int8', 'int8-mixed'" in done.stderr
    first = tmp_path / "first"
    assert nlpsuite("quantize", str(teacher.out), "--out", str(first)).returncode == 0
    done = nlpsuite("quantize", str(first), "--out", str(tmp_path / "again"))
    assert done.returncode == 2
    assert "already quantized by nlpsuite" in one_error_line(done.stderr)
    done = nlpsuite("train", "sentiment", "--model", str(first), "--train",
                    str(teacher.out.parent / "toy.jsonl"), "--out", str(tmp_path / "t"), "-q")
    assert done.returncode == 2
    assert "is for inference; start from the float checkpoint" in one_error_line(done.stderr)
