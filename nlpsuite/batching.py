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


def pad_batch(tokenizer: Any, rows: Sequence[dict[str, list[int]]], names: Sequence[str]) -> Any:
    """``tokenizer.pad(rows, return_tensors="pt")`` for the ``names`` fields, built in numpy.

    The same tensors (padded to the longest row, on the tokenizer's padding side, with its pad
    token, pad token type and a 0 attention mask) without ``pad``'s per-element Python walk,
    which costs as much as a small model's forward pass.
    """
    import numpy as np
    import torch

    if tokenizer.pad_token_id is None:  # pad's own error (or a batch that needs no padding)
        return tokenizer.pad(
            [{name: row[name] for name in names if name in row} for row in rows],
            return_tensors="pt",
        )
    width = max(len(row["input_ids"]) for row in rows)
    fill = {
        "input_ids": tokenizer.pad_token_id,
        "attention_mask": 0,
        "token_type_ids": getattr(tokenizer, "pad_token_type_id", 0),
    }
    left = tokenizer.padding_side == "left"
    batch = {}
    for name in names:
        if name not in rows[0] and name != "attention_mask":
            continue
        array = np.full((len(rows), width), fill[name], dtype=np.int64)
        for i, row in enumerate(rows):
            values = row.get(name) or [1] * len(row["input_ids"])
            if left:
                array[i, width - len(values) :] = values
            else:
                array[i, : len(values)] = values
        batch[name] = torch.from_numpy(array)
    return batch
