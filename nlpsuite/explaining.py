"""Explaining predictions: word attributions through captum, and how faithful they are.

:func:`load_explainer` loads a task's model once (through the task's ``explain`` hook, see
:class:`nlpsuite.explanations.Explainable`); its :meth:`Explainer.explain` turns input records
into :class:`~nlpsuite.explanations.Explanation` values. The methods are captum's
(``pip install 'nlpsuite[explain]'``):

- ``ig``: ``LayerIntegratedGradients`` at the input word embeddings, baseline the PAD token at
  every word token (CLS and SEP kept), ``steps`` steps run ``batch_size`` at a time
  (``internal_batch_size``), with captum's convergence delta. Needs gradients: torch only.
- ``occlusion``: word-level occlusion, captum's ``FeatureAblation`` with one feature per word
  (a word's tokens all set to PAD at once; captum's ``Occlusion`` slides windows over tokens,
  which would cut words apart).
- ``lime``: captum's ``Lime`` (its defaults: Lasso alpha 0.01, exponential cosine kernel),
  :data:`SAMPLES` perturbed texts.
- ``shap``: captum's ``KernelShap``, :data:`SAMPLES` perturbed texts.

The three gradient-free methods see a text as a vector of word presences (1: the word is there,
0: its tokens are PAD), so their features are words, and call the model only through
``Prepared.probability``: they work on every backend (torch, ONNX Runtime, CTranslate2). Random
sampling is seeded with ``torch.manual_seed(seed)`` before each explanation.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpsuite.batching import model_max_length, pad_batch
from nlpsuite.datasets import Example
from nlpsuite.errors import NlpsuiteError
from nlpsuite.explanations import (
    DELETED,
    Explainable,
    Explanation,
    Prepared,
    WordAttention,
    WordScore,
    faithfulness,
    kept_positions,
    merge_to_words,
)
from nlpsuite.lookup import canonical_backend, get_task, load_model, parse_backend
from nlpsuite.models import OfflineModelError, RandomHeadError, load_tokenizer, resolve_device
from nlpsuite.records import write_atomic
from nlpsuite.tasks import RunConfig, Task

METHODS = ("ig", "occlusion", "lime", "shap")
GRADIENT_METHODS = ("ig",)
# Perturbed texts LIME and KernelSHAP fit their surrogate on, per explanation.
SAMPLES = 200
CAPTUM_MISSING = "nlpsuite explain needs captum: pip install 'nlpsuite[explain]'"


def check_method(method: str, backend: str) -> None:
    """Refuse an unknown method, and a gradient method on a backend without gradients."""
    if method not in METHODS:
        raise NlpsuiteError(f"unknown method '{method}' (methods: {', '.join(METHODS)})")
    name = parse_backend(backend)[0].name
    if method in GRADIENT_METHODS and name != "torch":
        raise NlpsuiteError(f"method {method} needs gradients; backend {name} has none: "
                            f"use occlusion, lime or shap")


def check_explainable(task: Task, method: str, backend: str) -> None:
    """Refuse, before any model loads, a task without an explain hook, a method unknown or
    needing gradients the backend lacks, and a missing captum."""
    if task.explain is None:
        raise NlpsuiteError(f"task {task.name} cannot be explained (its plugin gives no "
                            f"explain hook)")
    check_method(method, backend)
    require_captum()


def require_captum() -> None:
    try:
        import captum  # noqa: F401
    except ImportError:
        raise NlpsuiteError(CAPTUM_MISSING) from None


@dataclass(frozen=True)
class Explainer:
    """A task's model loaded for explaining; :meth:`explain` takes many inputs."""

    task: Task
    explainable: Explainable
    method: str = "ig"
    label: str | None = None
    backend: str = "torch"
    attention: bool = False
    steps: int = 50
    seed: int = 0
    batch_size: int = 32

    def explain(self, inputs: Iterable[Any]) -> list[Explanation]:
        """Explanations of ``inputs`` (strings, mappings or input records), in order."""
        records = [self.task.make_input(value, f"input {i}") for i, value in enumerate(inputs, 1)]
        return [self.explain_one(record) for record in records]

    def explain_one(self, record: Any) -> Explanation:
        import torch

        prepared = self.explainable.prepare(record, self.label)
        full = prepared.probability([list(prepared.input_ids)])[0]
        torch.manual_seed(self.seed)
        delta: float | None = None
        if self.method == "ig":
            token_scores, delta = integrated_gradients(prepared, self.steps, self.batch_size,
                                                       self.backend)
            scores = merge_to_words(token_scores, prepared.token_words, len(prepared.words))
        else:
            scores = perturbation_scores(prepared, self.method, self.batch_size)
        comprehensiveness, sufficiency = faithfulness(
            scores, prepared.removable, full,
            lambda masks: prepared.probability([prepared.masked(m, DELETED) for m in masks]),
        )
        return Explanation(
            task=self.task.name, method=self.method, label=prepared.label, probability=full,
            words=tuple(WordScore(w.word, w.start, w.end, score, w.field)
                        for w, score in zip(prepared.words, scores, strict=True)),
            comprehensiveness=comprehensiveness, sufficiency=sufficiency,
            convergence_delta=delta,
            attention=self.word_attention(prepared) if self.attention else None,
            input=dict(prepared.fields) or dataclasses.asdict(record),
        )

    def word_attention(self, prepared: Prepared) -> WordAttention:
        if prepared.attentions is None:
            raise NlpsuiteError(f"--attention needs a torch encoder; backend {self.backend} "
                                f"gives no attention weights")
        return word_attention(prepared.attentions(), prepared.token_words, len(prepared.words))


