"""Fine-tuning: ``nlpsuite train TASK``, one plain torch loop for every trainable task.

A task opts in with ``Task.train``: a function from a :class:`TrainConfig` to a
:class:`TrainingSetup` (the model to fine-tune, its tokenizer, the training features and the
validation examples). Everything else is shared and lives here: seeding, length-grouped shuffled
batches, AdamW with linear warmup and decay, checkpoints and ``--resume``, validation each epoch
with the task's own runner and metrics, ``training_log.jsonl``, the saved checkpoint and its model
card (``README.md``).

Reproducibility on CPU: batch order comes from a generator seeded with (seed, epoch), and the
global torch RNG (dropout) is seeded once and saved in every checkpoint with the model, optimizer
and schedule, so a resumed run takes exactly the steps an uninterrupted one would and ends with
the same weights, bit for bit.

torch and transformers are imported inside functions: plugins import this module to declare
their training, and listing plugins must stay cheap.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpsuite.backends import quiet_transformers
from nlpsuite.batching import pad_batch
from nlpsuite.catalog import dataset_fingerprint, load_dataset
from nlpsuite.checkpoints import resolve_model
from nlpsuite.datasets import Example
from nlpsuite.errors import NlpsuiteError
from nlpsuite.harness import map_labels
from nlpsuite.lookup import get_task, list_tasks
from nlpsuite.models import forget_model, load_or_explain
from nlpsuite.quantized import quantization_of
from nlpsuite.records import check_writable, read_json, write_atomic
from nlpsuite.results import package_versions
from nlpsuite.tasks import RunConfig, TrainConfig, TrainingSetup

CHECKPOINT = "checkpoint"
LOG = "training_log.jsonl"
# Batches are sorted by length within groups of this many batches, then the batches shuffled:
# much less padding than a plain shuffle, and still a different mix every epoch.
LENGTH_GROUP = 50


@dataclass(frozen=True)
class Progress:
    """Reported after every optimizer step."""

    step: int
    total_steps: int
    epoch: int
    epochs: int
    loss: float
    examples_per_second: float
    seconds_left: float


@dataclass(frozen=True)
class TrainResult:
    out: Path
    steps: int
    train_examples: int
    train_features: int
    # The last epoch's validation metrics ({} without validation data).
    metrics: Mapping[str, float]
    seconds: float
    examples_per_second: float
    resumed_from_step: int = 0


def train(
    config: TrainConfig,
    progress: Callable[[Progress], None] | None = None,
    *,
    recipe: Callable[[TrainConfig], TrainingSetup] | None = None,
    recipe_identity: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Fine-tune ``config.model`` on ``config.train`` for ``config.task`` and save it to
    ``config.out``; with ``resume``, continue the interrupted run there.

    ``recipe`` builds the setup instead of the task's own ``train`` (``nlpsuite distill``);
    ``recipe_identity`` is what else must match for ``--resume`` (its settings)."""

    task = get_task(config.task)
    if task.train is None and recipe is None:
        trainable = ", ".join(t.name for t in list_tasks() if t.train is not None) or "none"
        raise NlpsuiteError(
            f"task '{task.name}' cannot be trained (it declares no training recipe; "
            f"trainable tasks: {trainable})"
        )
    _check(config)
    check_writable(config.out, "output folder", folder=True)
    for source in (config.train, config.validation):
        if source is not None:
            _not_empty(source)
    out = Path(config.out)
    identity = _identity(config)
    if recipe_identity:
        identity["recipe"] = json.loads(json.dumps(dict(recipe_identity), default=str))
    state = _previous_state(out, identity) if config.resume else None
    if not config.resume:
        _fresh(out)

    import torch

    started = time.perf_counter()
    torch.manual_seed(config.seed)  # a new head's initial weights, then dropout
    build = recipe if recipe is not None else task.train
    assert build is not None
    setup = build(config)
    if not setup.features:
        raise NlpsuiteError(f"{config.train}: no training examples")
    model = setup.model.to(config.device)
    loop = _Loop(config, model, len(setup.features), setup.loss)
    if state is not None:
        loop.restore(state)
        _trim_log(out, loop.step)
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / CHECKPOINT / "run.json", identity)
        (out / LOG).unlink(missing_ok=True)

    collate = _collator(setup.tokenizer)
    lengths = [len(feature["input_ids"]) for feature in setup.features]
    metrics: dict[str, float] = {}
    resumed_from = loop.step
    # Rows per second count training steps only, not validation or checkpoint writes.
    seen, busy = 0, 0.0
    with (out / LOG).open("a", encoding="utf-8") as log:
        for epoch in range(loop.epoch, config.epochs):
            batches = length_grouped_batches(lengths, config.batch_size, config.seed, epoch)
            for index in range(loop.batch, len(batches)):
                clock = time.perf_counter()
                rows = [setup.features[i] for i in batches[index]]
                loss, rate = loop.step_on(collate(rows))
                seen += len(rows)
                busy += time.perf_counter() - clock
                done = round(epoch + (index + 1) / len(batches), 4)
                _log_line(log, {"step": loop.step, "epoch": done, "loss": loss,
                                "learning_rate": rate})
                every = config.checkpoint_every
                if index + 1 < len(batches) and every and loop.step % every == 0:
                    loop.save(out, epoch, index + 1)
                if progress is not None:
                    speed = seen / max(busy, 1e-9)
                    left = (loop.total - loop.step) * config.batch_size / max(speed, 1e-9)
                    progress(Progress(loop.step, loop.total, epoch + 1, config.epochs, loss,
                                      speed, left))
            loop.batch = 0
            if setup.validation:
                metrics = _validate(task, setup, config, model, out)
                _log_line(log, {"step": loop.step, "epoch": epoch + 1, "validation": metrics})
            loop.save(out, epoch + 1, 0)

    _save_model(model, setup.tokenizer, out)
    seconds = time.perf_counter() - started
    result = TrainResult(
        out=out, steps=loop.step, train_examples=setup.examples,
        train_features=len(setup.features), metrics=metrics, seconds=seconds,
        examples_per_second=seen / max(busy, 1e-9),
        resumed_from_step=resumed_from,
    )

    write_atomic(out / "README.md", model_card(config, setup, result, identity))
    shutil.rmtree(out / CHECKPOINT, ignore_errors=True)
    return result


