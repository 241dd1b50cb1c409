"""ctranslate2: seq2seq checkpoints (Marian/opus-mt, BART, T5) on CTranslate2.

``pip install 'nlpsuite[ctranslate2]'``. A checkpoint is converted once with CTranslate2's
transformers converter, in float32, and kept under ``~/.cache/nlpsuite/ctranslate2/`` keyed by
the sha256 of the weights; ``compute_type`` (``int8``, ``int16``, ``float32``...) is applied when
the converted model loads, so one conversion serves every type.

The model it returns serves :class:`nlpsuite.generation.Seq2Seq` through
:meth:`~nlpsuite.backends.TokenGenerator.generate_tokens`: the same token ids in and out, the
same per-input length limits, and the checkpoint's forced first token (BART's ``<s>``) and forced
end token at the limit, so greedy output is token for token what ``generate()`` gives when the
float32 arithmetic agrees. Beam search differs in one respect: transformers forces the end token
into the beams at the limit, CTranslate2 cuts the best beam there.

    nlpsuite run translation --backend ctranslate2:compute_type=int8 -m opus-mt-en-de "Hello."
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nlpsuite import NlpsuiteError, hookimpl
from nlpsuite.backends import Backend, BackendConfig, cache_dir, convert_once, cpu_threads
from nlpsuite.checkpoints import weights_sha256
from nlpsuite.models import load_config, local_checkpoint
from nlpsuite.options import Option

COMPUTE_TYPES = ("float32", "int8", "int8_float32", "int16", "float16", "bfloat16",
                 "int8_float16", "int8_bfloat16", "auto", "default")
# Bumped when the conversion changes, so conversions made by an older nlpsuite are not reused.
CONVERT_VERSION = 1
# generate() options this backend understands; anything else is refused rather than ignored.
KNOWN_OPTIONS = {"num_beams", "min_length", "min_new_tokens", "no_repeat_ngram_size",
                 "length_penalty", "repetition_penalty", "early_stopping", "forced_bos_token_id",
                 "forced_eos_token_id", "bad_words_ids", "do_sample"}


def load(config: BackendConfig) -> CTranslate2Seq2Seq:
    compute_type = config.options["compute_type"]
    if compute_type not in COMPUTE_TYPES:
        raise NlpsuiteError(f"backend 'ctranslate2': unknown compute_type '{compute_type}' "
                            f"(use {', '.join(COMPUTE_TYPES)})")
    folder = local_checkpoint(config)
    sha = weights_sha256(str(folder))
    if sha is None:
        raise NlpsuiteError(f"model '{config.model}': no weight files in {folder} to convert")
    target = cache_dir("ctranslate2", f"{sha[:32]}-v{CONVERT_VERSION}")
    convert_once(target, lambda scratch: convert(config, folder, scratch))
    return CTranslate2Seq2Seq(target, folder, config)


def convert(config: BackendConfig, folder: Path, out: Path) -> None:
    """``folder``'s checkpoint converted into ``out`` (float32 weights)."""
    from ctranslate2.converters import TransformersConverter

    class Converter(TransformersConverter):
        def load_model(self, model_class: Any, path: str, **kwargs: Any) -> Any:
            model = super().load_model(model_class, path, **kwargs)
            # CTranslate2 4.x reads config.normalize_before for BART, a fairseq-era key that
            # transformers 5 configs no longer carry unless config.json has it; BART is
            # post-norm, which is what False means.
            if model.config.model_type == "bart" and not hasattr(model.config, "normalize_before"):
                model.config.normalize_before = False
            return model

    logging.getLogger("nlpsuite").info(
        "converting %s for CTranslate2 (once; cached in %s)", config.model, out.parent
    )
    try:
        Converter(str(folder), trust_remote_code=config.trust_remote_code).convert(
            str(out), force=True
        )
    except (ValueError, NotImplementedError, KeyError, AttributeError) as error:
        first = (str(error).strip() or type(error).__name__).splitlines()[0]
        raise NlpsuiteError(
            f"CTranslate2 cannot convert model '{config.model}': {first}"
        ) from None
    (out / "nlpsuite.json").write_text(json.dumps({
        "model": config.model, "weights_sha256": weights_sha256(str(folder)),
    }, indent=2) + "\n")


