"""Files at the edges: output paths that are links, devices, FIFOs, folders or not writable at
all, and input that is not UTF-8 (bad bytes, binary files, UTF-16), on every reader and every
command that writes; each is one line on stderr, never a traceback or a destroyed file."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import stat
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import numpy as np
import pytest
from click.testing import CliRunner
from nlpsuite_plugins import semantic_search as search
from nlpsuite_plugins.semantic_search.corpus import DEMO_CORPUS, read_corpus

from nlpsuite import NlpsuiteError
from nlpsuite.cli import cli
from nlpsuite.datasets import numbered_lines
from nlpsuite.records import check_writable, iter_rows, read_json, write_atomic
from nlpsuite.results import RunResult
from tests.helpers import Done, nlpsuite, one_error_line

UTF16_HINT = "UTF-16 text; nlpsuite reads UTF-8 (convert it with iconv -f UTF-16 -t UTF-8)"


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    before = os.umask(mask)
    try:
        yield
    finally:
        os.umask(before)


# Writing: what is at the path survives.


@pytest.fixture
def dev_null() -> Iterator[Path]:
    """/dev/null, put back as the character device it must be if a broken writer replaced it."""
    null = Path("/dev/null")
    yield null
    if not stat.S_ISCHR(null.stat().st_mode):
        null.unlink()
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.chmod(null, 0o666)


def test_writing_to_dev_null_leaves_it_a_device(dev_null: Path, tiny_classifier: Path) -> None:
    write_atomic(dev_null, "thrown away\n")
    assert stat.S_ISCHR(dev_null.stat().st_mode)
    done = nlpsuite("run", "sentiment", "-m", str(tiny_classifier), "--output", str(dev_null),
                    "a fine film")
    assert done.returncode == 0, done.stderr
    assert stat.S_ISCHR(dev_null.stat().st_mode)
    assert dev_null.read_bytes() == b""


def test_a_device_node_is_written_to_not_replaced(tmp_path: Path) -> None:
    null = tmp_path / "null"
    try:
        os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # what /dev/null is
    except PermissionError:
        pytest.skip("making device nodes needs CAP_MKNOD")
    write_atomic(null, "thrown away\n")
    assert stat.S_ISCHR(null.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["null"]


def test_a_fifo_is_written_through_not_replaced(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    # Opened for reading first, without blocking, so the writer's open finds a reader.
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
    try:
        write_atomic(fifo, '{"label": "POSITIVE"}\n')
        assert os.read(reader, 1000) == b'{"label": "POSITIVE"}\n'
    finally:
        os.close(reader)
    assert stat.S_ISFIFO(fifo.stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]  # no temporary file left


def test_a_symlink_is_followed_and_stays_a_link(tmp_path: Path, tiny_classifier: Path) -> None:
    real = tmp_path / "real.jsonl"
    real.write_text("old\n")
    real.chmod(0o644)
    link = tmp_path / "link.jsonl"
    link.symlink_to(real.name)
    done = nlpsuite("run", "sentiment", "-m", str(tiny_classifier), "--output", str(link),
                    "a fine film")
    assert done.returncode == 0, done.stderr
    assert link.is_symlink() and os.readlink(link) == "real.jsonl"
    assert json.loads(real.read_text())["label"] in {"NEGATIVE", "POSITIVE"}
    assert stat.S_IMODE(real.stat().st_mode) == 0o644
    # A link to a file not there yet: the file is made where the link points.
    dangling = tmp_path / "later.jsonl"
    dangling.symlink_to(tmp_path / "made" / "here.jsonl")
    write_atomic(dangling, "new\n")
    assert dangling.is_symlink() and (tmp_path / "made" / "here.jsonl").read_text() == "new\n"


def test_a_replaced_file_keeps_its_mode_and_a_new_one_gets_the_umasks(tmp_path: Path) -> None:
    shared = tmp_path / "shared.jsonl"
    shared.write_text("old\n")
    for mode in (0o644, 0o640, 0o664):
        shared.chmod(mode)
        write_atomic(shared, "new\n")
        assert stat.S_IMODE(shared.stat().st_mode) == mode
    assert shared.read_text() == "new\n"
    for mask, mode in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        fresh = tmp_path / f"fresh-{mask:o}.jsonl"
        with umask(mask):
            write_atomic(fresh, "x\n")
        assert stat.S_IMODE(fresh.stat().st_mode) == mode


def test_writing_to_a_directory_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(NlpsuiteError, match=f"^cannot write {tmp_path}: it is a directory$"):
        write_atomic(tmp_path, "x\n")


# Output paths that cannot be written: refused before any model loads.

MISSING_MODEL = "/nonexistent/model"


def _blocked_paths(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Output paths even root cannot write, with the reason each is refused."""
    a_file = tmp_path / "a-file"
    a_file.write_text("x\n")
    a_folder = tmp_path / "a-folder"
    a_folder.mkdir()
    return {
        "parent is a file": (a_file / "out", f"{a_file} is a file, not a directory"),
        "under /proc": (Path("/proc/nlpsuite-out/out"),
                        "cannot create files in /proc (the file system does not allow it)"),
        "a file": (a_file, "it exists and is not a directory"),
        "a directory": (a_folder, "it is a directory"),
    }


