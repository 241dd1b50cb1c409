"""Inference engines as plugins: torch, ONNX Runtime and CTranslate2 give the same outputs."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from nlpsuite import NlpsuiteError, RunConfig, load_runner
from nlpsuite.backends import Backend
from nlpsuite.harness import evaluate
from nlpsuite.lookup import canonical_backend, parse_backend
from nlpsuite.plugins import Registry
from nlpsuite.results import EvalRequest
from tests.helpers import nlpsuite, nlpsuite_process, one_error_line

onnxruntime = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="session")
def conversions(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conversions")


@pytest.fixture(autouse=True)
def _cache(conversions: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Conversions go to one folder per test session, never to the user's cache."""
    monkeypatch.setenv("NLPSUITE_CACHE", str(conversions))
    yield


def _forget_loaded_models() -> None:
    """Drop models loaded in this process, so the next load goes to the conversion cache."""
    from nlpsuite import models

    for key in [key for key in models._cache if key[0] == "backend-model"]:
        del models._cache[key]


TEXTS = ["the film was great", "bad", "a wonderful story of love and war in paris",
         "terrible acting, boring plot", "the best movie of the year"]


def test_listing_backends_does_not_import_engines() -> None:
    code = (
        "import sys; from nlpsuite.cli import main; sys.argv = ['nlpsuite', 'backends'];\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        "print('HEAVY:', ','.join(m for m in ('torch', 'transformers', 'onnxruntime', "
        "'ctranslate2', 'onnx') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "HEAVY: "
    assert {line.split("\t")[0] for line in lines if "\t" in line} >= {
        "torch", "onnx", "ctranslate2"}


def test_backends_json_says_what_is_installed() -> None:
    done = nlpsuite("backends", "--json")
    rows = {row["name"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert rows["torch"]["installed"] and rows["torch"]["auto_classes"] is None
    assert rows["onnx"]["installed"] and "AutoModel" in rows["onnx"]["auto_classes"]
    assert [o["name"] for o in rows["ctranslate2"]["options"]] == ["compute_type"]


def test_specs_are_checked_and_written_one_way() -> None:
    assert canonical_backend("torch") == "torch"
    assert canonical_backend(" onnx : quantize=int8 ") == "onnx:quantize=int8"
    assert canonical_backend("ctranslate2:compute_type=float32") == "ctranslate2"
    with pytest.raises(NlpsuiteError, match="unknown backend 'tensorrt'"):
        parse_backend("tensorrt")
    with pytest.raises(NlpsuiteError, match="unknown option 'threads' for backend 'onnx'"):
        parse_backend("onnx:threads=2")
    with pytest.raises(NlpsuiteError, match="expected NAME:KEY=VALUE"):
        parse_backend("onnx:int8")


def test_an_engine_not_installed_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch, tiny_classifier: Path
) -> None:
    registry = Registry()
    missing = Backend("fast", "A fast engine.", load=lambda config: None,
                      requires=("no_such_engine_module",), extra="fast")
    registry.backends["fast"] = missing
    monkeypatch.setattr("nlpsuite.plugins.registry", lambda: registry)
    with pytest.raises(NlpsuiteError) as error:
        parse_backend("fast")
    assert str(error.value) == (
        "backend 'fast' is not installed: pip install 'nlpsuite[fast]'")


def test_a_plugin_cannot_take_a_backend_name() -> None:
    from nlpsuite import hookimpl

    class Clash:
        @staticmethod
        @hookimpl
        def register_backends(register):  # type: ignore[no-untyped-def]
            register(Backend("torch", "Another torch.", load=lambda config: None))

    registry = Registry()
    info = registry.add(Clash(), "clash")
    assert not info.ok and "backend 'torch' is already registered" in str(info.error)


def test_errors_are_one_line(tiny_classifier: Path) -> None:
    for backend, message in [
        ("ctranslate2", "backend 'ctranslate2' does not run AutoModelForSequenceClassification"),
        ("nope", "unknown backend 'nope'"),
        ("onnx:quantize=int4", "unknown quantize 'int4'"),
    ]:
        done = nlpsuite("run", "sentiment", "-m", str(tiny_classifier), "--backend", backend,
                        "good")
        assert done.returncode == 2
        assert message in one_error_line(done.stderr)


def test_onnx_sentiment_equals_torch(tiny_classifier: Path) -> None:
    torch_out = load_runner("sentiment", str(tiny_classifier), options={"top_k": 2})(
        _inputs("sentiment"))
    onnx_out = load_runner("sentiment", str(tiny_classifier), options={"top_k": 2},
                           backend="onnx")(_inputs("sentiment"))
    assert [o.label for o in onnx_out] == [o.label for o in torch_out]
    for ours, theirs in zip(onnx_out, torch_out, strict=True):
        assert ours.score == pytest.approx(theirs.score, abs=1e-4)
        assert ours.scores.keys() == theirs.scores.keys()


def test_onnx_conversion_is_cached(tiny_classifier: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from nlpsuite_plugins import onnx_backend

    load_runner("sentiment", str(tiny_classifier), backend="onnx")
    _forget_loaded_models()

    def no_second_export(*args: object) -> None:
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_backend, "export", no_second_export)
    outputs = load_runner("sentiment", str(tiny_classifier), backend="onnx")(
        _inputs("sentiment"))
    assert len(outputs) == len(TEXTS)


def test_onnx_int8_runs(tiny_classifier: Path) -> None:
    outputs = load_runner("sentiment", str(tiny_classifier), backend="onnx:quantize=int8")(
        _inputs("sentiment"))
    assert {o.label for o in outputs} <= {"NEGATIVE", "POSITIVE"}
    # The task's own quantize option means the same on this backend.
    same = load_runner("sentiment", str(tiny_classifier), backend="onnx",
                       options={"quantize": "int8"})(_inputs("sentiment"))
    assert [o.score for o in same] == [o.score for o in outputs]


def test_onnx_question_answering_equals_torch(tiny_qa: Path) -> None:
    from nlpsuite_plugins.question_answering import QAInput

    context = ("Paris is the capital city of France . the river of the city is long and the "
               "tower was built in the year one . ") * 4  # several windows of 64 tokens
    inputs = [QAInput(question, context) for question in
              ("what is the capital of france", "when was the tower built", "who wrote it")]
    torch_out = load_runner("question-answering", str(tiny_qa))(inputs)
    onnx_out = load_runner("question-answering", str(tiny_qa), backend="onnx")(inputs)
    assert [(o.start, o.end) for o in onnx_out] == [(o.start, o.end) for o in torch_out]
    for ours, theirs in zip(onnx_out, torch_out, strict=True):
        assert ours.score == pytest.approx(theirs.score, abs=1e-4)


@pytest.mark.slow
def test_onnx_minilm_embeddings_equal_torch(minilm: Path) -> None:
    import numpy as np
    from nlpsuite_plugins.semantic_search import embed

    sentences = [*TEXTS, "How do plants make energy from light?", "x " * 300]
    theirs = embed(sentences, RunConfig(model=str(minilm)))
    ours = embed(sentences, RunConfig(model=str(minilm), backend="onnx"))
    assert float(np.abs(ours - theirs).max()) < 1e-4
    assert float((ours * theirs).sum(axis=1).min()) >= 0.9999


def test_eval_records_the_backend_and_does_not_reuse_torch_runs(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    from nlpsuite.report import build, to_markdown

    base = dict(task="sentiment", dataset="sentiment-mini", model=str(tiny_classifier),
                bootstrap=50)
    torch_run = evaluate(EvalRequest(out=tmp_path / "board" / "torch", **base))
    onnx_run = evaluate(EvalRequest(out=tmp_path / "board" / "onnx", backend="onnx", **base))
    assert torch_run["backend"] == "torch" and onnx_run["backend"] == "onnx"
    assert "onnxruntime" in onnx_run["versions"]
    assert "--backend onnx" in onnx_run["command"]
    assert onnx_run["metrics"]["accuracy"]["value"] == torch_run["metrics"]["accuracy"]["value"]
    with pytest.raises(NlpsuiteError, match="holds a run with other arguments"):
        evaluate(EvalRequest(out=tmp_path / "board" / "torch", backend="onnx", **base))
    board = to_markdown(build(tmp_path / "board"))
    name = tiny_classifier.name
    assert f"| {name} [onnx] |" in board and f"| {name} |" in board


# CTranslate2: greedy search must give transformers' tokens, per-input limits included.

ct2 = pytest.mark.skipif(
    __import__("importlib").util.find_spec("ctranslate2") is None, reason="needs ctranslate2")


def _sentences(count: int = 16) -> list[str]:
    from tests.tiny_seq2seq import sentence

    rng = random.Random(3)
    return [sentence(rng, 2, 14) for _ in range(count)]


@ct2
@pytest.mark.parametrize("checkpoint", ["tiny_marian", "tiny_bart", "tiny_t5"])
def test_ctranslate2_greedy_equals_torch(checkpoint: str, request: pytest.FixtureRequest) -> None:
    from nlpsuite.generation import load_seq2seq

    folder = str(request.getfixturevalue(checkpoint))
    texts = _sentences()

    def limit(tokens: int) -> int:  # rows of one batch end at different limits
        return 3 + tokens % 11

    torch_model = load_seq2seq(RunConfig(model=folder))
    ct2_model = load_seq2seq(RunConfig(model=folder, backend="ctranslate2"))
    theirs = torch_model.generate(texts, max_new_tokens=limit, batch_size=8, num_beams=1)
    ours = ct2_model.generate(texts, max_new_tokens=limit, batch_size=8, num_beams=1)
    assert [g.token_ids for g in ours] == [g.token_ids for g in theirs]
    assert [g.text for g in ours] == [g.text for g in theirs]


@ct2
def test_ctranslate2_translation_int8_and_cache(
    tiny_marian: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from nlpsuite_plugins import ctranslate2_backend
    from nlpsuite_plugins.translation import TranslationInput

    inputs = [TranslationInput(text) for text in _sentences(6)]
    float32 = load_runner("translation", str(tiny_marian), backend="ctranslate2")(inputs)
    assert float32 == load_runner("translation", str(tiny_marian))(inputs)
    _forget_loaded_models()
    monkeypatch.setattr(ctranslate2_backend, "convert", lambda *args: 1 / 0)
    int8 = load_runner("translation", str(tiny_marian),
                       backend="ctranslate2:compute_type=int8")(inputs)
    assert len(int8) == len(inputs) and all(isinstance(o.translation, str) for o in int8)


@ct2
def test_ctranslate2_refuses_what_it_cannot_do(tiny_marian: Path) -> None:
    from nlpsuite.generation import load_seq2seq

    model = load_seq2seq(RunConfig(model=str(tiny_marian), backend="ctranslate2"))
    with pytest.raises(NlpsuiteError, match="does not support the generate option 'top_p'"):
        model.generate(["Good book."], max_new_tokens=5, top_p=0.9)
    done = nlpsuite_process("run", "translation", "-m", str(tiny_marian), "--backend",
                            "ctranslate2:compute_type=int3", "Good book.")
    assert done.returncode == 2
    assert "unknown compute_type 'int3'" in one_error_line(done.stderr)


def _inputs(task: str) -> list[object]:
    from nlpsuite.lookup import get_task

    return [get_task(task).make_input(text, "test") for text in TEXTS]
