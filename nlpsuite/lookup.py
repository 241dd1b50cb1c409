"""Looking up what plugins registered, and running a task: the library API.

Tasks, backends and metrics by name come from the process-wide registry
(:func:`nlpsuite.plugins.registry`); :func:`load_runner` and :func:`run` turn a task and a model
into predictions, and :func:`load_model` loads a checkpoint on the inference engine a backend spec
names. Datasets by name or path are :mod:`nlpsuite.catalog`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from nlpsuite import plugins
from nlpsuite.backends import Backend, backend_label
from nlpsuite.errors import NlpsuiteError
from nlpsuite.hf_metrics import evaluate_metric
from nlpsuite.metrics import Metric
from nlpsuite.models import load_on_backend, resolve_device
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
) -> Runner:
    """Load ``model`` (a hub id or a local directory; the task's default if None) into a runner.

    ``backend``: the inference engine, e.g. ``onnx`` or ``ctranslate2:compute_type=int8``.
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
    )
    return task.load(config)


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
    **kwargs: Any,
) -> Any:
    """``model`` as a transformers ``auto_class`` would load it, on the inference engine that
    ``backend`` names (``torch``, ``onnx``, ``ctranslate2:compute_type=int8``; see
    :mod:`nlpsuite.backends`), cached per process. Torch options: see
    :func:`nlpsuite.models.load_model`."""
    chosen, options = parse_backend(backend)
    return load_on_backend(chosen, options, auto_class, model, device=device,
                           trust_remote_code=trust_remote_code, quantize=quantize, **kwargs)


def find_metric(name: str) -> Metric:
    """A metric by name: a registered metric (built-in or a plugin's), else a Hugging Face
    ``evaluate`` metric, given as a local metric directory (offline) or a Hub name."""
    known = plugins.registry().metrics
    if name in known:
        return known[name]
    return evaluate_metric(name, known=sorted(known))
