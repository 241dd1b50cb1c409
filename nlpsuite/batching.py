"""Length-sorted batching shared by the built-in tasks: little padding, outputs in input order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def map_sorted(
    items: Sequence[Item],
    predict: Callable[[list[Item]], Sequence[Result]],
    batch_size: int,
    length: Callable[[Item], int],
) -> list[Result]:
    """``predict`` on batches of items of similar ``length``; results come back in input order."""
    order = sorted(range(len(items)), key=lambda index: -length(items[index]))
    results: list[Any] = [None] * len(items)
    for start in range(0, len(order), batch_size):
        indices = order[start : start + batch_size]
        outputs = predict([items[index] for index in indices])
        for index, output in zip(indices, outputs, strict=True):
            results[index] = output
    return results


def model_max_length(tokenizer: Any, config: Any) -> int:
    """The longest input the model takes: the tokenizer's limit, capped by the position table."""
    limits = [
        getattr(tokenizer, "model_max_length", None),
        getattr(config, "max_position_embeddings", None),
    ]
    usable = [limit for limit in limits if isinstance(limit, int) and 0 < limit < 1_000_000]
    return min(usable) if usable else 512


def encode_truncated(
    tokenizer: Any, texts: Sequence[str], max_length: int
) -> tuple[list[Any], int]:
    """Tokenize ``texts`` once, truncating to ``max_length``; also return how many were cut."""
    if not texts:  # tokenizers fail on an empty list, and a runner must accept an empty batch
        return [], 0
    encoded = tokenizer(list(texts), truncation=False, verbose=False)
    rows = [{key: encoded[key][i] for key in encoded} for i in range(len(texts))]
    long = [i for i, row in enumerate(rows) if len(row["input_ids"]) > max_length]
    if long:
        cut = tokenizer([texts[i] for i in long], truncation=True, max_length=max_length)
        for position, i in enumerate(long):
            rows[i] = {key: cut[key][position] for key in cut}
    return rows, len(long)
