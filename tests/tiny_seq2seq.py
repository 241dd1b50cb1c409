"""Tiny random seq2seq checkpoints (Marian, T5, BART), built in seconds and saved like hub models.

Each tokenizer is trained on the spot (sentencepiece for Marian and T5, byte-level BPE for BART)
on a few hundred generated lines, so real words split into real pieces. Every model gets a small
position table (64 by default) so that "ten times the model's window" is a cheap input.

Builders assert on vocabulary sizes after a save/load round trip: transformers 5 silently ignores
``vocab_file=`` and would otherwise hand back a tokenizer that maps every word to ``<unk>``.
"""

from __future__ import annotations

import io
import json
import random
from pathlib import Path
from typing import Any

from tests.tiny_models import WORDS

_GERMAN = """
der die das ein eine und ist war nicht mit von zu auf fur den dem des im am es sie er wir ihr
haus hund katze baum buch welt land leute zeit tag nacht stadt fluss wasser feuer erde musik
gut schlecht neu alt gross klein lang kurz schon heute morgen immer wieder sehr viel wenig
"""
GERMAN = _GERMAN.split()

WINDOW = 64
# With the library's 0.02, a random decoder emits one token forever whatever the input; wider
# weights make the output depend on the input (so a mix-up of rows is visible) and keep the top
# two logits of each greedy step apart: over 40 inputs x 40 steps the smallest gap measured was
# 1.5e-4 (Marian), 1.3e-3 (BART), 7e-2 (T5), against float noise of about 1e-6 between batch
# shapes, so batched and single greedy search must agree exactly.
INIT_STD = 0.3
T5_INIT_FACTOR = 5.0


def corpus(lines: int = 400, seed: int = 0) -> list[str]:
    """Sentences of random English and German words, with capitals and end punctuation."""
    rng = random.Random(seed)
    vocabulary = WORDS + GERMAN
    out = []
    for _ in range(lines):
        words = [rng.choice(vocabulary) for _ in range(rng.randint(3, 14))]
        out.append(words[0].capitalize() + " " + " ".join(words[1:]) + rng.choice(".!?."))
    return out


def sentence(rng: random.Random, low: int = 4, high: int = 12) -> str:
    """One sentence made of corpus words: what the tests feed the models."""
    words = [rng.choice(WORDS) for _ in range(rng.randint(low, high))]
    return words[0].capitalize() + " " + " ".join(words[1:]) + "."


def _train_sentencepiece(vocab_size: int, **special: int) -> bytes:
    import sentencepiece

    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus()), model_writer=model, vocab_size=vocab_size,
        model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
        minloglevel=2, **special,
    )
    return model.getvalue()


def _save(model: Any, tokenizer: Any, folder: Path) -> Path:
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def _check_round_trip(folder: Path, vocab_size: int) -> None:
    from transformers import AutoTokenizer

    loaded = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    assert len(loaded) == vocab_size, f"{folder}: {len(loaded)} tokens, not {vocab_size}"
    pieces = loaded.tokenize("the city river")
    assert loaded.unk_token not in pieces, f"{folder}: plain words became {loaded.unk_token}"


