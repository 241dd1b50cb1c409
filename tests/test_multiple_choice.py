"""The multiple-choice task and dataset shape on tiny random causal LMs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nlpsuite import NlpsuiteError, get_task, load_runner
from nlpsuite.catalog import resolve_dataset
from nlpsuite.causal import load_causal_lm
from nlpsuite.tasks import RunConfig
from tests.helpers import nlpsuite, one_error_line

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LONG = "the film was shown in many countries and the people liked it very much"
ROWS = [
    {"context": "The answer is", "choices": ["a", LONG], "gold": 1},
    {"context": "Question: which one?\nAnswer:", "choices": ["b", LONG, "c"], "gold": 1},
    {"id": "q3", "context": "Pick:", "choices": ["x", LONG], "gold": 1},
    {"context": "Then", "choices": ["y", LONG], "gold": 1},
]


def write_rows(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_the_format_reads_context_choices_and_gold(tmp_path: Path) -> None:
    dataset = resolve_dataset(str(write_rows(tmp_path / "mc.jsonl", ROWS)), "multiple-choice")
    examples = dataset.load()
    assert [example.id for example in examples] == ["1", "2", "q3", "4"]
    assert examples[1].input == {"context": ROWS[1]["context"], "choices": ["b", LONG, "c"]}
    assert [example.reference for example in examples] == [1, 1, 1, 1]


def test_choices_are_scored_as_continuations_after_a_space(tiny_llama: Path) -> None:
    runner = load_runner("multiple-choice", str(tiny_llama), batch_size=2)
    task = get_task("multiple-choice")
    records = [task.make_input({"context": r["context"], "choices": r["choices"]}, "test")
               for r in ROWS]
    outputs = runner(records)
    lm = load_causal_lm(RunConfig(model=str(tiny_llama)))
    for row, output in zip(ROWS, outputs, strict=True):
        choices = row["choices"]
        assert isinstance(choices, list)
        expected = [lm.loglikelihoods([lm.encode_pair(str(row["context"]), " " + c)])[0].logprob
                    for c in choices]
        assert output.logprobs == pytest.approx(expected, abs=1e-4)
        assert output.choice == max(range(len(choices)), key=expected.__getitem__)
        per_char = [value / len(c) for value, c in zip(expected, choices, strict=True)]
        assert output.choice_norm == max(range(len(choices)), key=per_char.__getitem__)


def test_eval_reports_accuracy_and_acc_norm(tiny_gpt2: Path, tmp_path: Path) -> None:
    """Every gold answer is the long choice: a random model's total log-likelihood prefers the
    one-character choice, its per-character one the long; so acc_norm beats accuracy."""
    data = write_rows(tmp_path / "mc.jsonl", ROWS)
    out = tmp_path / "run"
    done = nlpsuite("eval", "multiple-choice", "--model", str(tiny_gpt2), "--dataset",
                    str(data), "--out", str(out), "--bootstrap", "20")
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert set(results["metrics"]) == {"accuracy", "acc_norm"}
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    accuracy = sum(row["scored"] == row["reference"] for row in rows) / len(rows)
    acc_norm = sum(row["prediction"]["choice_norm"] == row["reference"] for row in rows) / len(rows)
    assert results["metrics"]["accuracy"]["value"] == pytest.approx(accuracy)
    assert results["metrics"]["acc_norm"]["value"] == pytest.approx(acc_norm)
    assert acc_norm > accuracy
    assert results["prompt"]["template"] == "multiple-choice"
    assert "label_mapping" not in results


def test_a_template_shapes_the_context(tiny_llama: Path, tmp_path: Path) -> None:
    template = tmp_path / "qa.toml"
    template.write_text('prompt = "Question: {context}\\nAnswer:"\n'
                        '[[examples]]\ncontext = "2 + 2?"\nanswer = "4"\n')
    data = write_rows(tmp_path / "mc.jsonl", ROWS[:2])
    out = tmp_path / "run"
    done = nlpsuite("eval", "multiple-choice", "--model", str(tiny_llama), "--dataset",
                    str(data), "--out", str(out), "--bootstrap", "10", "--option",
                    f"template={template}", "--option", "shots=1")
    assert done.returncode == 0, done.stderr
    prompt = json.loads((out / "results.json").read_text())["prompt"]
    assert prompt == {"template": str(template), "text": template.read_text(), "shots": 1}


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"context": "c", "choices": ["a", "b"], "gold": 2},
         ":2: field 'gold' should be a choice index from 0 to 1, got 2"),
        ({"context": "c", "choices": ["a", "b"], "gold": -1},
         ":2: field 'gold' should be a choice index from 0 to 1, got -1"),
        ({"context": "c", "choices": ["a"], "gold": 0},
         ":2: field 'choices' needs at least 2 choices, got 1"),
        ({"context": "c", "choices": ["a", ""], "gold": 0},
         ":2: field 'choices': choice 1 is empty"),
        ({"context": "c", "choices": ["a", 3], "gold": 0},
         ":2: field 'choices' should be a list of strings"),
        ({"context": "c", "gold": 0, "choice": []}, ":2: missing field 'choices'"),
        ({"choices": ["a", "b"], "gold": 0}, ":2: missing field 'context'"),
        ({"context": " ", "choices": ["a", "b"], "gold": 0}, ":2: field 'context' is empty"),
        ({"context": "c", "choices": ["a", "b"], "gold": "0"},
         ":2: field 'gold' should be int, got str"),
        ({"context": "c", "choices": ["a", "b"], "gold": True},
         ":2: field 'gold' should be int, got bool"),
    ],
)
def test_bad_rows_are_one_line_errors(
    tiny_llama: Path, tmp_path: Path, row: dict[str, object], message: str
) -> None:
    data = write_rows(tmp_path / "mc.jsonl", [ROWS[0], row])
    done = nlpsuite("eval", "multiple-choice", "--model", str(tiny_llama), "--dataset",
                    str(data), "--out", str(tmp_path / "run"))
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert f"{data}{message}" in line


def test_plain_records_need_an_index_reference(tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text(json.dumps({"context": "c", "choices": ["a", "b"], "reference": "1"}) + "\n")
    with pytest.raises(NlpsuiteError, match=r":1: field 'reference' should be a choice index"):
        resolve_dataset(str(records), "multiple-choice").load()


def test_an_encoder_is_refused(tiny_classifier: Path, tmp_path: Path) -> None:
    data = write_rows(tmp_path / "mc.jsonl", ROWS)
    done = nlpsuite("eval", "multiple-choice", "--model", str(tiny_classifier), "--dataset",
                    str(data), "--out", str(tmp_path / "run"))
    assert done.returncode == 2
    assert "multiple-choice needs a causal language model" in one_error_line(done.stderr)


def test_a_template_with_choices_is_refused(tiny_llama: Path, tmp_path: Path) -> None:
    with pytest.raises(NlpsuiteError, match="a multiple-choice template needs neither"):
        load_runner("multiple-choice", str(tiny_llama), options={"template": "sst2"})
