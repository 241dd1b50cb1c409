"""Reading input records from JSONL and CSV, and writing output records as JSONL."""

from __future__ import annotations

import codecs
import csv
import dataclasses
import errno
import functools
import json
import os
import shutil
import stat
import tempfile
import types
import typing
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from nlpsuite.errors import NlpsuiteError


@functools.cache
def _type_hints(record_type: type) -> dict[str, Any]:
    # Resolving string annotations costs more than building the record: a server does it once.
    return typing.get_type_hints(record_type)


def from_mapping(record_type: type, data: Mapping[str, Any], where: str) -> Any:
    """Build a ``record_type`` dataclass from ``data``, naming ``where`` in any error."""
    hints = _type_hints(record_type)
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


# The longest record (a JSONL or stdin line, a CSV field) nlpsuite reads: past it a file is refused
# in one line before the record is held in memory. NLPSUITE_MAX_RECORD_BYTES sets another limit.
MAX_RECORD_BYTES = 64 * 2**20
MAX_RECORD_ENV = "NLPSUITE_MAX_RECORD_BYTES"


def record_limit() -> int:
    return int(os.environ.get(MAX_RECORD_ENV) or MAX_RECORD_BYTES)


def _too_long(where: str, limit: int) -> NlpsuiteError:
    return NlpsuiteError(
        f"{where}: a record longer than {limit:,} bytes; nlpsuite reads records of at most "
        f"{limit:,} bytes (set {MAX_RECORD_ENV} for more)"
    )


def bounded_lines(readline: Callable[[int], Any], name: str) -> Iterator[Any]:
    """The lines ``readline`` gives (text or bytes), each read at most ``record_limit()`` long,
    so one huge line is refused before it is in memory whole."""
    limit = record_limit()
    number = 0
    while line := readline(limit + 1):
        number += 1
        if len(line) > limit:
            raise _too_long(f"{name}:{number}", limit)
        yield line


def read_records(path: str | Path, record_type: type) -> list[Any]:
    """Read ``record_type`` records from a ``.jsonl`` or ``.csv`` file (``-`` is JSONL on stdin)."""
    return list(iter_records(path, record_type))


def iter_records(path: str | Path, record_type: type) -> Iterator[Any]:
    for where, row in iter_rows(path):
        yield from_mapping(record_type, row, where)


