"""Dynamic int8 quantization of a torch model, and loading an ``nlpsuite quantize`` export.

A dynamically quantized torch model has no Hugging Face weight format: its linear layers hold
packed int8 weights that ``save_pretrained`` cannot write and ``from_pretrained`` cannot read.
The export (:mod:`nlpsuite.quantization`) is therefore nlpsuite's own: the quantized model's
``state_dict`` in ``model.int8.pt`` (loaded with torch's ``weights_only`` loader) and a
``config.json`` with a ``nlpsuite_quantization`` entry. :func:`load_quantized` sees the entry and
rebuilds the model: empty architecture from the config, the same quantization, then the weights.

torch and transformers are imported inside functions, so that importing nlpsuite stays cheap.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

from nlpsuite.errors import NlpsuiteError

# Ways to shrink a loaded model's weights; ``load_model(quantize=...)`` takes one of these, and
# `nlpsuite quantize --mode` exports with one. "int8": dynamic int8 quantization of every
# ``nn.Linear``. "int8-mixed": the same except the feed-forward output projections (the layer after
# the GELU, whose outlier activations int8 handles worst), which stay float32: about half of
# int8's speed-up at much less of its accuracy cost (ffn_output_layers: architectures known).
QUANTIZE_MODES = ("int8", "int8-mixed")
# The config.json entry that marks an `nlpsuite quantize` export, and its weights file.
MARKER = "nlpsuite_quantization"
WEIGHTS = "model.int8.pt"
# The marker's name for each of QUANTIZE_MODES ("dynamic-int8", ...).
MODES = {mode: f"dynamic-{mode}" for mode in QUANTIZE_MODES}


def quantization_of(folder: str | Path) -> dict[str, Any] | None:
    """The ``nlpsuite_quantization`` entry of a local checkpoint's config.json, if it has one."""
    config = Path(folder) / "config.json"
    if not config.is_file():
        return None
    try:
        entry = json.loads(config.read_text(encoding="utf-8")).get(MARKER)
    except (OSError, ValueError, AttributeError):
        return None  # transformers will explain a broken config.json when it loads it
    return entry if isinstance(entry, dict) else None


def ffn_output_layers(model: Any) -> set[str]:
    """Names of ``model``'s feed-forward output projections (intermediate size -> hidden size).

    Recognised by module name: ``*.output.dense`` outside any attention block (BERT and the
    models that copy its layout: RoBERTa, XLM-R, ELECTRA, DeBERTa, MPNet, ...), ``*.ffn.lin2``
    (DistilBERT) and ``*.ffn_output`` (ALBERT).
    """
    import torch

    return {
        name for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and ((name.endswith(".output.dense") and "attention" not in name)
             or name.endswith((".ffn.lin2", ".ffn_output")))
    }


def quantize_model(model: Any, mode: str) -> Any:
    """``model`` quantized as ``mode`` (one of QUANTIZE_MODES; fbgemm/onednn kernels on x86)."""
    import torch

    if mode not in QUANTIZE_MODES:
        raise NlpsuiteError(f"unknown quantize '{mode}' (use {', '.join(QUANTIZE_MODES)})")
    targets: Any = {torch.nn.Linear}
    if mode == "int8-mixed":
        keep = ffn_output_layers(model)
        if not keep:
            raise NlpsuiteError(
                f"quantize=int8-mixed: no feed-forward output layer recognised in "
                f"{type(model).__name__} (known: BERT-style, RoBERTa, DistilBERT, ALBERT); "
                f"use quantize=int8"
            )
        targets = {name for name, module in model.named_modules()
                   if isinstance(module, torch.nn.Linear) and name not in keep}
    with warnings.catch_warnings():
        # torch.ao.quantization warns that it is moving to torchao; it still works, and a
        # deprecation notice on every run would bury the output.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, targets, dtype=torch.qint8)


def load_quantized(
    loader: Any, source: str, *, device: str, trust_remote_code: bool, **kwargs: Any
) -> Any:
    """The model exported by :func:`quantize_checkpoint` in ``source``, as ``loader`` (an
    ``AutoModelFor...`` class) builds it, in eval mode."""
    import torch
    from transformers import AutoConfig

    entry = quantization_of(source) or {}
    if device != "cpu":
        raise NlpsuiteError(f"{source}: an int8 export runs on the CPU only, not on '{device}'")
    mode = next((name for name, marked in MODES.items() if marked == entry.get("mode")), None)
    if mode is None:
        raise NlpsuiteError(
            f"{source}/config.json: field '{MARKER}': unknown mode {entry.get('mode')!r} "
            f"(this nlpsuite reads {', '.join(repr(m) for m in MODES.values())})"
        )
    named = entry.get("weights", WEIGHTS)
    if not isinstance(named, str):
        raise NlpsuiteError(
            f"{source}/config.json: field '{MARKER}.weights' should be a file name, "
            f"got {type(named).__name__}"
        )
    # Judged by the name, not by resolving links: a Hub cache's files are links to blobs.
    if os.path.isabs(named) or os.path.normpath(named).split(os.sep)[0] == os.pardir:
        raise NlpsuiteError(
            f"{source}/config.json: field '{MARKER}.weights': {named!r} is outside the model "
            f"folder"
        )
    weights = Path(source) / named
    if not weights.is_file():
        raise NlpsuiteError(f"{source}: {weights.name} is missing (the int8 weights)")
    config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, **kwargs)
    empty = loader.from_config(config, trust_remote_code=trust_remote_code).eval()
    model = quantize_model(empty, mode)
    with warnings.catch_warnings():
        # Packed int8 weights still go through torch's TypedStorage path, which warns.
        warnings.simplefilter("ignore", UserWarning)
        state = torch.load(weights, weights_only=True)
    try:
        model.load_state_dict(state)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise NlpsuiteError(
            f"{weights}: does not fit a {loader.__name__} of this config ({first})"
        ) from None
    return model.eval()
