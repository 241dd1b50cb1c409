"""Sentence embeddings: what both tasks need from a sentence-embedding checkpoint.

Texts are embedded the way the checkpoint's sentence-transformers config prescribes (pooling
mode, ``max_seq_length``, lower-casing), then L2-normalised, so a dot product is the cosine.
sentence-transformers itself is not needed: its config files are read here and applied on top of
the plain AutoModel.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpsuite import NlpsuiteError, RunConfig
from nlpsuite.batching import encode_truncated, map_sorted, model_max_length, pad_batch
from nlpsuite.checkpoints import checkpoint_folder, resolve_model, weights_sha256
from nlpsuite.lookup import load_model
from nlpsuite.models import load_tokenizer

if TYPE_CHECKING:
    import numpy as np
    import torch

logger = logging.getLogger("nlpsuite")

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

# Pooling modes we implement, in the order sentence-transformers concatenates them.
_POOLING_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}
_SUPPORTED_POOLING = {"cls", "max", "mean", "mean_sqrt_len", "lasttoken"}
# sentence-transformers modules that only wrap what AutoModel + pooling + normalising already do.
_KNOWN_MODULES = ("Transformer", "Pooling", "Normalize")


@dataclass(frozen=True)
class SentenceConfig:
    """What a checkpoint's sentence-transformers files say about turning tokens into a vector."""

    pooling: tuple[str, ...] = ("mean",)
    max_seq_length: int | None = None
    lowercase: bool = False
    # A subfolder holding the transformer (old sentence-transformers layouts), or "".
    transformer_path: str = ""
    ignored_modules: tuple[str, ...] = ()


def read_sentence_config(model: str) -> SentenceConfig:
    """Pooling, truncation and casing from ``modules.json``, ``1_Pooling/config.json`` and
    ``sentence_bert_config.json``; mean pooling with the model's own limit when they are absent."""
    modules = _read_json(_model_file(model, "modules.json")) or []
    pooling_dir, transformer_path, ignored = "1_Pooling", "", []
    for module in modules if isinstance(modules, list) else []:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind == "Pooling":
            pooling_dir = str(module.get("path") or pooling_dir)
        elif kind == "Transformer":
            transformer_path = str(module.get("path") or "")
        elif kind not in _KNOWN_MODULES:
            ignored.append(kind)
    pooling_config = _read_json(_model_file(model, f"{pooling_dir}/config.json")) or {}
    modes = tuple(mode for key, mode in _POOLING_KEYS.items() if pooling_config.get(key))
    if isinstance(pooling_config.get("pooling_mode"), str):  # newer single-string spelling
        modes = (pooling_config["pooling_mode"],)
    unsupported = [mode for mode in modes if mode not in _SUPPORTED_POOLING]
    if unsupported:
        raise NlpsuiteError(
            f"model '{model}': pooling mode '{unsupported[0]}' is not supported "
            f"(supported: {', '.join(sorted(_SUPPORTED_POOLING))})"
        )
    bert_name = f"{transformer_path}/sentence_bert_config.json" if transformer_path else ""
    bert_config = (
        _read_json(_model_file(model, "sentence_bert_config.json"))
        or (_read_json(_model_file(model, bert_name)) if bert_name else None)
        or {}
    )
    max_seq_length = bert_config.get("max_seq_length")
    return SentenceConfig(
        pooling=modes or ("mean",),
        max_seq_length=max_seq_length if isinstance(max_seq_length, int) else None,
        lowercase=bool(bert_config.get("do_lower_case", False)),
        transformer_path=transformer_path,
        ignored_modules=tuple(ignored),
    )


