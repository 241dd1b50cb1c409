"""``nlpsuite quantize``: a checkpoint exported with dynamic int8 linear layers (all of them, or
with ``--mode int8-mixed`` all but the feed-forward output projections, which stay float32).

A dynamically quantized torch model has no Hugging Face weight format: its linear layers hold
packed int8 weights that ``save_pretrained`` cannot write and ``from_pretrained`` cannot read.
The export is therefore nlpsuite's own (see :mod:`nlpsuite.quantized`, which loads it): the
quantized model's ``state_dict`` in ``model.int8.pt``, the ``config.json`` with a
``nlpsuite_quantization`` entry, and the tokenizer, so ``nlpsuite run/eval --model DIR2`` just
work; plain transformers cannot load DIR2.

torch and transformers are imported inside functions, as everywhere in nlpsuite.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from nlpsuite.checkpoints import model_size, resolve_model
from nlpsuite.errors import NlpsuiteError
from nlpsuite.models import load_config, load_tokenizer
from nlpsuite.quantized import MARKER, MODES, WEIGHTS, quantization_of, quantize_model
from nlpsuite.records import check_writable, write_atomic
from nlpsuite.training import load_base_model


@dataclass(frozen=True)
class QuantizeResult:
    out: Path
    mode: str
    # Weight files only (safetensors before, the int8 state dict after).
    bytes_before: int | None
    bytes_after: int
    seconds: float


def quantize_checkpoint(
    model: str, out: Path, *, mode: str = "int8", trust_remote_code: bool = False
) -> QuantizeResult:
    """Quantize ``model`` (a folder or hub id with an ``architectures`` entry) into ``out``."""
    if mode not in MODES:
        raise NlpsuiteError(f"unknown quantization '{mode}' (use {', '.join(MODES)})")
    out = Path(out)
    check_writable(out, "output folder", folder=True)
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
    quantized = quantize_model(float_model.eval(), mode)
    out.mkdir(parents=True, exist_ok=True)
    torch.save(quantized.state_dict(), out / WEIGHTS)
    settings = config.to_dict()
    settings[MARKER] = {"mode": MODES[mode], "weights": WEIGHTS, "source": model,
                        "torch": torch.__version__}
    write_atomic(out / "config.json", json.dumps(settings, indent=2, sort_keys=True) + "\n")
    load_tokenizer(model, trust_remote_code=trust_remote_code).save_pretrained(out)
    before = model_size(model)["weights_bytes"]
    after = (out / WEIGHTS).stat().st_size
    write_atomic(out / "README.md", _card(model, mode, before, after))
    return QuantizeResult(out, mode, before, after, time.perf_counter() - started)


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
