"""zero-shot: classify a text into labels it was never trained on, with sentence embeddings.

Each candidate label is turned into a short description by a template ("This text is about
sports."), the text and the descriptions are embedded with a sentence-embedding checkpoint
(all-MiniLM-L6-v2 by default), and the label whose description is closest in meaning wins.
The scores are a softmax over the cosine similarities, so they sum to 1 over the candidates.

This module is what the ``nlpsuite`` entry point names, so it is imported every time nlpsuite
lists its plugins: it imports nothing heavy. torch, transformers and the encoder load inside
:func:`load`, when a model is actually needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from nlpsuite import NlpsuiteError, Option, RunConfig, Task, hookimpl
from nlpsuite.catalog import load_records
from nlpsuite.datasets import Dataset, DatasetFormat, Example, numbered_lines
from nlpsuite.metrics import ACCURACY, MACRO_F1, Metric, confusion_statistics

if TYPE_CHECKING:
    import click
    import numpy as np

# The plugin contract this module was written for (nlpsuite.hookspecs.CONTRACT_VERSION). An
# nlpsuite with an incompatible contract refuses the plugin with a clear message instead of
# failing somewhere inside a hook.
NLPSUITE_CONTRACT = 1

TASK_NAME = "zero-shot"
DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_TEMPLATE = "This text is about {}."
TOPICS = Path(__file__).resolve().parent / "data" / "topics-mini.jsonl"
TOPIC_LABELS = "sports,politics,technology,food,weather"

# Label descriptions are embedded once and kept; a runner forgets them past this many, so a
# file with a fresh label set on every line cannot grow the cache without bound.
_LABEL_CACHE_SIZE = 4096


# Records: frozen dataclasses. The CLI reads them from JSONL/CSV by field name, and writes
# outputs with dataclasses.asdict, so every field must be JSON-friendly.


def split_labels(text: str) -> tuple[str, ...]:
    """``"sports, politics"`` -> ``("sports", "politics")``: how labels are written as text."""
    return tuple(part.strip() for part in text.split(","))


@dataclass(frozen=True)
class ZeroShotInput:
    text: str
    # This text's candidate labels; empty means the task's ``labels`` option. A string is split
    # on commas, because a CSV cell or ``--candidate-labels`` on the command line is text.
    candidate_labels: tuple[str, ...] | str = ()

    def __post_init__(self) -> None:
        # NlpsuiteError (not ValueError) so the CLI prints one line naming the file and line.
        if not self.text.strip():
            raise NlpsuiteError("field 'text' is empty")
        labels = self.candidate_labels
        if isinstance(labels, str):
            labels = split_labels(labels) if labels.strip() else ()
        object.__setattr__(self, "candidate_labels", check_labels(labels, "candidate_labels"))


@dataclass(frozen=True)
class ZeroShotOutput:
    # Not called ``label``: nlpsuite's harness maps dataset labels onto a model's own label names
    # (its id2label) for outputs with a ``label`` field, and an embedding model has none.
    top_label: str
    score: float
    # Every candidate label with its probability, best first.
    scores: dict[str, float]


def check_labels(labels: Sequence[str], where: str) -> tuple[str, ...]:
    """The labels as a tuple, or NlpsuiteError if one is blank, repeated or not a string."""
    labels = tuple(labels)
    for label in labels:
        if not isinstance(label, str) or not label.strip():
            raise NlpsuiteError(f"{where}: every label must be a non-empty string, got {label!r}")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise NlpsuiteError(f"{where}: label '{repeated[0]}' is given twice")
    return labels


# The runner.


def load(config: RunConfig) -> Callable[[Sequence[ZeroShotInput]], list[ZeroShotOutput]]:
    """Check the options, load the encoder once, and return the batch function."""
    import numpy as np

    # The built-in semantic-search plugin's encoder: it applies the checkpoint's own
    # sentence-transformers pooling, truncation and casing, and one process shares one loaded
    # model between semantic search and this task. Imported here, not at the top, so listing
    # plugins never pays for torch.
    from nlpsuite_plugins.semantic_search import load_encoder

    template = config.options["template"]
    if template.count("{}") != 1:
        raise NlpsuiteError(f"option 'template' must contain '{{}}' once, got {template!r}")
    temperature = config.options["temperature"]
    if not temperature > 0:
        raise NlpsuiteError(f"option 'temperature' must be positive, got {temperature}")
    default_labels: tuple[str, ...] = ()
    if config.options["labels"]:
        default_labels = check_labels(split_labels(config.options["labels"]), "option 'labels'")
    encoder = load_encoder(
        config.model, device=config.device, trust_remote_code=config.trust_remote_code
    )
    described: dict[str, np.ndarray] = {}

    def describe(labels: Sequence[str]) -> np.ndarray:
        """One unit vector per label's description; each new description embedded once."""
        if len(described) + len(labels) > _LABEL_CACHE_SIZE:
            described.clear()  # before picking what to embed: all of these are fresh again
        fresh = [label for label in dict.fromkeys(labels) if label not in described]
        if fresh:
            vectors = encoder.encode([template.format(label) for label in fresh], config.batch_size)
            described.update(zip(fresh, vectors, strict=True))
        return np.stack([described[label] for label in labels])

    def run(inputs: Sequence[ZeroShotInput]) -> list[ZeroShotOutput]:
        # Checked for the whole batch before any embedding, so a bad row costs no model time.
        label_sets = []
        for item in inputs:
            labels = tuple(item.candidate_labels) or default_labels
            if len(labels) < 2:
                # The text, not a position: the CLI hands the runner one chunk of a file at a time.
                shown = item.text if len(item.text) <= 40 else item.text[:37] + "..."
                raise NlpsuiteError(
                    f"{shown!r}: give at least two candidate labels, in the input's "
                    f"'candidate_labels' or the option 'labels' (got {len(labels)})"
                )
            label_sets.append(labels)
        # The encoder sorts texts by length into batches and returns them in input order.
        texts = encoder.encode([item.text for item in inputs], config.batch_size)
        outputs = []
        for vector, labels in zip(texts, label_sets, strict=True):
            cosines = describe(labels) @ vector  # unit vectors: the dot product is the cosine
            outputs.append(_output(labels, cosines, temperature))
        return outputs

    return run


