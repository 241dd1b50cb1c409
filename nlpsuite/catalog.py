"""Datasets by name or path: registered names, files and folders in a registered format, plain
records, and Hugging Face Hub datasets.

:func:`resolve_dataset` takes what ``nlpsuite eval --dataset`` was given:

- a path that a registered :class:`~nlpsuite.datasets.DatasetFormat` recognises (SQuAD JSON, GLUE
  TSV, a BEIR folder, STS, SciTLDR... each registered by its task's plugin), or a spec such as
  ``SOURCE:REFERENCE[:REFERENCE...]`` (aligned plain-text files) that one recognises;
- any other ``*.jsonl`` or ``*.csv``: plain records, the task's input fields plus ``reference``
  and an optional ``id`` (default: the line number);
- a registered dataset name;
- ``OWNER/NAME[:CONFIG][@SPLIT]`` on the Hugging Face Hub, through the ``datasets`` library.

An existing path wins over a registered name of the same spelling; write ``./name`` to be sure.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nlpsuite import plugins
from nlpsuite.checkpoints import hub_reachable
from nlpsuite.datasets import (
    Dataset,
    DatasetFormat,
    Example,
    Located,
    check_unique_ids,
    fingerprint,
    row_id,
    rows,
    select,
    unique_located,
)
from nlpsuite.errors import NlpsuiteError
from nlpsuite.lookup import get_task
from nlpsuite.tasks import Task

RECORD_SUFFIXES = (".jsonl", ".ndjson", ".csv")


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
    check_unique_ids(examples, path_or_name)
    return select(examples, limit=limit, sample=sample, seed=seed)


def resolve_dataset(path_or_name: str, task: str | None = None) -> Dataset:
    """The :class:`Dataset` behind a path or registered name; ``task``, if given, must fit it.

    Formats that serve ``task`` are tried first, so a plugin's layout of a common suffix (a
    fastText ``.txt``) wins over another task's reading of it (perplexity's plain text)."""
    formats = plugins.registry().formats
    serving_first = sorted(formats, key=lambda f: task is not None and task not in f.tasks)
    for found in serving_first:
        if found.sniff(path_or_name):
            dataset = found.open(path_or_name)
            return dataclasses.replace(dataset, task=_fitting_task(path_or_name, found, task))
    path = Path(path_or_name)
    if path.is_file() and path.suffix.lower() in RECORD_SUFFIXES:
        return Dataset(
            name=str(path),
            task=task or "",
            description=f"records with a 'reference' field from {path.name}",
            licence="unknown (user file)",
            load=lambda: load_records(path, task),
            files=(path,),
        )
    if path.exists():
        raise NlpsuiteError(_unrecognised(path, formats))
    return _registered(path_or_name, task)


def dataset_fingerprint(path_or_name: str, task: str | None = None) -> dict[str, Any]:
    """What identifies a dataset's content (see :func:`nlpsuite.datasets.fingerprint`)."""
    return fingerprint(resolve_dataset(path_or_name, task))


def load_records(path: str | Path, task: str | Task | None = None) -> list[Example]:
    """JSONL or CSV rows with the task's input fields, a ``reference`` and an optional ``id``.

    With a ``task`` (a value, or a name some plugin registered), the reference becomes what its
    metrics score (``Task.parse_reference``: a bare string a one-item list for QA, say) and the
    input is checked against its input record now, so a bad row is reported with its line rather
    than in the middle of an evaluation. A task name no plugin registered reads rows as they are.
    """
    if isinstance(task, str):
        task = plugins.registry().tasks.get(task)
    names = [f.name for f in dataclasses.fields(task.input_type)] if task is not None else []
    examples = []
    for where, row in rows(path):
        if None in row:  # csv.DictReader files surplus cells under None
            raise NlpsuiteError(f"{where}: more fields than the header names")
        if "reference" not in row or row["reference"] is None:
            raise NlpsuiteError(f"{where}: missing field 'reference'")
        inputs = {key: value for key, value in row.items() if key not in {"id", "reference"}}
        reference = row["reference"]
        if task is not None:
            task.make_input(inputs, where)  # raises "file:line: missing field 'context'" etc.
            inputs = {name: inputs[name] for name in names if name in inputs}
            reference = task.parse_reference(reference, where)
        examples.append(Located(where, Example(row_id(row, where), inputs, reference)))
    return unique_located(examples)


def _fitting_task(name: str, found: DatasetFormat, task: str | None) -> str:
    if task is None:
        return found.tasks[0]
    if task not in found.tasks:
        fits = " or ".join(f"'{t}'" for t in found.tasks)
        raise NlpsuiteError(
            f"{name} is {found.name}, a {fits} dataset; it cannot evaluate '{task}'"
        )
    return task


def _unrecognised(path: Path, formats: Sequence[DatasetFormat]) -> str:
    """The one-line error for a path no format reads, saying what would have been read."""
    suffix = "/" if path.is_dir() else path.suffix.lower()
    fitting = [found for found in formats if suffix in found.suffixes]
    if suffix == "/" and fitting:
        names = " or ".join(found.name for found in fitting)
        expects = "; ".join(found.expects for found in fitting)
        return f"{path} is a folder but not a {names} dataset ({expects}); name a dataset file " \
               "instead"
    if fitting:
        expected = " or ".join(found.expects for found in fitting)
        return f"{path}:1: unrecognised {suffix[1:].upper()} layout: expected {expected}"
    suffixes = sorted({s for found in formats for s in found.suffixes if s != "/"}
                      | set(RECORD_SUFFIXES) - {".ndjson"})
    choices = [*suffixes, *(f"a {found.name} folder" for found in formats if "/" in found.suffixes)]
    expected = ", ".join(choices[:-1]) + f" or {choices[-1]}"
    # Formats recognised by a spec rather than a file (aligned plain text) say how to write one.
    hints = "".join(f"; {f.expects}" for f in formats if f.expects and not f.suffixes)
    return f"{path}: unknown dataset format (expected {expected}){hints}"


def _registered(name: str, task: str | None) -> Dataset:
    found = plugins.registry().datasets
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
    fields = [f.name for f in dataclasses.fields(get_task(task).input_type)]

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
