"""What an evaluation is asked to do and what it wrote: :class:`EvalRequest` and :class:`RunResult`.

The harness writes a :class:`RunResult` as ``results.json``; the leaderboard
(:mod:`nlpsuite.report`) and ``nlpsuite bench`` read it back with :meth:`RunResult.read`, so writer
and readers share one type. The schema is documented in ``docs/results-schema.md``. ``version``
changes only when a field is removed, renamed or changes meaning; files written before a field
existed still read (the field takes its documented default).

:func:`eval_command_line` is the one place that turns a request into the ``nlpsuite eval`` command
line that repeats it.
"""

from __future__ import annotations

import dataclasses
import json
import math
import platform
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlpsuite.errors import NlpsuiteError
from nlpsuite.records import decode_utf8
from nlpsuite.scales import Scale, scale_from_json

RESULTS_VERSION = 1


@dataclass(frozen=True)
class EvalRequest:
    """What to evaluate; the same request over the same folder resumes instead of starting over."""

    task: str
    dataset: str
    out: Path
    model: str | None = None
    device: str = "cpu"
    batch_size: int = 32
    options: Mapping[str, Any] = field(default_factory=dict)
    limit: int | None = None
    sample: int | None = None
    seed: int = 0
    bootstrap: int = 1000
    # Predictions reach disk this many at a time: what a kill can lose, and how much the task
    # gets to sort by length at once.
    checkpoint_every: int = 256
    # For classification tasks: dataset label -> model label, e.g. {"0": "NEGATIVE"}.
    label_map: Mapping[str, str] = field(default_factory=dict)
    # Metrics by name (registered, or Hugging Face evaluate) instead of the task's own.
    metrics: tuple[str, ...] | None = None
    # The inference engine (nlpsuite.backends), e.g. "onnx" or "ctranslate2:compute_type=int8".
    backend: str = "torch"
    # Run a checkpoint that lacks the task's head with a random one rather than refuse it.
    allow_random_head: bool = False
    # What a suite calls the model (nlpsuite bench): a label for leaderboards, not an input.
    model_name: str | None = None
    # An explanation method (nlpsuite.explaining): every example is explained too, and the
    # means of the explanations' faithfulness join the metrics.
    explain: str | None = None


def request_fields(request: EvalRequest) -> dict[str, Any]:
    """The request as plain JSON values (what results.json records under "request")."""
    fields = {f.name: getattr(request, f.name) for f in dataclasses.fields(request)}
    fields["out"] = str(request.out)
    fields["options"] = dict(request.options)
    fields["label_map"] = dict(request.label_map)
    fields["metrics"] = list(request.metrics) if request.metrics is not None else None
    plain: dict[str, Any] = json.loads(json.dumps(fields, default=str))
    return plain


def eval_command_line(request: EvalRequest) -> str:
    """The ``nlpsuite eval`` command line that makes the same run."""
    words = ["nlpsuite", "eval", request.task, "--dataset", request.dataset]
    if request.model is not None:
        words += ["--model", request.model]
    words += ["--out", str(request.out)]
    defaults = EvalRequest(task=request.task, dataset=request.dataset, out=request.out)
    for flag, name in (("--device", "device"), ("--batch-size", "batch_size"),
                       ("--limit", "limit"), ("--sample", "sample"), ("--seed", "seed"),
                       ("--bootstrap", "bootstrap"), ("--checkpoint-every", "checkpoint_every")):
        value = getattr(request, name)
        if value != getattr(defaults, name):
            words += [flag, str(value)]
    if request.backend != defaults.backend:
        words += ["--backend", request.backend]
    for key, value in request.options.items():
        if value is not None:
            text = str(value).lower() if isinstance(value, bool) else str(value)
            words += ["--option", f"{key}={text}"]
    if request.label_map:
        words += ["--label-map", ",".join(f"{k}={v}" for k, v in request.label_map.items())]
    for metric in request.metrics or ():
        words += ["--metric", metric]
    if request.allow_random_head:
        words += ["--allow-random-head"]
    if request.explain is not None:
        words += ["--explain", request.explain]
    return shlex.join(words)


