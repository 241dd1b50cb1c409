"""``nlpsuite distill sentiment``: a smaller classifier trained on a fine-tuned teacher's logits.

The student is the teacher with only some of its transformer layers (embeddings, the kept
layers and the classification head copied, as DistilBERT was initialised from BERT), or any
smaller checkpoint given with ``--student``. It learns from the teacher's softened probabilities
and from the hard labels together::

    loss = alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T))
           + (1 - alpha) * cross_entropy(student, labels)

(T^2 keeps the soft term's gradients on the scale of the hard one's as T grows, as in Hinton
et al. 2015). The teacher's logits are computed once, before training, and travel with the
training features, so a step costs one student forward and backward pass and nothing more.

Training itself is :func:`nlpsuite.training.train`: the same loop, checkpoints, ``--resume``,
validation, log and model card; this module only builds its setup and adds the teacher/student
comparison to the card.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpsuite.batching import encode_truncated, map_sorted, pad_batch
from nlpsuite.checkpoints import model_size
from nlpsuite.errors import NlpsuiteError
from nlpsuite.harness import map_labels
from nlpsuite.lookup import get_task, list_tasks
from nlpsuite.models import load_config, load_tokenizer
from nlpsuite.records import check_writable, write_atomic
from nlpsuite.tasks import RunConfig
from nlpsuite.training import (
    Progress,
    TrainConfig,
    TrainingSetup,
    TrainResult,
    load_base_model,
    load_examples,
    train,
)
from nlpsuite.training import command_line as train_line

TEACHER_LOGITS = "teacher_logits"


@dataclass(frozen=True)
class DistillConfig:
    """``train.model`` is the teacher (a fine-tuned classifier); its tokenizer reads the data."""

    train: TrainConfig
    # A smaller checkpoint to train as the student; None: the teacher with fewer layers.
    student: str | None = None
    # The teacher's layers the student keeps, e.g. (0, 2, 4); None: ``student_layers`` of them,
    # evenly spaced from the first.
    keep_layers: tuple[int, ...] | None = None
    # None: half the teacher's layers (rounded up), as DistilBERT.
    student_layers: int | None = None
    temperature: float = 2.0
    # Weight of the soft (teacher) term; 1 - alpha goes to the hard labels.
    alpha: float = 0.5


@dataclass(frozen=True)
class ModelFigures:
    """One model of the teacher/student comparison, measured in the same process."""

    role: str
    model: str
    metrics: Mapping[str, float]
    examples_per_second: float
    parameters: int | None
    weights_bytes: int | None
    layers: int | None


@dataclass(frozen=True)
class DistillResult:
    train: TrainResult
    keep_layers: tuple[int, ...] | None
    teacher: ModelFigures
    student: ModelFigures


def spread_layers(total: int, count: int) -> tuple[int, ...]:
    """``count`` of ``total`` layers, evenly spaced from the first: 3 of 6 -> (0, 2, 4)."""
    return tuple(math.floor(i * total / count) for i in range(count))


def layer_list(model: Any) -> tuple[str, Any]:
    """The name and ``nn.ModuleList`` of the model's transformer layers (``bert.encoder.layer``,
    ``distilbert.transformer.layer``, ...): the first list as long as the config says."""
    import torch

    total = getattr(model.config, "num_hidden_layers", None)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) == total:
            return name, module
    raise NlpsuiteError(
        f"cannot find the {total} transformer layers of {type(model).__name__}; "
        f"pass a smaller checkpoint with --student instead"
    )


def student_from_teacher(teacher: Any, keep: Sequence[int]) -> Any:
    """A copy of ``teacher`` holding only the layers ``keep`` (in that order): embeddings, the
    kept layers and the head are the teacher's weights; the config says the new depth."""
    import copy

    import torch

    total = teacher.config.num_hidden_layers
    check_layers(keep, total)
    student = copy.deepcopy(teacher)
    name, layers = layer_list(student)
    parent_name, _, attribute = name.rpartition(".")
    parent = student.get_submodule(parent_name) if parent_name else student
    setattr(parent, attribute, torch.nn.ModuleList([layers[i] for i in keep]))
    student.config.num_hidden_layers = len(keep)
    return student


def check_layers(keep: Sequence[int], total: int) -> None:
    if not keep:
        raise NlpsuiteError("--keep-layers: no layers given")
    for index in keep:
        if not 0 <= index < total:
            raise NlpsuiteError(
                f"--keep-layers: layer {index} does not exist (the teacher has {total} layers, "
                f"0 to {total - 1})"
            )
    if len(set(keep)) != len(keep):
        raise NlpsuiteError(f"--keep-layers: a layer is given twice ({_layers(keep)})")
    if len(keep) >= total:
        raise NlpsuiteError(
            f"--keep-layers: the student keeps {len(keep)} of the teacher's {total} layers; "
            f"keep fewer"
        )


