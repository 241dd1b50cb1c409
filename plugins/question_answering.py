"""question-answering: extractive, SQuAD-style answers with any AutoModelForQuestionAnswering.

A context longer than the model's window is read in overlapping windows (``max_length`` tokens
each, question included, consecutive windows sharing ``doc_stride`` context tokens). Every window
proposes spans; the best span over all windows is the answer, given as character offsets into
the context exactly as passed in, so ``context[start:end] == answer`` always.

Score: within a window, start and end logits each go through a softmax over the context tokens
plus the CLS (no-answer) token, and a span scores ``p_start * p_end``. Question tokens and
padding take no probability mass, and a window that the model thinks lacks the answer puts its
mass on CLS, so scores from different windows can be ranked against each other.

No answer (``null_threshold``, for SQuAD 2.0 checkpoints): the null logit is CLS start + CLS end
logit, taken from the window where it is lowest (the window most sure that an answer exists). The
answer is "" (start = end = 0) when null logit minus the best span's start + end logit exceeds
the threshold. This is the convention of the SQuAD 2.0 reference scripts, so a threshold tuned
with them carries over; 0.0 is the usual starting point. Unset (the default), a span is always
returned, which is right for SQuAD 1.1 models.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from nlpsuite import NlpsuiteError, Option, RunConfig, Task, hookimpl
from nlpsuite.batching import map_sorted, model_max_length, pad_batch
from nlpsuite.catalog import load_records
from nlpsuite.datasets import Dataset, DatasetFormat, texts_field
from nlpsuite.lookup import load_model
from nlpsuite.metrics import EXACT_MATCH, SQUAD_F1
from nlpsuite.models import load_tokenizer
from nlpsuite.prompting import (
    GENERATION,
    PROMPT_OPTIONS,
    PromptedRunner,
    is_prompted,
    load_prompted,
)
from nlpsuite.records import read_json
from nlpsuite.tasks import TrainConfig, TrainingSetup

from .qa_explaining import QAExplainable
from .squad import SQUAD_FORMAT

if TYPE_CHECKING:  # numpy loads with the model, so listing plugins stays fast
    import numpy as np


MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
EVAL_SET = Path(__file__).parent / "data" / "qa-eval.jsonl"
TEMPLATES = Path(__file__).parent / "data" / "templates"


@dataclass(frozen=True)
class QAInput:
    question: str
    # Defaults to "" so that a missing context reaches the check below and its clearer message.
    context: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.question, str) or not self.question.strip():
            raise NlpsuiteError("field 'question' is empty")
        if not isinstance(self.context, str) or not self.context.strip():
            raise NlpsuiteError(
                "field 'context' is missing or empty: give the passage to answer from "
                "(--context TEXT on the command line)"
            )


@dataclass(frozen=True)
class QAOutput:
    answer: str
    score: float
    # Character offsets into the context; context[start:end] == answer ("" is 0, 0). A causal
    # LM's generated answer: its first occurrence in the context, else -1, -1; score 0.0.
    start: int
    end: int
    # With top_k > 1: up to top_k {"answer", "score", "start", "end"} dicts, best first.
    answers: list[dict[str, Any]] | None = None


class Span(NamedTuple):
    """A candidate answer in one window: token indices, ``end`` inclusive."""

    start: int
    end: int
    score: float  # p_start * p_end, softmax within the window
    logit: float  # start logit + end logit, for the no-answer comparison


class WindowSpans(NamedTuple):
    spans: list[Span]  # best first
    null: Span  # the no-answer "span" on the CLS token


class Answer(NamedTuple):
    """A candidate answer in the context: character offsets, ``end`` exclusive."""

    start: int
    end: int
    score: float


def decode_window(
    start_logits: np.ndarray,
    end_logits: np.ndarray,
    context_mask: np.ndarray,
    *,
    max_answer_length: int,
    top_k: int = 1,
    null_index: int = 0,
) -> WindowSpans:
    """The ``top_k`` best spans of one window, inside the context, at most ``max_answer_length``
    tokens long, best first; and the window's null (CLS) score."""
    import numpy as np
    from numpy.lib.stride_tricks import sliding_window_view

    starts = np.asarray(start_logits, dtype=np.float64)
    ends = np.asarray(end_logits, dtype=np.float64)
    context = np.asarray(context_mask, dtype=bool)
    allowed = context.copy()
    allowed[null_index] = True
    log_start, log_end = _log_softmax(starts, allowed), _log_softmax(ends, allowed)
    null = Span(
        null_index, null_index,
        float(np.exp(log_start[null_index] + log_end[null_index])),
        float(starts[null_index] + ends[null_index]),
    )

    positions = np.flatnonzero(context)
    if len(positions) == 0 or top_k < 1:
        return WindowSpans([], null)
    # Row i holds the spans that start at the i-th context token and end at it or at one of the
    # next width - 1 context tokens: a band, so end >= start by construction and the work is
    # n * max_answer_length rather than n * n. Context tokens are contiguous in practice; their
    # positions still decide the length limit, so a gap could never make a span too long.
    width = min(max_answer_length, len(positions))
    # Padding past the last token: an impossible end, too far from any start to pass the check.
    padded_log_end = np.concatenate([log_end[positions], np.full(width - 1, -np.inf)])
    too_far = np.full(width - 1, positions[-1] + max_answer_length)
    end_positions = sliding_window_view(np.concatenate([positions, too_far]), width)
    valid = end_positions - positions[:, None] < max_answer_length
    total = log_start[positions][:, None] + sliding_window_view(padded_log_end, width)
    flat = np.where(valid, total, -np.inf).ravel()
    k = min(top_k, int(valid.sum()))
    chosen = np.argpartition(-flat, k - 1)[:k]
    # Ties broken by position, so that the choice never depends on argpartition's internals.
    chosen = chosen[np.lexsort((chosen, -flat[chosen]))]
    rows, steps = np.divmod(chosen, width)
    spans = [
        Span(int(s), int(e), float(np.exp(score)), float(starts[s] + ends[e]))
        for s, e, score in zip(positions[rows], positions[rows + steps], flat[chosen], strict=True)
    ]
    return WindowSpans(spans, null)