def iter_rows(path: str | Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``("file:line", row)`` for each record of a JSONL or CSV file."""
    if str(path) == "-":
        yield from _jsonl_rows((line for _, line in stdin_lines()), "<stdin>")
        return
    file = Path(path)
    if not file.is_file():
        raise NlpsuiteError(f"input file not found: {file}")
    try:
        yield from _file_rows(file)
    except UnicodeDecodeError:  # read again, as bytes, to say where
        raise not_utf8(str(file), file.read_bytes()) from None


def _file_rows(file: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    tabular = file.suffix.lower() in {".csv", ".tsv"}
    # utf-8-sig for CSV/TSV: spreadsheet exports start with a byte-order mark, which would
    # otherwise become part of the first column's name. JSONL reports it as an error instead.
    with file.open(encoding="utf-8-sig" if tabular else "utf-8", newline="") as handle:
        if tabular:
            delimiter = "\t" if file.suffix.lower() == ".tsv" else ","
            csv.field_size_limit(record_limit())
            reader = csv.DictReader(handle, delimiter=delimiter)
            seen: set[str] = set()
            for column in reader.fieldnames or ():
                # DictReader would keep only the last one's values. Unnamed columns (a
                # spreadsheet's trailing commas) name no field, so they may repeat.
                if column in seen and column:
                    raise NlpsuiteError(
                        f"{file}:{reader.line_num}: column {column!r} appears twice in the header"
                    )
                seen.add(column)
            try:
                for row in reader:
                    yield f"{file}:{reader.line_num}", dict(row)
            except csv.Error as error:  # a field over the limit, or a stray NUL byte
                where = f"{file}:{reader.line_num + 1}"
                if "field limit" in str(error):
                    raise _too_long(where, record_limit()) from None
                raise NlpsuiteError(f"{where}: not a CSV row ({error})") from None
        else:
            yield from _jsonl_rows(bounded_lines(handle.readline, str(file)), str(file))


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
        return json.loads(decode_utf8(file.read_bytes(), str(file)))
    except json.JSONDecodeError as error:
        raise NlpsuiteError(f"{file}:{error.lineno}: not valid JSON ({error.msg})") from None


# Text that is not UTF-8: one message from every reader, naming the line and the column.

_WIDE_ENCODINGS = (  # UTF-32 first: its little-endian mark starts with UTF-16's
    (codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"),
)


def not_utf8(name: str, data: bytes, first_line: int = 1) -> NlpsuiteError:
    """The one-line error for ``data``, read from ``name`` from line ``first_line`` on, that is
    not UTF-8: ``name:LINE: not UTF-8 text (byte 0xf6 at column 3)``, the column counted in
    characters; text with a UTF-16 or UTF-32 byte-order mark is named as such."""
    if first_line == 1:
        for mark, encoding in _WIDE_ENCODINGS:
            if data.startswith(mark):
                return NlpsuiteError(
                    f"{name}: {encoding} text; nlpsuite reads UTF-8 "
                    f"(convert it with iconv -f {encoding} -t UTF-8)"
                )
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = error.start
        line = first_line + data.count(b"\n", 0, bad)
        before = data[data.rfind(b"\n", 0, bad) + 1 : bad].decode("utf-8")
        if line == 1:
            before = before.removeprefix("\ufeff")  # a byte-order mark takes no column
        return NlpsuiteError(
            f"{name}:{line}: not UTF-8 text (byte 0x{data[bad]:02x} at column {len(before) + 1})"
        )
    return NlpsuiteError(f"{name}: not UTF-8 text")


def decode_utf8(data: bytes, name: str, first_line: int = 1) -> str:
    """``data`` decoded as UTF-8, or the one-line error of :func:`not_utf8`."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise not_utf8(name, data, first_line) from None


def stdin_lines() -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` per line of standard input, without its ``\\n`` or ``\\r\\n``,
    decoded as UTF-8 whatever the locale says."""
    import sys

    raw_lines = getattr(sys.stdin, "buffer", None)
    if raw_lines is None:  # stdin replaced by a text stream: already decoded
        for number, text in enumerate(sys.stdin, 1):
            yield number, text.removesuffix("\n").removesuffix("\r")
        return
    yield from _decoded_lines(raw_lines.readline, "<stdin>")


def text_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line_number, text)`` per line of a plain text file, read as :func:`stdin_lines` reads
    standard input; a leading byte-order mark (Windows Notepad's UTF-8) is not part of the text."""
    file = Path(path)
    if not file.is_file():
        raise NlpsuiteError(f"input file not found: {file}")
    with file.open("rb") as handle:
        for number, line in _decoded_lines(handle.readline, str(file)):
            yield number, line.removeprefix("\ufeff") if number == 1 else line


def _decoded_lines(readline: Callable[[int], bytes], name: str) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(bounded_lines(readline, name), 1):
        line = decode_utf8(raw, name, number)
        yield number, line.removesuffix("\n").removesuffix("\r")


def to_json(record: Any) -> str:
    """One output record as a JSON line (without the newline): ``dataclasses.asdict``'s JSON.

    The encoder takes each dataclass's fields as they are (its lists, tuples and dicts it writes
    itself), which gives the same text as ``json.dumps(asdict(record))`` several times faster
    than ``asdict``'s deep copy of every float of an embedding."""
    return json.dumps(record, default=_dataclass_fields, ensure_ascii=False)


def _dataclass_fields(value: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: getattr(value, field.name) for field in dataclasses.fields(value)}
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def write_atomic(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` so that readers see the old file or the new one, never half.

    A symbolic link is followed: its target is replaced, the link stays a link. A device or a
    FIFO (``/dev/null``, ``/dev/stdout``, a named pipe) is written to as it is; a directory is
    refused. A replaced file keeps its permissions; a new one gets the umask's, like any tool's.
    """
    try:
        mode: int | None = os.stat(path).st_mode  # through links: what is there to be written
    except FileNotFoundError:
        mode = None
    if mode is not None and stat.S_ISDIR(mode):
        raise NlpsuiteError(f"cannot write {path}: it is a directory")
    if mode is not None and not stat.S_ISREG(mode):
        with open(path, "w", encoding="utf-8") as stream:
            stream.write(text)
        return
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    # os.open and 0o666 rather than mkstemp's 0o600: the kernel applies the umask.
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), stat.S_IMODE(mode))
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def check_writable(path: str | Path, what: str, *, folder: bool = False) -> None:
    """Refuse, in one line naming ``path``, an output that cannot be written, before any slow
    work: a ``folder`` to write files into, or else a file (written as :func:`write_atomic`
    does). It makes and removes a file where the first write lands, because permission bits do
    not tell: root ignores them, while /proc and read-only file systems refuse even root."""
    target = Path(path)

    def refuse(reason: str) -> NlpsuiteError:
        return NlpsuiteError(f"cannot write {what} {target}: {reason}")

    try:
        mode: int | None = os.stat(target).st_mode
    except (FileNotFoundError, NotADirectoryError):
        mode = None
    except OSError as error:
        raise refuse(error.strerror or str(error)) from None
    if mode is None:  # made with its missing parent folders, in the nearest one there
        landing = Path(os.path.realpath(target)).parent
        while not landing.exists():
            landing = landing.parent
        if not landing.is_dir():
            raise refuse(f"{landing} is a file, not a directory")
    elif folder != stat.S_ISDIR(mode):
        raise refuse("it exists and is not a directory" if folder else "it is a directory")
    elif folder:
        landing = target
    elif stat.S_ISREG(mode):
        landing = Path(os.path.realpath(target)).parent
    else:
        return  # a device or FIFO is written to as it is; opening a FIFO to try would block
    try:
        handle, probe = tempfile.mkstemp(dir=landing, prefix=".nlpsuite-write-test-")
    except OSError as error:
        reason = (
            "the file system does not allow it" if error.errno == errno.ENOENT
            else error.strerror or str(error)
        )
        raise refuse(f"cannot create files in {landing} ({reason})") from None
    os.close(handle)
    os.unlink(probe)


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
