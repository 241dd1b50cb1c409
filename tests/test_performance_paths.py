"""Speed paths keep behaviour: int8 quantization is opt-in and checked; float32 outputs are those
of a plain per-example forward pass, whatever the batch size. No test here measures time."""

from __future__ import annotations

from pathlib import Path

import pytest

from nlpsuite import NlpsuiteError, run
from nlpsuite.lookup import load_model
from tests.test_sentiment import TEXTS


def test_int8_loads_runs_and_returns_valid_labels(tiny_classifier: Path) -> None:
    outputs = run("sentiment", TEXTS, model=str(tiny_classifier), options={"quantize": "int8"})
    assert len(outputs) == len(TEXTS)
    for output in outputs:
        assert output.label in {"NEGATIVE", "POSITIVE"}
        assert 0.5 <= output.score <= 1


def test_int8_model_is_quantized_and_cached_apart(tiny_classifier: Path) -> None:
    import torch

    plain = load_model("AutoModelForSequenceClassification", str(tiny_classifier))
    quantized = load_model(
        "AutoModelForSequenceClassification", str(tiny_classifier), quantize="int8"
    )
    assert quantized is not plain
    assert quantized is load_model(
        "AutoModelForSequenceClassification", str(tiny_classifier), quantize="int8"
    )
    assert any(isinstance(m, torch.nn.Linear) for m in plain.modules())
    assert not any(type(m) is torch.nn.Linear for m in quantized.modules())


def test_unknown_quantize_is_a_one_line_error(tiny_classifier: Path) -> None:
    with pytest.raises(NlpsuiteError) as caught:
        run("sentiment", ["fine"], model=str(tiny_classifier), options={"quantize": "int4"})
    message = str(caught.value)
    assert "\n" not in message
    assert "unknown quantize 'int4'" in message and "int8" in message


def test_int8_mixed_keeps_exactly_the_ffn_outputs_float(tiny_classifier: Path) -> None:
    import torch

    plain = load_model("AutoModelForSequenceClassification", str(tiny_classifier))
    mixed = load_model(
        "AutoModelForSequenceClassification", str(tiny_classifier), quantize="int8-mixed"
    )
    assert mixed is not load_model(
        "AutoModelForSequenceClassification", str(tiny_classifier), quantize="int8"
    )
    linears = {n for n, m in plain.named_modules() if isinstance(m, torch.nn.Linear)}
    ffn_out = {n for n in linears if n.endswith(".output.dense") and "attention" not in n}
    assert ffn_out and len(ffn_out) == plain.config.num_hidden_layers
    kinds = dict(mixed.named_modules())
    assert {n for n in linears if type(kinds[n]) is torch.nn.Linear} == ffn_out
    dynamic = torch.ao.nn.quantized.dynamic.Linear
    assert all(isinstance(kinds[n], dynamic) for n in linears - ffn_out)
    outputs = run("sentiment", TEXTS, model=str(tiny_classifier),
                  options={"quantize": "int8-mixed"})
    assert [o.label for o in outputs] == [
        o.label for o in run("sentiment", TEXTS, model=str(tiny_classifier))
    ]


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("distilbert", {"distilbert.transformer.layer.0.ffn.lin2"}),
        ("roberta", {"roberta.encoder.layer.0.output.dense"}),
        ("albert", {"albert.encoder.albert_layer_groups.0.albert_layers.0.ffn_output"}),
    ],
)
def test_ffn_output_layers_of_other_encoders(kind: str, expected: set[str]) -> None:
    from transformers import AutoConfig, AutoModelForSequenceClassification

    from nlpsuite.quantized import ffn_output_layers

    sizes = {"dim": 32, "hidden_dim": 64, "n_layers": 1, "n_heads": 2} if kind == "distilbert" \
        else {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 2, "embedding_size": 16}
    config = AutoConfig.for_model(kind, vocab_size=100, **sizes)
    model = AutoModelForSequenceClassification.from_config(config)
    assert ffn_output_layers(model) == expected


