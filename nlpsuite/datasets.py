"""Evaluation datasets: loaders for the standard benchmark formats, and one dispatcher.

Every loader returns :class:`Example` values whose ``input`` is a plain dict of the task's input
fields (the harness builds the task's input record from it with ``Task.make_input``) and whose
``reference`` is the plain value the task's metrics score:

==================== ============================ ==========================================
task                 input fields                 reference
==================== ============================ ==========================================
sentiment            ``text``                     label string (GLUE ``0``/``1`` stay strings)
question-answering   ``question``, ``context``    list of gold answer texts (``[]``: none)
translation          ``text``                     list of reference translations
summarization        ``text``                     list of reference summaries
semantic-search      ``text`` (the query)         ``{doc_id: grade}``
sentence-similarity  ``text``, ``text_pair``      gold score (float)
==================== ============================ ==========================================

:func:`load_dataset` accepts a registered dataset name or a path, and picks the loader from the
path's shape:

- a folder holding ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/`` is BEIR (split ``test``);
  a file ``qrels/SPLIT.tsv`` inside such a folder picks another split;
- ``*.json`` is SQuAD (v1.1 or v2.0);
- ``*.tsv`` is GLUE-style (header row with ``sentence`` and ``label``) or Poem Sentiment
  (no header; ``id``, ``verse_text``, ``label``);
- ``*.csv`` is the STS Benchmark layout when its first line has seven or more tab-separated
  fields with a number in the fifth, otherwise a CSV with a header row (see ``*.jsonl``);
- ``*.jsonl`` is SciTLDR (``source`` sentence list, ``target`` list), generic summarization
  (``document``, ``summary``) or otherwise plain records: the task's input fields, a
  ``reference`` field and an optional ``id`` (default: the line number);
- ``SOURCE:REFERENCE[:REFERENCE...]`` names aligned plain-text files, one segment per line
  (translation, or summarization).

An existing path wins over a registered name of the same spelling; write ``./name`` to be sure.
Where a dataset needs more than its examples (BEIR's documents), :func:`resolve_dataset` returns
a :class:`Dataset` whose ``options`` carry it as task options, e.g. semantic-search's ``corpus``.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import math
import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpsuite.errors import NlpsuiteError
from nlpsuite.records import read_json

if TYPE_CHECKING:
    from nlpsuite.metrics import Metric

SENTIMENT = "sentiment"
QUESTION_ANSWERING = "question-answering"
TRANSLATION = "translation"
SUMMARIZATION = "summarization"
SEMANTIC_SEARCH = "semantic-search"
SENTENCE_SIMILARITY = "sentence-similarity"


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


# Hashing, so a results file says exactly which data produced it.


def sha256_file(path: str | Path) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def dataset_fingerprint(path_or_name: str, task: str | None = None) -> dict[str, Any]:
    """What identifies a dataset's content: ``sha256``, ``bytes`` and per-file ``files``.

    ``sha256`` combines the per-file hashes in order (not the paths), so the same files give the
    same value on any machine. A registered dataset that names no files is fingerprinted by its
    loaded examples instead (``"hashed": "examples"``, ``bytes`` None).
    """
    dataset = resolve_dataset(path_or_name, task)
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


# The dispatcher.


def load_dataset(
    path_or_name: str,
    task: str,
    *,
    limit: int | None = None,
    sample: int | None = None,
    seed: int = 0,
) -> list[Example]:
    """The examples of a registered dataset or a dataset file/folder, for ``task``.

    ``limit`` keeps the first N examples; ``sample`` a random N drawn with ``random.Random(seed)``
    and kept in dataset order. Asking for more than there are gives them all.
    """
    if limit is not None and sample is not None:
        raise NlpsuiteError("give limit or sample, not both")
    dataset = resolve_dataset(path_or_name, task)
    examples = list(dataset.load())
    _check_unique_ids(examples, path_or_name)
    return select(examples, limit=limit, sample=sample, seed=seed)


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


def resolve_dataset(path_or_name: str, task: str | None = None) -> Dataset:
    """The :class:`Dataset` behind a path or registered name; ``task``, if given, must fit it."""
    path = Path(path_or_name)
    if path.exists():
        return _from_path(path, task)
    parts = path_or_name.split(":")
    if len(parts) >= 2 and all(parts):
        missing = [part for part in parts if not Path(part).is_file()]
        if not missing:
            return _parallel_dataset(path_or_name, parts[0], parts[1:], task)
        if any(Path(part).is_file() for part in parts):
            raise NlpsuiteError(f"parallel dataset '{path_or_name}': file not found: {missing[0]}")
    return _registered(path_or_name, task)


def _registered(name: str, task: str | None) -> Dataset:
    from nlpsuite.plugins import registry

    found = registry().datasets
    if name not in found:
        if "/" in name and not name.startswith((".", "/", "~")):
            return _hub_dataset(name, task)
        known = ", ".join(sorted(found)) or "none registered"
        raise NlpsuiteError(
            f"no dataset file, folder or registered dataset named '{name}' "
            f"(known datasets: {known})"
        )
    dataset = found[name]
    if task is not None and dataset.task != task:
        raise NlpsuiteError(f"dataset '{name}' is for task '{dataset.task}', not '{task}'")
    return dataset


# Hub column names that mean one of our input fields.
_HUB_ALIASES = {"sentence": "text", "document": "text", "article": "text", "sentence1": "text",
                "sentence2": "text_pair"}


def _hub_dataset(spec: str, task: str | None) -> Dataset:
    """``OWNER/NAME[:CONFIG][@SPLIT]`` from the Hugging Face Hub, through the ``datasets`` library.

    Columns named like the task's input fields (or a common alias: ``sentence``, ``document``)
    become the input; ``label`` (as text, so integer labels map by id), SQuAD-style ``answers``,
    ``summary``/``highlights`` or ``reference`` become the reference.
    """
    import os

    from nlpsuite.models import hub_reachable

    if task is None:
        raise NlpsuiteError(f"hub dataset '{spec}': name the task it is for")
    try:
        import datasets as hub_datasets
    except ImportError:
        raise NlpsuiteError(
            f"dataset '{spec}' is not a file or a registered name; to load it from the Hugging "
            f"Face Hub, pip install datasets"
        ) from None
    if os.environ.get("HF_HUB_OFFLINE") or os.environ.get("HF_DATASETS_OFFLINE") or not (
        hub_reachable()
    ):
        raise NlpsuiteError(
            f"dataset '{spec}' is not a file or a registered name, and the Hugging Face Hub "
            f"cannot be reached; download it elsewhere and pass the file with --dataset FILE"
        )
    name_config, _, split = spec.partition("@")
    name, _, config = name_config.partition(":")
    from nlpsuite.plugins import registry

    fields = [f.name for f in dataclasses.fields(registry().task(task).input_type)]

    def load() -> list[Example]:
        try:
            rows = hub_datasets.load_dataset(name, config or None, split=split or "validation")
        except Exception as error:
            raise NlpsuiteError(f"cannot load hub dataset '{spec}': {error}") from None
        examples = []
        for number, row in enumerate(rows):
            renamed = {_HUB_ALIASES.get(key, key): value for key, value in row.items()}
            inputs = {key: renamed[key] for key in fields if key in renamed}
            examples.append(Example(str(row.get("id", number)), inputs, _hub_reference(renamed)))
        return examples

    return Dataset(spec, task, f"{spec} from the Hugging Face Hub", "see the dataset card", load)


def _hub_reference(row: Mapping[str, Any]) -> Any:
    if isinstance(row.get("answers"), Mapping):
        return list(row["answers"].get("text", []))
    for key in ("reference", "summary", "highlights"):
        if key in row:
            return row[key]
    return str(row["label"]) if "label" in row else None


def _from_path(path: Path, task: str | None) -> Dataset:
    suffix = path.suffix.lower()
    if path.is_dir():
        if _is_beir(path):
            return _beir_dataset(path, "test", task)
        raise NlpsuiteError(
            f"{path} is a folder but not a BEIR dataset (corpus.jsonl, queries.jsonl, "
            "qrels/SPLIT.tsv); name a dataset file instead"
        )
    if suffix == ".tsv" and path.parent.name == "qrels" and _is_beir(path.parent.parent):
        return _beir_dataset(path.parent.parent, path.stem, task)
    if suffix == ".json":
        dataset = _file_dataset(path, "SQuAD JSON", (QUESTION_ANSWERING,), task, load_squad)
        if squad_version(path) == "v2.0":
            from nlpsuite.metrics import SQUAD_V2_METRICS

            dataset = dataclasses.replace(dataset, metrics=SQUAD_V2_METRICS)
        return dataset
    if suffix == ".tsv":
        first = _first_line(path).split("\t")
        if "label" in first:
            return _file_dataset(path, "GLUE TSV", (SENTIMENT,), task, load_glue_tsv)
        if len(first) == 3 and first[0].strip().isdigit():
            return _file_dataset(
                path, "Poem Sentiment TSV", (SENTIMENT,), task, load_poem_sentiment
            )
        raise NlpsuiteError(
            f"{path}:1: unrecognised TSV layout: expected a header with 'sentence' and 'label' "
            "(GLUE) or three fields id, text, label (Poem Sentiment)"
        )
    if suffix == ".csv":
        if _looks_like_sts(_first_line(path)):
            return _file_dataset(path, "STS Benchmark", (SENTENCE_SIMILARITY,), task, load_sts)
        with path.open(encoding="utf-8", newline="") as handle:
            header = set(next(csv.reader(handle), []))
        return _rows_dataset(path, header, task)
    if suffix in {".jsonl", ".ndjson"}:
        return _rows_dataset(path, _first_jsonl_keys(path), task)
    raise NlpsuiteError(
        f"{path}: unknown dataset format (expected .json, .jsonl, .tsv, .csv or a BEIR folder); "
        "for aligned plain-text files write SOURCE:REFERENCE[:REFERENCE...]"
    )


def _rows_dataset(path: Path, keys: set[str] | dict[str, Any], task: str | None) -> Dataset:
    """JSONL/CSV: SciTLDR, generic document/summary pairs, or plain records, by field names."""
    if isinstance(keys, dict) and isinstance(keys.get("source"), list) and "target" in keys:
        return _file_dataset(path, "SciTLDR JSONL", (SUMMARIZATION,), task, load_scitldr)
    if {"document", "summary"} <= set(keys) and "reference" not in keys:
        return _file_dataset(
            path, "summarization pairs", (SUMMARIZATION,), task, load_summarization
        )
    return Dataset(
        name=str(path),
        task=task or "",
        description=f"records with a 'reference' field from {path.name}",
        licence="unknown (user file)",
        load=lambda: load_records(path, task),
        files=(path,),
    )


def _file_dataset(
    path: Path,
    kind: str,
    tasks: tuple[str, ...],
    task: str | None,
    loader: Callable[[Path], list[Example]],
) -> Dataset:
    return Dataset(
        name=str(path),
        task=_fitting_task(str(path), kind, tasks, task),
        description=f"{kind} from {path.name}",
        licence="unknown (user file)",
        load=lambda: loader(path),
        files=(path,),
    )


def _fitting_task(name: str, kind: str, tasks: tuple[str, ...], task: str | None) -> str:
    if task is None:
        return tasks[0]
    if task not in tasks:
        fits = " or ".join(f"'{t}'" for t in tasks)
        raise NlpsuiteError(f"{name} is {kind}, a {fits} dataset; it cannot evaluate '{task}'")
    return task


def _parallel_dataset(spec: str, source: str, references: list[str], task: str | None) -> Dataset:
    files = (Path(source), *(Path(reference) for reference in references))
    return Dataset(
        name=spec,
        task=_fitting_task(spec, "aligned plain text", (TRANSLATION, SUMMARIZATION), task),
        description=f"{files[0].name} with {len(references)} reference file(s)",
        licence="unknown (user files)",
        load=lambda: load_parallel(source, references),
        files=files,
    )


def _beir_dataset(folder: Path, split: str, task: str | None) -> Dataset:
    qrels = _qrels_file(folder, split)
    corpus = folder / "corpus.jsonl"
    return Dataset(
        name=str(folder),
        task=_fitting_task(str(folder), "BEIR", (SEMANTIC_SEARCH,), task),
        description=f"BEIR {folder.name}, {split} split",
        licence="see the dataset's README",
        load=lambda: list(load_beir(folder, split).examples),
        files=(corpus, folder / "queries.jsonl", qrels),
        # Recall@100 needs 100 hits per query.
        options={"corpus": str(corpus), "top_k": 100},
    )


def _qrels_file(folder: Path, split: str) -> Path:
    qrels = folder / "qrels" / f"{split}.tsv"
    if not qrels.is_file():
        found = ", ".join(sorted(p.stem for p in (folder / "qrels").glob("*.tsv"))) or "none"
        raise NlpsuiteError(f"BEIR dataset {folder}: no qrels for split '{split}' (found: {found})")
    return qrels


def _is_beir(folder: Path) -> bool:
    return all((folder / name).exists() for name in ("corpus.jsonl", "queries.jsonl", "qrels"))


def _looks_like_sts(line: str) -> bool:
    fields = line.split("\t")
    if len(fields) < 7:
        return False
    try:
        float(fields[4])
    except ValueError:
        return False
    return True


def _first_line(path: Path) -> str:
    for _, line in _numbered_lines(path):
        if line.strip():
            return line
    raise NlpsuiteError(f"{path}: the file is empty")


def _first_jsonl_keys(path: Path) -> dict[str, Any]:
    try:
        row = json.loads(_first_line(path))
    except json.JSONDecodeError:
        return {}  # load_records reports the bad line with its number
    return row if isinstance(row, dict) else {}


# Reading lines exactly: split on "\n" only. str.splitlines would also split on U+2028, form
# feeds and other characters that occur inside real segments, breaking line alignment.


def _numbered_lines(path: str | Path) -> list[tuple[int, str]]:
    """``(line_number, text)`` for every line, without the line break; a final newline is
    optional (the Poem Sentiment files have none)."""
    file = Path(path)
    if not file.is_file():
        raise NlpsuiteError(f"dataset file not found: {file}")
    data = file.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        return []
    try:
        lines = data.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        for number, chunk in enumerate(data.split(b"\n"), 1):
            try:
                chunk.decode("utf-8")
            except UnicodeDecodeError:
                raise NlpsuiteError(f"{file}:{number}: not UTF-8 text") from None
        raise
    return [(number, line.removesuffix("\r")) for number, line in enumerate(lines, 1)]


def _tsv_rows(path: str | Path) -> Iterator[tuple[str, list[str]]]:
    """``("file:line", fields)`` per non-blank line, split on tabs with no quoting at all.

    Equivalent to ``csv.QUOTE_NONE``: STS-B sentences hold unbalanced double quotes that a
    quoting reader would use to merge lines.
    """
    for number, line in _numbered_lines(path):
        if line.strip():
            yield f"{path}:{number}", line.split("\t")


def _rows(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """JSONL/CSV rows as ``nlpsuite.records`` reads them, with a located error for bad UTF-8."""
    from nlpsuite.records import iter_rows

    try:
        yield from iter_rows(path)
    except UnicodeDecodeError:
        _numbered_lines(path)  # raises "file:line: not UTF-8 text"
        raise NlpsuiteError(f"{path}: not UTF-8 text") from None


# Sentiment: GLUE-style TSV and Poem Sentiment.


def load_glue_tsv(
    path: str | Path, *, text_column: str = "sentence", label_column: str = "label"
) -> list[Example]:
    """A GLUE single-sentence TSV (SST-2): header row, columns found by name.

    The label stays the file's string (``"0"``/``"1"``); mapping it to a model's label names is
    the evaluator's business. Text is kept as is, including SST-2's trailing space. Ids are line
    numbers (the header is line 1).
    """
    rows = _tsv_rows(path)
    header_where, header = next(rows, (f"{path}:1", []))
    for column in (text_column, label_column):
        if column not in header:
            raise NlpsuiteError(
                f"{header_where}: missing column '{column}' (header: {', '.join(header) or 'none'})"
            )
    text_at, label_at = header.index(text_column), header.index(label_column)
    examples = []
    for where, fields in rows:
        if len(fields) != len(header):
            raise NlpsuiteError(
                f"{where}: expected {len(header)} tab-separated fields, got {len(fields)}"
            )
        label = fields[label_at].strip()
        if not label:
            raise NlpsuiteError(f"{where}: field '{label_column}' is empty")
        examples.append(_line_example(where, {"text": fields[text_at]}, label))
    return examples


def load_poem_sentiment(path: str | Path, *, binary: bool = False) -> list[Example]:
    """Poem Sentiment TSV: no header; ``id``, ``verse_text``, ``label`` in -1, 0, 1, 2.

    ``binary`` keeps only the negative (-1) and positive (1) verses, which makes the set
    comparable with two-label checkpoints such as SST-2 models.
    """
    located = []
    for where, fields in _tsv_rows(path):
        if len(fields) != 3:
            raise NlpsuiteError(
                f"{where}: expected 3 tab-separated fields (id, verse_text, label), "
                f"got {len(fields)}"
            )
        identifier, text, label = (value.strip() for value in fields)
        if label not in {"-1", "0", "1", "2"}:
            raise NlpsuiteError(f"{where}: field 'label' should be -1, 0, 1 or 2, got {label!r}")
        if binary and label not in {"-1", "1"}:
            continue
        located.append(_Located(where, Example(identifier, {"text": text}, label)))
    return _unique_located(located)


# Question answering: SQuAD.


def squad_version(path: Path) -> str:
    """``"v2.0"`` when any question carries ``is_impossible`` (SQuAD 2.0), else ``"v1.1"``."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return "v1.1"  # load_squad reports what is wrong with the file, with its location
    articles = document.get("data", []) if isinstance(document, dict) else []
    for article in articles if isinstance(articles, list) else []:
        for paragraph in article.get("paragraphs", []) if isinstance(article, dict) else []:
            for qa in paragraph.get("qas", []) if isinstance(paragraph, dict) else []:
                if isinstance(qa, dict) and "is_impossible" in qa:
                    return "v2.0"
    return "v1.1"