def _log_softmax(logits: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    import numpy as np

    masked = np.where(allowed, logits, -np.inf)
    shifted = masked - masked.max()
    return shifted - np.log(np.exp(shifted).sum())


def choose_answers(
    windows: Sequence[WindowSpans],
    offsets: Sequence[np.ndarray],
    *,
    top_k: int = 1,
    null_threshold: float | None = None,
) -> list[Answer]:
    """Merge one example's windows into its ``top_k`` answers (character offsets), best first.

    ``offsets[w]`` is window ``w``'s (n_tokens, 2) character offset table. A span seen in two
    overlapping windows counts once, with its better score. Empty when no window had a span.
    """
    best: dict[tuple[int, int], tuple[float, float]] = {}
    for found, table in zip(windows, offsets, strict=True):
        for span in found.spans:
            key = (int(table[span.start][0]), int(table[span.end][1]))
            if key not in best or span.score > best[key][0]:
                best[key] = (span.score, span.logit)
    ranked = sorted(best.items(), key=lambda item: (-item[1][0], item[0]))
    answers = [Answer(start, end, score) for (start, end), (score, _) in ranked[:top_k]]
    if null_threshold is not None and windows:
        null = min((found.null for found in windows), key=lambda span: span.logit)
        if not ranked or null.logit - ranked[0][1][1] > null_threshold:
            answers = [Answer(0, 0, null.score), *answers[: top_k - 1]]
    return answers


@dataclass(frozen=True)
class Window:
    """One tokenized window of one example, ready for the model and the decoder."""

    example: int
    features: dict[str, list[int]]
    context_mask: np.ndarray
    offsets: np.ndarray
    null_index: int


def encode_windows(
    tokenizer: Any,
    questions: Sequence[str],
    contexts: Sequence[str],
    *,
    max_length: int,
    doc_stride: int,
) -> list[Window]:
    """Tokenize every (question, context) pair into windows, grouped by example in context order.

    The stride is capped at half of the context tokens that fit beside each question: that keeps
    it below the tokenizer's hard limit, and each window moves on by at least half a window.
    """
    import numpy as np

    # Models that pad on the left (XLNet) were trained with the context first.
    question_first = tokenizer.padding_side == "right"
    context_id = 1 if question_first else 0
    room_left = max_length - tokenizer.num_special_tokens_to_add(pair=True)
    question_ids = tokenizer(list(questions), add_special_tokens=False)["input_ids"]
    cls = tokenizer.cls_token_id
    by_stride: dict[int, list[int]] = {}
    for index, (question, ids) in enumerate(zip(questions, question_ids, strict=True)):
        length = len(ids)
        room = room_left - length
        if room < 1:
            raise NlpsuiteError(
                f"question {question[:40]!r} is {length} tokens, which leaves no room for the "
                f"context in a window of {max_length} tokens; shorten it or raise max_length"
            )
        by_stride.setdefault(min(doc_stride, room // 2), []).append(index)

    windows: list[Window] = []
    for stride, members in by_stride.items():
        pair = ([questions[i] for i in members], [contexts[i] for i in members])
        encoded = tokenizer(
            *(pair if question_first else pair[::-1]),
            truncation="only_second" if question_first else "only_first",
            max_length=max_length,
            stride=stride,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        names = [n for n in MODEL_INPUTS if n in encoded and n in tokenizer.model_input_names]
        for w, sample in enumerate(encoded["overflow_to_sample_mapping"]):
            tokens = encoded["input_ids"][w]
            sequence = encoded.sequence_ids(w)
            windows.append(Window(
                example=members[sample],
                features={name: encoded[name][w] for name in names},
                context_mask=np.array([s == context_id for s in sequence], dtype=bool),
                offsets=np.array(encoded["offset_mapping"][w], dtype=np.int64).reshape(-1, 2),
                null_index=tokens.index(cls) if cls in tokens else 0,
            ))
    # Stable, so each example's windows stay in context order.
    windows.sort(key=lambda window: window.example)
    return windows


def question_windows(
    tokenizer: Any, questions: Sequence[str], contexts: Sequence[str], settings: _Settings
) -> list[Window]:
    """The windows the model reads, for inference and training alike: training on other
    windows than the ones it is asked about would teach the model a different input."""
    # Leading whitespace in a question costs window room and, for some tokenizers, shifts
    # what the model sees; the reference SQuAD recipe strips it too.
    return encode_windows(
        tokenizer, [question.lstrip() for question in questions], contexts,
        max_length=settings.max_length, doc_stride=settings.doc_stride,
    )


@dataclass(frozen=True)
class _Settings:
    max_length: int
    doc_stride: int
    max_answer_length: int
    top_k: int
    null_threshold: float | None


def _settings(options: Mapping[str, Any], model_limit: int) -> _Settings:
    for name in ("max_length", "max_answer_length", "top_k"):
        if options[name] < 1:
            raise NlpsuiteError(f"option '{name}' must be at least 1, got {options[name]}")
    if options["doc_stride"] < 0:
        raise NlpsuiteError(f"option 'doc_stride' must be 0 or more, got {options['doc_stride']}")
    return _Settings(
        max_length=min(options["max_length"], model_limit),
        doc_stride=options["doc_stride"],
        max_answer_length=options["max_answer_length"],
        top_k=options["top_k"],
        null_threshold=options["null_threshold"],
    )


def load(config: RunConfig) -> Callable[[Sequence[QAInput]], list[QAOutput]]:
    if is_prompted(config):
        return load_prompted_reader(config)
    import torch

    tokenizer = _fast_tokenizer(config.model, config.trust_remote_code)
    model = load_model(
        "AutoModelForQuestionAnswering", config.model, device=config.device,
        trust_remote_code=config.trust_remote_code, backend=config.backend,
        quantize=config.options.get("quantize"), allow_random_head=config.allow_random_head,
    )
    settings = _settings(config.options, model_max_length(tokenizer, model.config))
    pads_right = tokenizer.padding_side == "right"
    feature_names = [name for name in MODEL_INPUTS if name in tokenizer.model_input_names]

    def predict(windows: list[Window]) -> list[WindowSpans]:
        features = [window.features for window in windows]
        batch = pad_batch(tokenizer, features, feature_names, settings.max_length)
        with torch.inference_mode():
            output = model(**{name: tensor.to(config.device) for name, tensor in batch.items()})
        starts = output.start_logits.float().cpu().numpy()
        ends = output.end_logits.float().cpu().numpy()
        width = starts.shape[1]
        found = []
        for row, window in enumerate(windows):
            n = len(window.context_mask)
            real = slice(0, n) if pads_right else slice(width - n, width)
            found.append(decode_window(
                starts[row, real], ends[row, real], window.context_mask,
                max_answer_length=settings.max_answer_length, top_k=settings.top_k,
                null_index=window.null_index,
            ))
        return found

    def run(inputs: Sequence[QAInput]) -> list[QAOutput]:
        if not inputs:
            return []
        questions = [item.question for item in inputs]
        contexts = [item.context for item in inputs]
        windows = question_windows(tokenizer, questions, contexts, settings)
        found = map_sorted(windows, predict, config.batch_size, lambda w: len(w.context_mask))
        per_example: list[list[int]] = [[] for _ in inputs]
        for index, window in enumerate(windows):
            per_example[window.example].append(index)
        return [
            _output(
                context,
                choose_answers(
                    [found[i] for i in indices], [windows[i].offsets for i in indices],
                    top_k=settings.top_k, null_threshold=settings.null_threshold,
                ),
                settings.top_k,
            )
            for context, indices in zip(contexts, per_example, strict=True)
        ]

    return run


def load_prompted_reader(config: RunConfig) -> PromptedRunner:
    """A causal LM generating the answer after the context and the question."""
    prompted = load_prompted(config, QAInput, TEMPLATES, default="squad", needs=GENERATION,
                             task="question-answering")

    def run(inputs: Sequence[QAInput]) -> list[QAOutput]:
        outputs = []
        for item, answer in zip(inputs, prompted.generate(inputs), strict=True):
            start = item.context.find(answer) if answer else 0
            end = start + len(answer) if start >= 0 else -1
            outputs.append(QAOutput(answer, 0.0, start, end))
        return outputs

    return prompted.runner(run)


def _fast_tokenizer(model: str, trust_remote_code: bool) -> Any:
    tokenizer = load_tokenizer(model, trust_remote_code=trust_remote_code)
    if not getattr(tokenizer, "is_fast", False):
        raise NlpsuiteError(
            f"model '{model}' has no fast tokenizer (tokenizer.json); question answering "
            f"needs one for character offsets"
        )
    return tokenizer


def _output(context: str, answers: list[Answer], top_k: int) -> QAOutput:
    if not answers:  # the context held nothing the tokenizer kept
        answers = [Answer(0, 0, 0.0)]
    best = answers[0]
    listed = [
        {"answer": context[a.start : a.end], "score": a.score, "start": a.start, "end": a.end}
        for a in answers
    ]
    return QAOutput(
        context[best.start : best.end], best.score, best.start, best.end,
        listed if top_k > 1 else None,
    )


def _render(output: QAOutput) -> str:
    def shown(text: str) -> str:  # one line per input on a terminal, whatever the context holds
        return " ".join(text.split()) or "(no answer)"

    if output.answers is None:
        return f"{shown(output.answer)}\t{output.score:.4f}"
    return "\t".join(f"{shown(a['answer'])}={a['score']:.4f}" for a in output.answers)


# Training: SQuAD-style features on the same windows the runner reads.


class GoldSpan(NamedTuple):
    """A training answer as character offsets into its context, ``end`` exclusive; -1, -1 for
    an unanswerable question."""

    start: int
    end: int


NO_ANSWER = GoldSpan(-1, -1)


def answer_tokens(window: Window, gold: GoldSpan) -> tuple[int, int]:
    """The window's first and last token of the answer; the CLS (null) token twice when the
    window does not hold the whole answer, or there is none, as in the reference SQuAD recipe."""
    import numpy as np

    null = (window.null_index, window.null_index)
    positions = np.flatnonzero(window.context_mask)
    if gold.start < 0 or len(positions) == 0:
        return null
    starts, ends = window.offsets[positions, 0], window.offsets[positions, 1]
    if starts[0] > gold.start or ends[-1] < gold.end:
        return null
    # The last token starting at or before the answer, the first ending at or after it.
    first = positions[starts <= gold.start][-1]
    last = positions[ends >= gold.end][0]
    return int(first), int(last)


def training_answers(
    source: str, limit: int | None = None
) -> tuple[list[str], list[str], list[GoldSpan]]:
    """Questions, contexts and gold spans to train on: the first answer of each question.

    SQuAD JSON gives each answer's ``answer_start``, which places answers whose text occurs more
    than once; any other dataset is placed at the answer's first occurrence in the context.
    """
    # start-up: the training machinery loads when a model is trained, not when plugins load
    from nlpsuite.training import load_examples

    path = Path(source)
    if path.suffix.lower() == ".json" and path.is_file():
        return _squad_answers(path, limit)
    questions, contexts, golds = [], [], []
    for example in load_examples(source, TASK.name, limit=limit):
        question, context = example.input["question"], example.input["context"]
        gold = NO_ANSWER
        if example.reference:
            text = example.reference[0]
            start = context.find(text)
            if start < 0 or not text.strip():
                raise NlpsuiteError(
                    f"{source}: example {example.id}: field 'reference': answer {text!r} is "
                    f"not in its context"
                )
            gold = GoldSpan(start, start + len(text))
        questions.append(question)
        contexts.append(context)
        golds.append(gold)
    return questions, contexts, golds


def _squad_answers(path: Path, limit: int | None) -> tuple[list[str], list[str], list[GoldSpan]]:

    document = read_json(path, "training file")
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise NlpsuiteError(f"{path}:1: not a SQuAD file (expected an object with a 'data' list)")
    questions: list[str] = []
    contexts: list[str] = []
    golds: list[GoldSpan] = []

    def fail(qa: Mapping[str, Any], where: str, message: str) -> NlpsuiteError:
        # JSON parsers keep no line numbers: find the question's id in the text instead.
        text = path.read_text(encoding="utf-8")
        at = text.find(json.dumps(qa.get("id"))) if "id" in qa else -1
        line = text.count("\n", 0, at) + 1 if at >= 0 else 1
        return NlpsuiteError(f"{path}:{line}: {where}: {message}")

    for a, article in enumerate(document["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise NlpsuiteError(f"{path}: data[{a}]: field 'paragraphs' is missing")
        for p, paragraph in enumerate(paragraphs):
            context = paragraph.get("context") if isinstance(paragraph, dict) else None
            if not isinstance(context, str) or not context.strip():
                raise NlpsuiteError(
                    f"{path}: data[{a}].paragraphs[{p}]: field 'context' is missing or empty"
                )
            for q, qa in enumerate(paragraph.get("qas", [])):
                where = f"data[{a}].paragraphs[{p}].qas[{q}]"
                if not isinstance(qa, dict) or not isinstance(qa.get("question"), str):
                    raise NlpsuiteError(f"{path}: {where}: field 'question' is missing")
                gold = NO_ANSWER
                answers = qa.get("answers") or []
                if qa.get("is_impossible") is not True:
                    if not answers or not isinstance(answers[0], dict):
                        raise fail(qa, where, "field 'answers' is empty")
                    text, start = answers[0].get("text"), answers[0].get("answer_start")
                    if not isinstance(text, str) or not text.strip():
                        raise fail(qa, where, "field 'answers[0].text' is missing or empty")
                    if start is None:  # no answer_start: place the answer where it first occurs
                        start = context.find(text)
                    elif not isinstance(start, int) or isinstance(start, bool):
                        raise fail(qa, where, f"field 'answers[0].answer_start' should be an "
                                              f"integer, got {type(start).__name__} ({start!r})")
                    if start < 0 or context[start : start + len(text)] != text:
                        found = context.find(text)
                        if found < 0:
                            raise fail(qa, where, f"field 'answers[0].text': answer {text!r} is "
                                                  f"not in its context")
                        raise fail(qa, where, f"field 'answers[0].answer_start': answer "
                                              f"{text!r} is not at {start} in its context (it "
                                              f"is at {found})")
                    gold = GoldSpan(start, start + len(text))
                questions.append(qa["question"])
                contexts.append(context)
                golds.append(gold)
                if limit is not None and len(questions) >= limit:
                    return questions, contexts, golds
    if not questions:
        raise NlpsuiteError(f"{path}:1: field 'data': no questions to train on")
    return questions, contexts, golds


def train(config: TrainConfig) -> TrainingSetup:
    # start-up: the training machinery loads when a model is trained, not when plugins load
    from nlpsuite.training import load_base_model, load_examples

    questions, contexts, golds = training_answers(config.train, config.limit)
    validation = (
        load_examples(config.validation, TASK.name) if config.validation is not None else []
    )
    tokenizer = _fast_tokenizer(config.model, config.trust_remote_code)
    model = load_base_model(
        "AutoModelForQuestionAnswering", config.model, trust_remote_code=config.trust_remote_code
    )
    given = dict(config.options)
    if config.max_length is not None:
        given["max_length"] = config.max_length
    options = TASK.parse_options(given)
    settings = _settings(options, model_max_length(tokenizer, model.config))
    # Validation then reads exactly the windows training built.
    options["max_length"], options["doc_stride"] = settings.max_length, settings.doc_stride
    windows = question_windows(tokenizer, questions, contexts, settings)
    features = []
    for window in windows:
        start, end = answer_tokens(window, golds[window.example])
        features.append({**window.features, "start_positions": start, "end_positions": end})
    holding = sum(f["start_positions"] != w.null_index for f, w in zip(features, windows,
                                                                        strict=True))
    return TrainingSetup(
        model=model, tokenizer=tokenizer, features=features, examples=len(questions),
        validation=validation, options=options,
        card={"windows": f"{len(windows)} ({holding} hold their answer; the rest point at CLS)",
              "window": f"{settings.max_length} tokens, document stride {settings.doc_stride}"},
    )


TASK = Task(
    name="question-answering",
    description="Extract the answer to a question from a context passage (SQuAD-style).",
    default_model="distilbert/distilbert-base-cased-distilled-squad",
    input_type=QAInput,
    output_type=QAOutput,
    load=load,
    metrics=(EXACT_MATCH, SQUAD_F1),
    options=(
        Option("max_length", int, 384,
               "tokens per window, question included (capped at the model's limit)"),
        Option("doc_stride", int, 128,
               "context tokens that consecutive windows share (at most half a window's context)"),
        Option("max_answer_length", int, 30, "longest answer, in tokens"),
        Option("top_k", int, 1, "also list the k best answers"),
        Option("null_threshold", float, None,
               "SQuAD 2.0 models: answer '' when the no-answer logit beats the best span's "
               "by more than this (unset: always answer)"),
        Option("quantize", str, None,
               "int8: dynamic int8 quantization of the linear layers (CPU only; faster, "
               "answers may shift slightly); int8-mixed: the same but the feed-forward output "
               "layers stay float32 (part of the speed-up, less accuracy lost)"),
        *PROMPT_OPTIONS,
    ),
    prediction=lambda output: output.answer,
    parse_reference=lambda value, where: texts_field(value, "reference", where, allow_empty=True),
    render=_render,
    train=train,
    explain=partial(QAExplainable, load=load),
    pipeline_tag="question-answering",
)


@hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    register(TASK)


@hookimpl
def register_datasets(register: Callable[[Dataset], None]) -> None:
    register(
        Dataset(
            name="qa-mini",
            task="question-answering",
            description="24 questions on 12 short general-knowledge passages, every one "
            "answerable, with alternative gold answers; written for nlpsuite",
            licence="CC0-1.0",
            load=lambda: load_records(EVAL_SET, TASK),
            files=(EVAL_SET,),
        )
    )


@hookimpl
def register_dataset_formats(register: Callable[[DatasetFormat], None]) -> None:
    register(SQUAD_FORMAT)