def load_explainer(
    task_name: str,
    model: str | None = None,
    *,
    method: str = "ig",
    label: str | None = None,
    device: str = "cpu",
    backend: str = "torch",
    options: Mapping[str, Any] | None = None,
    attention: bool = False,
    steps: int = 50,
    seed: int = 0,
    batch_size: int = 32,
    trust_remote_code: bool = False,
) -> Explainer:
    """Load ``model`` (the task's default if None) for explaining with ``method``; everything
    the user got wrong (method, backend, task without a hook, steps) is refused before the
    model loads."""
    task = get_task(task_name)
    check_explainable(task, method, backend)
    if steps < 1 or batch_size < 1:
        raise NlpsuiteError(f"steps and batch size must be at least 1, got {steps}, {batch_size}")
    parsed = task.parse_options(options or {})
    config = RunConfig(model=model or task.model_for(parsed), device=resolve_device(device),
                       batch_size=batch_size, options=parsed,
                       trust_remote_code=trust_remote_code, backend=canonical_backend(backend))
    hook = task.explain
    assert hook is not None  # check_explainable refused a task without one
    try:
        explainable = hook(config)
    except RandomHeadError as error:
        raise error.for_task(task.name if task.train is not None else None) from None
    except OfflineModelError as error:
        raise error.with_offline([task.offline_hint] if task.offline_hint else []) from None
    return Explainer(task, explainable, method, label, config.backend, attention, steps, seed,
                     batch_size)


def explain(
    task_name: str,
    model: str | None,
    inputs: Iterable[Any],
    method: str = "ig",
    label: str | None = None,
    device: str = "cpu",
    backend: str = "torch",
    options: Mapping[str, Any] | None = None,
    attention: bool = False,
    steps: int = 50,
    seed: int = 0,
) -> list[Explanation]:
    """Explain ``inputs`` with ``model`` in one call (see :func:`load_explainer`)."""
    explainer = load_explainer(task_name, model, method=method, label=label, device=device,
                               backend=backend, options=options, attention=attention,
                               steps=steps, seed=seed)
    return explainer.explain(inputs)