def load_squad(path: str | Path) -> list[Example]:
    """SQuAD v1.1 or v2.0 JSON (``data`` / ``paragraphs`` / ``qas``), keys read by name.

    The reference is the list of gold answer texts, duplicates kept as the official scorers see
    them; an unanswerable v2.0 question (``is_impossible``) has ``[]``.
    """
    file = Path(path)
    document = read_json(file, "dataset file")
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise NlpsuiteError(f"{file}: not a SQuAD file (expected an object with a 'data' list)")
    examples = []
    seen: dict[str, str] = {}
    for a, article in enumerate(document["data"]):
        at = f"{file}: data[{a}]"
        for p, paragraph in enumerate(_field(article, "paragraphs", list, at)):
            where = f"{at}.paragraphs[{p}]"
            context = _field(paragraph, "context", str, where)
            for q, qa in enumerate(_field(paragraph, "qas", list, where)):
                here = f"{where}.qas[{q}]"
                raw_id = _field(qa, "id", (str, int), here)
                question = _field(qa, "question", str, here)
                impossible = qa.get("is_impossible", False) is True
                answers = _field(qa, "answers", list, here)
                golds = (
                    []
                    if impossible
                    else [
                        _field(answer, "text", str, f"{here}.answers[{n}]")
                        for n, answer in enumerate(answers)
                    ]
                )
                identifier = str(raw_id)
                if identifier in seen:
                    raise NlpsuiteError(
                        f"{here}: duplicate id '{identifier}' (first at {seen[identifier]})"
                    )
                seen[identifier] = here
                examples.append(
                    Example(identifier, {"question": question, "context": context}, golds)
                )
    return examples


