"""The conformance kit: the built-in tasks and the example plugin pass it; broken tasks fail it,
each with the check that names what they broke."""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from nlpsuite import NlpsuiteError, RunConfig, Task
from nlpsuite.datasets import Example
from nlpsuite.metrics import ACCURACY, Metric
from nlpsuite.plugins import Registry, registry
from nlpsuite.testing import CHECKS, ConformanceError, check_task

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "nlpsuite-zeroshot"

# Each built-in task and the fixture giving a checkpoint for it. A built-in task missing here
# fails test_every_built_in_task_is_checked, so a new task cannot skip the kit.
BUILT_IN_MODELS = {
    "sentiment": "tiny_classifier",
    "question-answering": "tiny_qa",
    "semantic-search": "minilm",
    "sentence-similarity": "minilm",
    "embedding": "minilm",
    "translation": "tiny_marian",
    "summarization": "tiny_bart",
    "text-generation": "tiny_llama",
    "perplexity": "tiny_gpt2",
    "multiple-choice": "tiny_llama",
}
# Examples for the built-in tasks that register no dataset (nothing to score them on).
BUILT_IN_EXAMPLES = {
    "embedding": ["A man is playing a guitar.", "Rain all weekend.", "The eggs are whisked.",
                  "Someone plays music on a stage tonight."],
}


def test_every_built_in_task_is_checked() -> None:
    built_in = {
        task for info in registry().plugins if info.package == "nlpsuite" for task in info.tasks
    }
    assert built_in <= set(BUILT_IN_MODELS), sorted(built_in - set(BUILT_IN_MODELS))


@pytest.mark.parametrize("name", sorted(BUILT_IN_MODELS))
def test_built_in_tasks_conform(name: str, request: pytest.FixtureRequest) -> None:
    if name not in registry().tasks:
        pytest.skip(f"task '{name}' is not registered in this tree")
    model = request.getfixturevalue(BUILT_IN_MODELS[name])
    # Without examples the kit takes the first examples of the task's registered dataset.
    examples = BUILT_IN_EXAMPLES.get(name)
    report = check_task(name, model=str(model), examples=examples)
    assert report.task == name and report.checks == CHECKS
    assert report.examples == (len(examples) if examples else 8)


