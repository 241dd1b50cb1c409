"""A text's answer does not depend on its batch-mates: each input run alone (a batch of one) and
in batches of 3, 8 and 32 in shuffled orders gives outputs that are equal, not approximately but
exactly (float32 on CPU). This is what lets `nlpsuite serve` merge concurrent requests into one
forward pass and still answer what `nlpsuite run` gives for each input alone.

Greedy generation is covered where it is built: tests/test_text_generation.py and
tests/test_generation.py check that batched tokens equal each prompt's alone.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pytest

from nlpsuite import get_task
from nlpsuite.batching import PAD_MULTIPLE, pad_batch, pad_linear_rows, padded_width
from nlpsuite.lookup import load_runner
from tests.tiny_models import WORDS

BATCH_SIZES = (3, 8, 32)
Item = TypeVar("Item")
Result = TypeVar("Result")


def mixed_texts(count: int, seed: int, longest: int) -> list[str]:
    """``count`` texts of 1 to ``longest`` words, the last one far past any model's window."""
    chooser = random.Random(seed)
    lengths = [chooser.randint(1, longest) for _ in range(count - 1)] + [600]
    return [" ".join(chooser.choice(WORDS) for _ in range(length)) for length in lengths]


def in_shuffled_batches(
    predict: Callable[[list[Item]], Sequence[Result]],
    items: Sequence[Item],
    batch_size: int,
    seed: int,
) -> list[Result]:
    """``predict`` on batches of ``batch_size`` items drawn in a shuffled order; results back in
    input order, so each item meets different batch-mates at each batch size."""
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    results: list[Any] = [None] * len(items)
    for start in range(0, len(order), batch_size):
        chosen = order[start : start + batch_size]
        for index, result in zip(chosen, predict([items[i] for i in chosen]), strict=True):
            results[index] = result
    return results


def assert_runner_is_batch_invariant(
    task_name: str, model: str, values: Sequence[Any], options: dict[str, Any] | None = None
) -> None:
    task = get_task(task_name)
    records = [task.make_input(value, f"input {i}") for i, value in enumerate(values)]
    one = load_runner(task, model, batch_size=1, options=options)
    alone = [one([record])[0] for record in records]
    for batch_size in BATCH_SIZES:
        runner = load_runner(task, model, batch_size=batch_size, options=options)
        batched = in_shuffled_batches(runner, records, batch_size, seed=batch_size)
        differing = [i for i, (a, b) in enumerate(zip(alone, batched, strict=True)) if a != b]
        assert not differing, f"batch size {batch_size}: inputs {differing} differ from alone"
    assert len({repr(output) for output in alone}) > len(values) // 2  # the inputs matter


@pytest.mark.slow
def test_minilm_embeddings_alone_equal_batched_to_the_last_bit(minilm: Path) -> None:
    from nlpsuite_plugins.semantic_search.encoder import load_encoder

    encoder = load_encoder(str(minilm))
    texts = mixed_texts(44, seed=1, longest=80)
    alone = np.stack([encoder.encode([text])[0] for text in texts])
    for batch_size in BATCH_SIZES:

        def encode(chunk: list[str], size: int = batch_size) -> list[np.ndarray]:
            return list(encoder.encode(chunk, size))

        batched = np.stack(in_shuffled_batches(encode, texts, batch_size, seed=batch_size))
        assert batched.dtype == alone.dtype == np.float32
        differing = np.flatnonzero(~(batched == alone).all(axis=1)).tolist()
        assert not differing, f"batch size {batch_size}: texts {differing} differ from alone"


@pytest.mark.slow
def test_sentence_similarity_alone_equals_batched(minilm: Path) -> None:
    texts = mixed_texts(40, seed=2, longest=40)
    pairs = [{"text": a, "text_pair": b} for a, b in zip(texts, texts[1:] + texts[:1], strict=True)]
    assert_runner_is_batch_invariant("sentence-similarity", str(minilm), pairs)


def test_sentiment_scores_alone_equal_batched(tiny_classifier: Path) -> None:
    # Longer than the 128-position window too; every label's score is compared.
    texts = mixed_texts(48, seed=3, longest=150)
    assert_runner_is_batch_invariant("sentiment", str(tiny_classifier), texts, {"top_k": 2})


def test_question_answering_alone_equals_batched(tiny_qa: Path) -> None:
    # Contexts past the 64-position window are read in several windows.
    contexts = mixed_texts(40, seed=4, longest=120)
    questions = mixed_texts(41, seed=5, longest=10)[:-1]
    records = [{"question": q, "context": c} for q, c in zip(questions, contexts, strict=True)]
    assert_runner_is_batch_invariant("question-answering", str(tiny_qa), records, {"top_k": 3})


# The two mechanisms.


def test_padded_width_rounds_up_to_the_multiple_but_not_past_the_limit() -> None:
    assert PAD_MULTIPLE == 16
    assert [padded_width(n) for n in (1, 15, 16, 17, 33)] == [16, 16, 16, 32, 48]
    assert padded_width(250, max_length=256) == 256
    assert padded_width(510, max_length=514) == 512
    assert padded_width(513, max_length=514) == 514  # the position table ends at 514
    assert padded_width(520, max_length=512) == 520  # a row past the limit is never cut


def test_pad_batch_pads_to_the_multiple_and_stops_at_the_model_limit(tiny_qa: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_qa)  # model_max_length 64
    names = ["input_ids", "attention_mask", "token_type_ids"]
    rows = [dict(tokenizer("who built the tower")), dict(tokenizer("a"))]
    assert pad_batch(tokenizer, rows, names)["input_ids"].shape == (2, 16)
    long_row = {"input_ids": [2] + [7] * 59 + [3], "token_type_ids": [0] * 61}
    batch = pad_batch(tokenizer, [long_row, *rows], names)
    assert batch["input_ids"].shape == (3, 64)
    assert batch["attention_mask"][0].tolist() == [1] * 61 + [0] * 3
    assert pad_batch(tokenizer, [long_row], names, max_length=62)["input_ids"].shape == (1, 62)


def test_pad_linear_rows_gives_every_row_as_a_large_product_does() -> None:
    import torch

    torch.manual_seed(0)
    layer = torch.nn.Linear(48, 24)
    model = torch.nn.Sequential(layer, torch.nn.Tanh(), torch.nn.Linear(24, 2))
    inputs = torch.randn(64, 48)
    with torch.inference_mode():
        reference = model(inputs)
        assert pad_linear_rows(model) is model
        forward = layer.forward
        pad_linear_rows(model)
        assert layer.forward is forward  # wrapped once, however often it is asked
        for rows in range(1, 21):
            assert torch.equal(model(inputs[:rows]), reference[:rows]), f"{rows} rows"
        three_d = model(inputs[:6].reshape(2, 3, 48))
    assert three_d.shape == (2, 3, 2)
    assert torch.equal(three_d.reshape(6, 2), reference[:6])
    assert pad_linear_rows("not a torch module") == "not a torch module"
