"""What a task reads, as ``nlpsuite run TASK`` takes it and its help shows it: the kinds of
``--input`` file, the fields of the task's input record, and an example record."""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from nlpsuite import plugins
from nlpsuite.errors import NlpsuiteError
from nlpsuite.records import iter_records, stdin_lines, text_lines
from nlpsuite.tasks import Task

# --input by suffix: records that name the task's fields, or one text per line.
RECORD_SUFFIXES = (".jsonl", ".json", ".ndjson", ".csv", ".tsv")
LINE_SUFFIXES = (".txt",)


def input_file_kind(path: str) -> Literal["records", "lines"]:
    """How ``nlpsuite run --input`` reads ``path`` (``-``: JSON lines on stdin); a suffix it
    does not know is a one-line error, so a plain text file is not read as broken JSON."""
    if path == "-":
        return "records"
    suffix = Path(path).suffix
    if suffix.lower() in LINE_SUFFIXES:
        return "lines"
    if suffix.lower() in RECORD_SUFFIXES:
        return "records"
    shown = f"'{suffix}'" if suffix else "(no suffix)"
    raise NlpsuiteError(
        f"{path}: unknown input file type {shown}; --input reads "
        f"{', '.join(RECORD_SUFFIXES)}, or .txt (one text per line)"
    )


def read_inputs(
    task: Task, texts: tuple[str, ...], input_path: str | None, primary: str,
    shared: dict[str, str], command: str = "run",
) -> Iterator[Any]:
    """The input records of ``nlpsuite run TASK`` (and ``nlpsuite explain TASK``): from an
    ``--input`` file, else the text arguments, else stdin lines; a text fills the ``primary``
    field, ``shared`` the others. ``command`` names the command in the no-input hint."""
    if input_path is not None:
        if texts:
            raise NlpsuiteError("give text arguments or --input, not both")
        if input_file_kind(input_path) == "records":
            yield from iter_records(input_path, task.input_type)
            return
        lines: Any = ((f"{input_path}:{n}", line) for n, line in text_lines(input_path))
    elif texts:
        lines = ((f"argument {i}", text) for i, text in enumerate(texts, 1))
    elif sys.stdin.isatty():
        raise NlpsuiteError(
            f"no input: give text arguments, pipe lines to stdin, or --input FILE "
            f"(try 'nlpsuite {command} {task.name} --help')"
        )
    else:
        lines = ((f"<stdin>:{n}", line) for n, line in stdin_lines())
    for where, text in lines:
        yield task.make_input({primary: text, **shared}, where)


@dataclass(frozen=True)
class InputField:
    """One field of a task's input record. ``type`` is as declared, e.g. ``list[str] | None``;
    ``default`` is :data:`dataclasses.MISSING` for a field a record must give."""

    name: str
    type: str
    required: bool
    default: Any = dataclasses.MISSING

    def summary(self) -> str:
        """``str, required`` or ``float, optional [default: 1.0]``."""
        if self.required:
            return f"{self.type}, required"
        return f"{self.type}, optional [default: {_json_or_repr(self.default)}]"


def input_fields(task: Task) -> list[InputField]:
    """The fields of ``task``'s input record, in order. Required: a field without a default,
    or one whose default the record refuses (a default that only leads to a clearer message)."""
    hints = typing.get_type_hints(task.input_type)
    fields = dataclasses.fields(task.input_type)
    stand_ins = {field.name: _stand_in(hints[field.name]) for field in fields}
    described = []
    for field in fields:
        default = _default(field)
        others = {name: value for name, value in stand_ins.items() if name != field.name}
        required = default is dataclasses.MISSING or not _builds(task.input_type, others)
        described.append(InputField(field.name, _type_name(hints[field.name]), required, default))
    return described


def example_record(task: Task) -> dict[str, Any]:
    """An input record for ``task`` as a JSON object: the shortest of the first registered
    dataset of the task that loads, else one built from the fields (required ones filled with
    stand-in values, the others at their defaults)."""
    for name, dataset in sorted(plugins.registry().datasets.items()):
        if dataset.task != task.name:
            continue
        try:
            records = [task.make_input(example.input, name) for example in dataset.load()]
        except NlpsuiteError:  # e.g. a dataset whose files are not on this machine
            continue
        if records:
            shown = [_without_defaults(record) for record in records]
            return min(shown, key=lambda row: len(json.dumps(row, ensure_ascii=False)))
    hints = typing.get_type_hints(task.input_type)
    return {
        field.name: _stand_in(hints[field.name]) if field.required else field.default
        for field in input_fields(task)
        if field.required or (field.default is not None and _is_json(field.default))
    }


def _default(field: dataclasses.Field[Any]) -> Any:
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return field.default


def _builds(record_type: type, values: dict[str, Any]) -> bool:
    try:
        record_type(**values)
    except Exception:  # whatever the record's own checks raise: it needs the missing field
        return False
    return True


def _without_defaults(record: Any) -> dict[str, Any]:
    """``record`` as a JSON object, leaving out optional fields at their defaults."""
    defaults = {field.name: _default(field) for field in dataclasses.fields(record)}
    return {
        name: value for name, value in dataclasses.asdict(record).items()
        if value != defaults[name]
    }


def _stand_in(hint: Any) -> Any:
    """A value of type ``hint`` that stands for what the user would give."""
    kinds = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    origin = typing.get_origin(kinds[0]) or kinds[0]
    return {str: "...", int: 1, float: 1.0, bool: False, list: [], tuple: [], dict: {}}.get(
        origin
    )


def _type_name(hint: Any) -> str:
    return hint.__name__ if isinstance(hint, type) else str(hint).replace("typing.", "")


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _json_or_repr(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if _is_json(value) else repr(value)
