"""Saved and in-memory indexes: unit-length document embeddings searched exactly.

A corpus is embedded once per process, or once for good with ``nlpsuite index build``; a saved
index is a directory of plain files (``index.json``, ``embeddings.npy``, ``docs.jsonl``, and
``hnsw.faiss`` when built with an HNSW graph) that needs no pickle to read. Search is exact
unless the index carries an HNSW graph: one matmul against every document.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpsuite import NlpsuiteError, __version__
from nlpsuite.checkpoints import resolve_model
from nlpsuite.datasets import sha256_file
from nlpsuite.records import check_writable, decode_utf8, read_json, write_folder_atomic

from .corpus import read_corpus
from .encoder import DEFAULT_MODEL, cached_weights_sha256, load_encoder
from .hnsw import HNSW_FILE, HnswIndex, HnswParams, import_faiss, sync_file

if TYPE_CHECKING:
    import numpy as np

INDEX_FORMAT = "nlpsuite-semantic-index"
INDEX_VERSION = 1
INDEX_FILES = ("index.json", "embeddings.npy", "docs.jsonl")

# Scores are computed this many cells (queries x documents) at a time, so a 1,024-query chunk
# from the CLI against a large corpus does not allocate gigabytes at once.
_SCORE_BLOCK_CELLS = 1 << 24


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
        check_index_folder(target)
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
        def fill(staging: Path) -> None:
            with (staging / "embeddings.npy").open("wb") as handle:
                np.save(handle, self.embeddings.astype(storage), allow_pickle=False)
                sync_file(handle)
            with (staging / "docs.jsonl").open("w", encoding="utf-8") as handle:
                for doc_id, text in zip(self.ids, self.texts, strict=True):
                    handle.write(json.dumps({"id": doc_id, "text": text}, ensure_ascii=False))
                    handle.write("\n")
                sync_file(handle)
            # Lines reordered or edited by hand would pair texts with other documents' vectors.
            meta["docs_sha256"] = sha256_file(staging / "docs.jsonl")
            if self.hnsw is not None:
                self.hnsw.write(staging / HNSW_FILE)
            # index.json last: its presence marks a complete index.
            with (staging / "index.json").open("w", encoding="utf-8") as handle:
                handle.write(json.dumps(meta, indent=2) + "\n")
                sync_file(handle)

        write_folder_atomic(target, fill, replace=True)
        return target


def check_index_folder(target: Path) -> None:
    """Refuse a folder an index cannot be saved to: not writable, or holding something else."""
    check_writable(target, "index folder", folder=True)
    if target.is_dir() and any(target.iterdir()) and not (target / "index.json").is_file():
        raise NlpsuiteError(
            f"{target} exists and is not an nlpsuite index; choose an empty or new directory"
        )


def non_finite_rows(embeddings: np.ndarray) -> tuple[int, int]:
    """The position of the first row holding NaN or an infinity, and how many rows do; a NaN
    vector would score NaN against every query, and sort anywhere."""
    import numpy as np

    bad = ~np.isfinite(embeddings).all(axis=1)
    count = int(bad.sum())
    return (int(bad.argmax()) if count else -1), count


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
        import_faiss()  # a missing library should fail before minutes of embedding, not after
    if out_dir is not None:  # before minutes of embedding, not after
        check_index_folder(Path(out_dir))
    corpus = read_corpus(corpus_path)
    encoder = load_encoder(model, device=device, trust_remote_code=trust_remote_code)
    embeddings = encoder.encode(corpus.texts, batch_size)
    first_bad, bad = non_finite_rows(embeddings)
    if bad:
        raise NlpsuiteError(
            f"{corpus_path}: model '{model}' gave NaN or infinite embeddings for {bad} of "
            f"{len(corpus.ids)} documents (first: document {corpus.ids[first_bad]!r}); the "
            f"checkpoint's weights may be broken"
        )
    index = Index(
        ids=corpus.ids,
        texts=corpus.texts,
        embeddings=embeddings,
        model=model,
        weights_sha256=cached_weights_sha256(model),
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
    meta = read_json(meta_file)
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
    with docs_file.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            line = decode_utf8(raw, str(docs_file), number)
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
    # Indexes saved before nlpsuite recorded the hash have none, and load unchecked.
    if "docs_sha256" in meta and sha256_file(docs_file) != meta["docs_sha256"]:
        raise NlpsuiteError(
            f"{docs_file}: its sha256 is not the one index.json records: the documents changed "
            f"after the index was saved; rebuild the index"
        )
    first_bad, bad = non_finite_rows(stored)
    if bad:
        raise NlpsuiteError(
            f"{folder / 'embeddings.npy'}: {bad} of {count} embeddings hold NaN or infinite "
            f"values (first: row {first_bad + 1}, document {ids[first_bad]!r}); rebuild the index"
        )
    sha = meta.get("weights_sha256")
    return Index(
        ids=tuple(ids),
        texts=tuple(texts),
        embeddings=np.ascontiguousarray(stored, dtype=np.float32),
        model=model,
        weights_sha256=sha if isinstance(sha, str) else None,
        meta=meta,
    )


def _resolved(model: str) -> str:
    """``resolve_model`` for comparing names: a checkpoint folder since deleted is just a name."""
    try:
        return resolve_model(model)
    except NlpsuiteError:
        return model


def _short(sha: str | None) -> str:
    return sha[:12] if sha else "unknown"
