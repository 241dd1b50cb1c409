"""Explaining question-answering answers (``nlpsuite explain question-answering``).

The explained target is the span the task's own runner answers (so ``nlpsuite explain`` and
``nlpsuite run`` agree), read in the one window of ``question + context`` that holds it. Its
probability is ``p(start) * p(end)``, each a softmax over the window's context tokens and CLS,
as the runner scores spans. Question words and context words are both attributed (``field``
says which). Integrated gradients attributes ``p(start)`` and ``p(end)`` separately, as
captum's SQuAD tutorial attributes the start and end logits, and sums the two. Comprehensiveness
and sufficiency remove context words only, and never the answer's own words: without them the
span, and so the target, would not exist; the question stays whole.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from nlpsuite import NlpsuiteError, RunConfig
from nlpsuite.explaining import LoadedEncoder, attention_maps, encode_rows
from nlpsuite.explanations import GradientParts, Prepared, align_tokens, split_words


class QAExplainable(LoadedEncoder):
    """A question-answering model loaded for explaining; ``load`` is the task's runner loader."""

    def __init__(self, config: RunConfig, load: Callable[[RunConfig], Any]) -> None:
        super().__init__(config, "AutoModelForQuestionAnswering")
        if not getattr(self.tokenizer, "is_fast", False):
            raise NlpsuiteError(f"model '{config.model}' has no fast tokenizer (tokenizer.json); "
                                f"explaining question answering needs character offsets")
        self.runner = load(config)

    def prepare(self, record: Any, label: str | None) -> Prepared:
        if label is not None:
            raise NlpsuiteError("question answering explains the model's answer; --label is "
                                "for classifiers")
        answer = self.runner([record])[0]
        if answer.end <= answer.start:
            raise NlpsuiteError("the model finds no answer in the context, so there is no span "
                                "to explain")
        window = self.window(record.question, record.context, answer.start, answer.end)
        ids, offsets, types, fields = window
        words, token_words = align_tokens(
            [split_words(record.question, "question"), split_words(record.context, "context")],
            offsets, fields)
        context = [field == 1 for field in fields]
        start = min(i for i, ok in enumerate(context) if ok and offsets[i][1] > answer.start)
        end = max(i for i, ok in enumerate(context) if ok and offsets[i][0] < answer.end)
        allowed = [ok or token == self.tokenizer.cls_token_id for ok, token in zip(context, ids,
                                                                                   strict=True)]
        removable = tuple(w.field == "context" and (w.end <= answer.start or w.start >= answer.end)
                          for w in words)
        probability = partial(self.probability, types=types, allowed=allowed, span=(start, end))
        gradients = attentions = None
        if self.has_gradients:
            gradients = GradientParts(self.model.get_input_embeddings(), (
                partial(self.forward, types=types, allowed=allowed, position=start, end=False),
                partial(self.forward, types=types, allowed=allowed, position=end, end=True)))
            attentions = partial(attention_maps, self.model, ids, self.config.device, types)
        return Prepared(answer.answer, words, token_words, tuple(ids), self.tokenizer.pad_token_id,
                        probability, removable, gradients, attentions,
                        {"question": record.question, "context": record.context})

    def window(self, question: str, context: str, start: int, end: int) -> tuple[
            list[int], list[tuple[int, int]], list[int] | None, list[int | None]]:
        """The first window of ``question + context`` whose context holds ``start:end``: its
        ids, offsets, token types and each token's field (0 question, 1 context, None special)."""
        question_first = self.tokenizer.padding_side == "right"
        pair = (question, context) if question_first else (context, question)
        encoded = self.tokenizer(
            *pair, truncation="only_second" if question_first else "only_first",
            max_length=self.max_length, stride=min(64, self.max_length // 4),
            return_overflowing_tokens=True, return_offsets_mapping=True)
        context_id = 1 if question_first else 0
        for w in range(len(encoded["input_ids"])):
            sequence = encoded.sequence_ids(w)
            offsets = [tuple(pair) for pair in encoded["offset_mapping"][w]]
            spans = [o for o, s in zip(offsets, sequence, strict=True) if s == context_id]
            if spans and spans[0][0] <= start and end <= spans[-1][1]:
                fields = [None if s is None else int(s == context_id) for s in sequence]
                types = encoded["token_type_ids"][w] if "token_type_ids" in self.names else None
                return list(encoded["input_ids"][w]), offsets, types, fields
        raise NlpsuiteError("the answer lies in no single window of the context; shorten it")

    def logits(self, rows: Sequence[Sequence[int]], types: list[int] | None) -> list[Any]:
        """Start and end logits of each row, DELETED tokens left out, as ``(2, length)``."""
        import torch

        found = []
        for chunk, output in self.outputs(rows, types):
            width = output.start_logits.shape[1]
            for row, feature in enumerate(chunk):
                length = len(feature["input_ids"])
                real = (slice(0, length) if self.tokenizer.padding_side == "right"
                        else slice(width - length, width))
                found.append(torch.stack([output.start_logits[row, real],
                                          output.end_logits[row, real]]).float().cpu())
        return found

    def probability(self, rows: Sequence[Sequence[int]], types: list[int] | None,
                    allowed: list[bool], span: tuple[int, int]) -> list[float]:
        """``p(start) * p(end)`` of the span for each row (its tokens are never deleted)."""
        import torch

        _, kept = encode_rows(rows, types)
        values = []
        for logits, positions in zip(self.logits(rows, types), kept, strict=True):
            mask = torch.tensor([allowed[p] for p in positions])
            scores = logits.masked_fill(~mask, float("-inf")).softmax(-1)
            start, end = positions.index(span[0]), positions.index(span[1])
            values.append(float(scores[0, start] * scores[1, end]))
        return values

    def forward(self, ids: Any, types: list[int] | None, allowed: list[bool], position: int,
                end: bool) -> Any:
        """``p(start)`` (or ``p(end)``) of the span's token for full-length ids (IG)."""
        import torch

        extra = {}
        if types is not None:
            extra["token_type_ids"] = torch.tensor([types], device=ids.device).expand(
                ids.shape[0], -1)
        output = self.model(input_ids=ids, attention_mask=torch.ones_like(ids), **extra)
        logits = (output.end_logits if end else output.start_logits).float()
        mask = torch.tensor([allowed], device=ids.device)
        return logits.masked_fill(~mask, float("-inf")).softmax(-1)[:, position]