# Checks and the run's identity.


def _check(config: TrainConfig) -> None:
    for name, value, low in (("epochs", config.epochs, 1), ("batch-size", config.batch_size, 1),
                             ("checkpoint-every", config.checkpoint_every, 0)):
        if value < low:
            raise NlpsuiteError(f"--{name} must be at least {low}, got {value}")
    if config.max_length is not None and config.max_length < 8:
        raise NlpsuiteError(f"--max-length must be at least 8, got {config.max_length}")
    if config.limit is not None and config.limit < 1:
        raise NlpsuiteError(f"--limit must be at least 1, got {config.limit}")
    if not (config.lr > 0 and math.isfinite(config.lr)):
        raise NlpsuiteError(f"--lr must be a positive number, got {config.lr}")
    if not 0 <= config.warmup < 1:
        raise NlpsuiteError(f"--warmup is a fraction of the steps, in [0, 1); got {config.warmup}")
    if not (config.weight_decay >= 0 and math.isfinite(config.weight_decay)):
        raise NlpsuiteError(f"--weight-decay must be 0 or more, got {config.weight_decay}")


# What must match for --resume to continue a run rather than mix two.
_NOT_IDENTITY = {"out", "resume", "device", "checkpoint_every"}


def _identity(config: TrainConfig) -> dict[str, Any]:

    fields = {
        f.name: getattr(config, f.name)
        for f in dataclasses.fields(config)
        if f.name not in _NOT_IDENTITY
    }
    fields["options"] = dict(config.options)
    data = {"train": dataset_fingerprint(config.train, config.task)["sha256"]}
    if config.validation is not None:
        data["validation"] = dataset_fingerprint(config.validation, config.task)["sha256"]
    return {**json.loads(json.dumps(fields, default=str)), "data_sha256": data}