def _run_out(path: Path, tmp_path: Path) -> tuple[str, ...]:
    return ("run", "sentiment", "-m", MISSING_MODEL, "--output", str(path), "text")


def _eval_out(path: Path, tmp_path: Path) -> tuple[str, ...]:
    return ("eval", "sentiment", "-m", MISSING_MODEL, "-d", "sentiment-mini", "--out", str(path))


def _index_out(path: Path, tmp_path: Path) -> tuple[str, ...]:
    return ("index", "build", str(DEMO_CORPUS), "-m", MISSING_MODEL, "--out", str(path))


def _quantize_out(path: Path, tmp_path: Path) -> tuple[str, ...]:
    return ("quantize", MISSING_MODEL, "--out", str(path))


def _train_data(tmp_path: Path) -> str:
    data = tmp_path / "train.jsonl"
    data.write_text('{"text": "good", "reference": "POSITIVE"}\n')
    return str(data)


def _train_out(path: Path, tmp_path: Path) -> tuple[str, ...]:
    return ("train", "sentiment", "-m", MISSING_MODEL, "--train", _train_data(tmp_path),
            "--out", str(path))


def _distill_out(path: Path, tmp_path: Path) -> tuple[str, ...]:
    return ("distill", "sentiment", "--teacher", MISSING_MODEL, "--train",
            _train_data(tmp_path), "--out", str(path))


FILE_COMMANDS = {"run --output": (_run_out, "output file")}
FOLDER_COMMANDS = {
    "eval --out": (_eval_out, "results folder"),
    "index build --out": (_index_out, "index folder"),
    "quantize --out": (_quantize_out, "output folder"),
    "train --out": (_train_out, "output folder"),
    "distill --out": (_distill_out, "output folder"),
}
CASES = [(command, case) for command in FILE_COMMANDS
         for case in ("parent is a file", "under /proc", "a directory")]
CASES += [(command, case) for command in FOLDER_COMMANDS
          for case in ("parent is a file", "under /proc", "a file")]


@pytest.mark.parametrize(("command", "case"), CASES)
def test_unwritable_outputs_are_refused_before_the_model_loads(
    command: str, case: str, tmp_path: Path
) -> None:
    arguments, what = {**FILE_COMMANDS, **FOLDER_COMMANDS}[command]
    path, reason = _blocked_paths(tmp_path)[case]
    done = nlpsuite(*arguments(path, tmp_path))
    assert done.returncode == 2
    # The model does not exist: naming the path, not the model, shows the check came first.
    assert one_error_line(done.stderr) == f"nlpsuite: error: cannot write {what} {path}: {reason}"