def distillation_loss(temperature: float, alpha: float) -> Callable[[Any, dict[str, Any]], Any]:
    """The training loop's loss hook: soft (teacher) and hard (label) terms, weighted."""

    def loss(model: Any, batch: dict[str, Any]) -> Any:
        import torch.nn.functional as functional

        teacher = batch.pop(TEACHER_LOGITS)
        labels = batch.pop("labels")
        logits = model(**batch).logits
        soft = functional.kl_div(
            functional.log_softmax(logits / temperature, dim=-1),
            functional.log_softmax(teacher / temperature, dim=-1),
            reduction="batchmean", log_target=True,
        ) * temperature**2
        hard = functional.cross_entropy(logits, labels)
        return alpha * soft + (1 - alpha) * hard

    return loss


def teacher_logits(
    model: Any, tokenizer: Any, texts: Sequence[str], max_length: int, batch_size: int = 64
) -> list[list[float]]:
    """The teacher's logits for every text, computed once in length-sorted batches."""
    import torch


    rows, _ = encode_truncated(tokenizer, texts, max_length)
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids")
             if n in tokenizer.model_input_names]
    model.eval()

    def predict(batch: list[dict[str, Any]]) -> list[list[float]]:
        inputs = pad_batch(tokenizer, batch, names)
        with torch.inference_mode():
            logits: list[list[float]] = model(**inputs).logits.float().tolist()
        return logits

    return map_sorted(rows, predict, batch_size, lambda row: len(row["input_ids"]))


def distill(
    config: DistillConfig, progress: Callable[[Progress], None] | None = None
) -> DistillResult:
    """Train the student into ``config.train.out``, then compare it with the teacher."""

    trained = config.train
    if not get_task(trained.task).distillable:
        distillable = ", ".join(task.name for task in list_tasks() if task.distillable)
        raise NlpsuiteError(
            f"task '{trained.task}' cannot be distilled (distillable: {distillable or 'none'})"
        )
    _check(config)
    check_writable(trained.out, "output folder", folder=True)  # before the teacher loads
    keep: tuple[int, ...] | None = None
    if config.student is None:
        total = load_config(trained.model).num_hidden_layers
        keep = config.keep_layers or spread_layers(
            total, config.student_layers or math.ceil(total / 2)
        )
        check_layers(keep, total)
    identity = {"student": config.student, "keep_layers": keep,
                "temperature": config.temperature, "alpha": config.alpha}
    result = train(trained, progress, recipe=_recipe(config, keep), recipe_identity=identity)
    teacher, student = compare(trained, config.student, keep)
    _add_to_card(result.out / "README.md", teacher, student)
    return DistillResult(result, keep, teacher, student)


def _check(config: DistillConfig) -> None:
    if config.student is not None and (config.keep_layers or config.student_layers):
        raise NlpsuiteError("give --student, or --keep-layers/--student-layers, not both")
    if config.keep_layers and config.student_layers:
        raise NlpsuiteError("give --keep-layers or --student-layers, not both")
    if config.student_layers is not None and config.student_layers < 1:
        raise NlpsuiteError(f"--student-layers must be at least 1, got {config.student_layers}")
    if not (config.temperature > 0 and math.isfinite(config.temperature)):
        raise NlpsuiteError(f"--temperature must be a positive number, got {config.temperature}")
    if not 0 <= config.alpha <= 1:
        raise NlpsuiteError(f"--alpha is a weight in [0, 1], got {config.alpha}")


def _recipe(
    config: DistillConfig, keep: tuple[int, ...] | None
) -> Callable[[TrainConfig], TrainingSetup]:
    def build(trained: TrainConfig) -> TrainingSetup:

        task = get_task(trained.task)
        assert task.train is not None
        teacher_config = load_config(trained.model)
        if config.student is None:
            # The task's own setup with the teacher as base: its features and labels, and a
            # fresh copy of the teacher to cut down.
            setup = task.train(trained)
            teacher = setup.model
            _same_labels(teacher_config, teacher.config, trained)
            assert keep is not None
            model = student_from_teacher(teacher, keep)
        else:
            setup = task.train(dataclasses.replace(trained, model=config.student))
            model = setup.model
            _same_labels(teacher_config, model.config, trained)
            teacher = load_base_model("AutoModelForSequenceClassification", trained.model)
        texts = [e.input["text"] for e in load_examples(trained.train, trained.task,
                                                        limit=trained.limit)]
        longest = max(len(feature["input_ids"]) for feature in setup.features)
        logits = teacher_logits(teacher, load_tokenizer(trained.model), texts, longest)
        del teacher
        # The student's label order may differ from the teacher's (a --student checkpoint).
        order = [teacher_config.label2id[model.config.id2label[i]]
                 for i in range(model.config.num_labels)]
        features = [
            {**feature, TEACHER_LOGITS: [row[j] for j in order]}
            for feature, row in zip(setup.features, logits, strict=True)
        ]
        layers = (f"{len(keep)} of the teacher's {teacher_config.num_hidden_layers} layers "
                  f"({_layers(keep)})" if keep is not None else f"from `{config.student}`")
        return dataclasses.replace(
            setup, model=model, features=features,
            loss=distillation_loss(config.temperature, config.alpha),
            card={**setup.card, "teacher": f"`{trained.model}`", "student layers": layers,
                  "distillation": f"temperature {config.temperature}, alpha {config.alpha} "
                                  f"(alpha * T^2 * KL to the teacher + (1 - alpha) * cross "
                                  f"entropy to the labels)"},
            made_with=(f"distilled from `{trained.model}` with `nlpsuite distill` (student: "
                       f"{layers})"),
            command=command_line(config, keep),
        )

    return build


