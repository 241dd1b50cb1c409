"""nlpsuite.generation: sentence splitting, fitting text to a window, batched generation."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from nlpsuite import NlpsuiteError, RunConfig
from nlpsuite.generation import (
    Seq2Seq,
    chunk_text,
    fit_text,
    join_sentences,
    load_seq2seq,
    pack,
    split_sentences,
    task_params,
)
from tests import tiny_seq2seq

ARCHITECTURES = ["tiny_marian", "tiny_t5", "tiny_bart"]


# Tiny models gain nothing from a second thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def load(folder: Path, prefix: str = "") -> Seq2Seq:
    return load_seq2seq(RunConfig(model=str(folder)), prefix)


def words(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [rng.choice(tiny_seq2seq.WORDS) for _ in range(count)]


def by_words(texts: Sequence[str]) -> list[int]:
    """A stand-in token counter: one token per word plus an end-of-sequence token."""
    return [len(text.split()) + 1 for text in texts]


# Sentence splitting.


@pytest.mark.parametrize(("text", "sentences"), [
    ("One. Two! Three? Four", ["One.", "Two!", "Three?", "Four"]),
    ("Dr. Smith met Mr. Jones at 3.5 km. Then they left.",
     ["Dr. Smith met Mr. Jones at 3.5 km.", "Then they left."]),
    ("J. R. R. Tolkien wrote it. The U.S. Army read it.",
     ["J. R. R. Tolkien wrote it.", "The U.S. Army read it."]),
    ("See e.g. this one. and that one. Fine.", ["See e.g. this one. and that one.", "Fine."]),
    ('He said "Stop." Then "Go!" she said.', ['He said "Stop."', 'Then "Go!" she said.']),
    ("Visit example.com today. Yes.", ["Visit example.com today.", "Yes."]),
    ("Wait... What? (Really.) Yes.", ["Wait...", "What?", "(Really.)", "Yes."]),
    ("你好。世界！再见", ["你好。", "世界！", "再见"]),  # noqa: RUF001
    ("no end punctuation at all", ["no end punctuation at all"]),
])
def test_split_sentences(text: str, sentences: list[str]) -> None:
    assert [sentence for sentence, _ in split_sentences(text)] == sentences


def test_line_breaks_end_sentences_and_are_kept() -> None:
    text = "  Title\nFirst line. Second.\n\n  Next paragraph.  "
    pairs = split_sentences(text)
    assert pairs == [("Title", "\n"), ("First line.", " "), ("Second.", "\n\n  "),
                     ("Next paragraph.", "")]
    assert join_sentences(pairs) == text.strip()
    unspaced = join_sentences([("你好。", ""), ("世界！", "")], spaced=False)  # noqa: RUF001
    assert unspaced == "你好。世界！"  # noqa: RUF001
    assert split_sentences(" \n\t ") == []


# Fitting text to a window: nothing may be lost, nothing may run over.


def test_fit_text_cuts_at_words_and_keeps_every_word() -> None:
    text = " ".join(words(95))
    pieces = fit_text(text, by_words, budget=10)
    assert all(n <= 10 for n in by_words(pieces))
    assert " ".join(pieces).split() == text.split()
    assert len(pieces) == 11  # 9 words + </s> per piece: ceil(95 / 9)
    assert fit_text("short text", by_words, 10) == ["short text"]


def test_fit_text_cuts_a_word_longer_than_the_window_at_characters() -> None:
    def by_chars(texts: Sequence[str]) -> list[int]:
        return [len(text) + 1 for text in texts]

    giant = "x" * 50
    pieces = fit_text(f"ab {giant} cd", by_chars, budget=12)
    assert all(n <= 12 for n in by_chars(pieces))
    assert "".join(pieces).replace(" ", "") == "ab" + giant + "cd"


def test_chunk_text_packs_whole_sentences() -> None:
    sentences = [" ".join(words(5, seed=i)).capitalize() + "." for i in range(20)]
    chunks = chunk_text(" ".join(sentences), by_words, budget=16)
    assert all(n <= 16 for n in by_words(chunks))
    assert len(chunks) == 7  # three five-word sentences and one </s> fill 16: ceil(20 / 3)
    assert " ".join(chunks) == " ".join(sentences)


def test_pack_splits_again_when_the_estimate_was_short() -> None:
    # Joining adds a token per joint here, so the per-unit estimate undercounts a packed piece.
    def with_joints(texts: Sequence[str]) -> list[int]:
        return [len(text.split()) + text.count(" ") + 1 for text in texts]

    units = [f"w{i}" for i in range(12)]
    pieces = pack(units, " ", with_joints, budget=6)
    assert all(n <= 6 for n in with_joints(pieces))
    assert " ".join(pieces).split() == units
    with pytest.raises(NlpsuiteError, match="cannot fit"):
        pack(["a b c d e f g"], " ", by_words, budget=3)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_real_tokenizer_chunks_fit_the_window(architecture: str,
                                              request: pytest.FixtureRequest) -> None:
    seq2seq = load(request.getfixturevalue(architecture), prefix="summarize: ")
    rng = random.Random(5)
    text = " ".join(tiny_seq2seq.sentence(rng, 4, 20) for _ in range(80))
    assert seq2seq.count([text])[0] > 10 * seq2seq.window
    chunks = seq2seq.chunks(text)
    assert all(n <= seq2seq.window for n in seq2seq.count(chunks))
    assert " ".join(chunks) == text
    # Greedy packing leaves no two neighbouring chunks that would have fit together.
    assert all(n > seq2seq.window for n in seq2seq.count(
        [a + " " + b for a, b in itertools.pairwise(chunks)]))


# Generation: batched greedy search gives exactly what each input gives alone.


def sentences(count: int, seed: int, low: int = 1, high: int = 25) -> list[str]:
    rng = random.Random(seed)
    return [tiny_seq2seq.sentence(rng, low, high) for _ in range(count)]


def raw_generate(seq2seq: Seq2Seq, text: str, max_new_tokens: int) -> tuple[int, ...]:
    """transformers' own generate() on one unpadded input: the reference."""
    import torch

    ids = torch.tensor([seq2seq.encode([text])[0]])
    with torch.inference_mode():
        out = seq2seq.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                                     max_new_tokens=max_new_tokens, num_beams=1, do_sample=False)
    tokens = out[0, 1:].tolist()
    ends = [i for i, t in enumerate(tokens) if t in seq2seq.eos_token_ids]
    return tuple(tokens[:ends[0] + 1] if ends else tokens)


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_batched_greedy_equals_each_input_alone(architecture: str,
                                                request: pytest.FixtureRequest) -> None:
    seq2seq = load(request.getfixturevalue(architecture))
    texts = sentences(40, seed=1)
    batched = seq2seq.generate(texts, max_new_tokens=30, batch_size=16, num_beams=1)
    alone = [seq2seq.generate([text], max_new_tokens=30, num_beams=1)[0] for text in texts]
    assert batched == alone
    assert [g.token_ids for g in alone] == [raw_generate(seq2seq, t, 30) for t in texts]
    # The outputs depend on the input, so rows put back in the wrong order would show.
    assert len({g.text for g in batched}) > len(texts) // 3


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_max_new_tokens_bounds_every_row(architecture: str, request: pytest.FixtureRequest) -> None:
    seq2seq = load(request.getfixturevalue(architecture))
    texts = sentences(12, seed=2)
    limits = [1 + i % 7 for i in range(len(texts))]
    generated = seq2seq.generate(texts, max_new_tokens=limits, batch_size=5, num_beams=1)
    for generation, limit in zip(generated, limits, strict=True):
        assert 1 <= len(generation.token_ids) <= limit
    # Each row stops where it would alone, even beside rows allowed to run longer (Marian and
    # BART force </s> as the last token at the limit: per row, not per batch).
    alone = [seq2seq.generate([text], max_new_tokens=limit, num_beams=1)[0]
             for text, limit in zip(texts, limits, strict=True)]
    assert generated == alone
    longer = seq2seq.generate(texts, max_new_tokens=20, num_beams=1)
    for short, long in zip(generated, longer, strict=True):
        assert long.token_ids[:len(short.token_ids) - 1] == short.token_ids[:-1]
    # A function of the input length gives each row its own bound too.
    by_length = seq2seq.generate(texts, max_new_tokens=lambda n: n // 4 + 1, num_beams=1)
    for text, generation in zip(texts, by_length, strict=True):
        assert len(generation.token_ids) <= seq2seq.count([text])[0] // 4 + 1


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("options", [
    {},
    {"min_length": 6},
    {"suppress_tokens": [5, 6, 7], "forced_eos_token_id": None},
    {"min_new_tokens": 3, "forced_bos_token_id": 9},
])
def test_fast_greedy_picks_the_tokens_generate_picks(
    architecture: str, options: dict[str, Any], request: pytest.FixtureRequest
) -> None:
    from nlpsuite.decoding import settings, unsupported

    seq2seq = load(request.getfixturevalue(architecture))
    given = {"num_beams": 1, **options}
    assert unsupported(settings(seq2seq.model, given), given) is None  # the fast path is tested
    texts = sentences(20, seed=4)
    limits = [2 + i % 11 for i in range(len(texts))]
    fast = seq2seq.generate(texts, max_new_tokens=limits, batch_size=8, num_beams=1, **options)
    seq2seq.fast_greedy = False
    reference = seq2seq.generate(texts, max_new_tokens=limits, batch_size=8, num_beams=1,
                                 **options)
    assert fast == reference
    assert len({g.token_ids for g in fast}) > len(texts) // 3


def test_fast_greedy_leaves_what_it_does_not_handle_to_generate(tiny_marian: Path) -> None:
    from nlpsuite.decoding import settings, unsupported

    model = load(tiny_marian).model
    assert unsupported(settings(model, {"num_beams": 1}), {"num_beams": 1}) is None
    for options, reason in [
        ({"num_beams": 2}, "beam search"),
        ({"num_beams": 1, "no_repeat_ngram_size": 3}, "no_repeat_ngram_size"),
        ({"num_beams": 1, "repetition_penalty": 1.2}, "repetition_penalty"),
        ({"num_beams": 1, "bad_words_ids": [[4, 5]]}, "multi-token bad_words_ids"),
    ]:
        assert unsupported(settings(model, options), options) == reason


def test_row_limits_hold_under_beam_search(tiny_marian: Path) -> None:
    seq2seq = load(tiny_marian)
    texts = sentences(6, seed=3)
    limits = [2, 9, 4, 12, 1, 6]
    generated = seq2seq.generate(texts, max_new_tokens=limits, num_beams=3, batch_size=4)
    assert all(len(g.token_ids) <= n for g, n in zip(generated, limits, strict=True))
    assert all(g.token_ids for g in generated)


def test_output_cannot_run_off_the_decoder_position_table(tiny_bart: Path) -> None:
    seq2seq = load(tiny_bart)
    assert seq2seq.max_new_tokens == tiny_seq2seq.WINDOW - 1
    generated = seq2seq.generate(sentences(3, seed=4), max_new_tokens=10_000,
                                 min_length=tiny_seq2seq.WINDOW)
    assert [len(g.token_ids) for g in generated] == [tiny_seq2seq.WINDOW - 1] * 3


def test_t5_has_no_decoder_table_and_takes_its_window_from_the_tokenizer(tiny_t5: Path) -> None:
    seq2seq = load(tiny_t5)
    assert seq2seq.max_new_tokens is None
    assert seq2seq.window == tiny_seq2seq.WINDOW


def test_prefix_is_encoded_before_every_text(tiny_t5: Path) -> None:
    plain, prefixed = load(tiny_t5), load(tiny_t5, prefix="summarize: ")
    assert prefixed.encode(["the city"]) == plain.encode(["summarize: the city"])
    with pytest.raises(NlpsuiteError, match="fills the model's whole window"):
        load(tiny_t5, prefix="word " * 100)


def test_input_longer_than_the_window_is_refused_not_truncated(tiny_marian: Path) -> None:
    seq2seq = load(tiny_marian)
    with pytest.raises(NlpsuiteError, match="longer than the model's window of 64"):
        seq2seq.generate([" ".join(words(200))], max_new_tokens=5)
    with pytest.raises(NlpsuiteError, match="at least 1"):
        seq2seq.generate(["fine"], max_new_tokens=0)


def test_decoder_only_model_is_refused() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=1, n_embd=8, vocab_size=10))
    tokenizer: Any = None
    with pytest.raises(NlpsuiteError, match="'gpt2' is not an encoder-decoder model"):
        Seq2Seq(model, tokenizer)


def test_task_params() -> None:
    from transformers import T5Config

    config = T5Config(task_specific_params={"summarization": {"prefix": "summarize: "}, "bad": 1})
    assert task_params(config, "summarization") == {"prefix": "summarize: "}
    assert task_params(config, "bad") == {}
    assert task_params(T5Config(), "summarization") == {}
