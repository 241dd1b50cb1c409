"""``nlpsuite quantize``: a checkpoint exported with dynamic int8 linear layers (all of them, or
with ``--mode int8-mixed`` all but the feed-forward output projections, which stay float32).

A dynamically quantized torch model has no Hugging Face weight format: its linear layers hold
packed int8 weights that ``save_pretrained`` cannot write and ``from_pretrained`` cannot read.
The export is therefore nlpsuite's own: the quantized model's ``state_dict`` in ``model.int8.pt``
(loaded with torch's ``weights_only`` loader), the ``config.json`` with a
``nlpsuite_quantization`` entry, and the tokenizer. :func:`nlpsuite.models.load_model` sees the
entry and rebuilds the model (empty architecture from the config, the same dynamic
quantization, then the saved weights), so ``nlpsuite run/eval --model DIR2`` just work; plain
transformers cannot load DIR2.

torch and transformers are imported inside functions, as everywhere in nlpsuite.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpsuite.errors import NlpsuiteError
from nlpsuite.models import QUANTIZE_MODES

MARKER = "nlpsuite_quantization"
WEIGHTS = "model.int8.pt"
# The marker's name for each of nlpsuite.models.QUANTIZE_MODES ("dynamic-int8", ...).
MODES = {mode: f"dynamic-{mode}" for mode in QUANTIZE_MODES}


@dataclass(frozen=True)
class QuantizeResult:
    out: Path
    mode: str
    # Weight files only (safetensors before, the int8 state dict after).
    bytes_before: int | None
    bytes_after: int
    seconds: float


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


def quantize_checkpoint(
    model: str, out: Path, *, mode: str = "int8", trust_remote_code: bool = False
) -> QuantizeResult:
    """Quantize ``model`` (a folder or hub id with an ``architectures`` entry) into ``out``."""
    from nlpsuite.harness import _model_size
    from nlpsuite.models import _quantize, load_config, load_tokenizer, resolve_model
    from nlpsuite.records import write_atomic
    from nlpsuite.training import load_base_model

    if mode not in MODES:
        raise NlpsuiteError(f"unknown quantization '{mode}' (use {', '.join(MODES)})")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise NlpsuiteError(f"output folder {out} is not empty; choose another --out")
    source = resolve_model(model)
    if quantization_of(source) is not None:
        raise NlpsuiteError(f"{source}: already quantized by nlpsuite; quantize the float model")
    started = time.perf_counter()
    config = load_config(model, trust_remote_code=trust_remote_code)
    architectures = getattr(config, "architectures", None) or []
    if not architectures:
        raise NlpsuiteError(
            f"{source}/config.json: field 'architectures' is missing, so the model class to "
            f"quantize is unknown"
        )
    import torch

    # The checkpoint's own class, so the head (classification, QA) is the one it was saved with.
    float_model = load_base_model(architectures[0], model, trust_remote_code=trust_remote_code)
    quantized = _quantize(float_model.eval(), mode)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(quantized.state_dict(), out / WEIGHTS)
    settings = config.to_dict()
    settings[MARKER] = {"mode": MODES[mode], "weights": WEIGHTS, "source": model,
                        "torch": torch.__version__}
    write_atomic(out / "config.json", json.dumps(settings, indent=2, sort_keys=True) + "\n")
    load_tokenizer(model, trust_remote_code=trust_remote_code).save_pretrained(out)
    before = _model_size(model)["weights_bytes"]
    after = (out / WEIGHTS).stat().st_size
    write_atomic(out / "README.md", _card(model, mode, before, after))
    return QuantizeResult(out, mode, before, after, time.perf_counter() - started)


def load_quantized(
    loader: Any, source: str, *, device: str, trust_remote_code: bool, **kwargs: Any
) -> Any:
    """The model exported by :func:`quantize_checkpoint` in ``source``, as ``loader`` (an
    ``AutoModelFor...`` class) builds it, in eval mode."""
    import torch
    from transformers import AutoConfig

    from nlpsuite.models import _quantize

    entry = quantization_of(source) or {}
    if device != "cpu":
        raise NlpsuiteError(f"{source}: an int8 export runs on the CPU only, not on '{device}'")
    mode = next((name for name, marked in MODES.items() if marked == entry.get("mode")), None)
    if mode is None:
        raise NlpsuiteError(
            f"{source}/config.json: field '{MARKER}': unknown mode {entry.get('mode')!r} "
            f"(this nlpsuite reads {', '.join(repr(m) for m in MODES.values())})"
        )
    weights = Path(source) / str(entry.get("weights", WEIGHTS))
    if not weights.is_file():
        raise NlpsuiteError(f"{source}: {weights.name} is missing (the int8 weights)")
    config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code, **kwargs)
    model = _quantize(loader.from_config(config, trust_remote_code=trust_remote_code).eval(), mode)
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


# For the card: which linear layers each mode quantizes, and which it keeps in float32.
_COVERS = {"int8": "every `nn.Linear`",
           "int8-mixed": "every `nn.Linear` except the feed-forward output projections"}
_KEPT = {"int8": "embeddings and layer norms",
         "int8-mixed": "embeddings, layer norms and the feed-forward output projections"}


def _card(model: str, mode: str, before: int | None, after: int) -> str:
    shown = f"{before / 2**20:.1f} MiB" if before else "unknown"
    return "\n".join([
        "---", "library_name: nlpsuite", "tags:", "- nlpsuite", f"- {MODES[mode]}", "---", "",
        f"# {model} ({MODES[mode]})", "",
        f"`{model}` with {_COVERS[mode]} dynamically quantized to int8 (weights stored as int8, "
        f"activations quantized on the fly) by `nlpsuite quantize --mode {mode}`. CPU only.", "",
        f"- weights: {shown} before, {after / 2**20:.1f} MiB after (`{WEIGHTS}`; {_KEPT[mode]} "
        f"stay float32)",
        "", "This folder needs nlpsuite to load: `nlpsuite run/eval --model DIR`, or "
        "`nlpsuite.models.load_model(...)` from Python. Plain transformers `from_pretrained` "
        "cannot read int8 weights.", "",
        "## Reproduce", "", "```bash", f"nlpsuite quantize {model} --mode {mode} --out DIR",
        "```", "",
    ])
