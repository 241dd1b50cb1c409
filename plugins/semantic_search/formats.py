"""Retrieval and similarity benchmark files: BEIR folders and the STS Benchmark, read for the
semantic-search and sentence-similarity tasks, the dataset formats they register, and how a
plain record's reference becomes relevance grades.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpsuite import NlpsuiteError
from nlpsuite.datasets import (
    Dataset,
    DatasetFormat,
    Example,
    Located,
    first_line,
    line_example,
    number_field,
    required_field,
    rows,
    tsv_rows,
    unique_located,
)

SEMANTIC_SEARCH = "semantic-search"
SENTENCE_SIMILARITY = "sentence-similarity"


@dataclass(frozen=True)
class RetrievalData:
    """One BEIR split: the judged queries as examples, and the corpus they are ranked against.

    The corpus stays a path because the semantic-search task reads (and caches an index of) the
    file itself; :meth:`documents` reads it here when the texts are wanted.
    """

    examples: tuple[Example, ...]
    corpus: Path
    queries: Path
    qrels: Path
    split: str

    def documents(self) -> dict[str, str]:
        """``{doc_id: text}`` with text = title + " " + text, as BEIR embeds documents."""
        return read_beir_corpus(self.corpus)


def is_beir(folder: Path) -> bool:
    return all((folder / name).exists() for name in ("corpus.jsonl", "queries.jsonl", "qrels"))


def _beir_split(spec: str) -> tuple[Path, str] | None:
    """A BEIR folder (its test split) or a ``qrels/SPLIT.tsv`` inside one (that split)."""
    path = Path(spec)
    if path.is_dir() and is_beir(path):
        return path, "test"
    if path.suffix.lower() == ".tsv" and path.parent.name == "qrels" and is_beir(
        path.parent.parent
    ):
        return path.parent.parent, path.stem
    return None


def open_beir(spec: str) -> Dataset:
    """A BEIR split as a dataset, with the corpus as the semantic-search task's option."""
    found = _beir_split(spec)
    if found is None:
        raise NlpsuiteError(f"{spec} is not a BEIR dataset")
    folder, split = found
    qrels = qrels_file(folder, split)
    corpus = folder / "corpus.jsonl"
    return Dataset(
        name=str(folder),
        task=SEMANTIC_SEARCH,
        description=f"BEIR {folder.name}, {split} split",
        licence="see the dataset's README",
        load=lambda: list(load_beir(folder, split).examples),
        files=(corpus, folder / "queries.jsonl", qrels),
        # Recall@100 needs 100 hits per query.
        options={"corpus": str(corpus), "top_k": 100},
    )


def qrels_file(folder: Path, split: str) -> Path:
    qrels = folder / "qrels" / f"{split}.tsv"
    if not qrels.is_file():
        found = ", ".join(sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))) or "none"
        raise NlpsuiteError(f"BEIR dataset {folder}: no qrels for split '{split}' (found: {found})")
    return qrels


def load_beir(folder: str | Path, split: str = "test") -> RetrievalData:
    """A BEIR folder: ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/{split}.tsv``.

    Only queries judged in the split's qrels are examples (``queries.jsonl`` holds every split),
    in ``queries.jsonl`` order; the reference is ``{doc_id: grade}``. Ids stay strings.
    """
    root = Path(folder)
    qrels_path = root / "qrels" / f"{split}.tsv"
    queries_path = root / "queries.jsonl"
    corpus_path = root / "corpus.jsonl"
    for needed in (corpus_path, queries_path):
        if not needed.is_file():
            raise NlpsuiteError(f"BEIR dataset {root}: file not found: {needed}")
    qrels_file(root, split)
    judged, first_at = _read_qrels(qrels_path)
    located = []
    for where, row in rows(queries_path):
        query_id = str(required_field(row, "_id", (str, int), where))
        if query_id in judged:
            text = required_field(row, "text", str, where)
            located.append(Located(where, Example(query_id, {"text": text}, judged[query_id])))
    examples = unique_located(located)
    unknown = set(judged) - {example.id for example in examples}
    if unknown:
        first = min(unknown, key=lambda query_id: first_at[query_id][0])
        raise NlpsuiteError(f"{first_at[first][1]}: query '{first}' is not in {queries_path}")
    return RetrievalData(tuple(examples), corpus_path, queries_path, qrels_path, split)