def _same_labels(teacher: Any, student: Any, trained: TrainConfig) -> None:
    wanted = sorted(teacher.id2label.values())
    found = sorted(student.id2label.values())
    if wanted != found:
        raise NlpsuiteError(
            f"{trained.train}: the training labels ({', '.join(found)}) are not the teacher's "
            f"({', '.join(wanted)}); distill on data labelled as the teacher was trained"
        )


def compare(
    trained: TrainConfig, student: str | None, keep: tuple[int, ...] | None,
    repeats: int = 2,
) -> tuple[ModelFigures, ModelFigures]:
    """Teacher and student side by side, in this process: validation metrics, examples per
    second (best of ``repeats`` passes, taking turns, after a warm-up) and weight size."""

    task = get_task(trained.task)
    options = task.parse_options(trained.options)
    if trained.validation is not None:
        examples = load_examples(trained.validation, trained.task)
    else:
        examples = load_examples(trained.train, trained.task, limit=256)
    roles = {"teacher": trained.model, "student": str(Path(trained.out).resolve())}
    figures = {}
    for role, model in roles.items():
        scored, speed = measure(task, model, examples, options, trained, repeats,
                                score=trained.validation is not None)
        size = model_size(model)
        figures[role] = ModelFigures(
            role, model, scored, speed, size["parameters"], size["weights_bytes"],
            getattr(load_config(model), "num_hidden_layers", None),
        )
    return figures["teacher"], figures["student"]


def measure(
    task: Any, model: str, examples: Sequence[Any], options: Mapping[str, Any],
    trained: TrainConfig, repeats: int, *, score: bool = True,
) -> tuple[dict[str, float], float]:
    """The task's metrics on ``examples`` and the best examples/s of ``repeats`` passes."""

    runner = task.load(RunConfig(model=model, device=trained.device, batch_size=32,
                                 options=options))
    inputs = [task.make_input(e.input, f"example {e.id}") for e in examples]
    runner(inputs[:32])  # warm-up: first-call allocations are not the model's speed
    best = 0.0
    outputs: list[Any] = []
    for _ in range(repeats):
        started = time.perf_counter()
        outputs = runner(inputs)
        best = max(best, len(inputs) / max(time.perf_counter() - started, 1e-9))
    if not score:
        return {}, best

    predictions = [task.prediction(output) for output in outputs]
    config = load_config(model)
    labels = [config.id2label[i] for i in range(config.num_labels)]
    references = map_labels([e.reference for e in examples], labels, {})
    return {m.name: float(m.compute(predictions, references)) for m in task.metrics}, best


def _add_to_card(card: Path, teacher: ModelFigures, student: ModelFigures) -> None:

    text = card.read_text(encoding="utf-8")
    names = list(teacher.metrics)
    rows = [
        "## Teacher and student", "",
        "Measured in the same process after training (examples per second: the task's runner, "
        "batch size 32, best of 2 passes).", "",
        "| | layers | " + " | ".join(names) + " | examples/s | parameters | weights |",
        "|---|---:|" + "---:|" * len(names) + "---:|---:|---:|",
    ]
    for figures in (teacher, student):
        rows.append(
            f"| {figures.role} `{Path(figures.model).name}` | {figures.layers or '?'} | "
            + " | ".join(f"{figures.metrics[name]:.4f}" for name in names)
            + f" | {figures.examples_per_second:.1f} | "
            f"{f'{figures.parameters:,}' if figures.parameters else '?'} | "
            f"{(figures.weights_bytes or 0) / 2**20:.1f} MiB |"
        )
    rows += ["", f"The student runs {student.examples_per_second / teacher.examples_per_second:.2f}"
                 "x as many examples per second as the teacher.", "", ""]
    head, marker, tail = text.partition("## Versions")
    write_atomic(card, head + "\n".join(rows) + marker + tail if marker else text + "\n".join(rows))


def command_line(config: DistillConfig, keep: tuple[int, ...] | None) -> str:
    """The ``nlpsuite distill`` command line that repeats ``config``."""

    words = shlex.split(train_line(config.train))
    words[1] = "distill"
    words[words.index("--model")] = "--teacher"
    if config.student is not None:
        words += ["--student", config.student]
    elif keep is not None:
        words += ["--keep-layers", _layers(keep)]
    words += ["--temperature", str(config.temperature), "--alpha", str(config.alpha)]
    return shlex.join(words)


def _layers(keep: Sequence[int]) -> str:
    return ",".join(str(i) for i in keep)
