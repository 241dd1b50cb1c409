"""translation: opus-mt (Marian) by default, or any seq2seq checkpoint such as T5.

Each input is split into sentences; the sentences of all inputs in a call are translated in one
length-sorted batched pass and put back together per input, with the input's line breaks. A
sentence longer than the model's window is cut at words (characters for unspaced scripts), never
truncated. Greedy search is the default, whatever beam width the checkpoint declares, because it
is the fastest (one hypothesis per sentence instead of one per beam); set ``num_beams`` to trade
speed for quality.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpsuite import NlpsuiteError, Option, RunConfig, Task, hookimpl
from nlpsuite.catalog import load_records
from nlpsuite.datasets import Dataset, DatasetFormat, load_parallel, texts_field
from nlpsuite.generation import (
    has_text,
    is_spaced,
    join_sentences,
    load_seq2seq,
    split_sentences,
    task_params,
)
from nlpsuite.metrics import BLEU, CHRF
from nlpsuite.prompting import (
    GENERATION,
    PROMPT_OPTIONS,
    PromptedRunner,
    is_prompted,
    load_prompted,
)

logger = logging.getLogger("nlpsuite")

DEFAULT_MODEL = "Helsinki-NLP/opus-mt-{source_lang}-{target_lang}"
TEMPLATES = Path(__file__).resolve().parent / "data" / "templates"

# ISO 639-1/3 code, optionally with a script or region (zh_Hant, pt_br), or an opus-mt group name
# such as ROMANCE.
_CODE = re.compile(r"[a-z]{2,3}(_[A-Za-z]{2,4})?|[A-Z]{3,12}")

# T5 was trained with prefixes naming the languages in English ("translate English to German: ").
LANGUAGE_NAMES = {
    "ar": "Arabic",
    "cs": "Czech",
    "da": "Danish",
    "de": "German",
    "el": "Greek",
    "en": "English",
    "es": "Spanish",
    "fi": "Finnish",
    "fr": "French",
    "he": "Hebrew",
    "hi": "Hindi",
    "hu": "Hungarian",
    "it": "Italian",
    "ja": "Japanese",
    "ko": "Korean",
    "nl": "Dutch",
    "no": "Norwegian",
    "pl": "Polish",
    "pt": "Portuguese",
    "ro": "Romanian",
    "ru": "Russian",
    "sv": "Swedish",
    "tr": "Turkish",
    "uk": "Ukrainian",
    "zh": "Chinese",
}


@dataclass(frozen=True)
class TranslationInput:
    text: str

    def __post_init__(self) -> None:
        if not has_text(self.text):
            raise NlpsuiteError("field 'text' is empty")


@dataclass(frozen=True)
class TranslationOutput:
    translation: str
    # How many pieces the input was translated in: its sentences, plus any extra cuts made in
    # sentences longer than the model's window.
    segments: int


def check_language(option: str, code: str) -> str:
    if not _CODE.fullmatch(code):
        raise NlpsuiteError(
            f"option '{option}': {code!r} is not a language code (use ISO codes such as en, de, zh)"
        )
    return code


def translation_prefix(config: Any, tokenizer: Any, source: str, target: str) -> str:
    """What goes before each sentence: a T5 task prefix or a multilingual opus-mt target token."""
    declared = task_params(config, f"translation_{source}_to_{target}").get("prefix")
    if isinstance(declared, str):
        return declared
    if getattr(config, "model_type", None) == "t5":
        names = [LANGUAGE_NAMES.get(code.split("_")[0]) for code in (source, target)]
        if None in names:
            known = ", ".join(sorted(LANGUAGE_NAMES))
            raise NlpsuiteError(
                f"no T5 prefix for {source}->{target}: the checkpoint declares none and the "
                f"language names are known only for {known}"
            )
        return f"translate {names[0]} to {names[1]}: "
    codes = getattr(tokenizer, "supported_language_codes", None) or []
    if codes:  # multilingual opus-mt models (e.g. en-ROMANCE) pick the target with >>xx<<
        token = f">>{target}<<"
        if token not in codes:
            raise NlpsuiteError(
                f"this model translates into {', '.join(c[2:-2] for c in codes)}; "
                f"not into '{target}'"
            )
        return token + " "
    return ""


def default_limit(source_tokens: int) -> int:
    """Translations rarely run past twice the source length; the bound stops a model that never
    emits </s> from filling the decoder's whole position table on every sentence."""
    return 2 * source_tokens + 16