class Encoder:
    """A loaded checkpoint that turns texts into L2-normalised float32 vectors."""

    def __init__(self, model: str, *, device: str = "cpu", trust_remote_code: bool = False,
                 backend: str = "torch") -> None:
        self.model_name = model
        self.device = device
        self.sentence = read_sentence_config(model)
        if self.sentence.ignored_modules:
            logger.warning(
                "model '%s': modules.json lists %s, which nlpsuite does not apply; its embeddings "
                "will differ from sentence-transformers'", model,
                ", ".join(self.sentence.ignored_modules),
            )
        source = model
        if self.sentence.transformer_path and Path(resolve_model(model)).is_dir():
            source = str(Path(resolve_model(model)) / self.sentence.transformer_path)
        self.tokenizer = load_tokenizer(source, trust_remote_code=trust_remote_code)
        self.model = load_model(
            "AutoModel", source, device=device, trust_remote_code=trust_remote_code, backend=backend
        )
        limit = model_max_length(self.tokenizer, self.model.config)
        configured = self.sentence.max_seq_length
        self.max_length = min(configured, limit) if configured else limit
        hidden = int(self.model.config.hidden_size)
        self.dimension = hidden * len(self.sentence.pooling)
        self._inputs = [
            name for name in self.tokenizer.model_input_names
            if name in ("input_ids", "attention_mask", "token_type_ids")
        ]

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """One unit-length float32 row per text, in input order."""
        import numpy as np

        if batch_size < 1:
            raise NlpsuiteError(f"batch size must be at least 1, got {batch_size}")
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.sentence.lowercase:
            texts = [text.lower() for text in texts]
        rows, truncated = encode_truncated(self.tokenizer, texts, self.max_length)
        if truncated:
            logger.warning("%d of %d texts were longer than %d tokens and were truncated",
                           truncated, len(texts), self.max_length)
        vectors = map_sorted(rows, self._embed_batch, batch_size, lambda row: len(row["input_ids"]))
        return np.stack(vectors).astype(np.float32, copy=False)

    def _embed_batch(self, rows: list[dict[str, Any]]) -> list[np.ndarray]:
        import torch

        # pad_batch pads to a multiple of PAD_MULTIPLE: a text's vector does not depend on its
        # batch-mates, to the last bit.
        batch = pad_batch(self.tokenizer, rows, self._inputs, self.max_length)
        batch = {name: tensor.to(self.device) for name, tensor in batch.items()}
        with torch.inference_mode():
            output = self.model(**batch)
            hidden = getattr(output, "last_hidden_state", None)
            if hidden is None:
                hidden = output[0]
            pooled = self._pool(hidden.float(), batch["attention_mask"])
            pooled = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
        return list(pooled.cpu().numpy())

    def _pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        import torch

        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        lengths = mask.sum(dim=1).clamp(min=1e-9)
        parts = []
        for mode in self.sentence.pooling:
            if mode == "cls":
                parts.append(hidden[:, 0])
            elif mode == "max":
                # Padding must never win the max, whatever the sign of the real activations.
                parts.append(hidden.masked_fill(mask == 0, torch.finfo(hidden.dtype).min).amax(1))
            elif mode == "mean":
                parts.append((hidden * mask).sum(dim=1) / lengths)
            elif mode == "mean_sqrt_len":
                parts.append((hidden * mask).sum(dim=1) / lengths.sqrt())
            elif mode == "lasttoken":
                if self.tokenizer.padding_side == "left":
                    parts.append(hidden[:, -1])
                else:
                    last = attention_mask.sum(dim=1).clamp(min=1) - 1
                    parts.append(hidden[torch.arange(hidden.shape[0]), last])
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]


_encoders: dict[tuple[str, str, bool, str], Encoder] = {}
_encoders_lock = threading.Lock()


def load_encoder(model: str, *, device: str = "cpu", trust_remote_code: bool = False,
                 backend: str = "torch") -> Encoder:
    """The :class:`Encoder` for ``model`` (hub id or directory), loaded once per process."""
    key = (model, device, trust_remote_code, backend)
    with _encoders_lock:
        if key not in _encoders:
            _encoders[key] = Encoder(model, device=device, trust_remote_code=trust_remote_code,
                                     backend=backend)
        return _encoders[key]


def encoder_for(config: RunConfig) -> Encoder:
    return load_encoder(
        config.model, device=config.device, trust_remote_code=config.trust_remote_code,
        backend=config.backend,
    )


def embed(texts: Sequence[str], config: RunConfig) -> np.ndarray:
    """``len(texts) x dimension`` float32, each row unit length: the checkpoint's sentence
    embeddings, batched by length with ``config.batch_size``."""
    return encoder_for(config).encode(texts, config.batch_size)


def similarity(pairs: Sequence[tuple[str, str]], config: RunConfig) -> np.ndarray:
    """Cosine similarity of each ``(text_a, text_b)`` pair; every distinct text embedded once."""
    return pair_cosines(encoder_for(config), pairs, config.batch_size)


def pair_cosines(
    encoder: Encoder, pairs: Sequence[tuple[str, str]], batch_size: int = 32
) -> np.ndarray:
    """Cosine of each pair's embeddings, float32 in [-1, 1].

    Both sides of every pair go through one :meth:`Encoder.encode` call, so the batches are
    sorted by length over all the texts at once, and a text that occurs many times (STS reuses
    sentences) is embedded once.
    """
    import numpy as np

    distinct = list(dict.fromkeys(text for pair in pairs for text in pair))
    if not distinct:
        return np.zeros(0, dtype=np.float32)
    vectors = encoder.encode(distinct, batch_size)
    row = {text: i for i, text in enumerate(distinct)}
    left = vectors[[row[a] for a, _ in pairs]]
    right = vectors[[row[b] for _, b in pairs]]
    # Unit vectors, so the dot product is the cosine; float32 rounding can take a text paired
    # with itself a hair past 1.
    return np.clip(np.einsum("ij,ij->i", left, right), -1.0, 1.0)


# Weights are hashed to tell models apart; 90 MB for MiniLM, so once per model and process.
@functools.cache
def cached_weights_sha256(model: str) -> str | None:
    return weights_sha256(model)


def _model_file(model: str, name: str) -> Path | None:
    """A file of a local checkpoint, or of a hub checkpoint already in the local cache."""
    folder = checkpoint_folder(model)
    path = folder / name if folder is not None else None
    return path if path is not None and path.is_file() else None


def _read_json(path: Path | None) -> Any:
    if path is None:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise NlpsuiteError(f"{path}: cannot read ({error})") from None
