"""semantic-search, sentence-similarity and embedding: what a sentence-embedding checkpoint
is for.

semantic-search ranks a corpus of documents by meaning; sentence-similarity scores a pair of
texts by the cosine of their embeddings; embedding returns a text's vector. All share one
:class:`Encoder` per checkpoint.

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

The work is split by concern: ``encoder`` (checkpoint to vectors), ``corpus``, ``index`` (exact
search and the saved format), ``hnsw`` (the optional graph), ``tasks`` and ``commands``. This
module registers them as the ``semantic-search`` plugin and re-exports their public names, so
the imports above keep working whichever module a name lives in.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from nlpsuite import Task, hookimpl
from nlpsuite.catalog import load_records
from nlpsuite.datasets import Dataset, DatasetFormat

from .commands import add_index_commands
from .corpus import DEMO_CORPUS, EVAL_SET, STS_SET, Corpus, read_corpus
from .encoder import (
    DEFAULT_MODEL,
    Encoder,
    SentenceConfig,
    embed,
    load_encoder,
    pair_cosines,
    read_sentence_config,
    similarity,
)
from .formats import BEIR_FORMAT, STS_FORMAT
from .hnsw import ANN_INSTALL_HINT, ANN_KINDS, HNSW_FILE, HnswIndex, HnswParams
from .index import (
    INDEX_FILES,
    INDEX_FORMAT,
    INDEX_VERSION,
    Index,
    build_index,
    load_hnsw,
    load_index,
    top_k_rows,
)
from .tasks import (
    EMBEDDING_TASK,
    SIMILARITY_TASK,
    TASK,
    Embedding,
    EmbeddingInput,
    Hit,
    SearchQuery,
    SearchResult,
    SimilarityPair,
    SimilarityScore,
    index_for,
    load,
    load_embedding,
    load_similarity,
    render,
)

if TYPE_CHECKING:
    import click

__all__ = [
    "ANN_INSTALL_HINT",
    "ANN_KINDS",
    "DEFAULT_MODEL",
    "DEMO_CORPUS",
    "EMBEDDING_TASK",
    "EVAL_SET",
    "HNSW_FILE",
    "INDEX_FILES",
    "INDEX_FORMAT",
    "INDEX_VERSION",
    "SIMILARITY_TASK",
    "STS_SET",
    "TASK",
    "Corpus",
    "Embedding",
    "EmbeddingInput",
    "Encoder",
    "Hit",
    "HnswIndex",
    "HnswParams",
    "Index",
    "SearchQuery",
    "SearchResult",
    "SentenceConfig",
    "SimilarityPair",
    "SimilarityScore",
    "build_index",
    "embed",
    "index_for",
    "load",
    "load_embedding",
    "load_encoder",
    "load_hnsw",
    "load_index",
    "load_similarity",
    "pair_cosines",
    "read_corpus",
    "read_sentence_config",
    "register_commands",
    "register_dataset_formats",
    "register_datasets",
    "register_tasks",
    "render",
    "similarity",
    "top_k_rows",
]


# Plugin hooks


@hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    register(TASK)
    register(SIMILARITY_TASK)
    register(EMBEDDING_TASK)


@hookimpl
def register_datasets(register: Callable[[Dataset], None]) -> None:
    register(
        Dataset(
            name="search-mini",
            task="semantic-search",
            description="20 queries over the demo corpus, graded relevance, written for nlpsuite",
            licence="CC0-1.0",
            load=lambda: load_records(EVAL_SET, TASK),
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
            load=lambda: load_records(STS_SET, SIMILARITY_TASK),
            files=(STS_SET,),
        )
    )


# The benchmark layouts these tasks read: BEIR folders and STS Benchmark files (see .formats).
@hookimpl
def register_dataset_formats(register: Callable[[DatasetFormat], None]) -> None:
    register(BEIR_FORMAT)
    register(STS_FORMAT)


@hookimpl
def register_commands(cli: click.Group) -> None:
    add_index_commands(cli)