@pytest.fixture
def zero_shot(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The example plugin registered as if installed, in a registry of its own for this test."""
    monkeypatch.syspath_prepend(str(EXAMPLE / "src"))
    plugin = importlib.import_module("nlpsuite_zeroshot.plugin")  # from the source tree

    loaded = Registry()
    loaded.load_entry_points()
    assert loaded.add(plugin, "zero-shot", "nlpsuite-zeroshot", "0.1.0").ok
    # The kit and the task API look the registry up when called, so this swaps it for them.
    monkeypatch.setattr("nlpsuite.plugins.registry", lambda: loaded)
    yield


@pytest.mark.usefixtures("zero_shot")
def test_the_example_plugin_conforms(minilm: Path) -> None:
    assert check_task("zero-shot").model == "sentence-transformers/all-MiniLM-L6-v2"
    # Its own examples and an explicit model directory, labels from the input and the option.
    check_task(
        "zero-shot",
        model=str(minilm),
        examples=[
            Example(
                "1",
                {"text": "The match ended in a draw.", "candidate_labels": ["sports", "cooking"]},
                "sports",
            ),
            Example("2", "Whisk the eggs with the sugar.", "food"),
            Example("3", "Rain all weekend.", "weather"),
        ],
        labels="sports,food,weather",
    )


def test_the_fixture_is_the_kit(nlpsuite_conformance: Callable[..., Any]) -> None:
    # Offered to every pytest session where nlpsuite is installed (entry point pytest11).
    assert nlpsuite_conformance is check_task


# Deliberately broken tasks. The well-behaved one: a label from the text's length, and a score
# that differs for every text, so a misplaced output is visible.


@dataclass(frozen=True)
class Text:
    text: str

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise NlpsuiteError("field 'text' is empty")


@dataclass(frozen=True)
class Verdict:
    label: str
    score: float


def _verdict(item: Text) -> Verdict:
    return Verdict("long" if len(item.text) > 8 else "short", len(item.text) / 100)


def _good_runner(config: RunConfig) -> Callable[[Sequence[Text]], list[Verdict]]:
    return lambda batch: [_verdict(item) for item in batch]


GOOD = Task(
    "length",
    "Long or short.",
    "none",
    Text,
    Verdict,
    _good_runner,
    metrics=(ACCURACY,),
    prediction=lambda output: output.label,
)
EXAMPLES = [
    Example(str(i), text, "long" if len(text) > 8 else "short")
    for i, text in enumerate(["tiny", "a longer text", "mid-size", "the longest text of all"])
]


def _check(task: Task, tmp_path: Path, **arguments: Any) -> None:
    arguments.setdefault("examples", EXAMPLES)
    check_task(task, model=str(tmp_path), **arguments)


def _fails(task: Task, tmp_path: Path, check: str, message: str, **arguments: Any) -> None:
    with pytest.raises(ConformanceError, match=message) as failed:
        _check(task, tmp_path, **arguments)
    assert failed.value.check == check
    assert str(failed.value).startswith(f"task '{task.name}' fails conformance check '{check}': ")
    assert isinstance(failed.value, AssertionError)  # a plain assert failure to pytest


def _broken(runner: Callable[[Sequence[Any]], list[Any]], **changes: Any) -> Task:
    return dataclasses.replace(GOOD, load=lambda config: runner, **changes)


def test_a_well_behaved_task_passes(tmp_path: Path) -> None:
    _check(GOOD, tmp_path)


def test_outputs_in_the_wrong_order_fail_the_order_check(tmp_path: Path) -> None:
    def reverses(batch: Sequence[Text]) -> list[Verdict]:
        return [_verdict(item) for item in reversed(batch)]

    _fails(
        _broken(reverses),
        tmp_path,
        "order",
        r"with batch size 3, output 0 is the output for input 3: outputs must come back in "
        "input order",
    )


def test_outputs_sorted_by_length_and_not_put_back_fail_the_order_check(tmp_path: Path) -> None:
    def sorts(batch: Sequence[Text]) -> list[Verdict]:
        return [_verdict(item) for item in sorted(batch, key=lambda item: len(item.text))]

    _fails(_broken(sorts), tmp_path, "order", "is the output for input")


def test_a_crash_on_an_empty_text_fails_the_empty_input_check(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class Unchecked:
        text: str

    def crashes(batch: Sequence[Unchecked]) -> list[Verdict]:
        if any(not item.text.strip() for item in batch):
            raise IndexError("list index out of range")
        return [_verdict(Text(item.text)) for item in batch]

    _fails(
        _broken(crashes, input_type=Unchecked),
        tmp_path,
        "empty-input",
        r"an empty 'text' \(''\) raised IndexError: list index out of range; raise "
        "NlpsuiteError",
    )


def test_an_empty_text_accepted_fails_the_empty_input_check(tmp_path: Path) -> None:
    @dataclass(frozen=True)
    class Unchecked:
        text: str

    lenient = _broken(
        lambda batch: [_verdict(Text(item.text or "?")) for item in batch], input_type=Unchecked
    )
    _fails(lenient, tmp_path, "empty-input", r"an empty 'text' \(''\) was accepted")


def test_outputs_that_depend_on_the_batch_fail_the_batching_check(tmp_path: Path) -> None:
    def batch_dependent(batch: Sequence[Text]) -> list[Verdict]:
        return [Verdict("long" if len(batch) > 1 else "short", len(item.text)) for item in batch]

    _fails(
        _broken(batch_dependent),
        tmp_path,
        "batching",
        r"input 0 gives a different output with batch size 3 than alone \(batch size 1\): "
        "value: 'long' != 'short'",
    )


def test_scores_off_by_more_than_the_tolerance_fail_the_batching_check(tmp_path: Path) -> None:
    def noisy(batch: Sequence[Text]) -> list[Verdict]:
        return [
            Verdict(_verdict(item).label, _verdict(item).score + 1e-3 * (len(batch) > 1))
            for item in batch
        ]

    _fails(_broken(noisy), tmp_path, "batching", r"\['score'\]: 0\.0\d+ != 0\.0\d+")
    _check(_broken(noisy), tmp_path, abs_tol=1e-2)


def test_a_missing_output_fails_the_count_check(tmp_path: Path) -> None:
    _fails(
        _broken(lambda batch: [_verdict(item) for item in batch][:1]),
        tmp_path,
        "count",
        "gave 1 outputs for 4 inputs",
    )


def test_a_runner_that_raises_fails_the_run_check(tmp_path: Path) -> None:
    def explodes(batch: Sequence[Text]) -> list[Verdict]:
        raise RuntimeError("CUDA out of memory")

    _fails(
        _broken(explodes),
        tmp_path,
        "run",
        "running input 0 alone raised RuntimeError: CUDA out of memory",
    )


def test_an_empty_batch_must_give_an_empty_list(tmp_path: Path) -> None:
    def needs_one(batch: Sequence[Text]) -> list[Verdict]:
        return [_verdict(item) for item in batch] if batch else [Verdict("short", 0.0)]

    _fails(_broken(needs_one), tmp_path, "empty-batch", "an empty batch gave")


def test_numpy_numbers_in_outputs_fail_the_records_check(tmp_path: Path) -> None:
    import numpy as np

    def numpy_scores(batch: Sequence[Text]) -> list[Verdict]:
        return [Verdict(_verdict(item).label, np.float32(0.5)) for item in batch]  # type: ignore[arg-type]

    _fails(
        _broken(numpy_scores),
        tmp_path,
        "records",
        "is not strict JSON .*float32.*not a numpy scalar",
    )


def test_an_output_of_another_type_fails_the_records_check(tmp_path: Path) -> None:
    _fails(
        _broken(lambda batch: [{"label": "x"} for _ in batch]),
        tmp_path,
        "records",
        "the runner returned a dict, but the task declares output_type Verdict",
    )


def test_a_render_that_gives_no_text_fails_the_records_check(tmp_path: Path) -> None:
    task = dataclasses.replace(GOOD, render=lambda output: output.score)
    _fails(task, tmp_path, "records", "render\\(output\\) gave float, not a str")


def test_an_input_record_that_does_not_survive_jsonl_fails_the_records_check(
    tmp_path: Path,
) -> None:
    @dataclass(frozen=True)
    class Shouting:
        text: str

        def __post_init__(self) -> None:  # changes the text, so it reads back different
            object.__setattr__(self, "text", self.text + "!")

    task = dataclasses.replace(
        GOOD,
        input_type=Shouting,
        load=lambda config: lambda batch: [_verdict(Text(item.text)) for item in batch],
    )
    _fails(task, tmp_path, "records", "input record 0 changes on its way through JSONL")


def test_a_first_input_field_that_is_not_text_fails_the_declaration_check(
    tmp_path: Path,
) -> None:
    @dataclass(frozen=True)
    class Numbered:
        number: int
        text: str = "x"

    _fails(
        dataclasses.replace(GOOD, input_type=Numbered),
        tmp_path,
        "declaration",
        "the first field of input_type must be a str",
    )


def test_a_bad_option_default_fails_the_declaration_check(tmp_path: Path) -> None:
    from nlpsuite import Option

    task = dataclasses.replace(GOOD, options=(Option("top_k", int, "many", "how many"),))
    _fails(task, tmp_path, "declaration", "option 'top_k': default 'many' is not a int")


def test_an_unregistered_metric_fails_the_metrics_check(tmp_path: Path) -> None:
    stray = Metric("stray_accuracy", True, lambda predictions, references: 1.0)
    _fails(
        dataclasses.replace(GOOD, metrics=(stray,)),
        tmp_path,
        "metrics",
        "metric 'stray_accuracy' is not in the registry",
    )


def test_a_metric_that_takes_a_registered_name_fails_the_metrics_check(tmp_path: Path) -> None:
    impostor = Metric("accuracy", True, lambda predictions, references: 1.0)
    _fails(
        dataclasses.replace(GOOD, metrics=(impostor,)),
        tmp_path,
        "metrics",
        "another plugin registered a metric of that name",
    )


def test_metric_statistics_that_disagree_with_compute_fail_the_metric_values_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    wrong = Metric(
        "wrong_accuracy",
        True,
        lambda predictions, references: 0.75,
        statistics=lambda predictions, references: np.ones((len(predictions), 2)),
        from_statistics=lambda summed: float(summed[0] / summed[1]),
    )
    loaded = Registry()
    loaded.metrics.update({"wrong_accuracy": wrong})
    monkeypatch.setattr("nlpsuite.plugins.registry", lambda: loaded)
    _fails(
        dataclasses.replace(GOOD, metrics=(wrong,)),
        tmp_path,
        "metric-values",
        r"from_statistics\(statistics\(...\).sum\(0\)\) gives 1.0 but compute gives 0.75",
    )


def test_a_model_that_is_not_a_local_directory_fails_the_local_model_check() -> None:
    with pytest.raises(ConformanceError, match="is not a local directory") as failed:
        check_task(GOOD, model="someone/some-model", examples=EXAMPLES)
    assert failed.value.check == "local-model"


def test_examples_that_all_give_the_same_output_are_refused(tmp_path: Path) -> None:
    _fails(
        GOOD,
        tmp_path,
        "examples",
        "every example gives the same output",
        examples=["same text", "same text"],
    )


def test_an_unknown_task_name_fails_the_declaration_check() -> None:
    with pytest.raises(ConformanceError, match="unknown task 'no-such-task'") as failed:
        check_task("no-such-task")
    assert failed.value.check == "declaration"


def test_options_named_like_a_parameter_go_in_task_options(tmp_path: Path) -> None:
    from nlpsuite import Option

    seen: list[int] = []

    def load(config: RunConfig) -> Callable[[Sequence[Text]], list[Verdict]]:
        seen.append(config.options["limit"])
        return _good_runner(config)

    task = dataclasses.replace(GOOD, load=load, options=(Option("limit", int, 0, "at most"),))
    _check(task, tmp_path, task_options={"limit": 5})
    assert seen == [5, 5]  # the batch-size-1 runner and the batch-size-3 one
