"""summarization: abstractive summaries with any seq2seq checkpoint (distilBART-CNN by default).

A document longer than the model's input window is summarized map-reduce style: cut into runs of
whole sentences that fit the window, each run summarized (the runs of every document in the call
in one batched pass), the run summaries joined and summarized again, until the text fits and a
last pass gives the summary. So the end of a long document counts as much as its start.

Length and search settings default to the checkpoint's own (``task_specific_params`` or its
generation config), as the model was tuned with them.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpsuite import NlpsuiteError, Option, RunConfig, Task, hookimpl
from nlpsuite.catalog import load_records
from nlpsuite.datasets import (
    Dataset,
    DatasetFormat,
    Example,
    Located,
    first_jsonl_keys,
    first_line,
    required_field,
    row_id,
    rows,
    string_list,
    texts_field,
    unique_located,
)
from nlpsuite.generation import Generation, Seq2Seq, has_text, load_seq2seq, task_params
from nlpsuite.metrics import ROUGE
from nlpsuite.prompting import (
    GENERATION,
    PROMPT_OPTIONS,
    PromptedRunner,
    is_prompted,
    load_prompted,
)

# For checkpoints that declare nothing: greedy, and summaries of up to 128 tokens.
FALLBACK = {"min_length": 0, "max_length": 128, "num_beams": 1, "no_repeat_ngram_size": 0}
# Beam settings a checkpoint may declare beside the options; passed on when beams are used.
BEAM_SETTINGS = ("length_penalty", "early_stopping")
# A run summary is at most this share of the window, so every map-reduce round shrinks the text.
RUN_SHARE = 4
MAX_ROUNDS = 12


@dataclass(frozen=True)
class SummarizationInput:
    text: str

    def __post_init__(self) -> None:
        if not has_text(self.text):
            raise NlpsuiteError("field 'text' is empty")


@dataclass(frozen=True)
class SummarizationOutput:
    summary: str
    # How many windows the document filled: 1 when it fit; more means it was summarized in runs.
    chunks: int


def summary_prefix(config: Any) -> str:
    declared = task_params(config, "summarization").get("prefix")
    if isinstance(declared, str):
        return declared
    return "summarize: " if getattr(config, "model_type", None) == "t5" else ""


def settings(model: Any, options: dict[str, Any]) -> dict[str, Any]:
    """Generation settings: the options given, else the checkpoint's, else :data:`FALLBACK`."""
    declared = task_params(model.config, "summarization")
    generation = model.generation_config
    resolved: dict[str, Any] = {}
    for name, fallback in FALLBACK.items():
        value = options.get(name)
        if value is None:
            value = declared.get(name, getattr(generation, name, None))
        resolved[name] = fallback if value is None else int(value)
    for name in BEAM_SETTINGS:
        value = declared.get(name, getattr(generation, name, None))
        if value is not None:
            resolved[name] = value
    for name in ("min_length", "no_repeat_ngram_size"):
        if resolved[name] < 0:
            raise NlpsuiteError(f"option '{name}' must be at least 0, got {resolved[name]}")
    for name in ("max_length", "num_beams"):
        if resolved[name] < 1:
            raise NlpsuiteError(f"option '{name}' must be at least 1, got {resolved[name]}")
    if resolved["min_length"] > resolved["max_length"]:
        if options.get("min_length") is None:  # the checkpoint's minimum, under a max given here
            resolved["min_length"] = resolved["max_length"]
            return resolved
        raise NlpsuiteError(
            f"min_length ({resolved['min_length']}) is more than max_length "
            f"({resolved['max_length']})"
        )
    return resolved