def _output(labels: Sequence[str], cosines: np.ndarray, temperature: float) -> ZeroShotOutput:
    import numpy as np

    logits = cosines.astype(np.float64) / temperature
    probabilities = np.exp(logits - logits.max())
    probabilities /= probabilities.sum()
    # Best first; ties keep the caller's label order, so the output does not depend on batching.
    order = sorted(range(len(labels)), key=lambda i: -probabilities[i])
    # Rounded: float32 embeddings carry about seven digits, and more would be noise in JSON.
    scores = {labels[i]: round(float(probabilities[i]), 6) for i in order}
    return ZeroShotOutput(labels[order[0]], scores[labels[order[0]]], scores)


# A metric nlpsuite does not have. compute() is the reference implementation (scikit-learn);
# statistics/from_statistics let the harness bootstrap confidence intervals by re-summing
# per-example confusion-matrix cells instead of calling scikit-learn a thousand times.


def balanced_accuracy(predictions: Sequence[str], references: Sequence[str]) -> float:
    import warnings

    from sklearn.metrics import balanced_accuracy_score

    with warnings.catch_warnings():
        # "y_pred contains classes not in y_true": expected on small or resampled sets.
        warnings.simplefilter("ignore", UserWarning)
        return float(balanced_accuracy_score(references, predictions))


def balanced_accuracy_from_confusion(summed: np.ndarray) -> float:
    """The mean recall over the labels that occur in the references, as scikit-learn has it."""
    import numpy as np

    size = math.isqrt(len(summed))
    matrix = summed.reshape(size, size)
    true = matrix.sum(axis=1)
    seen = true > 0
    return float(np.mean(np.diag(matrix)[seen] / true[seen])) if seen.any() else 0.0


BALANCED_ACCURACY = Metric(
    "balanced_accuracy",
    True,
    balanced_accuracy,
    "recall averaged over labels, so a rare label counts as much as a common one",
    statistics=confusion_statistics,
    from_statistics=balanced_accuracy_from_confusion,
)


def render(output: ZeroShotOutput) -> str:
    """How ``nlpsuite run zero-shot`` prints an output on a terminal (``--json`` has it all)."""
    others = "  ".join(f"{label}={score:.3f}" for label, score in list(output.scores.items())[1:])
    return f"{output.top_label}\t{output.score:.4f}\t{others}"


