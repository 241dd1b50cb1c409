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


# Every batch is padded to a multiple of this many tokens, so a text's answer does not depend on
# its batch-mates. CPU kernels round a row's result differently depending on the shape it is
# computed in: MKL's sgemm gives other last bits to the rows of a product with few rows (1, 2, 3,
# 5, 6, 7, 9, 10 or 11 here), and a sum over a sequence whose length is not a multiple of the
# vector width (16 floats with AVX-512) ends in another order. With every batch's token width a
# multiple of 16, a text's embedding came out bitwise identical alone and in batches of 3 to 64
# (all-MiniLM-L6-v2, 48 mixed-length sentences; a multiple of 8 was not enough). This is what
# lets a micro-batched server answer exactly what `nlpsuite run` gives for the input alone
# (tests/test_batch_invariance.py). The price: up to 15 pad tokens a row, about a third more
# work on sentences of 20 tokens.
PAD_MULTIPLE = 16


def padded_width(longest: int, max_length: int | None = None) -> int:
    """``longest`` rounded up to a multiple of :data:`PAD_MULTIPLE`, but never past
    ``max_length`` (the model's position table ends there)."""
    width = -(-longest // PAD_MULTIPLE) * PAD_MULTIPLE
    return max(longest, min(width, max_length)) if max_length is not None else width


def pad_batch(
    tokenizer: Any,
    rows: Sequence[dict[str, list[int]]],
    names: Sequence[str],
    max_length: int | None = None,
) -> Any:
    """``tokenizer.pad(rows, return_tensors="pt", pad_to_multiple_of=PAD_MULTIPLE)`` for the
    ``names`` fields, built in numpy.

    The same tensors (padded on the tokenizer's padding side, with its pad token, pad token type
    and a 0 attention mask) without ``pad``'s per-element Python walk, which costs as much as a
    small model's forward pass. The padding stops at ``max_length`` (default: the tokenizer's
    ``model_max_length``), so a row at the model's limit is never pushed past it.
    """
    import numpy as np
    import torch

    if tokenizer.pad_token_id is None:  # pad's own error (or a batch that needs no padding)
        return tokenizer.pad(
            [{name: row[name] for name in names if name in row} for row in rows],
            return_tensors="pt",
        )
    if max_length is None:
        limit = getattr(tokenizer, "model_max_length", None)
        max_length = limit if isinstance(limit, int) and 0 < limit < 1_000_000 else None
    width = padded_width(max(len(row["input_ids"]) for row in rows), max_length)
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


def pad_linear_rows(model: Any) -> Any:
    """Make every ``torch.nn.Linear`` of ``model`` multiply a row count that is a multiple of
    :data:`PAD_MULTIPLE` (zero rows added, and dropped from the output); ``model`` is returned.

    :func:`pad_batch` does this for layers that see every token (rows = batch x padded width),
    but a head on one vector per text (a classifier's pooler and output layer) multiplies as many
    rows as the batch has texts, and MKL rounds the rows of a 1-, 2- or 3-row product otherwise
    than those of a larger one. Padded, a text's scores no longer depend on its batch-mates.
    (Not for int8: a dynamically quantized layer scales its input by the whole batch's range,
    so its answers depend on the batch-mates whatever the padding.)
    Costs next to nothing: a layer whose rows are already a multiple is called as it was. A model
    that is not a torch module (another backend) is returned untouched.
    """
    import torch

    if not isinstance(model, torch.nn.Module):
        return model
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and not hasattr(module.forward, "pads_rows"):
            module.forward = _row_padded(module.forward)  # type: ignore[method-assign,assignment]
    return model


def _row_padded(forward: Callable[[Any], Any]) -> Callable[[Any], Any]:
    import torch

    def padded_forward(inputs: Any) -> Any:
        features = inputs.shape[-1]
        rows = inputs.numel() // features if features else 0
        missing = -rows % PAD_MULTIPLE
        if not missing:
            return forward(inputs)
        flat = inputs.reshape(rows, features)
        extra = flat.new_zeros((missing, features))
        output = forward(torch.cat([flat, extra]))[:rows]
        return output.reshape(*inputs.shape[:-1], output.shape[-1])

    padded_forward.pads_rows = True  # type: ignore[attr-defined]
    return padded_forward