def build_marian(folder: Path, window: int = WINDOW, seed: int = 0, d_model: int = 32,
                 layers: int = 2, ffn: int = 64, heads: int = 2, vocab_size: int = 400,
                 init_std: float = INIT_STD, language_codes: tuple[str, ...] = (),
                 vocab_padding: int = 0) -> Path:
    """A random MarianMTModel with a shared sentencepiece vocabulary, as opus-mt ships it.

    ``language_codes`` adds ``>>xx<<`` target tokens, as multilingual opus-mt models have;
    ``vocab_padding`` adds unused tokens, so a benchmark model has an opus-mt-sized output layer
    (the corpus here has too few words to train a large vocabulary).
    """
    import sentencepiece
    import torch
    from transformers import MarianConfig, MarianMTModel, MarianTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    spm = _train_sentencepiece(vocab_size)
    for name in ("source.spm", "target.spm"):
        (folder / name).write_bytes(spm)
    processor = sentencepiece.SentencePieceProcessor(model_proto=spm)
    pieces = [processor.id_to_piece(i) for i in range(processor.get_piece_size())
              if not processor.is_control(i) and not processor.is_unknown(i)]
    # opus-mt layout: </s> first, <unk> second, <pad> last (and also the decoder start token).
    codes = [f">>{code}<<" for code in language_codes]
    unused = [f"<unused{i}>" for i in range(vocab_padding)]
    tokens = ["</s>", "<unk>", *codes, *pieces, *unused, "<pad>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), "utf-8")
    tokenizer = MarianTokenizer(
        source_spm=str(folder / "source.spm"), target_spm=str(folder / "target.spm"),
        vocab=str(folder / "vocab.json"), source_lang="en", target_lang="de",
        model_max_length=window,
    )
    assert tokenizer.vocab_size == len(tokens), "Marian vocabulary not loaded"
    pad = len(tokens) - 1
    torch.manual_seed(seed)
    config = MarianConfig(
        vocab_size=len(tokens), d_model=d_model, encoder_layers=layers, decoder_layers=layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads, encoder_ffn_dim=ffn,
        decoder_ffn_dim=ffn, max_position_embeddings=window, scale_embedding=True,
        pad_token_id=pad, eos_token_id=0, decoder_start_token_id=pad, forced_eos_token_id=0,
        init_std=init_std,
    )
    model = MarianMTModel(config)
    # opus-mt never lets the decoder emit <pad>; keep that, and keep the checkpoint's own
    # (deliberately not greedy) beam default so tests show our option overrides it.
    model.generation_config.bad_words_ids = [[pad]]
    model.generation_config.num_beams = 4
    model.generation_config.max_length = window
    _save(model, tokenizer, folder)
    _check_round_trip(folder, len(tokens))
    return folder


def build_t5(folder: Path, window: int = WINDOW, seed: int = 0, vocab_size: int = 400,
             task_specific_params: dict[str, Any] | None = None) -> Path:
    """A random T5ForConditionalGeneration; tokenizer from (piece, score) pairs of a fresh spm."""
    import sentencepiece
    import torch
    from transformers import T5Config, T5ForConditionalGeneration, T5Tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    # T5's fixed layout: <pad>=0, </s>=1, <unk>=2, and no <s>.
    spm = _train_sentencepiece(vocab_size, pad_id=0, eos_id=1, unk_id=2, bos_id=-1)
    processor = sentencepiece.SentencePieceProcessor(model_proto=spm)
    vocab = [(processor.id_to_piece(i), processor.get_score(i))
             for i in range(processor.get_piece_size())]
    # vocab= (not vocab_file=) is what transformers 5 reads; no sentinel tokens are needed here.
    tokenizer = T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=window)
    assert len(tokenizer) == len(vocab), "T5 vocabulary not loaded"
    torch.manual_seed(seed)
    config = T5Config(
        vocab_size=len(vocab), d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2,
        num_heads=2, relative_attention_num_buckets=8, relative_attention_max_distance=32,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
        initializer_factor=T5_INIT_FACTOR, task_specific_params=task_specific_params,
    )
    model = T5ForConditionalGeneration(config)
    model.generation_config.max_length = window
    _save(model, tokenizer, folder)
    _check_round_trip(folder, len(vocab))
    return folder


def build_bart(folder: Path, window: int = WINDOW, seed: int = 0, vocab_size: int = 500,
               task_specific_params: dict[str, Any] | None = None,
               generation: dict[str, Any] | None = None) -> Path:
    """A random BartForConditionalGeneration with a byte-level BPE trained on the spot."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import BartConfig, BartForConditionalGeneration, BartTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    special = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # BART's ids 0..4
    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(corpus(), vocab_size=vocab_size, min_frequency=2,
                                special_tokens=special, show_progress=False)
    state = json.loads(trainer.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    tokenizer = BartTokenizer(vocab=state["vocab"], merges=merges, model_max_length=window)
    assert len(tokenizer) == len(state["vocab"]), "BART vocabulary not loaded"
    assert [tokenizer.convert_tokens_to_ids(t) for t in special] == [0, 1, 2, 3, 4]
    torch.manual_seed(seed)
    config = BartConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
        decoder_ffn_dim=64, max_position_embeddings=window,
        bos_token_id=0, pad_token_id=1, eos_token_id=2, decoder_start_token_id=2,
        forced_bos_token_id=0, forced_eos_token_id=2, init_std=INIT_STD,
        task_specific_params=task_specific_params,
    )
    model = BartForConditionalGeneration(config)
    model.generation_config.max_length = window
    # BartConfig no longer carries generation settings into generation_config (transformers 5).
    model.generation_config.forced_bos_token_id = 0
    for key, value in (generation or {}).items():
        setattr(model.generation_config, key, value)
    _save(model, tokenizer, folder)
    _check_round_trip(folder, len(tokenizer))
    return folder
