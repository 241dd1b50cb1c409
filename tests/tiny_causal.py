"""Tiny random causal language models (Llama and GPT-2), built in seconds and saved like hub models.

Both share a byte-level BPE trained on the spot on the seq2seq corpus, so every string (any UTF-8)
encodes, and real words split into real pieces. The Llama tokenizer adds its BOS token, as
Llama's do, and carries a chat template; GPT-2's adds nothing and has no padding token, as GPT-2's
has none. Position tables are small (64 by default) so that "longer than the context" is cheap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.tiny_seq2seq import INIT_STD, WINDOW, corpus

CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}</s>"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def _byte_level_bpe(vocab_size: int, special: list[str]) -> tuple[dict[str, int], list[Any]]:
    from tokenizers import ByteLevelBPETokenizer

    trainer = ByteLevelBPETokenizer()
    trainer.train_from_iterator(corpus(), vocab_size=vocab_size, min_frequency=2,
                                special_tokens=special, show_progress=False)
    state = json.loads(trainer.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in state["merges"]]
    return state["vocab"], merges


def build_llama(folder: Path, window: int = WINDOW, seed: int = 0, vocab_size: int = 400) -> Path:
    """A random LlamaForCausalLM: BOS 1, EOS 2, padding 0, a chat template."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    special = ["<pad>", "<s>", "</s>", "<unk>", "<|user|>", "<|assistant|>", "<|system|>"]
    vocab, merges = _byte_level_bpe(vocab_size, special)
    tokenizer = _fast_tokenizer(vocab, merges, add_bos=True)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", pad_token="<pad>",
        unk_token="<unk>", model_max_length=window,
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=window,
        bos_token_id=1, eos_token_id=2, pad_token_id=0, initializer_range=INIT_STD,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).eval()
    return _save(model, tokenizer, folder)


def build_gpt2(folder: Path, window: int = WINDOW, seed: int = 0, vocab_size: int = 400) -> Path:
    """A random GPT2LMHeadModel: one ``<|endoftext|>`` token (BOS and EOS), no padding token."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2Tokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab, merges = _byte_level_bpe(vocab_size, ["<|endoftext|>"])
    tokenizer = GPT2Tokenizer(vocab=vocab, merges=merges, model_max_length=window)
    assert len(tokenizer) == len(vocab), "GPT-2 vocabulary not loaded"
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_embd=32, n_layer=2, n_head=4, n_positions=window,
        bos_token_id=0, eos_token_id=0, initializer_range=INIT_STD,
    )
    model = GPT2LMHeadModel(config).eval()
    return _save(model, tokenizer, folder)


def _fast_tokenizer(vocab: dict[str, int], merges: list[Any], add_bos: bool) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    if add_bos:
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])]
        )
    return tokenizer


def _save(model: Any, tokenizer: Any, folder: Path) -> Path:
    from transformers import AutoTokenizer

    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    loaded = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    assert len(loaded) == len(tokenizer), f"{folder}: {len(loaded)} tokens, not {len(tokenizer)}"
    text = "the city river, café"
    assert loaded.decode(loaded(text, add_special_tokens=False)["input_ids"]) == text
    return folder