def integrated_gradients(prepared: Prepared, steps: int, batch_size: int,
                         backend: str = "torch") -> tuple[list[float], float]:
    """Per-token IG attributions (summed over the embedding dimension, and over the
    prepared outputs: QA's start and end) and the summed convergence delta."""
    import torch
    from captum.attr import LayerIntegratedGradients

    parts = prepared.gradients
    if parts is None:
        raise NlpsuiteError(f"method ig needs gradients; backend {backend} has none: "
                            f"use occlusion, lime or shap")
    device = next(parts.embeddings.parameters()).device
    ids = torch.tensor([list(prepared.input_ids)], device=device)
    baseline = torch.tensor([prepared.baseline_ids()], device=device)
    total = torch.zeros(ids.shape[1], dtype=torch.float64)
    delta = 0.0
    for forward in parts.forwards:
        method = LayerIntegratedGradients(forward, parts.embeddings)
        attributions, convergence = method.attribute(
            ids, baselines=baseline, n_steps=steps, internal_batch_size=batch_size,
            return_convergence_delta=True,
        )
        total += attributions.sum(-1)[0].detach().double().cpu()
        delta += float(convergence.sum())
    return total.tolist(), delta


def perturbation_scores(prepared: Prepared, method: str, batch_size: int) -> list[float]:
    """Per-word scores of a gradient-free method over word presences (absent: PAD)."""
    import torch
    from captum.attr import FeatureAblation, KernelShap, Lime

    def probability(present: Any) -> Any:
        rows = [prepared.masked([value > 0.5 for value in row], prepared.pad_id)
                for row in present.tolist()]
        return torch.tensor(prepared.probability(rows), dtype=torch.float64)

    inputs = torch.ones(1, len(prepared.words), dtype=torch.float64)
    baselines = torch.zeros_like(inputs)
    if method == "occlusion":
        attributions = FeatureAblation(probability).attribute(
            inputs, baselines=baselines, perturbations_per_eval=batch_size)
    elif method == "lime":
        attributions = Lime(probability).attribute(
            inputs, baselines=baselines, n_samples=SAMPLES, perturbations_per_eval=batch_size)
    else:
        attributions = KernelShap(probability).attribute(
            inputs, baselines=baselines, n_samples=SAMPLES, perturbations_per_eval=batch_size)
    return [float(value) for value in attributions[0].tolist()]


def word_attention(layers: Sequence[Any], token_words: Sequence[int | None],
                   count: int) -> WordAttention:
    """Token attention ``(heads, T, T)`` per layer to word-to-word attention: a word's row is
    the mean of its sub-tokens' rows, its column the sum of their columns; special tokens
    dropped. Rounded to 4 decimals."""
    import torch

    stacked = torch.stack([layer.detach().float().cpu() for layer in layers])  # L, H, T, T
    tokens_to_words = torch.zeros(stacked.shape[-1], count)
    for token, word in enumerate(token_words):
        if word is not None:
            tokens_to_words[token, word] = 1.0
    mean_rows = tokens_to_words.T / tokens_to_words.sum(0).clamp(min=1.0)[:, None]
    words = mean_rows @ stacked @ tokens_to_words  # L, H, W, W
    weights = tuple(tuple(tuple(tuple(round(v, 4) for v in row) for row in head)
                          for head in layer) for layer in words.tolist())
    return WordAttention(layers=int(stacked.shape[0]), heads=int(stacked.shape[1]),
                         weights=weights)


@contextlib.contextmanager
def eager_attention(model: Any) -> Iterator[None]:
    """Run ``model`` with transformers' eager attention inside the block: the fused (SDPA)
    kernels return no attention weights for ``output_attentions=True``."""
    before = getattr(model.config, "_attn_implementation", None)
    if before in (None, "eager"):
        yield
        return
    model.set_attn_implementation("eager")
    try:
        yield
    finally:
        model.set_attn_implementation(before)


def attention_maps(model: Any, ids: Sequence[int], device: str,
                   token_type_ids: Sequence[int] | None = None) -> list[Any]:
    """One ``(heads, T, T)`` attention tensor per layer of a torch encoder on ``ids``."""
    import torch

    tensor = torch.tensor([list(ids)], device=device)
    extra = {}
    if token_type_ids is not None:
        extra["token_type_ids"] = torch.tensor([list(token_type_ids)], device=device)
    with torch.inference_mode(), eager_attention(model):
        output = model(input_ids=tensor, attention_mask=torch.ones_like(tensor),
                       output_attentions=True, **extra)
    return [layer[0] for layer in output.attentions]