def _fresh(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        hint = (
            "pass --resume to continue its interrupted run"
            if (out / CHECKPOINT / "run.json").is_file()
            else "choose another --out"
        )
        raise NlpsuiteError(f"output folder {out} is not empty; {hint}")


def _previous_state(out: Path, identity: Mapping[str, Any]) -> dict[str, Any] | None:
    """The interrupted run's last checkpoint; None if it was stopped before its first one."""

    if not (out / CHECKPOINT / "run.json").is_file():
        finished = (out / "README.md").is_file() and (out / "config.json").is_file()
        raise NlpsuiteError(
            f"{out}: nothing to resume, the training run there finished"
            if finished
            else f"{out}: no interrupted training run to resume"
        )
    before = read_json(out / CHECKPOINT / "run.json", "run description")
    for key, value in identity.items():
        if before.get(key) != value:
            flag = "data" if key == "data_sha256" else f"--{key.replace('_', '-')}"
            raise NlpsuiteError(
                f"{out}: {flag} differs from the interrupted run ({before.get(key)!r}, now "
                f"{value!r}); resume with the same arguments or choose another --out"
            )
    state_file = out / CHECKPOINT / "state.pt"
    if not state_file.is_file():
        return None
    import torch

    try:
        loaded: dict[str, Any] = torch.load(state_file, weights_only=True)
    except Exception as error:
        raise NlpsuiteError(f"{state_file}: unreadable checkpoint ({error})") from None
    return loaded


# The loop's state: model, optimizer, schedule, RNG and position, all saved together.


class _Loop:
    def __init__(self, config: TrainConfig, model: Any, features: int,
                 loss: Callable[[Any, dict[str, Any]], Any] | None = None) -> None:
        import torch

        self.model = model
        self.loss = loss
        self.step = 0
        self.epoch = 0
        self.batch = 0
        per_epoch = math.ceil(features / config.batch_size)
        self.total = per_epoch * config.epochs
        warmup = round(self.total * config.warmup)
        # The usual recipe: no weight decay on biases and normalisation weights.
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        groups = [
            {"params": [p for _, p in named if p.ndim >= 2], "weight_decay": config.weight_decay},
            {"params": [p for _, p in named if p.ndim < 2], "weight_decay": 0.0},
        ]
        self.optimizer = torch.optim.AdamW(groups, lr=config.lr)
        total = self.total

        def schedule(step: int) -> float:
            if step < warmup:
                return (step + 1) / (warmup + 1)
            return max(0.0, (total - step) / max(1, total - warmup))

        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, schedule)
        model.train()

    def step_on(self, batch: Mapping[str, Any]) -> tuple[float, float]:
        """One optimizer step; returns the loss and the learning rate it used."""
        import torch

        rate = float(self.scheduler.get_last_lr()[0])
        batch = dict(batch)
        loss = self.model(**batch).loss if self.loss is None else self.loss(self.model, batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return float(loss.detach()), rate

    def save(self, out: Path, epoch: int, batch: int) -> None:
        import torch

        state = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": torch.get_rng_state(),
            "step": self.step,
            "epoch": epoch,
            "batch": batch,
        }
        folder = out / CHECKPOINT
        folder.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=folder, prefix=".state.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                torch.save(state, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, folder / "state.pt")
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def restore(self, state: Mapping[str, Any]) -> None:
        import torch

        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        self.step, self.epoch, self.batch = state["step"], state["epoch"], state["batch"]


def length_grouped_batches(
    lengths: Sequence[int], batch_size: int, seed: int, epoch: int
) -> list[list[int]]:
    """Indices in batches for one epoch: shuffled, sorted by length within groups of
    ``LENGTH_GROUP`` batches, batch order shuffled again. The same (seed, epoch) always gives
    the same batches, which is what lets a resumed run skip exactly the batches it has done."""
    import torch

    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    group = batch_size * LENGTH_GROUP
    batches = []
    for begin in range(0, len(order), group):
        chunk = sorted(order[begin : begin + group], key=lambda i: -lengths[i])
        batches += [chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size)]
    shuffled = torch.randperm(len(batches), generator=generator).tolist()
    return [batches[i] for i in shuffled]