class CTranslate2Seq2Seq:
    """A converted seq2seq model: ``.config`` and ``.generation_config`` of the checkpoint, and
    :meth:`generate_tokens` for :class:`nlpsuite.generation.Seq2Seq`."""

    def __init__(self, path: Path, folder: Path, config: BackendConfig) -> None:
        import ctranslate2
        from transformers import GenerationConfig

        self.config = load_config(str(folder), trust_remote_code=config.trust_remote_code)
        try:
            self.generation_config = GenerationConfig.from_pretrained(str(folder))
        except OSError:  # no generation_config.json: transformers derives one the same way
            self.generation_config = GenerationConfig.from_model_config(self.config)
        self.compute_type = config.options["compute_type"]
        self.translator = ctranslate2.Translator(
            str(path), device=config.device, compute_type=self.compute_type,
            intra_threads=cpu_threads(), inter_threads=1,
        )
        source, target = _vocabularies(path)
        self.source_tokens = source
        self.target_tokens = target
        self.target_ids = {token: i for i, token in enumerate(target)}

    def generate_tokens(
        self, rows: Sequence[Sequence[int]], limits: Sequence[int], options: Mapping[str, Any]
    ) -> list[list[int]]:
        unknown = sorted(set(options) - KNOWN_OPTIONS)
        if unknown:
            raise NlpsuiteError(f"backend 'ctranslate2' does not support the generate option "
                                f"'{unknown[0]}'; use --backend torch")
        if options.get("do_sample"):
            raise NlpsuiteError("backend 'ctranslate2' generates greedily or by beam search only")
        settings = self._settings(options)
        sources = [[self._source_token(i) for i in ids] for ids in rows]
        forced_bos = self._setting(options, "forced_bos_token_id")
        prefix = [self.target_tokens[forced_bos]] if forced_bos is not None else None
        # Greedy tokens do not depend on the limit, so one call with the largest limit, cut per
        # row, is exact; a beam's do, so beam search runs once per distinct limit.
        groups: dict[int, list[int]] = {}
        for index, limit in enumerate(limits):
            groups.setdefault(max(limits) if settings["beam_size"] == 1 else limit,
                              []).append(index)
        results: list[list[int]] = [[] for _ in rows]
        for limit, members in groups.items():
            found = self.translator.translate_batch(
                [sources[i] for i in members],
                target_prefix=[prefix] * len(members) if prefix else None,
                max_decoding_length=limit, return_end_token=True, max_input_length=0,
                **settings,
            )
            for index, result in zip(members, found, strict=True):
                results[index] = [self.target_ids[token] for token in result.hypotheses[0]]
        return [self._at_limit(tokens, limit, options) for tokens, limit in
                zip(results, limits, strict=True)]

    def _settings(self, options: Mapping[str, Any]) -> dict[str, Any]:
        """generate()'s options, or the checkpoint's generation config, as CTranslate2 names."""
        min_new = options.get("min_new_tokens")
        if min_new is None:  # min_length counts the decoder start token, as in transformers
            min_new = max(int(self._setting(options, "min_length") or 0) - 1, 0)
        settings: dict[str, Any] = {
            "beam_size": int(self._setting(options, "num_beams") or 1),
            "length_penalty": float(self._setting(options, "length_penalty") or 1.0),
            "no_repeat_ngram_size": int(self._setting(options, "no_repeat_ngram_size") or 0),
            "repetition_penalty": float(self._setting(options, "repetition_penalty") or 1.0),
            "min_decoding_length": int(min_new),
        }
        banned = self._setting(options, "bad_words_ids") or []
        # A banned id that the converted vocabulary dropped (Marian's <pad>) cannot come out.
        suppressed = [[self.target_tokens[i] for i in words] for words in banned
                      if all(0 <= i < len(self.target_tokens) for i in words)]
        if suppressed:
            settings["suppress_sequences"] = suppressed
        return settings

    def _setting(self, options: Mapping[str, Any], name: str) -> Any:
        return options[name] if name in options else getattr(self.generation_config, name, None)

    def _source_token(self, token_id: int) -> str:
        if not 0 <= token_id < len(self.source_tokens):
            raise NlpsuiteError(f"backend 'ctranslate2': token id {token_id} is not in the "
                                f"converted model's vocabulary")
        return self.source_tokens[token_id]

    def _at_limit(self, tokens: list[int], limit: int, options: Mapping[str, Any]) -> list[int]:
        """Cut at the row's limit; where the checkpoint forces an end token there (Marian,
        BART), the last token becomes that end token, as transformers makes it."""
        tokens = tokens[:limit]
        forced = self._setting(options, "forced_eos_token_id")
        if forced is None or len(tokens) < limit:
            return tokens
        ends = forced if isinstance(forced, list) else [forced]
        if tokens[-1] not in ends:
            tokens[-1] = ends[0]
        return tokens


def _vocabularies(path: Path) -> tuple[list[str], list[str]]:
    """Source and target tokens by id, from whichever files the converter wrote."""

    def read(name: str) -> list[str] | None:
        for suffix in (".json", ".txt"):
            file = path / f"{name}{suffix}"
            if file.exists():
                text = file.read_text(encoding="utf-8")
                tokens = json.loads(text) if suffix == ".json" else text.splitlines()
                return [str(token) for token in tokens]
        return None

    shared = read("shared_vocabulary")
    source, target = read("source_vocabulary") or shared, read("target_vocabulary") or shared
    if source is None or target is None:
        raise NlpsuiteError(f"{path}: no vocabulary files in the converted model")
    return source, target


BACKEND = Backend(
    name="ctranslate2",
    description="CTranslate2: seq2seq generation (Marian/opus-mt, BART, T5), int8 on the CPU",
    load=load,
    auto_classes=("AutoModelForSeq2SeqLM",),
    options=(Option("compute_type", str, "float32",
                    "int8, int8_float32, int16, float32...: applied when the model loads"),),
    requires=("ctranslate2",),
    extra="ctranslate2",
)


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    register(BACKEND)
