"""Approximate search: an HNSW graph from the optional ``faiss-cpu``.

With ``pip install 'nlpsuite[ann]'`` an index can also carry an HNSW graph (``hnsw.faiss``,
written by ``index build --ann hnsw``) that ``--ann hnsw`` searches instead of scoring every
document: well under a millisecond a query over 100,000 documents, at the price of occasionally
missing a true top-10 hit. faiss is imported only when a graph is built, read or searched.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpsuite import NlpsuiteError

if TYPE_CHECKING:
    import numpy as np

# Written only for an index built with an approximate graph; faiss's own binary format.
HNSW_FILE = "hnsw.faiss"
ANN_KINDS = ("exact", "hnsw")
ANN_INSTALL_HINT = "pip install 'nlpsuite[ann]'"


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


def import_faiss() -> Any:
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

        faiss = import_faiss()
        params = params or HnswParams()
        vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
        native = faiss.IndexHNSWFlat(vectors.shape[1], params.m, faiss.METRIC_INNER_PRODUCT)
        native.hnsw.efConstruction = params.ef_construction
        native.hnsw.efSearch = params.ef_search
        native.add(vectors)
        return cls(native, params, int(vectors.shape[0]), int(vectors.shape[1]))

    @classmethod
    def read(cls, path: Path, params: HnswParams, count: int, dimension: int) -> HnswIndex:
        faiss = import_faiss()
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
        import_faiss().write_index(self.native, str(path))
        with path.open("rb+") as handle:
            sync_file(handle)

    @property
    def meta(self) -> dict[str, Any]:
        """What index.json records about the graph."""
        return {
            "kind": "hnsw",
            "file": HNSW_FILE,
            "library": f"faiss-cpu {import_faiss().__version__}",
            "m": self.params.m,
            "ef_construction": self.params.ef_construction,
            "ef_search": self.params.ef_search,
        }

    def search(
        self, queries: np.ndarray, top_k: int, ef_search: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Positions and scores of each row's approximate ``top_k``, best first; -1 pads a row
        the graph could not fill."""
        faiss = import_faiss()
        # Per call, not on the shared index: two runners may ask for different ef at once.
        ef = max(ef_search or self.params.ef_search, top_k)
        scores, positions = self.native.search(
            queries, top_k, params=faiss.SearchParametersHNSW(efSearch=ef)
        )
        return positions, scores


# Here rather than in index.py, which imports this module: the graph, like the other files of
# a saved index, must be on disk before index.json marks the index complete.
def sync_file(handle: Any) -> None:
    handle.flush()
    os.fsync(handle.fileno())
