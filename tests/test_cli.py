"""The command line as a user meets it: inputs, outputs, and one-line errors with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import nlpsuite, nlpsuite_process, one_error_line

TEXTS = ["a wonderful film", "the worst plot", "boring", "great acting and a good story"]


def test_version_and_listing() -> None:
    assert nlpsuite("--version").stdout.startswith("nlpsuite, version ")
    plugins = nlpsuite("plugins")
    assert plugins.returncode == 0
    assert "sentiment" in plugins.stdout and "ok" in plugins.stdout
    tasks = nlpsuite("tasks", "--json")
    listed = {json.loads(line)["name"]: json.loads(line) for line in tasks.stdout.splitlines()}
    assert listed["sentiment"]["default_model"].startswith("distilbert/")
    assert {"name": "accuracy", "higher_is_better": True} in listed["sentiment"]["metrics"]


def test_run_arguments_stdin_and_files_agree(tiny_classifier: Path, tmp_path: Path) -> None:
    model = str(tiny_classifier)
    from_args = nlpsuite("run", "sentiment", "--model", model, "--json", *TEXTS)
    assert from_args.returncode == 0, from_args.stderr
    expected = [json.loads(line) for line in from_args.stdout.splitlines()]
    assert len(expected) == len(TEXTS)
    assert all(row["label"] in {"NEGATIVE", "POSITIVE"} for row in expected)

    from_stdin = nlpsuite("run", "sentiment", "-m", model, "--json", stdin="\n".join(TEXTS) + "\n")
    assert [json.loads(line) for line in from_stdin.stdout.splitlines()] == expected

    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t}) + "\n" for t in TEXTS))
    csv_file = tmp_path / "in.csv"
    csv_file.write_text("text\n" + "\n".join(f'"{t}"' for t in TEXTS) + "\n")
    for source in (jsonl, csv_file):
        out = tmp_path / f"out-{source.suffix[1:]}.jsonl"
        done = nlpsuite(
            "run", "sentiment", "-m", model, "--input", str(source), "--output", str(out)
        )
        assert done.returncode == 0, done.stderr
        assert [json.loads(line) for line in out.read_text().splitlines()] == expected


def test_text_output_and_options(tiny_classifier_3way: Path) -> None:
    plain = nlpsuite("run", "sentiment", "-m", str(tiny_classifier_3way), "good", "bad")
    lines = plain.stdout.splitlines()
    assert len(lines) == 2 and all(
        line.split("\t")[0] in {"negative", "neutral", "positive"} for line in lines
    )
    top = nlpsuite(
        "run", "sentiment", "-m", str(tiny_classifier_3way), "--option", "top_k=3", "--json", "good"
    )
    scores = json.loads(top.stdout)["scores"]
    assert sorted(scores) == ["negative", "neutral", "positive"]
    assert list(scores.values()) == sorted(scores.values(), reverse=True)
    assert sum(scores.values()) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["run", "nosuch", "x"], None, "unknown task 'nosuch'"),
        (["run", "sentiment", "--input", "{missing}"], None, "input file not found"),
        (["run", "sentiment", "--input", "{bad}"], None, "bad.jsonl:2: not valid JSON"),
        (
            ["run", "sentiment", "--input", "{nofield}"],
            None,
            "nofield.jsonl:1: missing field 'text'",
        ),
        (["run", "sentiment", "--option", "colour=red", "x"], None, "unknown option 'colour'"),
        (["run", "sentiment", "--option", "top_k=many", "x"], None, "expected int"),
        (
            ["run", "sentiment", "--input", "-"],
            '{"text": ""}\n',
            "<stdin>:1: field 'text' is empty",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tiny_classifier: Path, tmp_path: Path, args: list[str], stdin: str | None, message: str
) -> None:
    (tmp_path / "bad.jsonl").write_text('{"text": "fine"}\n{"text": oops}\n')
    (tmp_path / "nofield.jsonl").write_text('{"sentence": "no text field"}\n')
    files = {name: tmp_path / f"{name}.jsonl" for name in ("bad", "nofield", "missing")}
    args = [a.format(**files) for a in args]
    if args[1] == "sentiment":
        args[2:2] = ["--model", str(tiny_classifier)]
    done = nlpsuite(*args, stdin=stdin)
    assert done.returncode == 2
    assert message in one_error_line(done.stderr)


def test_model_not_found_names_it_and_says_what_to_do() -> None:
    done = nlpsuite_process("run", "sentiment", "--model", "no-such-org/no-such-model", "text")
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert "no-such-org/no-such-model" in line and "--model DIR" in line


def test_failed_run_leaves_existing_output_intact(tiny_classifier: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    out.write_text("previous results\n")
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "good"}\n{"text": ""}\n')
    done = nlpsuite(
        "run", "sentiment", "-m", str(tiny_classifier), "-i", str(source), "-o", str(out)
    )
    assert done.returncode == 2
    assert out.read_text() == "previous results\n"
