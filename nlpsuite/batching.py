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


# A text is cut to this many characters per token of the window before it is tokenized, so a huge
# input costs memory in proportion to the window, not to its own length (see encode_truncated).
CHARACTERS_PER_TOKEN = 32


def encode_truncated(
    tokenizer: Any, texts: Sequence[str], max_length: int
) -> tuple[list[Any], int]:
    """Tokenize ``texts`` truncating to ``max_length``; also return how many were cut.

    The tokens are those of the whole text truncated, but a text far longer than the window is
    tokenized only as far as the window reaches: a prefix ending at a space, long enough to give
    more than ``max_length`` tokens (grown until it does, for text of unusually long tokens).
    """
    if not texts:  # tokenizers fail on an empty list, and a runner must accept an empty batch
        return [], 0
    reach = max_length * CHARACTERS_PER_TOKEN
    rows: list[Any] = [None] * len(texts)
    pending = list(range(len(texts)))
    truncated = 0
    while pending:
        prefixes = [_prefix(texts[i], reach) for i in pending]
        encoded = tokenizer(prefixes, truncation=False, verbose=False)
        unfinished = []
        long = []
        for position, i in enumerate(pending):
            length = len(encoded["input_ids"][position])
            if length > max_length:
                long.append((position, i))
            elif len(prefixes[position]) < len(texts[i]):
                unfinished.append(i)  # a cut text that does not yet fill the window
            else:
                rows[i] = {key: encoded[key][position] for key in encoded}
        if long:
            cut = tokenizer([prefixes[p] for p, _ in long], truncation=True, max_length=max_length)
            for row, (_, i) in enumerate(long):
                rows[i] = {key: cut[key][row] for key in cut}
            truncated += len(long)
        pending, reach = unfinished, reach * 4
    return rows, truncated


def _prefix(text: str, reach: int) -> str:
    """``text`` cut after at most ``reach`` characters, at a space so no word is split."""
    if len(text) <= reach:
        return text
    space = text.rfind(" ", 0, reach)
    return text[:space] if space > 0 else text[:reach]


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
