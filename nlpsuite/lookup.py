"""Looking up what plugins registered, and running a task: the library API.

Tasks, backends and metrics by name come from the process-wide registry
(:func:`nlpsuite.plugins.registry`); :func:`load_runner` and :func:`run` turn a task and a model
into predictions, and :func:`load_model` loads a checkpoint on the inference engine a backend spec
names. Datasets by name or path are :mod:`nlpsuite.catalog`'s. Every runner
:func:`load_runner` gives is a :class:`CheckedRunner`: a plugin whose runner breaks the contract
is named in a :class:`~nlpsuite.errors.PluginError`, whoever calls it.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nlpsuite import plugins
from nlpsuite.backends import Backend, backend_label
from nlpsuite.checkpoints import installed_bundled_models
from nlpsuite.errors import NlpsuiteError, PluginError
from nlpsuite.hf_metrics import evaluate_metric
from nlpsuite.metrics import Metric
from nlpsuite.models import OfflineModelError, RandomHeadError, load_on_backend, resolve_device
from nlpsuite.tasks import RunConfig, Runner, Task


def get_task(name: str) -> Task:
    """The registered task called ``name``."""
    return plugins.registry().task(name)


def list_tasks() -> list[Task]:
    """Every registered task, sorted by name."""
    return sorted(plugins.registry().tasks.values(), key=lambda task: task.name)


def load_runner(
    task: Task | str,
    model: str | None = None,
    *,
    device: str = "cpu",
    batch_size: int = 32,
    options: Mapping[str, Any] | None = None,
    trust_remote_code: bool = False,
    backend: str = "torch",
    allow_random_head: bool = False,
) -> CheckedRunner:
    """Load ``model`` (a hub id or a local directory; the task's default if None) into a runner.

    ``backend``: the inference engine, e.g. ``onnx`` or ``ctranslate2:compute_type=int8``.
    ``allow_random_head``: run a checkpoint that lacks the task's head (a base model) with a
    newly initialized one instead of refusing it. The runner is a :class:`CheckedRunner`.
    """
    if isinstance(task, str):
        task = get_task(task)
    if batch_size < 1:
        raise NlpsuiteError(f"batch size must be at least 1, got {batch_size}")
    parsed = task.parse_options(options or {})
    config = RunConfig(
        model=model or task.model_for(parsed),
        device=resolve_device(device),
        batch_size=batch_size,
        options=parsed,
        trust_remote_code=trust_remote_code,
        backend=canonical_backend(backend),
        allow_random_head=allow_random_head,
    )
    try:
        runner = task.load(config)
    except RandomHeadError as error:  # the one place that knows which task to train
        raise error.for_task(task.name if task.train is not None else None) from None
    except OfflineModelError as error:  # the model is the same, the ways round it the task's
        raise error.with_offline(offline_ways(task)) from None
    if not callable(runner):
        raise PluginError(
            f"{_at_fault(task)}: load returned {type(runner).__name__}, not a runner"
        )
    return CheckedRunner(task, runner)


def offline_ways(task: Task) -> list[str]:
    """What gives ``task`` a model without the Hugging Face Hub: the plugin's own hint (a model
    a package ships, say), and for a trainable task, training one from a local base model."""
    ways = [task.offline_hint] if task.offline_hint else []
    if task.train is not None:
        bases = installed_bundled_models()
        example = f", e.g. {bases[0]}, which is installed" if bases else ""
        ways.append(f"train one: nlpsuite train {task.name} --model BASE --train FILE --out DIR "
                    f"(BASE: a local base model{example})")
    return ways


@dataclass(frozen=True)
class CheckedRunner:
    """A task's runner, checking every batch's outputs against the contract: a list with one
    output per input, each of the task's ``output_type``, with fields of their declared types
    where those are plain (``str``, ``int``, ``float``, ``bool``, ``list``, ``tuple``, ``dict``,
    optionally ``| None``; element types are not checked). A broken contract raises
    :class:`~nlpsuite.errors.PluginError` naming the plugin; outputs that keep it are returned
    as the plugin's ``runner`` gave them."""

    task: Task
    runner: Runner

    def __call__(self, batch: Sequence[Any]) -> list[Any]:
        try:
            outputs = self.runner(batch)
        except NlpsuiteError:
            raise  # the user's input, as the plugin says it
        except Exception as error:  # the plugin's own fault: name it, keep the cause chained
            detail = (str(error).strip().splitlines() or [""])[0]
            raise PluginError(
                f"{_at_fault(self.task)}: the runner failed: {type(error).__name__}: {detail}"
            ) from error
        problem = _broken_contract(self.task.output_type, len(batch), outputs)
        if problem is not None:
            raise PluginError(f"{_at_fault(self.task)}: {problem}")
        return outputs


def _at_fault(task: Task) -> str:
    """``plugin 'NAME' (PACKAGE VERSION), task 'TASK'`` for a registered task, naming who to
    blame when it misbehaves; ``task 'TASK'`` for one that no plugin registered."""
    registry = plugins.registry()
    owner = registry.plugin_of("task", task.name) if registry.tasks.get(task.name) is task else None
    if owner is None:
        return f"task '{task.name}'"
    package = f" ({owner.package} {owner.version})" if owner.package else ""
    return f"plugin '{owner.name}'{package}, task '{task.name}'"