TASK = Task(
    name=TASK_NAME,
    description="Classify text into any labels you name, by embedding similarity (no training).",
    default_model=DEFAULT_MODEL,
    input_type=ZeroShotInput,
    output_type=ZeroShotOutput,
    load=load,
    metrics=(ACCURACY, MACRO_F1, BALANCED_ACCURACY),
    options=(
        Option(
            "labels",
            str,
            None,
            "comma-separated candidate labels for inputs that do not give their own",
        ),
        Option(
            "template",
            str,
            DEFAULT_TEMPLATE,
            "how a label becomes the description that is embedded; '{}' is the label",
        ),
        Option(
            "temperature",
            float,
            0.05,
            "softmax temperature over the cosine similarities; lower is more confident",
        ),
    ),
    # What the metrics score: the predicted label, compared with the dataset's reference label.
    prediction=lambda output: output.top_label,
    render=render,
)


# The hooks nlpsuite calls. Each one receives a register function; call it once per item.


@hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    register(TASK)


@hookimpl
def register_datasets(register: Callable[[Dataset], None]) -> None:
    register(
        Dataset(
            name="topics-mini",
            task=TASK_NAME,
            description="40 one-sentence news snippets in 5 topics, 8 each, written for "
            "nlpsuite-zeroshot",
            licence="CC0-1.0",
            load=lambda: load_records(TOPICS, TASK_NAME),
            files=(TOPICS,),
            # The candidate labels, passed to the task as an option when this set is evaluated.
            options={"labels": TOPIC_LABELS},
        )
    )


# A file layout of its own: fastText's supervised format, one "__label__NAME text" per line.
FASTTEXT_PREFIX = "__label__"


def is_fasttext(spec: str) -> bool:
    """A ``.txt`` file whose first line starts with ``__label__``: cheap, and never raises."""
    path = Path(spec)
    if path.suffix.lower() != ".txt" or not path.is_file():
        return False
    with path.open("rb") as handle:
        return handle.read(len(FASTTEXT_PREFIX)) == FASTTEXT_PREFIX.encode()


def load_fasttext(path: Path) -> list[Example]:
    """Each line ``__label__NAME text``; ids are line numbers, blank lines are skipped."""
    examples = []
    for number, line in numbered_lines(path):
        if not line.strip():
            continue
        label, _, text = line.partition(" ")
        if not label.startswith(FASTTEXT_PREFIX) or not label[len(FASTTEXT_PREFIX):]:
            raise NlpsuiteError(f"{path}:{number}: expected '__label__NAME text'")
        if not text.strip():
            raise NlpsuiteError(f"{path}:{number}: field 'text' is empty")
        examples.append(Example(str(number), {"text": text}, label[len(FASTTEXT_PREFIX):]))
    return examples


@hookimpl
def register_dataset_formats(register: Callable[[DatasetFormat], None]) -> None:
    # `nlpsuite eval zero-shot --dataset news.txt` then reads fastText files directly.
    register(DatasetFormat.of_files(
        "fastText labels", (TASK_NAME,), is_fasttext, load_fasttext,
        suffixes=(".txt",), expects="'__label__NAME text' per line (fastText)",
    ))


@hookimpl
def register_metrics(register: Callable[[Metric], None]) -> None:
    # Metrics a task declares are registered with it; registering one here as well says it is
    # meant for other tasks too, by name: 'nlpsuite score sentiment --metric balanced_accuracy'.
    register(BALANCED_ACCURACY)


@hookimpl
def register_commands(cli: click.Group) -> None:
    import click

    @cli.command("zero-shot-labels")
    @click.argument("labels", metavar="LABEL,LABEL,...")
    @click.option("--model", "-m", default=DEFAULT_MODEL, show_default=True, metavar="ID|DIR")
    @click.option("--template", default=DEFAULT_TEMPLATE, show_default=True)
    def labels_command(labels: str, model: str, template: str) -> None:
        """Show how alike the labels' descriptions are: labels that read alike get confused."""
        from nlpsuite_plugins.semantic_search import load_encoder

        names = check_labels(split_labels(labels), "LABELS")
        if template.count("{}") != 1:
            raise NlpsuiteError(f"--template must contain '{{}}' once, got {template!r}")
        vectors = load_encoder(model).encode([template.format(name) for name in names])
        similar = vectors @ vectors.T
        pairs = sorted(
            (
                (float(similar[i, j]), names[i], names[j])
                for i in range(len(names))
                for j in range(i + 1, len(names))
            ),
            reverse=True,
        )
        for cosine, first, second in pairs:
            click.echo(f"{cosine:.4f}\t{first}\t{second}")