class Summarizer:
    """Map-reduce summarization over a :class:`Seq2Seq` model."""

    def __init__(self, seq2seq: Seq2Seq, settings: dict[str, Any], batch_size: int) -> None:
        self.seq2seq = seq2seq
        self.settings = settings
        self.batch_size = batch_size

    def generate(self, texts: Sequence[str], final: bool = True) -> list[Generation]:
        """One generation pass over texts that fit the window; ``final=False`` for the runs of a
        long document, whose summaries are held to a share of the window."""
        options = dict(self.settings)
        # max_length and min_length count the decoder start token, as transformers does.
        max_new_tokens = options.pop("max_length") - 1
        if not final:
            max_new_tokens = min(max_new_tokens, max(self.seq2seq.window // RUN_SHARE, 1))
            options["min_length"] = min(options["min_length"], max_new_tokens)
        if options["num_beams"] == 1:
            options = {k: v for k, v in options.items() if k not in BEAM_SETTINGS}
        return self.seq2seq.generate(
            texts, max_new_tokens=max(max_new_tokens, 1), batch_size=self.batch_size, **options
        )

    def __call__(self, texts: Sequence[str]) -> list[SummarizationOutput]:
        pending = [self.seq2seq.chunks(text) for text in texts]
        chunks = [len(runs) for runs in pending]
        for _ in range(MAX_ROUNDS):
            long = [i for i, runs in enumerate(pending) if len(runs) > 1]
            if not long:
                break
            # Every run of every long document in one batched pass.
            runs = [run for i in long for run in pending[i]]
            summaries = iter(self.generate(runs, final=False))
            for i in long:
                joined = " ".join(s.text for s in (next(summaries) for _ in pending[i]) if s.text)
                if not joined:  # the model said nothing about any run: nothing left to reduce
                    pending[i] = [""]
                    continue
                before = sum(self.seq2seq.count(pending[i]))
                pending[i] = self.seq2seq.chunks(joined)
                if len(pending[i]) > 1 and sum(self.seq2seq.count(pending[i])) >= before:
                    raise NlpsuiteError(
                        "summarizing a long document in runs did not shorten it; lower max_length"
                    )
        else:
            raise NlpsuiteError(f"document still longer than the window after {MAX_ROUNDS} rounds")
        final = [runs[0] for runs in pending]
        wanted = [i for i, text in enumerate(final) if text]
        results = [""] * len(final)
        for i, summary in zip(wanted, self.generate([final[i] for i in wanted]), strict=True):
            results[i] = summary.text
        return [SummarizationOutput(text, n) for text, n in zip(results, chunks, strict=True)]


def check_options(config: RunConfig) -> None:
    for name in ("min_length", "no_repeat_ngram_size", "max_length", "num_beams"):
        value = config.options[name]
        floor = 0 if name in ("min_length", "no_repeat_ngram_size") else 1
        if value is not None and value < floor:
            raise NlpsuiteError(f"option '{name}' must be at least {floor}, got {value}")


def build(config: RunConfig) -> Summarizer:
    """Load the checkpoint and settle its settings; errors in options come before the load."""
    check_options(config)
    seq2seq = load_seq2seq(config, lambda model_config, tokenizer: summary_prefix(model_config))
    return Summarizer(seq2seq, settings(seq2seq.model, dict(config.options)), config.batch_size)


def load(config: RunConfig) -> Callable[[Sequence[SummarizationInput]], list[SummarizationOutput]]:
    check_options(config)
    if is_prompted(config):
        return load_prompted_summarizer(config)
    summarizer = build(config)

    def run(inputs: Sequence[SummarizationInput]) -> list[SummarizationOutput]:
        return summarizer([item.text for item in inputs])

    return run


def load_prompted_summarizer(config: RunConfig) -> PromptedRunner:
    """A causal LM generating the summary after the document, read whole (one chunk)."""
    prompted = load_prompted(config, SummarizationInput, TEMPLATES, default="scitldr",
                             needs=GENERATION, task="summarization")

    def run(inputs: Sequence[SummarizationInput]) -> list[SummarizationOutput]:
        return [SummarizationOutput(summary, 1) for summary in prompted.generate(inputs)]

    return prompted.runner(run)


TASK = Task(
    name="summarization",
    description="Summarize documents of any length (distilBART-CNN by default; T5 works too).",
    default_model="sshleifer/distilbart-cnn-12-6",
    input_type=SummarizationInput,
    output_type=SummarizationOutput,
    load=load,
    metrics=ROUGE,
    options=(
        Option(
            "min_length",
            int,
            None,
            "shortest summary in tokens, counting the decoder start token as transformers "
            "does; unset: the checkpoint's",
        ),
        Option(
            "max_length",
            int,
            None,
            "longest summary in tokens, counting the decoder start token; unset: the "
            "checkpoint's, else 128",
        ),
        Option("num_beams", int, None, "beam width, 1 for greedy; unset: the checkpoint's"),
        Option(
            "no_repeat_ngram_size",
            int,
            None,
            "never repeat an n-gram of this size, 0 for no limit; unset: the checkpoint's",
        ),
        *PROMPT_OPTIONS,
    ),
    prediction=lambda output: output.summary,
    parse_reference=lambda value, where: texts_field(value, "reference", where, allow_empty=False),
    render=lambda output: output.summary,
)


@hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    register(TASK)


EVAL_SET = Path(__file__).resolve().parent / "data" / "summarization-mini.jsonl"
TEMPLATES = Path(__file__).resolve().parent / "data" / "templates"


@hookimpl
def register_datasets(register: Callable[[Dataset], None]) -> None:
    register(
        Dataset(
            name="summarization-mini",
            task="summarization",
            description="8 news-style paragraphs with one-sentence summaries, written for nlpsuite",
            licence="CC0-1.0",
            load=lambda: load_records(EVAL_SET, TASK),
            files=(EVAL_SET,),
            options={},
        )
    )


@hookimpl
def register_dataset_formats(register: Callable[[DatasetFormat], None]) -> None:
    register(DatasetFormat.of_files(
        "SciTLDR JSONL", ("summarization",), _is_scitldr, load_scitldr,
        suffixes=(".jsonl",), expects="'source' sentences and 'target' summaries (SciTLDR)",
    ))
    register(DatasetFormat.of_files(
        "summarization pairs", ("summarization",), _is_summarization_pairs, load_summarization,
        suffixes=(".jsonl", ".csv"), expects="'document' and 'summary' fields",
    ))


def _first_row_keys(spec: str) -> dict[str, Any]:
    """The first JSONL row (or CSV header, as keys) of a records file; {} for anything else."""
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix not in {".jsonl", ".ndjson", ".csv"} or not path.is_file():
        return {}
    try:
        if suffix == ".csv":
            return dict.fromkeys(next(csv.reader([first_line(path)]), []))
        return first_jsonl_keys(path)
    except (NlpsuiteError, csv.Error):  # the records reader reports a bad file with its line
        return {}


def _is_scitldr(spec: str) -> bool:
    keys = _first_row_keys(spec)
    return isinstance(keys.get("source"), list) and "target" in keys


def _is_summarization_pairs(spec: str) -> bool:
    keys = _first_row_keys(spec)
    return {"document", "summary"} <= set(keys) and "reference" not in keys


def load_scitldr(path: str | Path) -> list[Example]:
    """SciTLDR JSONL: ``source`` (abstract sentences), ``target`` (TLDRs), ``paper_id``.

    Sentences and references carry stray whitespace upstream: each is stripped, and the
    sentences are joined with one space. Every reference is kept, for multi-reference ROUGE.
    """
    examples = []
    for where, row in rows(path):
        sentences = string_list(row, "source", where)
        targets = [t.strip() for t in string_list(row, "target", where) if t.strip()]
        if not targets:
            raise NlpsuiteError(f"{where}: field 'target' has no non-empty reference")
        text = " ".join(s.strip() for s in sentences if s.strip())
        if not text:
            raise NlpsuiteError(f"{where}: field 'source' is empty")
        identifier = str(required_field(row, "paper_id", (str, int), where))
        examples.append(Located(where, Example(identifier, {"text": text}, targets)))
    return unique_located(examples)


def load_summarization(
    path: str | Path, *, document: str = "document", summary: str = "summary"
) -> list[Example]:
    """JSONL or CSV with a document and its summary (a string or a list of references).

    A document given as a list of sentences is joined with spaces. Ids come from an ``id``
    field, else the line number.
    """
    examples = []
    for where, row in rows(path):
        text = row.get(document)
        if isinstance(text, list) and all(isinstance(s, str) for s in text):
            text = " ".join(s.strip() for s in text if s.strip())
        if text is None:
            raise NlpsuiteError(f"{where}: missing field '{document}'")
        if not isinstance(text, str):
            raise NlpsuiteError(
                f"{where}: field '{document}' should be str, got {type(text).__name__}"
            )
        if not text.strip():
            raise NlpsuiteError(f"{where}: field '{document}' is empty")
        references = texts_field(row.get(summary), summary, where, allow_empty=False)
        examples.append(Located(where, Example(row_id(row, where), {"text": text}, references)))
    return unique_located(examples)