def _broken_contract(output_type: type, inputs: int, outputs: Any) -> str | None:
    if not isinstance(outputs, list):
        return f"the runner returned {type(outputs).__name__}, not a list"
    if len(outputs) != inputs:
        plural = "" if len(outputs) == 1 else "s"
        return f"the runner gave {len(outputs)} output{plural} for {inputs} inputs"
    fields = _plain_fields(output_type)
    for position, output in enumerate(outputs):
        if not isinstance(output, output_type):
            return (f"output {position} is {type(output).__name__}, not the task's output_type "
                    f"{output_type.__name__}")
        for name, accepted, declared in fields:
            value = getattr(output, name)
            # bool is an int to isinstance, but not to JSON or to a reader of the output.
            if not isinstance(value, accepted) or (
                isinstance(value, bool) and bool not in accepted
            ):
                return (f"output {position}: field '{name}' should be {declared}, "
                        f"got {type(value).__name__}")
    return None


# A declared type, and the types its values may have (JSON does not tell a list from a tuple).
_PLAIN: dict[Any, tuple[type, ...]] = {
    str: (str,), int: (int,), float: (float, int), bool: (bool,), list: (list, tuple),
    tuple: (list, tuple), dict: (dict,), type(None): (type(None),),
}


@functools.cache
def _plain_fields(record_type: type) -> tuple[tuple[str, tuple[type, ...], str], ...]:
    """Each field of ``record_type`` whose declared type is plain: its name, the types its
    value may have, and the declared type as written."""
    try:
        hints = typing.get_type_hints(record_type)
        fields = dataclasses.fields(record_type)
    except Exception:  # annotations that do not resolve, or not a dataclass: nothing to check
        return ()
    plain = []
    for field in fields:
        hint = hints[field.name]
        union = typing.get_origin(hint) in (typing.Union, types.UnionType)
        kinds = [typing.get_origin(kind) or kind for kind in (typing.get_args(hint) if union
                                                              else (hint,))]
        if all(kind in _PLAIN for kind in kinds):
            accepted = tuple(t for kind in kinds for t in _PLAIN[kind])
            declared = hint.__name__ if isinstance(hint, type) else str(hint)
            plain.append((field.name, accepted, declared))
    return tuple(plain)


def run(
    task: Task | str,
    inputs: Iterable[Any],
    model: str | None = None,
    **load_options: Any,
) -> list[Any]:
    """Run ``task`` on ``inputs`` (strings, mappings or input records); outputs keep their order.

    >>> run("sentiment", ["A delightful film."])  # doctest: +SKIP
    [SentimentOutput(label='POSITIVE', score=0.9998)]
    """
    if isinstance(task, str):
        task = get_task(task)
    records = [task.make_input(value, f"input {i}") for i, value in enumerate(inputs, 1)]
    return load_runner(task, model, **load_options)(records)


def get_backend(name: str) -> Backend:
    """The registered backend called ``name``."""
    return plugins.registry().backend(name)


def list_backends() -> list[Backend]:
    """Every registered backend, sorted by name."""
    return sorted(plugins.registry().backends.values(), key=lambda backend: backend.name)


def parse_backend(spec: str) -> tuple[Backend, dict[str, Any]]:
    """``name[:key=value,...]`` to the backend and its options (validated, defaults filled).

    Unknown names and options, and engines that are not installed, are one-line errors.
    """
    name, _, given = spec.strip().partition(":")
    backend = get_backend(name.strip())
    declared = {option.name: option for option in backend.options}
    values: dict[str, Any] = {}
    for pair in filter(None, (part.strip() for part in given.split(","))):
        key, separator, value = pair.partition("=")
        key = key.strip()
        if not separator or not key:
            raise NlpsuiteError(f"backend '{spec}': expected NAME:KEY=VALUE,..., got {pair!r}")
        if key not in declared:
            known = ", ".join(declared) or "none"
            raise NlpsuiteError(
                f"unknown option '{key}' for backend '{backend.name}' (known options: {known})"
            )
        values[key] = declared[key].coerce(value.strip())
    if not backend.installed:
        raise NlpsuiteError(
            f"backend '{backend.name}' is not installed: {backend.install_hint()}"
        )
    return backend, {
        option.name: values.get(option.name, option.default) for option in backend.options
    }


def canonical_backend(spec: str) -> str:
    """``spec`` checked and written the one way results and caches record it."""
    return backend_label(*parse_backend(spec))


def load_model(
    auto_class: str,
    model: str,
    *,
    backend: str = "torch",
    device: str = "cpu",
    trust_remote_code: bool = False,
    quantize: str | None = None,
    allow_random_head: bool = False,
    **kwargs: Any,
) -> Any:
    """``model`` as a transformers ``auto_class`` would load it, on the inference engine that
    ``backend`` names (``torch``, ``onnx``, ``ctranslate2:compute_type=int8``; see
    :mod:`nlpsuite.backends`), cached per process. Torch options: see
    :func:`nlpsuite.models.load_model`. A checkpoint that lacks the task head of ``auto_class``
    is a :class:`~nlpsuite.models.RandomHeadError` unless ``allow_random_head``."""
    chosen, options = parse_backend(backend)
    return load_on_backend(chosen, options, auto_class, model, device=device,
                           trust_remote_code=trust_remote_code, quantize=quantize,
                           allow_random_head=allow_random_head, **kwargs)


def find_metric(name: str) -> Metric:
    """A metric by name: a registered metric (built-in or a plugin's), else a Hugging Face
    ``evaluate`` metric, given as a local metric directory (offline) or a Hub name."""
    known = plugins.registry().metrics
    if name in known:
        return known[name]
    return evaluate_metric(name, known=sorted(known))