def _field(container: Any, name: str, kind: type | tuple[type, ...], where: str) -> Any:
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


# Translation (and line-aligned summarization): plain-text parallel files.


def load_parallel(source: str | Path, references: Sequence[str | Path]) -> list[Example]:
    """A source file and one or more reference files, aligned by line number.

    Each example's reference holds one string per reference file, in the order given. Ids are
    line numbers. An empty source line is an error, since no model can translate it.
    """
    if isinstance(references, str | Path):
        references = [references]
    if not references:
        raise NlpsuiteError(f"{source}: a parallel dataset needs at least one reference file")
    sources = _numbered_lines(source)
    targets = [_numbered_lines(reference) for reference in references]
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


# Summarization: SciTLDR and generic document/summary pairs.


def load_scitldr(path: str | Path) -> list[Example]:
    """SciTLDR JSONL: ``source`` (abstract sentences), ``target`` (TLDRs), ``paper_id``.

    Sentences and references carry stray whitespace upstream: each is stripped, and the
    sentences are joined with one space. Every reference is kept, for multi-reference ROUGE.
    """
    examples = []
    for where, row in _rows(path):
        sentences = _string_list(row, "source", where)
        targets = [t.strip() for t in _string_list(row, "target", where) if t.strip()]
        if not targets:
            raise NlpsuiteError(f"{where}: field 'target' has no non-empty reference")
        text = " ".join(s.strip() for s in sentences if s.strip())
        if not text:
            raise NlpsuiteError(f"{where}: field 'source' is empty")
        identifier = str(_field(row, "paper_id", (str, int), where))
        examples.append(_Located(where, Example(identifier, {"text": text}, targets)))
    return _unique_located(examples)