def test_int8_mixed_without_a_known_ffn_layer_is_a_one_line_error() -> None:
    import torch

    from nlpsuite.quantized import quantize_model

    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 4))
    with pytest.raises(NlpsuiteError) as caught:
        quantize_model(model, "int8-mixed")
    message = str(caught.value)
    assert "\n" not in message
    assert "no feed-forward output layer recognised in Sequential" in message
    with pytest.raises(NlpsuiteError, match="unknown quantize 'int4'"):
        quantize_model(model, "int4")
    from nlpsuite.quantization import quantize_checkpoint

    with pytest.raises(NlpsuiteError, match=r"unknown quantization 'int4' \(use int8, int8-mixed"):
        quantize_checkpoint("unused", Path("unused"), mode="int4")


def test_onnx_backend_refuses_torch_only_quantize_modes(tiny_classifier: Path) -> None:
    pytest.importorskip("onnxruntime")
    with pytest.raises(NlpsuiteError) as caught:
        load_model("AutoModelForSequenceClassification", str(tiny_classifier),
                   backend="onnx", quantize="int8-mixed")
    message = str(caught.value)
    assert "\n" not in message and "'int8-mixed' is torch-only" in message


def test_int8_refuses_cuda(tiny_classifier: Path) -> None:
    with pytest.raises(NlpsuiteError, match="CPU only"):
        load_model(
            "AutoModelForSequenceClassification",
            str(tiny_classifier),
            device="cuda",
            quantize="int8",
        )


@pytest.mark.parametrize("batch_size", [1, 4, 32])
def test_float32_matches_a_plain_per_example_forward(
    tiny_classifier: Path, batch_size: int
) -> None:
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_classifier)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier).eval()
    expected = []
    with torch.no_grad():
        for text in TEXTS:
            encoded = tokenizer(text, truncation=True, return_tensors="pt")
            probabilities = model(**encoded).logits[0].softmax(-1)
            best = int(probabilities.argmax())
            expected.append((model.config.id2label[best], float(probabilities[best])))
    outputs = run("sentiment", TEXTS, model=str(tiny_classifier), batch_size=batch_size)
    assert [o.label for o in outputs] == [label for label, _ in expected]
    assert [o.score for o in outputs] == pytest.approx([s for _, s in expected], abs=1e-5)


@pytest.mark.parametrize("side", ["right", "left"])
def test_pad_batch_equals_tokenizer_pad(tiny_qa: Path, side: str) -> None:
    import torch
    from transformers import AutoTokenizer

    from nlpsuite.batching import PAD_MULTIPLE, pad_batch

    tokenizer = AutoTokenizer.from_pretrained(tiny_qa)
    tokenizer.padding_side = side
    encoded = tokenizer(["who built the tower", "a"], ["the king built it in paris", "b c"])
    rows = [{key: encoded[key][i] for key in encoded} for i in range(2)]
    names = ["input_ids", "attention_mask", "token_type_ids"]
    ours = pad_batch(tokenizer, rows, names)
    theirs = tokenizer.pad(rows, return_tensors="pt", pad_to_multiple_of=PAD_MULTIPLE)
    assert set(ours) == set(names)
    for name in names:
        assert ours[name].dtype == theirs[name].dtype
        assert torch.equal(ours[name], theirs[name])


def test_question_answering_does_not_depend_on_batch_size(tiny_qa: Path) -> None:
    context = "the king built the tower in paris . " * 30 + "the queen wrote a book in rome ."
    questions = ["who built the tower", "where was the book", "what did the queen write"]
    records = [{"question": q, "context": context} for q in questions]
    one = run("question-answering", records, model=str(tiny_qa), batch_size=1)
    many = run("question-answering", records, model=str(tiny_qa), batch_size=16)
    assert [(o.start, o.end) for o in one] == [(o.start, o.end) for o in many]
    assert [o.score for o in one] == pytest.approx([o.score for o in many], abs=1e-6)