def test_writable_outputs_pass_the_check(tmp_path: Path) -> None:
    existing = tmp_path / "old.jsonl"
    existing.write_text("")
    for path in (tmp_path / "new" / "deeper" / "out.jsonl", existing, Path("/dev/null")):
        check_writable(path, "output file")
    for folder in (tmp_path, tmp_path / "new" / "folder"):
        check_writable(folder, "results folder", folder=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.jsonl"]  # the probe is gone


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_refused(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(NlpsuiteError, match=r"cannot create files in .*Permission denied"):
        check_writable(locked / "out.jsonl", "output file")


def test_os_and_decoding_errors_no_command_handles_are_one_line() -> None:
    """The last line of defence in the group every command goes through."""
    failures: dict[str, BaseException] = {
        "disk-full": OSError(errno.ENOSPC, "No space left on device", "/data/out.jsonl"),
        "bad-bytes": UnicodeDecodeError("utf-8", b"caf\xe9", 3, 4, "invalid continuation byte"),
    }
    for name, failure in failures.items():

        def fail(failure: BaseException = failure) -> None:
            raise failure

        cli.add_command(click.Command(name, callback=fail))
    try:
        full = nlpsuite("disk-full")
        assert full.returncode == 2
        assert one_error_line(full.stderr) == (
            "nlpsuite: error: /data/out.jsonl: No space left on device"
        )
        decoding = nlpsuite("bad-bytes")
        assert decoding.returncode == 2
        assert one_error_line(decoding.stderr) == (
            "nlpsuite: error: input is not UTF-8 text ('utf-8' codec can't decode byte 0xe9 in "
            "position 3: invalid continuation byte)"
        )
    finally:
        for name in failures:
            cli.commands.pop(name)


# Reading: input that is not UTF-8.


def _bad(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("name", "data", "detail"),
    [
        ("rows.jsonl", b'{"text": "ok"}\n{"text": "tw\xf6"}\n',
         ":2: not UTF-8 text (byte 0xf6 at column 13)"),
        ("rows.csv", b"text\nfine\ncaf\xc3\xa9 \xff\n",
         ":3: not UTF-8 text (byte 0xff at column 6)"),
        ("rows.tsv", b"\xef\xbb\xbftext\n\x80\n", ":2: not UTF-8 text (byte 0x80 at column 1)"),
        ("image.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00", ":1: not UTF-8 text (byte 0x89 at column 1)"),
        ("wide.jsonl", '{"text": "ok"}\n'.encode("utf-16"), f": {UTF16_HINT}"),
        ("wide.csv", b"\xfe\xff" + "text\nok\n".encode("utf-16-be"),
         f": {UTF16_HINT}"),
    ],
)
def test_records_that_are_not_utf8_are_located(
    tmp_path: Path, name: str, data: bytes, detail: str
) -> None:
    path = _bad(tmp_path, name, data)
    assert _message(lambda: list(iter_rows(path))) == f"{path}{detail}"


def _message(read: Callable[[], object]) -> str:
    with pytest.raises(NlpsuiteError) as raised:
        read()
    return str(raised.value)


def test_json_lines_and_corpora_that_are_not_utf8_are_located(tmp_path: Path) -> None:
    document = _bad(tmp_path, "doc.json", b'{\n  "a": "\xe9"\n}\n')
    assert _message(lambda: read_json(document)) == (
        f"{document}:2: not UTF-8 text (byte 0xe9 at column 9)"
    )
    wide = _bad(tmp_path, "wide.json", '{"a": 1}'.encode("utf-16"))
    assert _message(lambda: read_json(wide)) == f"{wide}: {UTF16_HINT}"
    # Columns count characters, not bytes: "café " is five.
    lines = _bad(tmp_path, "lines.txt", b"one\ncaf\xc3\xa9 \xff\n")
    assert _message(lambda: numbered_lines(lines)) == (
        f"{lines}:2: not UTF-8 text (byte 0xff at column 6)"
    )
    corpus = _bad(tmp_path, "corpus.txt", b"first document\nsecond \xfe document\n")
    assert _message(lambda: read_corpus(corpus)) == (
        f"{corpus}:2: not UTF-8 text (byte 0xfe at column 8)"
    )


def _invoke(arguments: list[str], stdin: bytes) -> Done:
    """The CLI with raw bytes on stdin (tests.helpers.nlpsuite takes text)."""
    result = CliRunner().invoke(cli, arguments, input=stdin, prog_name="nlpsuite")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Done(result.exit_code, result.stdout, result.stderr)


def test_stdin_that_is_not_utf8_is_one_line(tiny_classifier: Path) -> None:
    model = str(tiny_classifier)
    as_jsonl = _invoke(["run", "sentiment", "-m", model, "--input", "-"],
                       b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    assert as_jsonl.returncode == 2
    assert one_error_line(as_jsonl.stderr) == (
        "nlpsuite: error: <stdin>:2: not UTF-8 text (byte 0xe9 at column 14)"
    )
    as_lines = _invoke(["run", "sentiment", "-m", model], b"fine\r\ncaf\xe9\n")
    assert one_error_line(as_lines.stderr) == (
        "nlpsuite: error: <stdin>:2: not UTF-8 text (byte 0xe9 at column 4)"
    )
    wide = _invoke(["run", "sentiment", "-m", model, "--input", "-"],
                   '{"text": "fine"}\n'.encode("utf-16"))
    assert one_error_line(wide.stderr) == f"nlpsuite: error: <stdin>: {UTF16_HINT}"
    # Windows line ends on stdin are line ends, as before.
    crlf = _invoke(["run", "sentiment", "-m", model, "--json"], b"fine\r\ngood\r\n")
    assert crlf.returncode == 0 and len(crlf.stdout.splitlines()) == 2


def test_a_saved_index_whose_documents_are_not_utf8_is_one_line(tmp_path: Path) -> None:
    folder = search.Index(("a", "b"), ("first", "second"), np.eye(2, 3, dtype=np.float32),
                          "some/model").save(tmp_path / "index")
    docs = folder / "docs.jsonl"
    docs.write_bytes(docs.read_bytes().replace(b"second", b"s\xe9cond"))
    done = nlpsuite("index", "info", str(folder))
    assert done.returncode == 2
    assert one_error_line(done.stderr) == (
        f"nlpsuite: error: {docs}:2: not UTF-8 text (byte 0xe9 at column 23)"
    )


def test_files_that_are_not_utf8_reach_the_user_as_one_line(tmp_path: Path) -> None:
    corpus = _bad(tmp_path, "corpus.jsonl", '{"id": "1", "text": "x"}\n'.encode("utf-16"))
    built = nlpsuite("index", "build", str(corpus), "-m", MISSING_MODEL, "--out",
                     str(tmp_path / "index"))
    assert built.returncode == 2
    assert one_error_line(built.stderr) == f"nlpsuite: error: {corpus}: {UTF16_HINT}"
    reference = _bad(tmp_path, "ref.txt", "eins\nzwei\n".encode("utf-16"))
    hypotheses = _bad(tmp_path, "hyp.txt", b"one\ntwo\n")
    scored = nlpsuite("score", "translation", "-p", str(hypotheses), "-r", str(reference))
    assert scored.returncode == 2
    assert one_error_line(scored.stderr) == f"nlpsuite: error: {reference}: {UTF16_HINT}"
    dataset = _bad(tmp_path, "data.jsonl", b'{"text": "good", "reference": "POSITIVE\x80"}\n')
    evaluated = nlpsuite("eval", "sentiment", "-m", MISSING_MODEL, "-d", str(dataset),
                         "--out", str(tmp_path / "run"))
    assert evaluated.returncode == 2
    assert one_error_line(evaluated.stderr) == (
        f"nlpsuite: error: {dataset}:1: not UTF-8 text (byte 0x80 at column 40)"
    )


def test_suites_and_results_that_are_not_utf8_are_located(tmp_path: Path) -> None:
    suite = _bad(tmp_path, "suite.toml", b'[suite]\nname = "caf\xe9"\n')
    done = nlpsuite("bench", str(suite), "--out", str(tmp_path / "runs"))
    assert done.returncode == 2
    assert one_error_line(done.stderr) == (
        f"nlpsuite: error: {suite}:2: not UTF-8 text (byte 0xe9 at column 12)"
    )
    results = _bad(tmp_path / "runs" / "one", "results.json", '{"task": 1}'.encode("utf-16"))
    assert _message(lambda: RunResult.read(results)) == f"{results}: {UTF16_HINT}"
