"""Greedy decoding for encoder-decoder checkpoints, without ``generate()``'s per-step machinery.

``generate()`` rebuilds its inputs, checks its stopping criteria and runs its logits processors
through general code at every step; on a CPU that costs as much as a small decoder's arithmetic.
:func:`greedy` runs the encoder once, then one decoder step per token on a key/value cache, and
drops a row from the batch as soon as it is finished, so finished rows cost nothing. It picks the
same tokens ``generate(num_beams=1, do_sample=False)`` picks, for the generation settings that
:func:`unsupported` does not name; callers fall back to ``generate()`` for the rest.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

# Settings that change which token greedy search picks, beyond those handled here.
_CHANGES_TOKENS: dict[str, tuple[Any, ...]] = {
    "repetition_penalty": (1.0,), "encoder_repetition_penalty": (1.0,),
    "no_repeat_ngram_size": (0,), "encoder_no_repeat_ngram_size": (0,),
    "begin_suppress_tokens": ((), []), "sequence_bias": ({},),
    "exponential_decay_length_penalty": (), "renormalize_logits": (False,),
    "remove_invalid_values": (False,), "force_words_ids": ((), []), "constraints": ((), []),
    "guidance_scale": (1.0,), "watermarking_config": (), "stop_strings": ((), []),
    "max_time": (), "num_return_sequences": (1,), "penalty_alpha": (), "dola_layers": (),
    "prompt_lookup_num_tokens": (), "token_healing": (False,),
    "return_dict_in_generate": (False,), "output_scores": (False,), "output_logits": (False,),
}


def settings(model: Any, options: Mapping[str, Any]) -> Any:
    """The checkpoint's generation config with ``options`` applied, as ``generate()`` sees it."""
    import copy

    config = copy.deepcopy(model.generation_config)
    config.update(**options)
    return config


def unsupported(config: Any, options: Mapping[str, Any]) -> str | None:
    """Why :func:`greedy` cannot stand in for ``generate()`` under ``config``; None if it can."""
    if (config.num_beams or 1) != 1:
        return "beam search"
    if config.do_sample:
        return "sampling"
    for name in options:
        if not hasattr(config, name):
            return f"option {name}"
    for name, neutral in _CHANGES_TOKENS.items():
        value = getattr(config, name, None)
        if value is not None and value not in neutral:
            return name
    bad_words = config.bad_words_ids or []
    if any(len(words) != 1 for words in bad_words):
        return "multi-token bad_words_ids"
    return None


def greedy(
    model: Any,
    input_ids: Any,
    attention_mask: Any,
    limits: Sequence[int],
    config: Any,
    eos_token_ids: Collection[int],
) -> list[list[int]]:
    """New tokens of each row (up to and including its end token), at most ``limits[row]``.

    Applies what greedy ``generate()`` applies for ``config``: ``suppress_tokens``,
    single-token ``bad_words_ids``, ``min_length``/``min_new_tokens`` (no end token before),
    ``forced_bos_token_id`` (first token) and ``forced_eos_token_id`` (at each row's limit).
    """
    import torch
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    device = input_ids.device
    rows = input_ids.shape[0]
    vocab = model.get_output_embeddings().out_features
    banned = torch.zeros(vocab, dtype=torch.bool, device=device)
    for token in [*(config.suppress_tokens or []), *(w[0] for w in config.bad_words_ids or [])]:
        if 0 <= token < vocab:
            banned[token] = True
    eos = torch.tensor(sorted(eos_token_ids), device=device)
    # min_length counts the decoder start token, as generate() counts it for encoder-decoders.
    min_new = max((config.min_length or 0) - 1, config.min_new_tokens or 0)
    forced_eos = config.forced_eos_token_id
    forced_eos = [forced_eos] if isinstance(forced_eos, int) else list(forced_eos or [])
    start = config.decoder_start_token_id
    if start is None:
        start = model.config.decoder_start_token_id

    with torch.inference_mode():
        encoded = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
        hidden, mask = encoded.last_hidden_state, attention_mask
        cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        active = torch.arange(rows, device=device)
        row_limits = torch.tensor(list(limits), device=device)
        current = torch.full((rows, 1), start, dtype=torch.long, device=device)
        produced: list[list[int]] = [[] for _ in range(rows)]
        step = 0
        while active.numel():
            logits = model(
                encoder_outputs=(hidden,), attention_mask=mask, decoder_input_ids=current,
                past_key_values=cache, use_cache=True,
            ).logits[:, -1, :].float()
            logits = logits.masked_fill(banned, -torch.inf)
            if step < min_new:
                logits[:, eos] = -torch.inf
            if step == 0 and config.forced_bos_token_id is not None:
                logits = _force(logits, [config.forced_bos_token_id], None)
            last = row_limits[active] == step + 1
            if forced_eos and bool(last.any()):
                logits = _force(logits, forced_eos, last)
            tokens = logits.argmax(-1)
            for row, token in zip(active.tolist(), tokens.tolist(), strict=True):
                produced[row].append(token)
            step += 1
            finished = torch.isin(tokens, eos) | (row_limits[active] <= step)
            if bool(finished.any()):
                keep = (~finished).nonzero().squeeze(1)
                if not keep.numel():
                    break
                # Finished rows leave the batch, with their cache, encoder states and mask.
                cache.batch_select_indices(keep)
                hidden, mask = hidden[keep], mask[keep]
                active, tokens = active[keep], tokens[keep]
            current = tokens[:, None]
    return produced


def _force(logits: Any, tokens: list[int], rows: Any) -> Any:
    """Every score but those of ``tokens`` set to -inf, in ``rows`` (a boolean mask) or all."""
    import torch

    forced = torch.full_like(logits, -torch.inf)
    forced[:, tokens] = 0
    if rows is None:
        return forced
    return torch.where(rows[:, None], forced, logits)
