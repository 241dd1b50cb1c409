"""sentiment: text classification with any sequence-classification checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nlpsuite import NlpsuiteError, Option, RunConfig, Task, hookimpl
from nlpsuite.batching import encode_truncated, map_sorted, model_max_length, pad_batch
from nlpsuite.datasets import Dataset, load_records
from nlpsuite.metrics import ACCURACY, MACRO_F1, MCC
from nlpsuite.models import load_model, load_tokenizer

if TYPE_CHECKING:
    from nlpsuite.training import TrainConfig, TrainingSetup

logger = logging.getLogger("nlpsuite")
# Training sentences are cut at this many tokens unless --max-length says otherwise.
TRAIN_MAX_LENGTH = 128
EVAL_SET = Path(__file__).parent / "data" / "sentiment-eval.jsonl"


@dataclass(frozen=True)
class SentimentInput:
    text: str

    def __post_init__(self) -> None:
        if not self.text.strip():
            raise NlpsuiteError("field 'text' is empty")


@dataclass(frozen=True)
class SentimentOutput:
    label: str
    score: float
    # With top_k > 1: the top_k labels and their probabilities, best first.
    scores: dict[str, float] | None = None


def load(config: RunConfig) -> Callable[[Sequence[SentimentInput]], list[SentimentOutput]]:
    import torch

    tokenizer = load_tokenizer(config.model, trust_remote_code=config.trust_remote_code)
    model = load_model(
        "AutoModelForSequenceClassification",
        config.model,
        device=config.device,
        trust_remote_code=config.trust_remote_code,
        quantize=config.options["quantize"],
        backend=config.backend,
    )
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    top_k = config.options["top_k"]
    if top_k < 1:
        raise NlpsuiteError(f"option 'top_k' must be at least 1, got {top_k}")
    max_length = model_max_length(tokenizer, model.config)
    names = [
        name
        for name in tokenizer.model_input_names
        if name in ("input_ids", "attention_mask", "token_type_ids")
    ]

    def classify(rows: list[dict[str, Any]]) -> list[SentimentOutput]:
        batch = pad_batch(tokenizer, rows, names)
        with torch.inference_mode():
            logits = model(**{k: v.to(config.device) for k, v in batch.items()}).logits
        probabilities = logits.float().softmax(-1).cpu()
        best = probabilities.topk(min(top_k, len(labels)), dim=-1)
        outputs = []
        for values, indices in zip(best.values.tolist(), best.indices.tolist(), strict=True):
            scores = {labels[i]: v for i, v in zip(indices, values, strict=True)}
            outputs.append(
                SentimentOutput(labels[indices[0]], values[0], scores if top_k > 1 else None)
            )
        return outputs

    def run(inputs: Sequence[SentimentInput]) -> list[SentimentOutput]:
        rows, truncated = encode_truncated(tokenizer, [item.text for item in inputs], max_length)
        if truncated:
            logger.warning(
                "%d of %d inputs were longer than %d tokens and were truncated",
                truncated,
                len(inputs),
                max_length,
            )
        return map_sorted(rows, classify, config.batch_size, lambda row: len(row["input_ids"]))

    return run


def train(config: TrainConfig) -> TrainingSetup:
    """Labels are the training data's own, numbers in numeric order (GLUE's 0/1), else sorted;
    a base classifier that already has exactly these labels keeps its head and their order."""
    from nlpsuite.models import load_config
    from nlpsuite.training import TrainingSetup, load_base_model, load_examples

    examples = load_examples(config.train, "sentiment", limit=config.limit)
    found = {str(example.reference) for example in examples}
    labels = sorted(found, key=lambda x: (0, int(x), "") if x.lstrip("-").isdigit() else (1, 0, x))
    base = load_config(config.model, trust_remote_code=config.trust_remote_code)
    if getattr(base, "id2label", None) and set(base.id2label.values()) == found:
        labels = [base.id2label[i] for i in range(base.num_labels)]
    validation = (
        load_examples(config.validation, "sentiment") if config.validation is not None else []
    )
    for example in validation:
        if str(example.reference) not in found:
            raise NlpsuiteError(
                f"{config.validation}: example {example.id}: field 'label': "
                f"{example.reference!r} is not a training label ({', '.join(labels)})"
            )
    tokenizer = load_tokenizer(config.model, trust_remote_code=config.trust_remote_code)
    model = load_base_model(
        "AutoModelForSequenceClassification", config.model,
        trust_remote_code=config.trust_remote_code, num_labels=len(labels),
        id2label=dict(enumerate(labels)), label2id={label: i for i, label in enumerate(labels)},
        ignore_mismatched_sizes=True,
    )
    limit = model_max_length(tokenizer, model.config)
    max_length = min(config.max_length or TRAIN_MAX_LENGTH, limit)
    rows, _ = encode_truncated(tokenizer, [e.input["text"] for e in examples], max_length)
    index = {label: i for i, label in enumerate(labels)}
    names = {"input_ids", "attention_mask", "token_type_ids"} & set(tokenizer.model_input_names)
    features = [
        {**{k: v for k, v in row.items() if k in names}, "labels": index[str(example.reference)]}
        for row, example in zip(rows, examples, strict=True)
    ]
    return TrainingSetup(
        model=model, tokenizer=tokenizer, features=features, examples=len(examples),
        validation=validation, options=TASK.parse_options(config.options),
        card={"labels": ", ".join(labels), "max length (tokens)": str(max_length)},
    )


TASK = Task(
    name="sentiment",
    description="Classify the sentiment (or any labels) of a text.",
    default_model="distilbert/distilbert-base-uncased-finetuned-sst-2-english",
    input_type=SentimentInput,
    output_type=SentimentOutput,
    load=load,
    metrics=(ACCURACY, MACRO_F1, MCC),
    options=(
        Option("top_k", int, 1, "return the scores of the top k labels"),
        Option(
            "quantize",
            str,
            None,
            "int8: dynamic int8 quantization of the linear layers (CPU only; faster, scores "
            "shift slightly); int8-mixed: the same but the feed-forward output layers stay "
            "float32 (part of the speed-up, less accuracy lost)",
        ),
    ),
    prediction=lambda output: output.label,
    render=lambda output: (
        f"{output.label}\t{output.score:.4f}"
        if output.scores is None
        else "\t".join(f"{label}={score:.4f}" for label, score in output.scores.items())
    ),
    train=train,
)


@hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    register(TASK)


@hookimpl
def register_datasets(register: Callable[[Dataset], None]) -> None:
    register(
        Dataset(
            name="sentiment-mini",
            task="sentiment",
            description="40 short film reviews, half POSITIVE, half NEGATIVE, written for nlpsuite",
            licence="CC0-1.0",
            load=lambda: load_records(EVAL_SET, "sentiment"),
            files=(EVAL_SET,),
        )
    )