def load_summarization(
    path: str | Path, *, document: str = "document", summary: str = "summary"
) -> list[Example]:
    """JSONL or CSV with a document and its summary (a string or a list of references).

    A document given as a list of sentences is joined with spaces. Ids come from an ``id``
    field, else the line number.
    """
    examples = []
    for where, row in _rows(path):
        text = row.get(document)
        if isinstance(text, list) and all(isinstance(s, str) for s in text):
            text = " ".join(s.strip() for s in text if s.strip())
        if text is None:
            raise NlpsuiteError(f"{where}: missing field '{document}'")
        if not isinstance(text, str):
            raise NlpsuiteError(
                f"{where}: field '{document}' should be str, got {type(text).__name__}"
            )
        if not text.strip():
            raise NlpsuiteError(f"{where}: field '{document}' is empty")
        references = _texts(row.get(summary), summary, where, allow_empty=False)
        examples.append(_Located(where, Example(_row_id(row, where), {"text": text}, references)))
    return _unique_located(examples)


def _string_list(row: Mapping[str, Any], name: str, where: str) -> list[str]:
    value = _field(row, name, list, where)
    if not all(isinstance(item, str) for item in value):
        raise NlpsuiteError(f"{where}: field '{name}' should be a list of strings")
    return value


# Semantic search: BEIR.


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
    _qrels_file(root, split)
    judged, first_at = _read_qrels(qrels_path)
    located = []
    for where, row in _rows(queries_path):
        query_id = str(_field(row, "_id", (str, int), where))
        if query_id in judged:
            text = _field(row, "text", str, where)
            located.append(_Located(where, Example(query_id, {"text": text}, judged[query_id])))
    examples = _unique_located(located)
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
    for position, (where, fields) in enumerate(_tsv_rows(path)):
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
    for where, row in _rows(path):
        doc_id = str(_field(row, "_id", (str, int), where))
        if doc_id in first_at:
            raise NlpsuiteError(f"{where}: duplicate id '{doc_id}' (first at {first_at[doc_id]})")
        first_at[doc_id] = where
        title = row.get("title") or ""
        if not isinstance(title, str):
            raise NlpsuiteError(f"{where}: field 'title' should be str, got {type(title).__name__}")
        documents[doc_id] = f"{title} {_field(row, 'text', str, where)}".strip()
    return documents


