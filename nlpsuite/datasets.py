"""Evaluation data: the :class:`Example` and :class:`Dataset` values, the :class:`DatasetFormat`
contract through which plugins add file layouts, and the readers those layouts share.

Every loader returns :class:`Example` values whose ``input`` is a plain dict of the task's input
fields (the harness builds the task's input record from it with ``Task.make_input``) and whose
``reference`` is the plain value the task's metrics score. Each task's standard layouts (SQuAD,
GLUE TSV, BEIR, STS, parallel text, SciTLDR...) are :class:`DatasetFormat` values registered by
the plugin of that task; plain JSONL/CSV records, and finding a dataset by name or path, are
:mod:`nlpsuite.catalog`'s business.

Readers here split lines on "\n" only: ``str.splitlines`` would also split on U+2028, form feeds
and other characters that occur inside real segments, breaking line alignment. Every error names
the file, the line and the field.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlpsuite.errors import NlpsuiteError
from nlpsuite.metrics import Metric
from nlpsuite.records import bounded_lines, decode_utf8, iter_rows

logger = logging.getLogger("nlpsuite")


@dataclass(frozen=True)
class Example:
    """One evaluation example: a stable id, the task's input and the reference its metrics score.

    ``input`` is a plain dict of the task's input fields (an input record or a bare string work
    too: the harness passes it through ``Task.make_input``).
    """

    id: str
    input: Any
    reference: Any


@dataclass(frozen=True)
class Dataset:
    """A dataset a plugin registers by name, e.g. for ``nlpsuite eval TASK --dataset NAME``.

    ``files`` are the files ``load`` reads, in a fixed order: :func:`dataset_fingerprint` hashes
    them (without them it hashes the loaded examples). ``options`` are task options the dataset
    needs to be evaluated at all, e.g. ``{"corpus": ".../corpus.jsonl"}`` for semantic search;
    the harness merges them under the user's own options. ``metrics`` replace the task's metrics
    of the same name for this dataset: a SQuAD v2.0 file is scored by the official v2.0 rules.
    """

    name: str
    task: str
    description: str
    licence: str
    load: Callable[[], Sequence[Example]]
    files: tuple[str | Path, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    metrics: tuple[Metric, ...] = ()

@dataclass(frozen=True)
class DatasetFormat:
    """A file layout a plugin reads, recognised by the shape of what ``--dataset`` names.

    ``sniff`` gets that string (a path, or a spec such as ``SOURCE:REFERENCE``) and answers
    cheaply, without raising, whether it is in this format; ``open`` makes the :class:`Dataset`
    (its task: the first of ``tasks``). ``suffixes`` (``".tsv"``; ``"/"`` for a folder) and
    ``expects`` (what such a file holds) make the message when no format recognises a path.
    """

    name: str
    tasks: tuple[str, ...]
    sniff: Callable[[str], bool]
    open: Callable[[str], Dataset]
    suffixes: tuple[str, ...] = ()
    expects: str = ""

    @classmethod
    def of_files(
        cls, name: str, tasks: tuple[str, ...], sniff: Callable[[str], bool],
        loader: Callable[[Path], Sequence[Example]], *, suffixes: tuple[str, ...] = (),
        expects: str = "",
    ) -> DatasetFormat:
        """A format whose datasets are one file each, read by ``loader`` (:func:`file_dataset`)."""

        def open_file(spec: str) -> Dataset:
            return file_dataset(Path(spec), name, tasks[0], loader)

        return cls(name, tasks, sniff, open_file, suffixes, expects)


def file_dataset(path: Path, kind: str, task: str,
                 loader: Callable[[Path], Sequence[Example]]) -> Dataset:
    """A :class:`Dataset` of one user file read by ``loader``."""
    return Dataset(
        name=str(path),
        task=task,
        description=f"{kind} from {path.name}",
        licence="unknown (user file)",
        load=lambda: loader(path),
        files=(path,),
    )


# Hashing, so a results file says exactly which data produced it.


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(dataset: Dataset) -> dict[str, Any]:
    """What identifies a dataset's content: ``sha256``, ``bytes`` and per-file ``files``.

    ``sha256`` combines the per-file hashes in order (not the paths), so the same files give the
    same value on any machine. A registered dataset that names no files is fingerprinted by its
    loaded examples instead (``"hashed": "examples"``, ``bytes`` None).
    """
    if not dataset.files:
        rows = [
            {"id": example.id, "input": example.input, "reference": example.reference}
            for example in dataset.load()
        ]
        text = json.dumps(rows, sort_keys=True, ensure_ascii=False, default=str)
        return {
            "sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
            "bytes": None,
            "files": [],
            "hashed": "examples",
        }
    files = [
        {"path": str(path), "sha256": sha256_file(path), "bytes": Path(path).stat().st_size}
        for path in dataset.files
    ]
    combined = "".join(f"{entry['sha256']}\n" for entry in files)
    return {
        "sha256": hashlib.sha256(combined.encode("ascii")).hexdigest(),
        "bytes": sum(entry["bytes"] for entry in files),
        "files": files,
        "hashed": "files",
    }


def select(
    examples: Sequence[Example],
    *,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> list[Example]:
    """The first ``limit`` examples, or a seeded random ``sample`` of them in their order."""
    if limit is not None and sample is not None:
        raise NlpsuiteError("give limit or sample, not both")
    for name, value in (("limit", limit), ("sample", sample)):
        if value is not None and value < 1:
            raise NlpsuiteError(f"{name} must be at least 1, got {value}")
    if limit is not None:
        return list(examples[:limit])
    if sample is not None and sample < len(examples):
        # Sorted positions keep dataset order, so outputs line up with the file.
        picked = sorted(random.Random(seed).sample(range(len(examples)), sample))
        return [examples[i] for i in picked]
    return list(examples)


# Readers shared by the formats.


def first_line(path: Path) -> str:
    """The first non-blank line, read alone: format sniffers call this on every dataset path,
    so it must not read (or decode) a whole large file."""
    if not path.is_file():
        raise NlpsuiteError(f"dataset file not found: {path}")
    with path.open("rb") as handle:
        for number, raw in enumerate(bounded_lines(handle.readline, str(path)), 1):
            if number == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")
            line = decode_utf8(raw, str(path), number).removesuffix("\n").removesuffix("\r")
            if line.strip():
                return line
    raise NlpsuiteError(f"{path}: the file is empty")


def first_jsonl_keys(path: Path) -> dict[str, Any]:
    try:
        row = json.loads(first_line(path))
    except json.JSONDecodeError:
        return {}  # load_records reports the bad line with its number
    return row if isinstance(row, dict) else {}


# Reading lines exactly: split on "\n" only. str.splitlines would also split on U+2028, form
# feeds and other characters that occur inside real segments, breaking line alignment.


def numbered_lines(
    path: str | Path, *, keep_byte_order_mark: bool = False
) -> list[tuple[int, str]]:
    """``(line_number, text)`` for every line, without the line break; a final newline is
    optional (the Poem Sentiment files have none).

    A leading UTF-8 byte-order mark is dropped (it must not become part of a header's first
    column) unless ``keep_byte_order_mark``: then it starts the first line as ``"\\ufeff"``,
    which is how sacrebleu reads a file, so that scores match its own."""
    file = Path(path)
    if not file.is_file():
        raise NlpsuiteError(f"dataset file not found: {file}")
    data = file.read_bytes()
    if data.startswith(b"\xef\xbb\xbf") and not keep_byte_order_mark:
        data = data[3:]
    if data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        return []
    lines = decode_utf8(data, str(file)).split("\n")
    return [(number, line.removesuffix("\r")) for number, line in enumerate(lines, 1)]


def tsv_rows(path: str | Path) -> Iterator[tuple[str, list[str]]]:
    """``("file:line", fields)`` per non-blank line, split on tabs with no quoting at all.

    Equivalent to ``csv.QUOTE_NONE``: STS-B sentences hold unbalanced double quotes that a
    quoting reader would use to merge lines.
    """
    for number, line in numbered_lines(path):
        if line.strip():
            yield f"{path}:{number}", line.split("\t")


def rows(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """JSONL/CSV rows as ``nlpsuite.records`` reads them (bad UTF-8 located by line)."""
    yield from iter_rows(path)


def required_field(container: Any, name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(container, dict):
        raise NlpsuiteError(f"{where}: expected a JSON object, got {type(container).__name__}")
    if name not in container:
        raise NlpsuiteError(f"{where}: missing field '{name}'")
    value = container[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        expected = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise NlpsuiteError(
            f"{where}: field '{name}' should be {expected}, got {type(value).__name__}"
        )
    return value


def string_list(row: Mapping[str, Any], name: str, where: str) -> list[str]:
    value = required_field(row, name, list, where)
    if not all(isinstance(item, str) for item in value):
        raise NlpsuiteError(f"{where}: field '{name}' should be a list of strings")
    return value


def number_field(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool):
        raise NlpsuiteError(f"{where}: field '{name}' should be a number, got bool")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise NlpsuiteError(f"{where}: field '{name}' should be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise NlpsuiteError(f"{where}: field '{name}' should be a finite number, got {value!r}")
    return number


def texts_field(value: Any, name: str, where: str, *, allow_empty: bool) -> list[str]:
    if value is None:
        raise NlpsuiteError(f"{where}: missing field '{name}'")
    texts = [value] if isinstance(value, str) else value
    if not isinstance(texts, list) or not all(isinstance(text, str) for text in texts):
        raise NlpsuiteError(
            f"{where}: field '{name}' should be a string or a list of strings, "
            f"got {type(value).__name__}"
        )
    if not allow_empty and not any(text.strip() for text in texts):
        raise NlpsuiteError(f"{where}: field '{name}' is empty")
    return list(texts)


# Aligned plain text, for any task.


def load_parallel(source: str | Path, references: Sequence[str | Path]) -> list[Example]:
    """A source file and one or more reference files, aligned by line number.

    Each example's reference holds one string per reference file, in the order given. Ids are
    line numbers. An empty source line is an error, since no model can translate it.
    """
    if isinstance(references, str | Path):
        references = [references]
    if not references:
        raise NlpsuiteError(f"{source}: a parallel dataset needs at least one reference file")
    sources = numbered_lines(source)
    # A reference's byte-order mark stays part of its first line, as sacrebleu reads the file, so
    # that corpus scores equal sacrebleu's for the same bytes; the model's input drops it.
    targets = [numbered_lines(reference, keep_byte_order_mark=True) for reference in references]
    for reference, lines in zip(references, targets, strict=True):
        if lines and lines[0][1].startswith("\ufeff"):
            logger.warning("%s starts with a UTF-8 byte-order mark; it is scored as part of the "
                           "first line, as sacrebleu reads it", reference)
    for reference, lines in zip(references, targets, strict=True):
        if len(lines) != len(sources):
            raise NlpsuiteError(
                f"parallel files differ in length: {source} has {len(sources)} lines, "
                f"{reference} has {len(lines)}"
            )
    examples = []
    for position, (number, text) in enumerate(sources):
        if not text.strip():
            raise NlpsuiteError(f"{source}:{number}: empty source line")
        examples.append(
            Example(str(number), {"text": text}, [lines[position][1] for lines in targets])
        )
    return examples


def row_id(row: Mapping[str, Any], where: str) -> str:
    value = row.get("id")
    if value is None or value == "":
        return where.rsplit(":", 1)[1]  # the line number
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise NlpsuiteError(
            f"{where}: field 'id' should be a string or an integer, got {type(value).__name__}"
        )
    return str(value)


# Ids key the harness's resumable predictions, so a duplicate would silently drop an example.


@dataclass(frozen=True)
class Located:
    where: str
    example: Example


def unique_located(items: Iterable[Located]) -> list[Example]:
    first_at: dict[str, str] = {}
    examples = []
    for item in items:
        identifier = item.example.id
        if identifier in first_at:
            raise NlpsuiteError(
                f"{item.where}: duplicate id '{identifier}' (first at {first_at[identifier]})"
            )
        first_at[identifier] = item.where
        examples.append(item.example)
    return examples


def line_example(where: str, inputs: dict[str, Any], reference: Any) -> Example:
    return Example(where.rsplit(":", 1)[1], inputs, reference)


def check_unique_ids(examples: Iterable[Example], source: str) -> None:
    seen: set[str] = set()
    for example in examples:
        if example.id in seen:
            raise NlpsuiteError(f"{source}: duplicate example id '{example.id}'")
        seen.add(example.id)
