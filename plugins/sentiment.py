"""sentiment: text classification with any sequence-classification checkpoint."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from nlpsuite import NlpsuiteError, Option, RunConfig, Task, hookimpl
from nlpsuite.batching import (
    encode_truncated,
    map_sorted,
    model_max_length,
    pad_batch,
    pad_linear_rows,
)
from nlpsuite.catalog import load_records
from nlpsuite.datasets import (
    Dataset,
    DatasetFormat,
    Example,
    Located,
    first_line,
    line_example,
    tsv_rows,
    unique_located,
)
from nlpsuite.explaining import LoadedEncoder, attention_maps
from nlpsuite.explanations import GradientParts, Prepared, align_tokens, split_words
from nlpsuite.lookup import load_model
from nlpsuite.metrics import ACCURACY, MACRO_F1, MCC
from nlpsuite.models import load_config, load_tokenizer
from nlpsuite.prompting import CHOICES, PROMPT_OPTIONS, PromptedRunner, is_prompted, load_prompted
from nlpsuite.tasks import TrainConfig, TrainingSetup

logger = logging.getLogger("nlpsuite")
# Training sentences are cut at this many tokens unless --max-length says otherwise.
TRAIN_MAX_LENGTH = 128
EVAL_SET = Path(__file__).parent / "data" / "sentiment-eval.jsonl"
TEMPLATES = Path(__file__).parent / "data" / "templates"


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
    # A causal LM's runs: the label chosen by log-likelihood per character (lm-eval acc_norm).
    choice_norm: str | None = None


def load(config: RunConfig) -> Callable[[Sequence[SentimentInput]], list[SentimentOutput]]:
    if is_prompted(config):
        return load_prompted_classifier(config)
    import torch

    tokenizer = load_tokenizer(config.model, trust_remote_code=config.trust_remote_code)
    model = load_model(
        "AutoModelForSequenceClassification",
        config.model,
        device=config.device,
        trust_remote_code=config.trust_remote_code,
        quantize=config.options["quantize"],
        backend=config.backend,
        allow_random_head=config.allow_random_head,
    )
    pad_linear_rows(model)  # a text's scores do not depend on its batch-mates
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
        batch = pad_batch(tokenizer, rows, names, max_length)
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


class SentimentExplainable(LoadedEncoder):
    """The classifier loaded for ``nlpsuite explain``: the target is a label, its probability
    the softmax over the model's labels; IG attributes that probability."""

    def __init__(self, config: RunConfig) -> None:
        if is_prompted(config):
            raise NlpsuiteError("nlpsuite explain needs a sequence-classification model, "
                                "not a prompted causal LM")
        super().__init__(config, "AutoModelForSequenceClassification")
        self.labels = [self.model.config.id2label[i] for i in range(self.model.config.num_labels)]

    def prepare(self, record: SentimentInput, label: str | None) -> Prepared:
        encoded = self.tokenizer(record.text, truncation=True, max_length=self.max_length,
                                 return_offsets_mapping=True, return_special_tokens_mask=True)
        ids = list(encoded["input_ids"])
        fields = [None if special else 0 for special in encoded["special_tokens_mask"]]
        words, token_words = align_tokens([split_words(record.text, "text")],
                                          encoded["offset_mapping"], fields)
        types = encoded.get("token_type_ids") if "token_type_ids" in self.names else None
        logits = partial(self.logits, token_type_ids=types)
        target = self.target(label, ids, logits)

        def probability(rows: Sequence[Sequence[int]]) -> list[float]:
            return [float(p) for p in logits(rows).float().softmax(-1)[:, target].tolist()]

        gradients = attentions = None
        if self.has_gradients:
            gradients = GradientParts(self.model.get_input_embeddings(),
                                      (partial(self.forward, target=target, types=types),))
            attentions = partial(attention_maps, self.model, ids, self.config.device)
        return Prepared(self.labels[target], words, token_words, tuple(ids),
                        self.tokenizer.pad_token_id, probability, (), gradients, attentions,
                        {"text": record.text})

    def target(self, label: str | None, ids: list[int], logits: Callable[..., Any]) -> int:
        if label is None:
            return int(logits([ids])[0].argmax())
        if label not in self.labels:
            raise NlpsuiteError(f"unknown label '{label}' for model '{self.config.model}' "
                                f"(its labels: {', '.join(self.labels)})")
        return self.labels.index(label)

    def logits(self, rows: Sequence[Sequence[int]], token_type_ids: Any) -> Any:
        """Logits of each row (DELETED tokens left out), ``batch_size`` rows a pass."""
        import torch

        passes = self.outputs(rows, token_type_ids)
        return torch.cat([output.logits.float().cpu() for _, output in passes])

    def forward(self, ids: Any, target: int, types: Sequence[int] | None) -> Any:
        """The target's probability for a batch of full-length ids, with gradients (IG)."""
        import torch

        extra = {}
        if types is not None:
            extra["token_type_ids"] = torch.tensor([list(types)], device=ids.device).expand(
                ids.shape[0], -1)
        logits = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra).logits
        return logits.float().softmax(-1)[:, target]


