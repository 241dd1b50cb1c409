"""The summarization task on tiny random BART and T5 checkpoints."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from nlpsuite_plugins.summarization import (
    RUN_SHARE,
    SummarizationInput,
    Summarizer,
    build,
    settings,
)

from nlpsuite import NlpsuiteError, RunConfig, get_task, load_runner, run
from nlpsuite.metrics import ROUGE
from tests import tiny_seq2seq
from tests.conftest import BART_TASK_PARAMS
from tests.helpers import nlpsuite, one_error_line

# Tiny models gain nothing from a second thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def summarizer(model: Path, **options: Any) -> Summarizer:
    task = get_task("summarization")
    return build(RunConfig(model=str(model), options=task.parse_options(options)))


def document(sentences: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(tiny_seq2seq.sentence(rng, 4, 14) for _ in range(sentences))


def docs(count: int = 8, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [document(rng.randint(1, 3), seed=seed * 100 + i) for i in range(count)]


# Settings: the options given, else the checkpoint's, else our fallback.


def test_settings_default_to_the_checkpoint_task_params(tiny_bart: Path) -> None:
    declared = BART_TASK_PARAMS["summarization"]
    assert summarizer(tiny_bart).settings == declared
    given = summarizer(tiny_bart, max_length=10, num_beams=1, no_repeat_ngram_size=0).settings
    assert given == {**declared, "max_length": 10, "num_beams": 1, "no_repeat_ngram_size": 0}
    # The checkpoint's minimum (4) gives way to a maximum given below it.
    assert summarizer(tiny_bart, max_length=3).settings["min_length"] == 3


def test_settings_fall_back_to_the_generation_config(tmp_path: Path) -> None:
    folder = tiny_seq2seq.build_bart(
        tmp_path / "bart", generation={"max_length": 30, "min_length": 5, "num_beams": 3,
                                       "no_repeat_ngram_size": 2, "length_penalty": 1.5},
    )
    assert summarizer(folder).settings == {"max_length": 30, "min_length": 5, "num_beams": 3,
                                           "no_repeat_ngram_size": 2, "length_penalty": 1.5}


def test_settings_for_a_checkpoint_that_declares_nothing(tiny_marian: Path) -> None:
    from nlpsuite.models import load_model

    model = load_model("AutoModelForSeq2SeqLM", str(tiny_marian))
    # The tiny Marian's generation config has max_length 64 and 4 beams, and nothing else.
    assert settings(model, {}) == {"min_length": 0, "max_length": 64, "num_beams": 4,
                                   "no_repeat_ngram_size": 0}


@pytest.mark.parametrize(("options", "message"), [
    ({"num_beams": 0}, "option 'num_beams' must be at least 1, got 0"),
    ({"max_length": 0}, "option 'max_length' must be at least 1, got 0"),
    ({"min_length": -1}, "option 'min_length' must be at least 0, got -1"),
    ({"no_repeat_ngram_size": -2}, "option 'no_repeat_ngram_size' must be at least 0, got -2"),
])
def test_bad_options_fail_before_loading(options: dict[str, int], message: str) -> None:
    with pytest.raises(NlpsuiteError, match=message):
        load_runner("summarization", "/nonexistent/never-loaded", options=options)


def test_min_length_above_max_length_is_refused(tiny_bart: Path) -> None:
    with pytest.raises(NlpsuiteError, match=r"min_length \(9\) is more than max_length \(5\)"):
        summarizer(tiny_bart, min_length=9, max_length=5)


def test_t5_prefix_comes_from_the_checkpoint(tiny_t5: Path) -> None:
    summary = summarizer(tiny_t5)
    assert summary.seq2seq.prefix == "summarize: "
    assert summary.settings == {"max_length": 20, "min_length": 3, "num_beams": 1,
                                "no_repeat_ngram_size": 0}


# Generation.


@pytest.mark.parametrize("architecture", ["tiny_bart", "tiny_t5"])
def test_outputs_follow_inputs_and_do_not_depend_on_batching(
    architecture: str, request: pytest.FixtureRequest
) -> None:
    model = str(request.getfixturevalue(architecture))
    inputs = docs()
    options = {"num_beams": 1}
    together = run("summarization", inputs, model=model, options=options)
    small = run("summarization", inputs, model=model, options=options, batch_size=3)
    alone = [run("summarization", [d], model=model, options=options)[0] for d in inputs]
    assert together == small == alone
    assert all(o.chunks == 1 for o in together)
    assert len({o.summary for o in together}) > 1


def test_checkpoint_beam_search_runs_and_is_bounded(tiny_bart: Path) -> None:
    summary = summarizer(tiny_bart)  # two beams, length_penalty and early_stopping declared
    generated = summary.generate(docs(4, seed=1))
    assert all(len(g.token_ids) <= BART_TASK_PARAMS["summarization"]["max_length"] - 1
               for g in generated)


@pytest.mark.parametrize("architecture", ["tiny_bart", "tiny_t5"])
def test_length_options_bound_the_summary(architecture: str,
                                          request: pytest.FixtureRequest) -> None:
    model = request.getfixturevalue(architecture)
    inputs = docs(6, seed=2)
    # max_length and min_length count the decoder start token, as in transformers.
    short = summarizer(model, max_length=6, min_length=0, num_beams=1).generate(inputs)
    assert all(1 <= len(g.token_ids) <= 5 for g in short)
    long = summarizer(model, max_length=14, min_length=12, num_beams=1).generate(inputs)
    assert all(11 <= len(g.token_ids) <= 13 for g in long)
    outputs = run("summarization", inputs, model=str(model),
                  options={"max_length": 6, "min_length": 0, "num_beams": 1})
    assert [o.summary for o in outputs] == [g.text for g in short]


def test_no_repeat_ngram_size_is_applied(tiny_t5: Path) -> None:
    inputs = docs(6, seed=3)
    free = summarizer(tiny_t5, max_length=30, min_length=29).generate(inputs)
    assert any(len(set(g.token_ids)) < len(g.token_ids) for g in free)  # random models repeat
    held = summarizer(tiny_t5, max_length=30, min_length=29,
                      no_repeat_ngram_size=1).generate(inputs)
    assert all(len(set(g.token_ids)) == len(g.token_ids) for g in held)


def test_a_document_ten_windows_long_is_summarized_whole(tiny_bart: Path) -> None:
    summary = summarizer(tiny_bart, num_beams=1)
    seq2seq = summary.seq2seq
    text = document(80, seed=4)
    assert seq2seq.count([text])[0] > 10 * seq2seq.window
    (output,) = summary([text])
    runs = seq2seq.chunks(text)
    assert output.chunks == len(runs) >= 10
    assert " ".join(runs) == text
    # Map: every run summarized, each held to a share of the window; reduce: until it fits.
    parts = summary.generate(runs, final=False)
    assert all(len(p.token_ids) <= seq2seq.window // RUN_SHARE for p in parts)
    joined = " ".join(p.text for p in parts if p.text)
    while len(seq2seq.chunks(joined)) > 1:
        parts = summary.generate(seq2seq.chunks(joined), final=False)
        joined = " ".join(p.text for p in parts if p.text)
    assert output.summary == summary.generate([joined])[0].text
    # The end of the document counts: change only its last sentence and the summary changes.
    last = text.rindex(". ") + 2
    changed = text[:last] + "Berlin river museum war peace music art science history."
    assert seq2seq.chunks(changed)[0] == runs[0]
    assert summary([changed])[0].summary != output.summary


def test_long_and_short_documents_in_one_call(tiny_t5: Path) -> None:
    inputs = [document(2, seed=5), document(60, seed=6), document(1, seed=7)]
    together = run("summarization", inputs, model=str(tiny_t5))
    alone = [run("summarization", [d], model=str(tiny_t5))[0] for d in inputs]
    assert together == alone
    assert [o.chunks > 1 for o in together] == [False, True, False]


def test_empty_text_is_refused() -> None:
    with pytest.raises(NlpsuiteError, match="field 'text' is empty"):
        SummarizationInput("\t\n")


def test_metrics_are_rouge(tiny_bart: Path) -> None:
    task = get_task("summarization")
    assert [m.name for m in task.metrics] == ["rouge1", "rouge2", "rougeL", "rougeLsum"]
    inputs = docs(3, seed=8)
    predictions = [task.prediction(o) for o in run(task, inputs, model=str(tiny_bart))]
    for metric in ROUGE:
        assert metric.compute(inputs, inputs) == pytest.approx(1.0)
        assert 0 <= metric.compute(predictions, inputs) < 1


def test_cli_summarizes(tiny_bart: Path) -> None:
    inputs = docs(2, seed=9)
    expected = run("summarization", inputs, model=str(tiny_bart), options={"max_length": 8})
    done = nlpsuite("run", "summarization", "--model", str(tiny_bart), "--max-length", "8",
                    *inputs, "--json")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert records == [{"summary": o.summary, "chunks": o.chunks} for o in expected]


@pytest.mark.parametrize(("args", "message"), [
    ([""], "argument 1: field 'text' is empty"),
    (["fine", "--min-length", "9", "--max-length", "5"], "min_length (9) is more than"),
    (["fine", "-O", "num_beams=zero"], "option 'num_beams': expected int, got 'zero'"),
    (["fine", "-O", "beams=2"], "unknown option 'beams' for task 'summarization'"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tiny_bart: Path, args: list[str],
                                              message: str) -> None:
    done = nlpsuite("run", "summarization", "--model", str(tiny_bart), *args)
    assert done.returncode == 2
    assert message in one_error_line(done.stderr)