class LoadedEncoder:
    """A tokenizer and a torch, ONNX or other model of ``model_class`` loaded for explaining,
    and the batched forward passes every encoder task's explainable makes: the base of the
    built-in sentiment and question-answering hooks."""

    def __init__(self, config: RunConfig, model_class: str) -> None:
        import torch

        self.config = config
        self.tokenizer = load_tokenizer(config.model, trust_remote_code=config.trust_remote_code)
        self.model = load_model(
            model_class, config.model, device=config.device,
            trust_remote_code=config.trust_remote_code, backend=config.backend,
            quantize=config.options.get("quantize"), allow_random_head=config.allow_random_head,
        )
        self.max_length = model_max_length(self.tokenizer, self.model.config)
        self.names = [name for name in ("input_ids", "attention_mask", "token_type_ids")
                      if name in self.tokenizer.model_input_names]
        self.has_gradients = isinstance(self.model, torch.nn.Module)

    def outputs(self, rows: Sequence[Sequence[int]], token_type_ids: Sequence[int] | None,
                ) -> list[tuple[list[dict[str, list[int]]], Any]]:
        """``Prepared.probability`` rows through the model, ``batch_size`` rows a pass: each
        pass's features (:data:`DELETED` tokens left out) and the model's output."""
        import torch

        features, _ = encode_rows(rows, token_type_ids)
        passes = []
        for first in range(0, len(features), self.config.batch_size):
            chunk = features[first:first + self.config.batch_size]
            batch = pad_batch(self.tokenizer, chunk, self.names, self.max_length)
            with torch.inference_mode():
                output = self.model(**{k: v.to(self.config.device) for k, v in batch.items()})
            passes.append((chunk, output))
        return passes


def encode_rows(
    rows: Sequence[Sequence[int]], token_type_ids: Sequence[int] | None
) -> tuple[list[dict[str, list[int]]], list[list[int]]]:
    """``Prepared.probability`` rows as model input rows with :data:`DELETED` tokens left
    out (token type ids taken from the full input by position), and each row's kept
    positions, for a plugin to pad (``nlpsuite.batching.pad_batch``) and run."""
    features, kept = [], []
    for row in rows:
        positions = kept_positions(row)
        feature = {"input_ids": [row[p] for p in positions],
                   "attention_mask": [1] * len(positions)}
        if token_type_ids is not None:
            feature["token_type_ids"] = [token_type_ids[p] for p in positions]
        features.append(feature)
        kept.append(positions)
    return features, kept


def explain_examples(explainer: Explainer, examples: Sequence[Example],
                     cache: Path) -> list[dict[str, Any]]:
    """Each example's explanation as a JSONL record with its ``id``, in the examples' order.

    Records already in ``cache`` (a JSONL file an interrupted run left) are kept; the others are
    explained and appended one by one, flushed, so a kill loses at most one."""
    done = _cached_explanations(cache, {example.id for example in examples})
    with cache.open("a", encoding="utf-8") as appended:
        for example in examples:
            if example.id in done:
                continue
            record = explainer.task.make_input(example.input, f"example {example.id}")
            row = {"id": example.id, **explainer.explain_one(record).to_json()}
            appended.write(json.dumps(row, ensure_ascii=False) + "\n")
            appended.flush()
            done[example.id] = row
    return [done[example.id] for example in examples]


def _cached_explanations(cache: Path, ids: set[str]) -> dict[str, dict[str, Any]]:
    if not cache.exists():
        return {}
    text = cache.read_text(encoding="utf-8")
    complete = text[: text.rfind("\n") + 1]  # kill -9 can cut the last line short
    if len(complete) != len(text):
        write_atomic(cache, complete)
    done = {}
    for number, line in enumerate(complete.split("\n")[:-1], 1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            row = None
        if not isinstance(row, dict) or row.get("id") not in ids:
            raise NlpsuiteError(f"{cache}:{number}: not an explanation of this run's examples; "
                                "run again with --force to start over")
        done[row["id"]] = row
    return done