def load_prompted_classifier(config: RunConfig) -> PromptedRunner:
    """A causal LM choosing the label whose continuation it finds most likely; ``score`` is
    the label's share of the labels' likelihoods."""
    prompted = load_prompted(config, SentimentInput, TEMPLATES, default="sst2", needs=CHOICES,
                             task="sentiment")
    labels = prompted.template.labels
    top_k = config.options["top_k"]
    if top_k < 1:
        raise NlpsuiteError(f"option 'top_k' must be at least 1, got {top_k}")

    def run(inputs: Sequence[SentimentInput]) -> list[SentimentOutput]:
        outputs = []
        for choice in prompted.classify(inputs):
            shares = choice.probabilities()
            ranked = sorted(range(len(labels)), key=lambda i: -shares[i])[:top_k]
            scores = {labels[i]: shares[i] for i in ranked} if top_k > 1 else None
            outputs.append(SentimentOutput(labels[choice.best], shares[choice.best], scores,
                                           labels[choice.best_norm]))
        return outputs

    return prompted.runner(run)


def train(config: TrainConfig) -> TrainingSetup:
    """Labels are the training data's own, numbers in numeric order (GLUE's 0/1), else sorted;
    a base classifier that already has exactly these labels keeps its head and their order."""
    # start-up: the training machinery loads when a model is trained, not when plugins load
    from nlpsuite.training import load_base_model, load_examples

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
        *PROMPT_OPTIONS,
    ),
    prediction=lambda output: output.label,
    parse_reference=lambda value, where: label_reference(value, where),
    render=lambda output: (
        f"{output.label}\t{output.score:.4f}"
        if output.scores is None
        else "\t".join(f"{label}={score:.4f}" for label, score in output.scores.items())
    ),
    train=train,
    explain=SentimentExplainable,
    pipeline_tag="text-classification",
    distillable=True,
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
            load=lambda: load_records(EVAL_SET, TASK),
            files=(EVAL_SET,),
        )
    )


@hookimpl
def register_dataset_formats(register: Callable[[DatasetFormat], None]) -> None:
    register(DatasetFormat.of_files(
        "GLUE TSV", ("sentiment",), _is_glue_tsv, load_glue_tsv,
        suffixes=(".tsv",), expects="a header with 'sentence' and 'label' (GLUE)",
    ))
    register(DatasetFormat.of_files(
        "Poem Sentiment TSV", ("sentiment",), _is_poem_sentiment, load_poem_sentiment,
        suffixes=(".tsv",), expects="three fields id, text, label (Poem Sentiment)",
    ))


def label_reference(value: Any, where: str) -> str:
    """A record's reference label: a string, or an integer class id kept as GLUE's "0"/"1"."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # like GLUE's "0"/"1", whatever the file's JSON type
    if isinstance(value, str) and value.strip():
        return value
    raise NlpsuiteError(f"{where}: field 'reference' should be a label, got {value!r}")


def _tsv_header(spec: str) -> list[str]:
    path = Path(spec)
    if path.suffix.lower() != ".tsv" or not path.is_file():
        return []
    try:
        return first_line(path).split("\t")
    except NlpsuiteError:
        return []


def _is_glue_tsv(spec: str) -> bool:
    return "label" in _tsv_header(spec)


def _is_poem_sentiment(spec: str) -> bool:
    header = _tsv_header(spec)
    return len(header) == 3 and header[0].strip().isdigit()


def load_glue_tsv(
    path: str | Path, *, text_column: str = "sentence", label_column: str = "label"
) -> list[Example]:
    """A GLUE single-sentence TSV (SST-2): header row, columns found by name.

    The label stays the file's string (``"0"``/``"1"``); mapping it to a model's label names is
    the evaluator's business. Text is kept as is, including SST-2's trailing space. Ids are line
    numbers (the header is line 1).
    """
    rows = tsv_rows(path)
    header_where, header = next(rows, (f"{path}:1", []))
    for column in (text_column, label_column):
        if column not in header:
            raise NlpsuiteError(
                f"{header_where}: missing column '{column}' (header: {', '.join(header) or 'none'})"
            )
    text_at, label_at = header.index(text_column), header.index(label_column)
    examples = []
    for where, fields in rows:
        if len(fields) != len(header):
            raise NlpsuiteError(
                f"{where}: expected {len(header)} tab-separated fields, got {len(fields)}"
            )
        label = fields[label_at].strip()
        if not label:
            raise NlpsuiteError(f"{where}: field '{label_column}' is empty")
        examples.append(line_example(where, {"text": fields[text_at]}, label))
    return examples


def load_poem_sentiment(path: str | Path, *, binary: bool = False) -> list[Example]:
    """Poem Sentiment TSV: no header; ``id``, ``verse_text``, ``label`` in -1, 0, 1, 2.

    ``binary`` keeps only the negative (-1) and positive (1) verses, which makes the set
    comparable with two-label checkpoints such as SST-2 models.
    """
    located = []
    for where, fields in tsv_rows(path):
        if len(fields) != 3:
            raise NlpsuiteError(
                f"{where}: expected 3 tab-separated fields (id, verse_text, label), "
                f"got {len(fields)}"
            )
        identifier, text, label = (value.strip() for value in fields)
        if label not in {"-1", "0", "1", "2"}:
            raise NlpsuiteError(f"{where}: field 'label' should be -1, 0, 1 or 2, got {label!r}")
        if binary and label not in {"-1", "1"}:
            continue
        located.append(Located(where, Example(identifier, {"text": text}, label)))
    return unique_located(located)
