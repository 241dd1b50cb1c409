"""Documents to score as they are, with no reference: the perplexity task's dataset formats.

- JSONL whose rows have a ``text`` field and no ``reference`` (ids: an ``id`` field, else the
  line number); rows with a ``reference`` are plain records and read as such.
- Plain text: ``.txt``, or a file with any suffix that no other format or the records reader
  claims and whose first line is UTF-8 text (``eng_Latn.devtest``, ``newstest2017.src.en``).
  A file with a blank line between its lines holds paragraphs separated by one blank line, each
  a document (its lines joined with "\\n"), as lm-eval's wikitext documents are pages; a file
  without one holds a document per line, as flores200 and WMT sources hold one segment per line.
  Blank lines at the start and end are ignored; two in a row would enclose an empty document,
  an error naming the line. Ids are the line numbers where documents start.
"""

from __future__ import annotations

from pathlib import Path

from nlpsuite import NlpsuiteError, plugins
from nlpsuite.datasets import (
    Dataset,
    DatasetFormat,
    Example,
    Located,
    file_dataset,
    first_jsonl_keys,
    first_line,
    numbered_lines,
    required_field,
    row_id,
    rows,
    unique_located,
)

TASKS = ("perplexity",)
JSONL_SUFFIXES = (".jsonl", ".ndjson")
# Files the records reader takes when no format claims them: never plain text here.
RECORD_SUFFIXES = (*JSONL_SUFFIXES, ".csv")
# The name shows in "FILE is NAME, a 'perplexity' dataset; it cannot evaluate TASK", so it says
# how translation and summarization read plain text instead.
PLAIN_TEXT = "plain text (for aligned text write SOURCE:REFERENCE)"
TEXT_JSONL = "JSONL text without references"


def load_text_file(path: str | Path) -> list[Example]:
    """The documents of a plain-text file: paragraphs if it has blank lines, else lines."""
    numbered = numbered_lines(path)
    filled = [i for i, (_, line) in enumerate(numbered) if line.strip()]
    if not filled:
        raise NlpsuiteError(f"{path}: no text in the file")
    body = numbered[filled[0]:filled[-1] + 1]
    if len(filled) == len(body):  # no blank line: one document per line
        return [Example(str(number), {"text": line}, None) for number, line in body]
    documents = []
    lines: list[str] = []
    start = body[0][0]
    # A blank line after the last ends the last document.
    for number, line in [*body, (body[-1][0] + 1, "")]:
        if line.strip():
            if not lines:
                start = number
            lines.append(line)
        elif lines:
            documents.append(Example(str(start), {"text": "\n".join(lines)}, None))
            lines = []
        else:
            raise NlpsuiteError(f"{path}:{number}: empty document (two blank lines in a row; "
                                f"documents are separated by one blank line)")
    return documents


def load_text_jsonl(path: str | Path) -> list[Example]:
    """JSONL rows with a ``text`` field (other fields are ignored) and an optional ``id``."""
    documents = []
    for where, row in rows(path):
        text = required_field(row, "text", str, where)
        if not text.strip():
            raise NlpsuiteError(f"{where}: field 'text' is empty")
        documents.append(Located(where, Example(row_id(row, where), {"text": text}, None)))
    return unique_located(documents)


def _is_text_jsonl(spec: str) -> bool:
    path = Path(spec)
    if path.suffix.lower() not in JSONL_SUFFIXES or not path.is_file():
        return False
    try:
        keys = first_jsonl_keys(path)
    except NlpsuiteError:  # the reader reports a bad file with its line
        return False
    return "text" in keys and "reference" not in keys


def _is_plain_text(spec: str) -> bool:
    path = Path(spec)
    if not path.is_file():
        return False
    suffix = path.suffix.lower()
    if _claimed_elsewhere(spec, "" if suffix == ".txt" else suffix):
        return False  # a plugin's own layout of a .txt file (fastText, say) comes first
    if suffix == ".txt":
        return True
    if suffix in RECORD_SUFFIXES:
        return False
    try:
        first_line(path)  # UTF-8 text, not a binary file
    except NlpsuiteError:
        return False
    return True


def _claimed_elsewhere(spec: str, suffix: str) -> bool:
    """Whether another registered format declares ``suffix`` or recognises ``spec``: plain text
    is what is left, whichever order plugins loaded in."""
    others = [found for found in plugins.registry().formats if found.name != PLAIN_TEXT]
    return any((suffix and suffix in found.suffixes) or found.sniff(spec) for found in others)


def open_text_file(spec: str) -> Dataset:
    return file_dataset(Path(spec), "plain-text documents", TASKS[0], load_text_file)


def open_text_jsonl(spec: str) -> Dataset:
    return file_dataset(Path(spec), "JSONL documents", TASKS[0], load_text_jsonl)


TEXT_DOCUMENT_FORMATS = (
    DatasetFormat(TEXT_JSONL, TASKS, _is_text_jsonl, open_text_jsonl, suffixes=JSONL_SUFFIXES,
                  expects="a 'text' field on every line"),
    DatasetFormat(PLAIN_TEXT, TASKS, _is_plain_text, open_text_file, suffixes=(".txt",),
                  expects="documents, one per line or separated by blank lines"),
)