def package_versions(backend: str = "torch") -> dict[str, str]:
    """Python's and the deciding packages' versions (the backend's engine included): what a run
    records so that it can be repeated."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    engines = {"onnx": ("onnxruntime", "onnx"), "ctranslate2": ("ctranslate2",)}
    for package in ("nlpsuite", "torch", "transformers", "tokenizers",
                    *engines.get(backend.partition(":")[0], ())):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    return found


@dataclass(frozen=True)
class MetricScore:
    """One metric of a run: its value and 95% bootstrap interval (None where undefined)."""

    value: float | None
    ci95: tuple[float | None, float | None] = (None, None)
    higher_is_better: bool | None = None
    description: str | None = None
    # The reference implementation's own signature (sacrebleu's), where it has one.
    signature: str | None = None
    # (low, high) of the metric's values; None where unknown (files from before scales).
    scale: Scale | None = None

    def to_json(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"value": self.value, "ci95": list(self.ci95),
                                  "higher_is_better": self.higher_is_better,
                                  "description": self.description,
                                  "scale": list(self.scale) if self.scale else None}
        if self.signature is not None:
            fields["signature"] = self.signature
        return fields


@dataclass(frozen=True)
class ModelInfo:
    """The model as the run named it, and what identifies and sizes its weights."""

    id: str
    weights_sha256: str | None = None
    weights_bytes: int | None = None
    parameters: int | None = None


@dataclass(frozen=True)
class DatasetInfo:
    """The dataset as the run named it, its content fingerprint and how many examples ran."""

    name: str
    sha256: str | None = None
    bytes: int | None = None
    # {"path", "sha256", "bytes"} per file, in the order the loader reads them.
    files: tuple[Mapping[str, Any], ...] = ()
    hashed: str | None = None  # "files", or "examples" for a dataset that names no files
    examples: int | None = None


@dataclass(frozen=True)
class PromptInfo:
    """The prompt template a run on a causal language model rendered (nlpsuite.prompting)."""

    template: str  # a shipped template's name, or the file as given
    text: str  # the template file's exact text
    shots: int = 0  # how many of its examples went before each input


@dataclass(frozen=True)
class RunResult:
    """One evaluation run: what ``results.json`` holds."""

    task: str
    model: ModelInfo
    dataset: DatasetInfo
    metrics: Mapping[str, MetricScore]
    options: Mapping[str, Any] = field(default_factory=dict)
    limit: int | None = None
    sample: int | None = None
    seed: int | None = None
    bootstrap_resamples: int | None = None
    batch_size: int | None = None
    device: str | None = None
    backend: str = "torch"  # runs written before backends existed ran on torch
    versions: Mapping[str, str] = field(default_factory=dict)
    started: str | None = None
    finished: str | None = None
    examples_per_second: float | None = None
    resumed_examples: int | None = None
    # The speed is timed_examples over their time, after an untimed warm-up batch.
    warmup_examples: int | None = None
    timed_examples: int | None = None
    # Classification only: each dataset label and the model label the metrics compared with.
    label_mapping: Mapping[str, str] | None = None
    # Runs on a causal language model: the template the inputs were rendered through.
    prompt: PromptInfo | None = None
    request: Mapping[str, Any] | None = None  # request_fields() of the request that made it
    command: str | None = None
    version: int = RESULTS_VERSION

    def value(self, metric: str) -> float | None:
        score = self.metrics.get(metric)
        return score.value if score is not None else None

    def ci(self, metric: str) -> tuple[float | None, float | None]:
        score = self.metrics.get(metric)
        return score.ci95 if score is not None else (None, None)

    def to_json(self) -> dict[str, Any]:
        """The results.json document (keys in the order the harness has always written)."""
        document: dict[str, Any] = {
            "version": self.version,
            "task": self.task,
            "model": dataclasses.asdict(self.model),
            "dataset": {**dataclasses.asdict(self.dataset), "files": list(self.dataset.files)},
            "metrics": {name: score.to_json() for name, score in self.metrics.items()},
            "options": dict(self.options),
            "limit": self.limit, "sample": self.sample, "seed": self.seed,
            "bootstrap_resamples": self.bootstrap_resamples,
            "batch_size": self.batch_size,
            "device": self.device,
            "backend": self.backend,
            "versions": dict(self.versions),
            "started": self.started, "finished": self.finished,
            "examples_per_second": self.examples_per_second,
            "resumed_examples": self.resumed_examples,
            "warmup_examples": self.warmup_examples,
            "timed_examples": self.timed_examples,
        }
        if self.label_mapping is not None:
            document["label_mapping"] = dict(self.label_mapping)
        if self.prompt is not None:
            document["prompt"] = dataclasses.asdict(self.prompt)
        document["request"] = dict(self.request) if self.request is not None else None
        document["command"] = self.command
        return document

    @classmethod
    def from_json(cls, document: Any, where: str) -> RunResult:
        """A results.json document read back; ``where`` names it in errors."""
        if not isinstance(document, dict):
            raise NlpsuiteError(f"{where}: expected a JSON object, got {type(document).__name__}")
        if not isinstance(document.get("task"), str):
            raise NlpsuiteError(f"{where}: missing field 'task'")
        return cls(
            task=document["task"],
            model=_model(document.get("model")),
            dataset=_dataset(document.get("dataset"), where),
            metrics=_metrics(document.get("metrics"), where),
            options=_mapping(document.get("options")),
            limit=document.get("limit"),
            sample=document.get("sample"),
            seed=document.get("seed"),
            bootstrap_resamples=document.get("bootstrap_resamples"),
            batch_size=document.get("batch_size"),
            device=document.get("device"),
            backend=str(document.get("backend") or "torch"),
            versions={str(k): str(v) for k, v in _mapping(document.get("versions")).items()},
            started=document.get("started"),
            finished=document.get("finished"),
            examples_per_second=_number(document.get("examples_per_second")),
            resumed_examples=document.get("resumed_examples"),
            warmup_examples=_integer(document.get("warmup_examples")),
            timed_examples=_integer(document.get("timed_examples")),
            label_mapping=(_mapping(document["label_mapping"])
                           if isinstance(document.get("label_mapping"), dict) else None),
            prompt=_prompt(document.get("prompt")),
            request=document["request"] if isinstance(document.get("request"), dict) else None,
            command=str(document["command"]) if document.get("command") else None,
            version=_integer(document.get("version")) or RESULTS_VERSION,
        )

    @classmethod
    def read(cls, file: Path, shown: str | None = None) -> RunResult:
        """``file`` read and checked; errors are one line naming ``shown`` (default: the path)."""
        where = shown or str(file)
        try:
            document = json.loads(decode_utf8(file.read_bytes(), where))
        except json.JSONDecodeError as error:
            raise NlpsuiteError(f"{where}:{error.lineno}: not valid JSON ({error.msg})") from None
        except OSError as error:
            raise NlpsuiteError(f"{where}: cannot read ({error.strerror})") from None
        return cls.from_json(document, where)

    def reproducing_request(self, out: Path) -> EvalRequest:
        """The request recorded with this run, or one rebuilt from its fields (older files)."""
        recorded = self.request or {}
        fields = {f.name for f in dataclasses.fields(EvalRequest)}
        if recorded and set(recorded) <= fields and {"task", "dataset"} <= set(recorded):
            given = {**recorded, "out": out}
            given["metrics"] = tuple(given["metrics"]) if given.get("metrics") else None
            return EvalRequest(**given)
        chosen: dict[str, Any] = {
            "limit": self.limit, "sample": self.sample, "seed": self.seed,
            "bootstrap": self.bootstrap_resamples, "batch_size": self.batch_size,
            "device": self.device,
        }
        return EvalRequest(
            task=self.task, dataset=self.dataset.name, out=out,
            model=self.model.id if self.model.id != "default" else None,
            options={k: v for k, v in self.options.items() if v is not None},
            backend=self.backend,
            **{k: v for k, v in chosen.items() if v is not None},
        )


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _integer(value: Any) -> int | None:
    # json.loads reads NaN and Infinity, which int() refuses: an unreadable count is no count.
    number = _number(value)
    return int(number) if number is not None and math.isfinite(number) else None


def _mapping(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, dict) else {}


def _model(value: Any) -> ModelInfo:
    model = _mapping(value)
    sha = model.get("weights_sha256")
    return ModelInfo(
        id=str(model.get("id") or "default"),
        weights_sha256=str(sha) if sha else None,
        weights_bytes=_integer(model.get("weights_bytes")),
        parameters=_integer(model.get("parameters")),
    )


def _prompt(value: Any) -> PromptInfo | None:
    if not isinstance(value, dict) or not isinstance(value.get("text"), str):
        return None
    return PromptInfo(template=str(value.get("template") or ""), text=value["text"],
                      shots=_integer(value.get("shots")) or 0)


def _dataset(value: Any, where: str) -> DatasetInfo:
    if not isinstance(value, dict) or not isinstance(value.get("name"), str):
        raise NlpsuiteError(f"{where}: missing field 'dataset.name'")
    files = value.get("files")
    return DatasetInfo(
        name=value["name"],
        sha256=value.get("sha256"),
        bytes=_integer(value.get("bytes")),
        files=tuple(f for f in files if isinstance(f, dict)) if isinstance(files, list) else (),
        hashed=value.get("hashed"),
        examples=_integer(value.get("examples")),
    )


def _metrics(value: Any, where: str) -> dict[str, MetricScore]:
    if not isinstance(value, dict) or not value:
        raise NlpsuiteError(f"{where}: missing field 'metrics'")
    metrics = {}
    for name, score in value.items():
        if not isinstance(score, dict) or not isinstance(score.get("value"), int | float | None):
            raise NlpsuiteError(f"{where}: metric '{name}' has no value")
        ci = score.get("ci95")
        low, high = ci if isinstance(ci, list | tuple) and len(ci) == 2 else (None, None)
        higher = score.get("higher_is_better")
        metrics[str(name)] = MetricScore(
            value=_number(score.get("value")),
            ci95=(_number(low), _number(high)),
            higher_is_better=higher if isinstance(higher, bool) else None,
            description=score.get("description"),
            signature=score.get("signature"),
            scale=scale_from_json(score.get("scale")),
        )
    return metrics
