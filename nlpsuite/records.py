"""Reading input records from JSONL and CSV, and writing output records as JSONL."""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import shutil
import tempfile
import types
import typing
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from nlpsuite.errors import NlpsuiteError


def from_mapping(record_type: type, data: Mapping[str, Any], where: str) -> Any:
    """Build a ``record_type`` dataclass from ``data``, naming ``where`` in any error."""
    hints = typing.get_type_hints(record_type)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(record_type):
        required = (
            field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        )
        if field.name not in data or data[field.name] is None:
            if required:
                raise NlpsuiteError(f"{where}: missing field '{field.name}'")
            continue
        values[field.name] = _check_type(data[field.name], hints[field.name], where, field.name)
    try:
        return record_type(**values)
    except NlpsuiteError as error:  # raised by the record's own checks, e.g. an empty text
        raise NlpsuiteError(f"{where}: {error}") from None


def _check_type(value: Any, hint: Any, where: str, name: str) -> Any:
    """Accept ``value`` if it fits ``hint``; CSV cells are text, so numbers are parsed from it."""
    accepted = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    for kind in accepted:
        origin: Any = typing.get_origin(kind) or kind
        if origin in (int, float) and isinstance(value, str):
            try:
                return origin(value)
            except ValueError:
                continue
        if origin is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if origin in (tuple, list) and isinstance(value, tuple | list):
            return origin(value)
        if isinstance(origin, type) and isinstance(value, origin):
            return value
    expected = " or ".join(getattr(k, "__name__", str(k)) for k in accepted)
    raise NlpsuiteError(f"{where}: field '{name}' should be {expected}, got {type(value).__name__}")


def read_records(path: str | Path, record_type: type) -> list[Any]:
    """Read ``record_type`` records from a ``.jsonl`` or ``.csv`` file (``-`` is JSONL on stdin)."""
    return list(iter_records(path, record_type))


def iter_records(path: str | Path, record_type: type) -> Iterator[Any]:
    for where, row in iter_rows(path):
        yield from_mapping(record_type, row, where)


def iter_rows(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``("file:line", row)`` for each record of a JSONL or CSV file."""
    if str(path) == "-":
        import sys

        yield from _jsonl_rows(sys.stdin, "<stdin>")
        return
    file = Path(path)
    if not file.is_file():
        raise NlpsuiteError(f"input file not found: {file}")
    with file.open(encoding="utf-8", newline="") as handle:
        if file.suffix.lower() in {".csv", ".tsv"}:
            delimiter = "\t" if file.suffix.lower() == ".tsv" else ","
            reader = csv.DictReader(handle, delimiter=delimiter)
            for row in reader:
                yield f"{file}:{reader.line_num}", dict(row)
        else:
            yield from _jsonl_rows(handle, str(file))


def _jsonl_rows(lines: Iterable[str], name: str) -> Iterator[tuple[str, dict[str, Any]]]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{name}:{number}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise NlpsuiteError(f"{where}: not valid JSON ({error.msg})") from None
        if not isinstance(row, dict):
            raise NlpsuiteError(f"{where}: expected a JSON object, got {type(row).__name__}")
        yield where, row


def read_json(path: str | Path, what: str = "file") -> Any:
    """A whole JSON document; a missing, undecodable or malformed file is a one-line error."""
    file = Path(path)
    if not file.is_file():
        raise NlpsuiteError(f"{what} not found: {file}")
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise NlpsuiteError(f"{file}:{error.lineno}: not valid JSON ({error.msg})") from None
    except UnicodeDecodeError:
        raise NlpsuiteError(f"{file}: not UTF-8 text") from None


def to_json(record: Any) -> str:
    """One output record as a JSON line (without the newline)."""
    return json.dumps(dataclasses.asdict(record), ensure_ascii=False)


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_folder_atomic(target: Path, fill: Callable[[Path], None], *, replace: bool) -> Path:
    """``target`` made by ``fill(folder)`` into a fresh folder beside it and renamed into place,
    so readers and a crash never see half of it.

    An existing ``target`` is kept as it is unless ``replace``; then the new folder takes its
    place (the old one is put back if that fails). Two processes making the same folder at once
    both succeed: the one that renames second keeps the first's when not replacing.
    """
    if target.is_dir() and not replace:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    # mkdir rather than mkdtemp: the folder should get the user's usual permissions.
    scratch = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    scratch.mkdir()
    try:
        fill(scratch)
        if target.exists() and replace:
            _swap_folder(scratch, target)
        else:
            try:
                scratch.rename(target)
            except OSError:
                if not target.is_dir():  # not a race lost to another process: a real failure
                    raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def _swap_folder(new: Path, target: Path) -> None:
    # A directory cannot be atomically replaced by a non-empty one; move the old one aside
    # first and put it back if the second rename fails.
    old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:8]}")
    os.replace(target, old)
    try:
        os.replace(new, target)
    except BaseException:
        os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
