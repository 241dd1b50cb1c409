"""semantic-search and sentence-similarity: what a sentence-embedding checkpoint is for.

semantic-search ranks a corpus of documents by meaning; sentence-similarity scores a pair of
texts by the cosine of their embeddings. Both share one :class:`Encoder` per checkpoint.

Texts are embedded the way the checkpoint's sentence-transformers config prescribes (pooling
mode, ``max_seq_length``, lower-casing), then L2-normalised, so a dot product is the cosine.
A corpus is embedded once per process, or once for good with ``nlpsuite index build``; a saved
index is a directory of plain files (``index.json``, ``embeddings.npy``, ``docs.jsonl``) that
needs no pickle to read.

Search is exact by default: one matmul against every document. With the optional ``faiss-cpu``
(``pip install 'nlpsuite[ann]'``) an index can also carry an HNSW graph (``hnsw.faiss``, written
by ``index build --ann hnsw``) that ``--ann hnsw`` searches instead, well under a millisecond a
query over 100,000 documents, at the price of occasionally missing a true top-10 hit.

Library use::

    from nlpsuite_plugins.semantic_search import build_index, load_index, load_encoder
    index = build_index("docs.jsonl", "sentence-transformers/all-MiniLM-L6-v2", "my-index")
    encoder = load_encoder(index.model)
    hits = index.search(encoder.encode(["how do plants make energy"]), top_k=5)
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import importlib
import json
import logging
import os
import re
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpsuite import NlpsuiteError, Option, RunConfig, Task, __version__, hookimpl
from nlpsuite.batching import encode_truncated, map_sorted, model_max_length
from nlpsuite.datasets import Dataset, load_records
from nlpsuite.metrics import MRR_10, NDCG_10, PEARSON, RECALL_10, RECALL_100, SPEARMAN
from nlpsuite.models import load_model, load_tokenizer, resolve_model, weights_sha256

if TYPE_CHECKING:
    import click
    import numpy as np
    import torch

logger = logging.getLogger("nlpsuite")

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEMO_CORPUS = Path(__file__).resolve().parent / "data" / "demo-corpus.jsonl"
EVAL_SET = DEMO_CORPUS.with_name("search-eval.jsonl")
STS_SET = DEMO_CORPUS.with_name("sts-eval.jsonl")

INDEX_FORMAT = "nlpsuite-semantic-index"
INDEX_VERSION = 1
INDEX_FILES = ("index.json", "embeddings.npy", "docs.jsonl")
# Written only for an index built with an approximate graph; faiss's own binary format.
HNSW_FILE = "hnsw.faiss"
ANN_KINDS = ("exact", "hnsw")
ANN_INSTALL_HINT = "pip install 'nlpsuite[ann]'"

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

# Scores are computed this many cells (queries x documents) at a time, so a 1,024-query chunk
# from the CLI against a large corpus does not allocate gigabytes at once.
_SCORE_BLOCK_CELLS = 1 << 24
# Corpora embedded on the fly are kept for reuse in this process, the most recent few only.
_CORPUS_CACHE_SIZE = 4


# Records


@dataclass(frozen=True)
class SearchQuery:
    text: str

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise NlpsuiteError("field 'text' is empty")


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    text: str


@dataclass(frozen=True)
class SearchResult:
    """The top hits for one query, best first; ``ids`` is what the retrieval metrics score."""

    query: str
    hits: tuple[Hit, ...]

    @property
    def ids(self) -> list[str]:
        return [hit.id for hit in self.hits]


# Embedding


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

        batch = self.tokenizer.pad(
            [{name: row[name] for name in self._inputs if name in row} for row in rows],
            return_tensors="pt",
        )
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


def _encoder_for(config: RunConfig) -> Encoder:
    return load_encoder(
        config.model, device=config.device, trust_remote_code=config.trust_remote_code,
        backend=config.backend,
    )


def embed(texts: Sequence[str], config: RunConfig) -> np.ndarray:
    """``len(texts) x dimension`` float32, each row unit length: the checkpoint's sentence
    embeddings, batched by length with ``config.batch_size``."""
    return _encoder_for(config).encode(texts, config.batch_size)


def similarity(pairs: Sequence[tuple[str, str]], config: RunConfig) -> np.ndarray:
    """Cosine similarity of each ``(text_a, text_b)`` pair; every distinct text embedded once."""
    return pair_cosines(_encoder_for(config), pairs, config.batch_size)


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


# Corpus


@dataclass(frozen=True)
class Corpus:
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    source: str


def read_corpus(path: str | Path) -> Corpus:
    """Documents from JSONL/CSV (``id`` and ``text`` fields; BEIR's ``_id`` and ``title`` are
    understood) or plain text (one document per line, its id the line number)."""
    file = Path(path)
    if file.is_dir():
        hint = " (it is a saved index: use --index)" if (file / "index.json").is_file() else ""
        raise NlpsuiteError(f"corpus {file} is a directory, not a file{hint}")
    if not file.is_file():
        raise NlpsuiteError(f"corpus file not found: {file}")
    ids: list[str] = []
    texts: list[str] = []
    first_seen: dict[str, str] = {}
    try:
        for where, doc_id, text in _corpus_rows(file):
            if doc_id in first_seen:
                raise NlpsuiteError(
                    f"{where}: duplicate id '{doc_id}' (first at {first_seen[doc_id]})"
                )
            first_seen[doc_id] = where
            ids.append(doc_id)
            texts.append(text)
    except UnicodeDecodeError:
        raise NlpsuiteError(f"corpus {file} is not UTF-8 text") from None
    if not ids:
        raise NlpsuiteError(f"corpus {file} has no documents")
    return Corpus(tuple(ids), tuple(texts), str(file))


def _corpus_rows(file: Path) -> Iterator[tuple[str, str, str]]:
    from nlpsuite.records import iter_rows

    if file.suffix.lower() not in {".jsonl", ".ndjson", ".json", ".csv", ".tsv"}:
        with file.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if line.strip():
                    yield f"{file}:{number}", str(number), line.strip()
        return
    for where, row in iter_rows(file):
        raw_id = row.get("id", row.get("_id"))
        if raw_id is None or raw_id == "":
            raise NlpsuiteError(f"{where}: missing field 'id'")
        if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
            raise NlpsuiteError(
                f"{where}: field 'id' should be a string or an integer, got {type(raw_id).__name__}"
            )
        text = row.get("text")
        if text is None:
            raise NlpsuiteError(f"{where}: missing field 'text'")
        if not isinstance(text, str):
            raise NlpsuiteError(f"{where}: field 'text' should be str, got {type(text).__name__}")
        title = row.get("title")
        if isinstance(title, str) and title.strip():
            text = f"{title.strip()} {text}"
        if not text.strip():
            raise NlpsuiteError(f"{where}: field 'text' is empty")
        yield where, str(raw_id), text


# Index


# eq=False: comparing two indexes field by field would compare arrays element-wise.
@dataclass(frozen=True, eq=False)
class Index:
    """Unit-length document embeddings with their ids and texts, and the model that made them."""

    ids: tuple[str, ...]
    texts: tuple[str, ...]
    embeddings: np.ndarray = field(repr=False)
    model: str
    weights_sha256: str | None = None
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    # When set, search() walks this graph instead of scoring every document; see with_hnsw().
    hnsw: HnswIndex | None = field(default=None, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.ids)

    def with_hnsw(self, hnsw: HnswIndex | HnswParams | None = None) -> Index:
        """A copy (sharing the embeddings) that searches ``hnsw``, or a graph built now with
        those parameters (the defaults if None)."""
        if not isinstance(hnsw, HnswIndex):
            hnsw = HnswIndex.build(self.embeddings, hnsw)
        if (hnsw.count, hnsw.dimension) != (len(self), self.dimension):
            raise NlpsuiteError(
                f"the HNSW index holds {hnsw.count} x {hnsw.dimension} vectors, "
                f"the index {len(self)} x {self.dimension}"
            )
        return dataclasses.replace(self, hnsw=hnsw)

    @property
    def dimension(self) -> int:
        return int(self.embeddings.shape[1])

    def search(
        self, queries: np.ndarray, top_k: int = 10, *, exact: bool = False,
        ef_search: int | None = None,
    ) -> list[list[tuple[int, float]]]:
        """For each query row, the ``top_k`` (document position, cosine) pairs, best first:
        from the HNSW graph if the index has one (``ef_search`` overriding its default) and
        ``exact`` is false, else from every document."""
        import numpy as np

        if top_k < 1:
            raise NlpsuiteError(f"top_k must be at least 1, got {top_k}")
        matrix = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if matrix.shape[1] != self.dimension:
            raise NlpsuiteError(
                f"query vectors have dimension {matrix.shape[1]}, the index {self.dimension}"
            )
        results: list[list[tuple[int, float]]] = []
        if self.hnsw is not None and not exact:
            positions, values = self.hnsw.search(np.ascontiguousarray(matrix), top_k, ef_search)
            for row_positions, row_values in zip(positions, values, strict=True):
                found = row_positions >= 0
                results.append(list(zip(
                    row_positions[found].tolist(), row_values[found].tolist(), strict=True
                )))
            return results
        block = max(1, _SCORE_BLOCK_CELLS // max(1, len(self)))
        for start in range(0, matrix.shape[0], block):
            scores = matrix[start : start + block] @ self.embeddings.T
            positions, values = top_k_rows(scores, top_k)
            results.extend(
                list(zip(row_positions.tolist(), row_values.tolist(), strict=True))
                for row_positions, row_values in zip(positions, values, strict=True)
            )
        return results

    def check_model(self, model: str, sha256: str | None, where: str = "the index") -> None:
        """Refuse to compare query vectors from ``model`` with this index's if they differ."""
        if self.weights_sha256 and sha256:
            same = self.weights_sha256 == sha256
        else:
            same = _resolved(self.model) == _resolved(model)
        if not same:
            raise NlpsuiteError(
                f"{where} was built with model '{self.model}' "
                f"(weights sha256 {_short(self.weights_sha256)}), but the queries would use "
                f"'{model}' (weights sha256 {_short(sha256)}); pass --model {self.model} "
                f"or rebuild the index"
            )

    def save(self, out_dir: str | Path, *, float16: bool = False) -> Path:
        """Write the index to ``out_dir`` atomically: readers see the old index or the new one."""
        import numpy as np

        target = Path(out_dir)
        if target.exists() and not target.is_dir():
            raise NlpsuiteError(f"index path {target} exists and is not a directory")
        if target.is_dir() and any(target.iterdir()) and not (target / "index.json").is_file():
            raise NlpsuiteError(
                f"{target} exists and is not an nlpsuite index; choose an empty or new directory"
            )
        target.parent.mkdir(parents=True, exist_ok=True)
        storage = np.float16 if float16 else np.float32
        meta = {
            "format": INDEX_FORMAT,
            "version": INDEX_VERSION,
            "model": self.model,
            "weights_sha256": self.weights_sha256,
            "dimension": self.dimension,
            "count": len(self),
            "normalised": True,
            "dtype": np.dtype(storage).name,
            "created_by": f"nlpsuite {__version__}",
        } | {k: v for k, v in self.meta.items() if k in ("pooling", "max_seq_length", "source")}
        if self.hnsw is not None:
            meta["ann"] = self.hnsw.meta
        # mkdir rather than mkdtemp: the index should get the user's usual permissions.
        staging = target.with_name(f".{target.name}.tmp-{uuid.uuid4().hex[:8]}")
        staging.mkdir()
        try:
            with (staging / "embeddings.npy").open("wb") as handle:
                np.save(handle, self.embeddings.astype(storage), allow_pickle=False)
                _sync(handle)
            with (staging / "docs.jsonl").open("w", encoding="utf-8") as handle:
                for doc_id, text in zip(self.ids, self.texts, strict=True):
                    handle.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False))
                    handle.write("\n")
                _sync(handle)
            if self.hnsw is not None:
                self.hnsw.write(staging / HNSW_FILE)
            # index.json last: its presence marks a complete index.
            with (staging / "index.json").open("w", encoding="utf-8") as handle:
                handle.write(json.dumps(meta, indent=2) + "\n")
                _sync(handle)
            _swap_in(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target


def top_k_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Column positions and values of each row's ``k`` largest scores, largest first
    (ties by position); argpartition keeps this linear in the number of documents."""
    import numpy as np

    count = scores.shape[1]
    k = min(k, count)
    if k < count:
        positions = np.argpartition(scores, count - k, axis=1)[:, count - k :]
    else:
        positions = np.broadcast_to(np.arange(count), scores.shape)
    values = np.take_along_axis(scores, positions, axis=1)
    order = np.lexsort((positions, -values), axis=1)
    return np.take_along_axis(positions, order, axis=1), np.take_along_axis(values, order, axis=1)


# Approximate search


@dataclass(frozen=True)
class HnswParams:
    """HNSW graph settings. The defaults keep recall@10 above 0.95 on 100,000 MiniLM-like
    vectors (benchmarks/bench_search.py measures it) for about 0.4 ms a query on 2 cores:
    ``m`` links per node and ``ef_construction`` candidates while inserting buy recall with
    build time and memory; ``ef_search`` candidates per query buys recall with latency."""

    m: int = 32
    # 200 bought +0.01 recall@10 at 100k for three times the build time.
    ef_construction: int = 100
    # At 100k, 64 measured 0.95-0.96 and 96 0.97 (the graph differs build to build); 128 0.99.
    ef_search: int = 128

    def __post_init__(self) -> None:
        for name in ("m", "ef_construction", "ef_search"):
            value = getattr(self, name)
            least = 2 if name == "m" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise NlpsuiteError(
                    f"HNSW '{name}' must be an integer of at least {least}, got {value!r}"
                )


def _faiss() -> Any:
    # importlib rather than an import statement: faiss ships no type information, and this is
    # the one place that has to turn its absence into a user error.
    try:
        return importlib.import_module("faiss")
    except ImportError:
        raise NlpsuiteError(
            f"the approximate (HNSW) index needs faiss-cpu, which is not installed: "
            f"{ANN_INSTALL_HINT}"
        ) from None


@dataclass(frozen=True, eq=False)
class HnswIndex:
    """A faiss HNSW graph over unit vectors, searched by inner product (= cosine)."""

    native: Any = field(repr=False)
    params: HnswParams
    count: int
    dimension: int

    @classmethod
    def build(cls, embeddings: np.ndarray, params: HnswParams | None = None) -> HnswIndex:
        import numpy as np

        faiss = _faiss()
        params = params or HnswParams()
        vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
        native = faiss.IndexHNSWFlat(vectors.shape[1], params.m, faiss.METRIC_INNER_PRODUCT)
        native.hnsw.efConstruction = params.ef_construction
        native.hnsw.efSearch = params.ef_search
        native.add(vectors)
        return cls(native, params, int(vectors.shape[0]), int(vectors.shape[1]))

    @classmethod
    def read(cls, path: Path, params: HnswParams, count: int, dimension: int) -> HnswIndex:
        faiss = _faiss()
        if not path.is_file():
            raise NlpsuiteError(f"{path.parent} is incomplete: {path.name} is missing")
        try:
            native = faiss.read_index(str(path))
        except RuntimeError as error:  # faiss's messages span lines; keep the error one line
            reason = " ".join(str(error).split())
            raise NlpsuiteError(f"{path}: cannot read ({reason})") from None
        found = (type(native).__name__, int(native.ntotal), int(native.d))
        if found[0] != "IndexHNSWFlat" or found[1:] != (count, dimension):
            raise NlpsuiteError(
                f"{path}: expected an HNSW index of {count} vectors of dimension {dimension}, "
                f"found {found[0]} of {found[1]} x {found[2]}"
            )
        if native.metric_type != faiss.METRIC_INNER_PRODUCT:
            raise NlpsuiteError(f"{path}: the HNSW index does not rank by inner product")
        return cls(native, params, count, dimension)

    def write(self, path: Path) -> None:
        """Save in faiss's own binary format (no pickle involved), synced to disk."""
        _faiss().write_index(self.native, str(path))
        with path.open("rb+") as handle:
            _sync(handle)

    @property
    def meta(self) -> dict[str, Any]:
        """What index.json records about the graph."""
        return {
            "kind": "hnsw",
            "file": HNSW_FILE,
            "library": f"faiss-cpu {_faiss().__version__}",
            "m": self.params.m,
            "ef_construction": self.params.ef_construction,
            "ef_search": self.params.ef_search,
        }

    def search(
        self, queries: np.ndarray, top_k: int, ef_search: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Positions and scores of each row's approximate ``top_k``, best first; -1 pads a row
        the graph could not fill."""
        faiss = _faiss()
        # Per call, not on the shared index: two runners may ask for different ef at once.
        ef = max(ef_search or self.params.ef_search, top_k)
        scores, positions = self.native.search(
            queries, top_k, params=faiss.SearchParametersHNSW(efSearch=ef)
        )
        return positions, scores


def _hnsw_params(meta: Any, where: Path) -> HnswParams:
    if not isinstance(meta, dict) or meta.get("kind") != "hnsw":
        raise NlpsuiteError(f"{where}: 'ann' does not describe an HNSW index")
    try:
        return HnswParams(meta["m"], meta["ef_construction"], meta["ef_search"])
    except (KeyError, TypeError):
        raise NlpsuiteError(
            f"{where}: 'ann' needs integers 'm', 'ef_construction' and 'ef_search'"
        ) from None


def load_hnsw(path: str | Path, index: Index | None = None) -> HnswIndex:
    """The HNSW graph saved with the index at ``path`` (``index`` if already loaded from it)."""
    folder = Path(path)
    index = index or load_index(folder)
    if "ann" not in index.meta:
        raise NlpsuiteError(
            f"index {folder} has no approximate index; rebuild it with "
            f"'nlpsuite index build --ann hnsw'"
        )
    params = _hnsw_params(index.meta["ann"], folder / "index.json")
    return HnswIndex.read(folder / HNSW_FILE, params, len(index), index.dimension)


def build_index(
    corpus_path: str | Path,
    model: str = DEFAULT_MODEL,
    out_dir: str | Path | None = None,
    *,
    device: str = "cpu",
    batch_size: int = 32,
    float16: bool = False,
    trust_remote_code: bool = False,
    hnsw: HnswParams | None = None,
) -> Index:
    """Embed the corpus at ``corpus_path`` with ``model``, and build an HNSW graph over it with
    the settings ``hnsw`` if given (``HnswParams()`` for the defaults); save both to
    ``out_dir`` if given."""
    if hnsw is not None:
        _faiss()  # a missing library should fail before minutes of embedding, not after
    corpus = read_corpus(corpus_path)
    encoder = load_encoder(model, device=device, trust_remote_code=trust_remote_code)
    index = Index(
        ids=corpus.ids,
        texts=corpus.texts,
        embeddings=encoder.encode(corpus.texts, batch_size),
        model=model,
        weights_sha256=_weights_sha256(model),
        meta={
            "pooling": list(encoder.sentence.pooling),
            "max_seq_length": encoder.max_length,
            "source": corpus.source,
        },
    )
    if hnsw is not None:
        index = index.with_hnsw(hnsw)
    if out_dir is not None:
        index.save(out_dir, float16=float16)
    return index


def load_index(path: str | Path) -> Index:
    """An index saved by :func:`build_index`, checked for completeness; embeddings as float32."""
    import numpy as np

    folder = Path(path)
    if folder.is_file():
        raise NlpsuiteError(f"index {folder} is a file, not a directory (a corpus? use --corpus)")
    if not folder.is_dir():
        raise NlpsuiteError(f"index directory not found: {folder}")
    meta_file = folder / "index.json"
    if not meta_file.is_file():
        raise NlpsuiteError(f"{folder} is not an nlpsuite index (no index.json)")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise NlpsuiteError(f"{meta_file}: not valid JSON ({error})") from None
    if not isinstance(meta, dict) or meta.get("format") != INDEX_FORMAT:
        raise NlpsuiteError(f"{meta_file}: not an nlpsuite semantic-search index")
    version = meta.get("version")
    if not isinstance(version, int) or version > INDEX_VERSION:
        raise NlpsuiteError(
            f"{meta_file}: index format version {version!r} is newer than this nlpsuite reads "
            f"({INDEX_VERSION}); upgrade nlpsuite or rebuild the index"
        )
    if meta.get("normalised") is not True:
        raise NlpsuiteError(f"{meta_file}: embeddings are not marked as normalised")
    model, count, dimension = meta.get("model"), meta.get("count"), meta.get("dimension")
    if not isinstance(model, str) or not isinstance(count, int) or not isinstance(dimension, int):
        raise NlpsuiteError(f"{meta_file}: 'model', 'count' and 'dimension' are required")
    try:
        stored = np.load(folder / "embeddings.npy", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise NlpsuiteError(f"{folder / 'embeddings.npy'}: cannot read ({error})") from None
    if stored.dtype not in (np.float32, np.float16) or stored.shape != (count, dimension):
        raise NlpsuiteError(
            f"{folder / 'embeddings.npy'}: expected float32/float16 of shape "
            f"({count}, {dimension}), found {stored.dtype} {stored.shape}"
        )
    ids: list[str] = []
    texts: list[str] = []
    docs_file = folder / "docs.jsonl"
    if not docs_file.is_file():
        raise NlpsuiteError(f"{folder} is incomplete: docs.jsonl is missing")
    with docs_file.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            try:
                doc = json.loads(line)
                ids.append(str(doc["id"]))
                texts.append(str(doc["text"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise NlpsuiteError(
                    f"{docs_file}:{number}: expected an object with 'id' and 'text'"
                ) from None
    if len(ids) != count:
        raise NlpsuiteError(f"{docs_file}: {len(ids)} documents, index.json says {count}")
    sha = meta.get("weights_sha256")
    return Index(
        ids=tuple(ids),
        texts=tuple(texts),
        embeddings=np.ascontiguousarray(stored, dtype=np.float32),
        model=model,
        weights_sha256=sha if isinstance(sha, str) else None,
        meta=meta,
    )


def _swap_in(staging: Path, target: Path) -> None:
    if not target.exists():
        os.replace(staging, target)
        return
    # A directory cannot be atomically replaced by a non-empty one; move the old one aside
    # first and put it back if the second rename fails.
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(target, old)
    try:
        os.replace(staging, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)


def _sync(handle: Any) -> None:
    handle.flush()
    os.fsync(handle.fileno())


# The runner


_indexes: collections.OrderedDict[tuple[Any, ...], Index] = collections.OrderedDict()
_indexes_lock = threading.Lock()


def _cached_index(key: tuple[Any, ...], make: Callable[[], Index]) -> Index:
    with _indexes_lock:
        if key in _indexes:
            _indexes.move_to_end(key)
            return _indexes[key]
    index = make()  # outside the lock: embedding a corpus can take minutes
    with _indexes_lock:
        _indexes[key] = index
        while len(_indexes) > _CORPUS_CACHE_SIZE:
            _indexes.popitem(last=False)
    return index


def _stamp(path: Path) -> tuple[str, int, int]:
    status = path.stat()
    return str(path.resolve()), status.st_mtime_ns, status.st_size


def _index_for(config: RunConfig, encoder: Encoder) -> Index:
    corpus, saved = config.options.get("corpus"), config.options.get("index")
    if corpus and saved:
        raise NlpsuiteError("give option 'corpus' or 'index', not both")
    if saved:
        folder = Path(saved)
        if not (folder / "index.json").is_file():
            return load_index(folder)  # raises the precise error
        key: tuple[Any, ...] = (
            "index", _stamp(folder / "index.json"), _stamp(folder / "embeddings.npy")
        )
        index = _cached_index(key, lambda: load_index(folder))
        index.check_model(config.model, _weights_sha256(config.model), f"index {folder}")
    else:
        file = Path(corpus) if corpus else DEMO_CORPUS
        if not file.is_file():
            read_corpus(file)  # raises the precise error
        key = ("corpus", _stamp(file), config.model)
        index = _cached_index(
            key,
            lambda: build_index(
                file, config.model, device=config.device, batch_size=config.batch_size,
                trust_remote_code=config.trust_remote_code,
            ),
        )
    if index.dimension != encoder.dimension:
        raise NlpsuiteError(
            f"the index holds {index.dimension}-dimensional vectors but model "
            f"'{config.model}' makes {encoder.dimension}-dimensional ones"
        )
    if config.options.get("ann") == "hnsw":
        exact = index
        index = _cached_index(
            (*key, "hnsw"), lambda: _with_hnsw(exact, Path(saved) if saved else None)
        )
    return index


def _with_hnsw(index: Index, folder: Path | None) -> Index:
    """``index`` searching its saved HNSW graph, or one built now if it has none."""
    if folder is not None and "ann" in index.meta:
        return index.with_hnsw(load_hnsw(folder, index))
    if folder is not None:
        logger.warning(
            "index %s has no saved HNSW graph; building one over %d documents for this run "
            "('nlpsuite index build --ann hnsw' saves one)", folder, len(index),
        )
    return index.with_hnsw(HnswParams())


def load(config: RunConfig) -> Callable[[Sequence[SearchQuery]], list[SearchResult]]:
    top_k = config.options["top_k"]
    if top_k < 1:
        raise NlpsuiteError(f"option 'top_k' must be at least 1, got {top_k}")
    ann, ef_search = config.options.get("ann") or "exact", config.options.get("ef_search")
    if ann not in ANN_KINDS:
        raise NlpsuiteError(f"option 'ann' must be one of {', '.join(ANN_KINDS)}, got {ann!r}")
    if ef_search is not None and ann != "hnsw":
        raise NlpsuiteError("option 'ef_search' applies only with ann=hnsw")
    if ef_search is not None and ef_search < 1:
        raise NlpsuiteError(f"option 'ef_search' must be at least 1, got {ef_search}")
    if ann == "hnsw":
        _faiss()  # before loading a model or embedding a corpus
    encoder = _encoder_for(config)
    index = _index_for(config, encoder)

    def run(inputs: Sequence[SearchQuery]) -> list[SearchResult]:
        vectors = encoder.encode([query.text for query in inputs], config.batch_size)
        found = index.search(vectors, top_k, ef_search=ef_search)
        return [
            SearchResult(query.text, tuple(
                Hit(index.ids[position], round(score, 6), index.texts[position])
                for position, score in ranked
            ))
            for query, ranked in zip(inputs, found, strict=True)
        ]

    return run


def render(result: SearchResult, width: int = 80) -> str:
    """The query, then one line per hit: rank, score, id, and the start of the text."""
    id_width = min(24, max((len(hit.id) for hit in result.hits), default=0))
    lines = [f"query: {result.query}"]
    for rank, hit in enumerate(result.hits, 1):
        snippet = re.sub(r"\s+", " ", hit.text).strip()
        if len(snippet) > width:
            snippet = snippet[: width - 3].rstrip() + "..."
        lines.append(f"{rank:>3}  {hit.score:.4f}  {hit.id:<{id_width}}  {snippet}")
    return "\n".join(lines)


TASK = Task(
    name="semantic-search",
    description="Rank documents by meaning (the bundled demo corpus unless --corpus/--index).",
    default_model=DEFAULT_MODEL,
    input_type=SearchQuery,
    output_type=SearchResult,
    load=load,
    metrics=(NDCG_10, MRR_10, RECALL_10, RECALL_100),
    options=(
        Option("corpus", str, None,
               "documents: JSONL/CSV with id and text, or plain text (one per line, id = line "
               "number); the bundled demo corpus if neither corpus nor index is given"),
        Option("index", str, None, "a directory written by 'nlpsuite index build'"),
        Option("top_k", int, 10, "how many hits to return per query"),
        Option("ann", str, "exact",
               "'exact' scores every document; 'hnsw' searches an approximate graph, much "
               "faster on large corpora (the index's saved one, else one built per process; "
               "needs pip install 'nlpsuite[ann]')"),
        Option("ef_search", int, None,
               "with ann=hnsw: candidates examined per query, more for better recall "
               f"(default: the index's, else {HnswParams.ef_search})"),
    ),
    prediction=lambda output: output.ids,
    render=render,
)


# Sentence similarity


@dataclass(frozen=True)
class SimilarityPair:
    text: str
    text_pair: str

    def __post_init__(self) -> None:
        for name in ("text", "text_pair"):
            if not getattr(self, name).strip():
                raise NlpsuiteError(f"field '{name}' is empty")


@dataclass(frozen=True)
class SimilarityScore:
    """The cosine of the two texts' embeddings, in [-1, 1] (not rescaled to a 0-5 STS scale:
    the correlation metrics only need the order and the linear trend)."""

    score: float


def load_similarity(
    config: RunConfig,
) -> Callable[[Sequence[SimilarityPair]], list[SimilarityScore]]:
    # Loaded here, not on the first batch, so a bad model fails before any input is read.
    encoder = _encoder_for(config)

    def run(inputs: Sequence[SimilarityPair]) -> list[SimilarityScore]:
        scores = pair_cosines(
            encoder, [(pair.text, pair.text_pair) for pair in inputs], config.batch_size
        )
        # float32 holds about seven significant digits; more would be noise in the JSON.
        return [SimilarityScore(round(float(score), 6)) for score in scores]

    return run


SIMILARITY_TASK = Task(
    name="sentence-similarity",
    description="Score how alike two texts are in meaning: the cosine of their embeddings.",
    default_model=DEFAULT_MODEL,
    input_type=SimilarityPair,
    output_type=SimilarityScore,
    load=load_similarity,
    metrics=(SPEARMAN, PEARSON),
    prediction=lambda output: output.score,
    render=lambda output: f"{output.score:.4f}",
)


# Weights are hashed to tell models apart; 90 MB for MiniLM, so once per model and process.
@functools.cache
def _weights_sha256(model: str) -> str | None:
    return weights_sha256(model)


def _resolved(model: str) -> str:
    """``resolve_model`` for comparing names: a checkpoint folder since deleted is just a name."""
    try:
        return resolve_model(model)
    except NlpsuiteError:
        return model


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "unknown"


def _model_file(model: str, name: str) -> Path | None:
    """A file of a local checkpoint, or of a hub checkpoint already in the local cache."""
    source = resolve_model(model)
    folder = Path(source)
    if folder.is_dir():
        path = folder / name
        return path if path.is_file() else None
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(source, name)
    except Exception:  # an odd hub id or cache layout means "not cached", not a crash
        return None
    return Path(found) if isinstance(found, str) else None


def _read_json(path: Path | None) -> Any:
    if path is None:
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise NlpsuiteError(f"{path}: cannot read ({error})") from None


# Plugin hooks


@hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    register(TASK)
    register(SIMILARITY_TASK)


@hookimpl
def register_datasets(register: Callable[[Dataset], None]) -> None:
    register(
        Dataset(
            name="search-mini",
            task="semantic-search",
            description="20 queries over the demo corpus, graded relevance, written for nlpsuite",
            licence="CC0-1.0",
            load=lambda: load_records(EVAL_SET, "semantic-search"),
            files=(EVAL_SET, DEMO_CORPUS),
            options={"corpus": str(DEMO_CORPUS), "top_k": 100},
        )
    )
    register(
        Dataset(
            name="sts-mini",
            task="sentence-similarity",
            description="26 sentence pairs with gold similarity 0-5, written for nlpsuite",
            licence="CC0-1.0",
            load=lambda: load_records(STS_SET, "sentence-similarity"),
            files=(STS_SET,),
        )
    )


@hookimpl
def register_commands(cli: click.Group) -> None:
    import click

    @cli.group("index")
    def index_group() -> None:
        """Build and inspect saved semantic-search indexes."""

    @index_group.command("build")
    @click.argument("corpus", metavar="CORPUS")
    @click.option("--out", "-o", "out_dir", required=True, metavar="DIR",
                  help="Directory to write the index to (replaced atomically).")
    @click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True, metavar="ID|DIR")
    @click.option("--device", default="cpu", show_default=True,
                  type=click.Choice(["cpu", "cuda", "auto"]))
    @click.option("--batch-size", "-b", default=32, show_default=True, type=int)
    @click.option("--float16", is_flag=True, help="Store embeddings as float16 (half the size).")
    @click.option("--trust-remote-code", is_flag=True,
                  help="Allow a checkpoint to run its own Python code.")
    @click.option("--ann", default="exact", show_default=True, type=click.Choice(ANN_KINDS),
                  help="Also build an approximate HNSW graph, for 'run semantic-search --ann "
                  f"hnsw' (needs {ANN_INSTALL_HINT}).")
    @click.option("--hnsw-m", default=HnswParams.m, show_default=True, type=int,
                  help="HNSW links per node: more is better recall, more memory.")
    @click.option("--hnsw-ef-construction", default=HnswParams.ef_construction,
                  show_default=True, type=int,
                  help="HNSW candidates while building: more is better recall, slower build.")
    @click.option("--hnsw-ef-search", default=HnswParams.ef_search, show_default=True, type=int,
                  help="HNSW candidates per query, saved as the default for searches.")
    def build(corpus: str, out_dir: str, model: str, device: str, batch_size: int,
              float16: bool, trust_remote_code: bool, ann: str, hnsw_m: int,
              hnsw_ef_construction: int, hnsw_ef_search: int) -> None:
        """Embed CORPUS (JSONL/CSV with id and text, or plain text lines) into an index."""
        from nlpsuite.models import resolve_device

        if batch_size < 1:
            raise NlpsuiteError(f"batch size must be at least 1, got {batch_size}")
        hnsw = (
            HnswParams(hnsw_m, hnsw_ef_construction, hnsw_ef_search) if ann == "hnsw" else None
        )
        started = time.perf_counter()
        index = build_index(
            corpus, model, out_dir, device=resolve_device(device), batch_size=batch_size,
            float16=float16, trust_remote_code=trust_remote_code, hnsw=hnsw,
        )
        graph = f", with an HNSW graph (m={hnsw.m})" if hnsw else ""
        click.echo(
            f"indexed {len(index)} documents ({index.dimension} dimensions, model {model}"
            f"{graph}) into {out_dir} in {time.perf_counter() - started:.1f} s"
        )

    @index_group.command("info")
    @click.argument("directory", metavar="DIR")
    def info(directory: str) -> None:
        """Print a saved index's metadata (index.json), with the HNSW graph's under "ann"."""
        click.echo(json.dumps(load_index(directory).meta, indent=2))