# Sentence similarity: STS Benchmark.


def load_sts(path: str | Path) -> list[Example]:
    """STS Benchmark: no header; ``genre filename year id score sentence1 sentence2 [extra...]``.

    Fields after the seventh (source notes on some lines) are ignored. Ids are line numbers,
    since the file's own ``id`` column repeats across genres and years.
    """
    examples = []
    for where, fields in _tsv_rows(path):
        if len(fields) < 7:
            raise NlpsuiteError(
                f"{where}: expected at least 7 tab-separated fields (genre, filename, year, id, "
                f"score, sentence1, sentence2), got {len(fields)}"
            )
        score = _number(fields[4], "score", where)
        pair = {"text": fields[5], "text_pair": fields[6]}
        examples.append(_line_example(where, pair, score))
    return examples


def _number(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool):
        raise NlpsuiteError(f"{where}: field '{name}' should be a number, got bool")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise NlpsuiteError(f"{where}: field '{name}' should be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise NlpsuiteError(f"{where}: field '{name}' should be a finite number, got {value!r}")
    return number


# Plain records: the task's own input fields plus ``reference``.


def load_records(path: str | Path, task: str | None = None) -> list[Example]:
    """JSONL or CSV rows with the task's input fields, a ``reference`` and an optional ``id``.

    With a known ``task`` the reference is normalised to what its metrics score (a bare string
    becomes a one-item list for QA, translation and summarization; a number string a float for
    sentence similarity; an id list ``{id: 1}`` for semantic search), and, where the task is
    registered, the input is checked against its input record now, so a bad row is reported
    with its line rather than in the middle of an evaluation.
    """
    check = _input_check(task)
    examples = []
    for where, row in _rows(path):
        if None in row:  # csv.DictReader files surplus cells under None
            raise NlpsuiteError(f"{where}: more fields than the header names")
        if "reference" not in row or row["reference"] is None:
            raise NlpsuiteError(f"{where}: missing field 'reference'")
        inputs = {key: value for key, value in row.items() if key not in {"id", "reference"}}
        if check is not None:
            inputs = check(inputs, where)
        reference = _reference(row["reference"], task, where)
        examples.append(_Located(where, Example(_row_id(row, where), inputs, reference)))
    return _unique_located(examples)


def _input_check(
    task: str | None,
) -> Callable[[dict[str, Any], str], dict[str, Any]] | None:
    """Validates an input dict against a registered task's input record, keeping its fields."""
    if not task:
        return None
    import dataclasses

    from nlpsuite.plugins import registry

    found = registry().tasks.get(task)
    if found is None:
        return None
    names = [f.name for f in dataclasses.fields(found.input_type)]

    def check(inputs: dict[str, Any], where: str) -> dict[str, Any]:
        found.make_input(inputs, where)  # raises "file:line: missing field 'context'" etc.
        return {name: inputs[name] for name in names if name in inputs}

    return check


def _reference(value: Any, task: str | None, where: str) -> Any:
    if task == SENTIMENT:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)  # like GLUE's "0"/"1", whatever the file's JSON type
        if isinstance(value, str) and value.strip():
            return value
        raise NlpsuiteError(f"{where}: field 'reference' should be a label, got {value!r}")
    if task == QUESTION_ANSWERING:
        return _texts(value, "reference", where, allow_empty=True)
    if task in {TRANSLATION, SUMMARIZATION}:
        return _texts(value, "reference", where, allow_empty=False)
    if task == SENTENCE_SIMILARITY:
        return _number(value, "reference", where)
    if task == SEMANTIC_SEARCH:
        return _grades(value, where)
    return value


def _texts(value: Any, name: str, where: str, *, allow_empty: bool) -> list[str]:
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


def _grades(value: Any, where: str) -> dict[str, int]:
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


def _row_id(row: Mapping[str, Any], where: str) -> str:
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
class _Located:
    where: str
    example: Example


def _unique_located(items: Iterable[_Located]) -> list[Example]:
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


def _line_example(where: str, inputs: dict[str, Any], reference: Any) -> Example:
    return Example(where.rsplit(":", 1)[1], inputs, reference)


def _check_unique_ids(examples: Iterable[Example], source: str) -> None:
    seen: set[str] = set()
    for example in examples:
        if example.id in seen:
            raise NlpsuiteError(f"{source}: duplicate example id '{example.id}'")
        seen.add(example.id)