def load(config: RunConfig) -> Callable[[Sequence[TranslationInput]], list[TranslationOutput]]:
    source = check_language("source_lang", config.options["source_lang"])
    target = check_language("target_lang", config.options["target_lang"])
    if source == target:
        raise NlpsuiteError(f"source and target language are both '{source}'")
    num_beams = config.options["num_beams"]
    max_new_tokens = config.options["max_new_tokens"]
    if num_beams < 1:
        raise NlpsuiteError(f"option 'num_beams' must be at least 1, got {num_beams}")
    if max_new_tokens is not None and max_new_tokens < 1:
        raise NlpsuiteError(f"option 'max_new_tokens' must be at least 1, got {max_new_tokens}")
    try:
        if is_prompted(config):
            return load_prompted_translator(config, source, target)
        seq2seq = load_seq2seq(
            config,
            lambda model_config, tokenizer: translation_prefix(
                model_config, tokenizer, source, target
            ),
        )
    except NlpsuiteError as error:
        if config.model == DEFAULT_MODEL.format(source_lang=source, target_lang=target):
            raise NlpsuiteError(f"translating {source} to {target}: {error}") from None
        raise
    spaced = is_spaced(target)

    def run(inputs: Sequence[TranslationInput]) -> list[TranslationOutput]:
        # Every input as (piece, separator) pairs; the pieces of all inputs go in one pass.
        sentences = [split_sentences(item.text) for item in inputs]
        fitted = seq2seq.fit([sentence for pairs in sentences for sentence, _ in pairs])
        cut = [pieces for pieces in fitted if len(pieces) > 1]
        if cut:
            logger.warning(
                "%d of %d sentences were longer than the model's window of %d tokens; they "
                "were translated in %d pieces, cut between words",
                len(cut),
                len(fitted),
                seq2seq.window,
                sum(len(pieces) for pieces in cut),
            )
        pending = iter(fitted)
        layouts: list[list[tuple[str, str]]] = []
        for pairs in sentences:
            layout = []
            for _, separator in pairs:
                pieces = next(pending)
                layout += [(piece, " ") for piece in pieces[:-1]] + [(pieces[-1], separator)]
            layouts.append(layout)
        pieces = [piece for layout in layouts for piece, _ in layout]
        generated = iter(
            seq2seq.generate(
                pieces,
                max_new_tokens=max_new_tokens or default_limit,
                batch_size=config.batch_size,
                num_beams=num_beams,
            )
        )
        outputs = []
        for layout in layouts:
            translated = [(next(generated).text, separator) for _, separator in layout]
            outputs.append(TranslationOutput(join_sentences(translated, spaced), len(layout)))
        return outputs

    return run


def load_prompted_translator(config: RunConfig, source: str, target: str) -> PromptedRunner:
    """A causal LM generating the translation of each input whole (one segment); the template
    may name the languages: ``{source_lang}``, ``{source_language}`` (English), and so on."""
    names = {"source_lang": source, "target_lang": target,
             "source_language": LANGUAGE_NAMES.get(source, source),
             "target_language": LANGUAGE_NAMES.get(target, target)}
    prompted = load_prompted(config, TranslationInput, TEMPLATES, default="wmt",
                             needs=GENERATION, task="translation", values=names)
    limit = config.options["max_new_tokens"]

    def run(inputs: Sequence[TranslationInput]) -> list[TranslationOutput]:
        return [TranslationOutput(text, 1) for text in prompted.generate(inputs, limit)]

    return prompted.runner(run)


TASK = Task(
    name="translation",
    description="Translate text, sentence by sentence (opus-mt by default; T5 works too).",
    default_model=DEFAULT_MODEL,
    input_type=TranslationInput,
    output_type=TranslationOutput,
    load=load,
    metrics=(BLEU, CHRF),
    options=(
        Option("source_lang", str, "en", "language of the input (ISO code)"),
        Option("target_lang", str, "de", "language to translate into (ISO code)"),
        Option("num_beams", int, 1, "beam width; 1 is greedy search, the fastest"),
        Option(
            "max_new_tokens",
            int,
            None,
            "longest translation of one sentence, in tokens; unset: twice the sentence's "
            "length plus 16 (a causal LM: the whole input; unset: the template's)",
        ),
        *PROMPT_OPTIONS,
    ),
    prediction=lambda output: output.translation,
    parse_reference=lambda value, where: texts_field(value, "reference", where, allow_empty=False),
    render=lambda output: output.translation,
)


@hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    register(TASK)


EVAL_SET = Path(__file__).resolve().parent / "data" / "translation-en-de.jsonl"


@hookimpl
def register_datasets(register: Callable[[Dataset], None]) -> None:
    register(
        Dataset(
            name="translation-mini",
            task="translation",
            description="16 everyday English sentences, German references, written for nlpsuite",
            licence="CC0-1.0",
            load=lambda: load_records(EVAL_SET, TASK),
            files=(EVAL_SET,),
            options={"source_lang": "en", "target_lang": "de"},
        )
    )


@hookimpl
def register_dataset_formats(register: Callable[[DatasetFormat], None]) -> None:
    register(DatasetFormat(
        "aligned plain text", ("translation", "summarization"), _is_parallel, open_parallel,
        expects="for aligned plain-text files write SOURCE:REFERENCE[:REFERENCE...]",
    ))


def _is_parallel(spec: str) -> bool:
    """``SOURCE:REFERENCE[:REFERENCE...]`` with at least one of the files present (a missing
    one is then an error naming it, not an unknown dataset name)."""
    parts = spec.split(":")
    return (not Path(spec).exists() and len(parts) >= 2 and all(parts)
            and any(Path(part).is_file() for part in parts))


def open_parallel(spec: str) -> Dataset:
    """Aligned plain-text files: a source and its reference files, one segment per line."""
    source, *references = spec.split(":")
    missing = [part for part in (source, *references) if not Path(part).is_file()]
    if missing:
        raise NlpsuiteError(f"parallel dataset '{spec}': file not found: {missing[0]}")
    files = (Path(source), *(Path(reference) for reference in references))
    return Dataset(
        name=spec,
        task="translation",
        description=f"{files[0].name} with {len(references)} reference file(s)",
        licence="unknown (user files)",
        load=lambda: load_parallel(source, references),
        files=files,
    )
