"""Corpora: the documents semantic-search ranks, read from JSONL, CSV or plain text lines."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from nlpsuite import NlpsuiteError
from nlpsuite.records import iter_rows, not_utf8

# The bundled data lives beside the other plugins' in plugins/data, one folder up.
DEMO_CORPUS = Path(__file__).resolve().parent.parent / "data" / "demo-corpus.jsonl"
EVAL_SET = DEMO_CORPUS.with_name("search-eval.jsonl")
STS_SET = DEMO_CORPUS.with_name("sts-eval.jsonl")


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
    except UnicodeDecodeError:  # plain text lines; read again, as bytes, to say where
        raise not_utf8(str(file), file.read_bytes()) from None
    if not ids:
        raise NlpsuiteError(f"corpus {file} has no documents")
    return Corpus(tuple(ids), tuple(texts), str(file))


def _corpus_rows(file: Path) -> Iterator[tuple[str, str, str]]:

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