def _read_qrels(
    path: Path,
) -> tuple[dict[str, dict[str, int]], dict[str, tuple[int, str]]]:
    """``{query_id: {doc_id: grade}}`` and where each query is first judged."""
    judged: dict[str, dict[str, int]] = {}
    first_at: dict[str, tuple[int, str]] = {}
    for position, (where, fields) in enumerate(tsv_rows(path)):
        if len(fields) < 3:
            raise NlpsuiteError(
                f"{where}: expected 3 tab-separated fields (query-id, corpus-id, score), "
                f"got {len(fields)}"
            )
        query_id, doc_id, score = (value.strip() for value in fields[:3])
        try:
            grade = int(score)
        except ValueError:
            if position == 0:
                continue  # the header row, "query-id corpus-id score"
            raise NlpsuiteError(
                f"{where}: field 'score' should be an integer, got {score!r}"
            ) from None
        judged.setdefault(query_id, {})[doc_id] = grade
        first_at.setdefault(query_id, (position, where))
    if not judged:
        raise NlpsuiteError(f"{path}: no relevance judgements")
    return judged, first_at


def read_beir_corpus(path: str | Path) -> dict[str, str]:
    """``{doc_id: title + " " + text}`` from a BEIR ``corpus.jsonl``, stripped.

    That is how BEIR's sentence-transformers wrapper embeds documents; the semantic-search task
    reads the same file with the same rule, so scores agree with published BEIR numbers.
    """
    documents: dict[str, str] = {}
    first_at: dict[str, str] = {}
    for where, row in rows(path):
        doc_id = str(required_field(row, "_id", (str, int), where))
        if doc_id in first_at:
            raise NlpsuiteError(f"{where}: duplicate id '{doc_id}' (first at {first_at[doc_id]})")
        first_at[doc_id] = where
        title = row.get("title") or ""
        if not isinstance(title, str):
            raise NlpsuiteError(f"{where}: field 'title' should be str, got {type(title).__name__}")
        documents[doc_id] = f"{title} {required_field(row, 'text', str, where)}".strip()
    return documents


def grades_reference(value: Any, where: str) -> dict[str, int]:
    if isinstance(value, str):
        value = value.split()  # a CSV cell: relevant ids separated by spaces
    if isinstance(value, list) and all(isinstance(item, str | int) for item in value):
        return {str(item): 1 for item in value}
    if isinstance(value, dict) and all(
        isinstance(grade, int) and not isinstance(grade, bool) for grade in value.values()
    ):
        return {str(doc_id): grade for doc_id, grade in value.items()}
    raise NlpsuiteError(
        f"{where}: field 'reference' should map document ids to integer grades "
        "(or list the relevant ids)"
    )


def _is_sts(spec: str) -> bool:
    """The STS Benchmark layout: a .csv whose first line has seven or more tab-separated fields
    with a number in the fifth."""
    path = Path(spec)
    if path.suffix.lower() != ".csv" or not path.is_file():
        return False
    try:
        fields = first_line(path).split("\t")
    except NlpsuiteError:
        return False
    if len(fields) < 7:
        return False
    try:
        float(fields[4])
    except ValueError:
        return False
    return True


def load_sts(path: str | Path) -> list[Example]:
    """STS Benchmark: no header; ``genre filename year id score sentence1 sentence2 [extra...]``.

    Fields after the seventh (source notes on some lines) are ignored. Ids are line numbers,
    since the file's own ``id`` column repeats across genres and years.
    """
    examples = []
    for where, fields in tsv_rows(path):
        if len(fields) < 7:
            raise NlpsuiteError(
                f"{where}: expected at least 7 tab-separated fields (genre, filename, year, id, "
                f"score, sentence1, sentence2), got {len(fields)}"
            )
        score = number_field(fields[4], "score", where)
        pair = {"text": fields[5], "text_pair": fields[6]}
        examples.append(line_example(where, pair, score))
    return examples


BEIR_FORMAT = DatasetFormat(
    "BEIR", (SEMANTIC_SEARCH,), lambda spec: _beir_split(spec) is not None, open_beir,
    suffixes=("/",), expects="corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv",
)
STS_FORMAT = DatasetFormat.of_files(
    "STS Benchmark", (SENTENCE_SIMILARITY,), _is_sts, load_sts, suffixes=(".csv",),
    expects="seven tab-separated fields with the score fifth (STS Benchmark)",
)