def _collator(tokenizer: Any) -> Callable[[Sequence[Mapping[str, Any]]], dict[str, Any]]:
    """Pads the model inputs (as the runners do) and stacks the targets: integers (labels,
    positions) as long, anything else (a teacher's logits) as float."""
    import torch


    inputs = ("input_ids", "attention_mask", "token_type_ids")

    def collate(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        names = [n for n in inputs if n in rows[0] or n == "attention_mask"]
        batch = dict(pad_batch(tokenizer, [dict(row) for row in rows], names))
        for name in rows[0]:
            if name not in inputs:
                kind = torch.long if isinstance(rows[0][name], int) else torch.float
                batch[name] = torch.tensor([row[name] for row in rows], dtype=kind)
        return batch

    return collate


# Validation: the task's own runner on the checkpoint as saved, scored by the task's metrics.


def _validate(
    task: Any, setup: TrainingSetup, config: TrainConfig, model: Any, out: Path
) -> dict[str, float]:
    import torch


    rng = torch.get_rng_state()  # loading and running a model must not shift dropout's stream
    _save_model(model, setup.tokenizer, out)
    where = str(out.resolve())
    try:
        runner = task.load(RunConfig(
            model=where, device=config.device, batch_size=max(config.batch_size, 32),
            options=task.parse_options(setup.options),
            trust_remote_code=config.trust_remote_code,
        ))
        examples = setup.validation
        inputs = [task.make_input(e.input, f"{config.validation}: {e.id}") for e in examples]
        outputs = runner(inputs)
    finally:
        forget_model(where)
        torch.set_rng_state(rng)
        model.train()
    predictions = [task.prediction(output) for output in outputs]
    references = [example.reference for example in examples]
    if "label" in {f.name for f in dataclasses.fields(task.output_type)}:

        labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
        references = map_labels(references, labels, {})
    return {metric.name: float(metric.compute(predictions, references)) for metric in task.metrics}


def _save_model(model: Any, tokenizer: Any, out: Path) -> None:
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


# Loading what a task trains.


def load_base_model(auto_class: str, model: str, *, trust_remote_code: bool = False,
                    **kwargs: Any) -> Any:
    """A fresh (uncached) ``transformers.<auto_class>.from_pretrained(model)`` to fine-tune:
    a local folder or hub id as ``--model`` takes it, with nlpsuite's one-line errors."""

    source = resolve_model(model)
    if quantization_of(source) is not None:
        raise NlpsuiteError(
            f"{model}: an int8 export (nlpsuite quantize) is for inference; start from the "
            f"float checkpoint it was made from"
        )
    quiet_transformers()

    def load(source: str, local_only: bool) -> Any:
        import transformers

        loader = getattr(transformers, auto_class)
        return loader.from_pretrained(
            source, trust_remote_code=trust_remote_code, local_files_only=local_only, **kwargs
        )

    return load_or_explain(source, model, load)


def load_examples(source: str, task: str, *, limit: int | None = None) -> list[Example]:
    """A training or validation dataset's examples; an empty one is an error naming the file."""

    _not_empty(source)
    examples = load_dataset(source, task, limit=limit)
    if not examples:
        path = Path(source)
        lines = len(path.read_bytes().splitlines()) if path.is_file() else 0
        raise NlpsuiteError(f"{source}:{lines + 1}: no examples after line {lines}")
    return examples


def _not_empty(source: str) -> None:
    path = Path(source)
    if path.is_file() and not path.read_bytes().strip():
        raise NlpsuiteError(f"{source}:1: the file is empty: no examples")


# The log and the model card.


def _log_line(log: Any, row: Mapping[str, Any]) -> None:
    log.write(json.dumps(row) + "\n")
    log.flush()


def _trim_log(out: Path, step: int) -> None:
    """Keep the log of the steps the checkpoint holds; later lines are about to be redone."""

    path = out / LOG
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:  # a line cut short by the kill
            continue
        if row.get("step", 0) <= step:
            kept.append(line + "\n")
    write_atomic(path, "".join(kept))


def write_json(path: Path, value: Any) -> None:

    write_atomic(path, json.dumps(value, indent=2) + "\n")


def model_card(
    config: TrainConfig, setup: TrainingSetup, result: TrainResult, identity: Mapping[str, Any]
) -> str:
    """The ``README.md`` beside the weights: what was trained from what, how, and how well."""

    pipeline = get_task(config.task).pipeline_tag
    front = ["---", "library_name: transformers", "tags:", "- nlpsuite", f"- {config.task}"]
    if pipeline is not None:
        front.append(f"pipeline_tag: {pipeline}")
    if not Path(config.model).exists():
        front.append(f"base_model: {config.model}")
    front.append("---")
    data = identity["data_sha256"]
    lines = [
        *front, "",
        f"# {Path(config.out).name}", "",
        f"`{config.task}` model "
        f"{setup.made_with or f'fine-tuned from `{config.model}` with `nlpsuite train`'}. It loads "
        f"with `nlpsuite run {config.task} --model DIR` and with plain transformers "
        f"(`from_pretrained(DIR)`).", "",
        "## Data", "",
        "| split | dataset | sha256 |", "|---|---|---|",
        f"| train | `{config.train}` | `{data['train']}` |",
    ]
    if config.validation is not None:
        lines.append(f"| validation | `{config.validation}` | `{data['validation']}` |")
    details = {
        "training examples": str(result.train_examples),
        "training features": str(result.train_features),
        **setup.card,
    }
    lines += ["", *(f"- {key}: {value}" for key, value in details.items())]
    hyper = {
        "epochs": config.epochs, "learning rate": config.lr, "batch size": config.batch_size,
        "max length": config.max_length if config.max_length is not None else "task default",
        "seed": config.seed, "warmup (fraction of steps)": config.warmup,
        "weight decay": config.weight_decay, "limit": config.limit,
        "task options": json.dumps(dict(setup.options)) if setup.options else "none",
        "optimizer": "AdamW, linear warmup then linear decay, gradient norm clipped at 1.0",
        "steps": result.steps,
    }
    lines += ["", "## Hyperparameters", "", "| | |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in hyper.items()]
    lines += ["", "## Results", ""]
    if result.metrics:
        lines += ["Validation, after the last epoch:", "", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {value:.4f} |" for name, value in result.metrics.items()]
    else:
        lines.append("No validation data was given.")
    lines += [
        "", f"Training took {result.seconds:.1f} s on {config.device} "
        f"({result.examples_per_second:.1f} training rows/s); per-step loss and learning rate, "
        f"and validation metrics per epoch, are in `{LOG}`.",
        "", "## Versions", "",
        *(f"- {name} {version}" for name, version in package_versions().items()),
        "", "## Reproduce", "", "```bash", setup.command or command_line(config), "```", "",
    ]
    return "\n".join(lines)


def command_line(config: TrainConfig) -> str:
    """The ``nlpsuite train`` command line that repeats ``config``."""
    import shlex

    words = ["nlpsuite", "train", config.task, "--model", config.model, "--train", config.train]
    if config.validation is not None:
        words += ["--validation", config.validation]
    words += ["--out", str(config.out)]
    defaults = TrainConfig(task=config.task, model=config.model, train=config.train, out=config.out)
    for name in ("epochs", "lr", "batch_size", "max_length", "seed", "warmup", "weight_decay",
                 "limit", "device"):
        value = getattr(config, name)
        if value != getattr(defaults, name):
            words += [f"--{name.replace('_', '-')}", str(value)]
    for key, value in config.options.items():
        words += ["--option", f"{key}={value}"]
    return shlex.join(words)
