"""Benchmark question answering on long contexts: nlpsuite against a straightforward
per-example implementation written with transformers by hand.

    .venv/bin/python benchmarks/bench_qa.py [--examples 32] [--repeats 2] [--quick]

Each example is a SQuAD v1.1 dev question with its paragraph followed by the next paragraphs of
the same article, until the context is about three windows long (3 x max_length tokens), so
every example is read in several overlapping windows.

The reference tokenizes one example at a time with overflowing windows (same max_length, same
stride, the question stripped as nlpsuite does), runs the model on one window at a time, and
picks the best span with a Python double loop over start and end tokens, with nlpsuite's scoring
rule (softmax over the context tokens plus CLS, p_start * p_end, spans of at most
max_answer_length tokens, best over all windows). Its answers should therefore be those of
nlpsuite; the agreement (same character span) is reported rather than assumed.

Two checkpoints: the tiny test QA model (512 positions) and a randomly initialised
bert-base-sized one (BertConfig defaults) over the tiny WordPiece vocabulary. Prints a Markdown
table and writes benchmarks/out/bench_qa.json. Compare ratios, not absolute figures.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
SQUAD_DEV = ROOT.parent / "shared" / "datasets" / "squad-v1.1" / "dev-v1.1.json"
sys.path.insert(0, str(ROOT))  # for tests.tiny_models

from timing import best_seconds, machine, quiet_transformers  # noqa: E402

from tests import tiny_models  # noqa: E402

MAX_LENGTH, DOC_STRIDE, MAX_ANSWER_LENGTH = 384, 128, 30


def long_examples(count: int, tokenizer: Any, windows: int = 3) -> list[tuple[str, str]]:
    """(question, context) pairs whose contexts run to about ``windows`` x MAX_LENGTH tokens:
    the question's paragraph, then the following paragraphs of its article."""
    articles = json.loads(SQUAD_DEV.read_text(encoding="utf-8"))["data"]
    examples: list[tuple[str, str]] = []
    for article in articles:
        paragraphs = [p["context"] for p in article["paragraphs"]]
        for i, paragraph in enumerate(article["paragraphs"]):
            context = paragraph["context"]
            for following in paragraphs[i + 1 :] + paragraphs[:i]:
                if len(tokenizer(context)["input_ids"]) >= windows * MAX_LENGTH:
                    break
                context += "\n\n" + following
            examples.append((paragraph["qas"][0]["question"], context))
            if len(examples) == count:
                return examples
    return examples


def build_base_qa(folder: Path) -> Path:
    """A random bert-base-sized QA model (BertConfig defaults), saved like a hub model."""
    import torch
    from transformers import BertConfig, BertForQuestionAnswering

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = tiny_models.bert_tokenizer(folder, 512)
    torch.manual_seed(0)
    BertForQuestionAnswering(BertConfig(vocab_size=tokenizer.vocab_size)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_reference(folder: Path) -> Callable[[list[tuple[str, str]]], list[tuple[int, int]]]:
    """One example, then one window, at a time; the best span by a double loop."""
    import math

    import torch
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForQuestionAnswering.from_pretrained(folder).eval()
    specials = tokenizer.num_special_tokens_to_add(pair=True)

    def answer(question: str, context: str) -> tuple[int, int]:
        question = question.lstrip()
        room = MAX_LENGTH - specials - len(tokenizer(question, add_special_tokens=False).input_ids)
        encoded = tokenizer(
            question,
            context,
            truncation="only_second",
            max_length=MAX_LENGTH,
            stride=min(DOC_STRIDE, room // 2),
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
        )
        best, best_score = (0, 0), -1.0
        for w in range(len(encoded["input_ids"])):
            ids = encoded["input_ids"][w]
            inputs = {
                "input_ids": torch.tensor([ids]),
                "attention_mask": torch.tensor([encoded["attention_mask"][w]]),
                "token_type_ids": torch.tensor([encoded["token_type_ids"][w]]),
            }
            with torch.inference_mode():
                output = model(**inputs)
            context_tokens = [i for i, s in enumerate(encoded.sequence_ids(w)) if s == 1]
            allowed = [ids.index(tokenizer.cls_token_id), *context_tokens]
            starts = output.start_logits[0].double()
            ends = output.end_logits[0].double()
            start_norm = torch.logsumexp(starts[allowed], 0)
            end_norm = torch.logsumexp(ends[allowed], 0)
            log_start = (starts - start_norm).tolist()
            log_end = (ends - end_norm).tolist()
            offsets = encoded["offset_mapping"][w]
            context_set = set(context_tokens)
            for s in context_tokens:
                for e in range(s, s + MAX_ANSWER_LENGTH):
                    if e not in context_set:
                        break
                    score = math.exp(log_start[s] + log_end[e])
                    if score > best_score:
                        best_score, best = score, (offsets[s][0], offsets[e][1])
        return best

    return lambda examples: [answer(q, c) for q, c in examples]


def make_nlpsuite(
    folder: Path, batch_size: int
) -> Callable[[list[tuple[str, str]]], list[tuple[int, int]]]:
    from nlpsuite_plugins.question_answering import QAInput

    from nlpsuite import load_runner

    runner = load_runner(
        "question-answering",
        str(folder),
        batch_size=batch_size,
        options={
            "max_length": MAX_LENGTH,
            "doc_stride": DOC_STRIDE,
            "max_answer_length": MAX_ANSWER_LENGTH,
        },
    )

    def answer(examples: list[tuple[str, str]]) -> list[tuple[int, int]]:
        outputs = runner([QAInput(question, context) for question, context in examples])
        return [(output.start, output.end) for output in outputs]

    return answer


def bench_model(
    name: str, folder: Path, examples: list[tuple[str, str]], batch_size: int, repeats: int
) -> dict[str, Any]:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    lengths = [len(tokenizer(c)["input_ids"]) for _, c in examples]
    reference_answer = make_reference(folder)
    nlpsuite_answer = make_nlpsuite(folder, batch_size)
    (reference_s, ours_s), (reference, ours) = best_seconds(
        [lambda: reference_answer(examples), lambda: nlpsuite_answer(examples)], repeats
    )
    agree = sum(a == b for a, b in zip(reference, ours, strict=True))
    row = {
        "model": name,
        "examples": len(examples),
        "context_tokens_min_mean_max": [
            min(lengths),
            round(sum(lengths) / len(lengths)),
            max(lengths),
        ],
        "reference_examples_per_s": round(len(examples) / reference_s, 2),
        "nlpsuite_examples_per_s": round(len(examples) / ours_s, 2),
        "ratio": round(reference_s / ours_s, 2),
        "answers_identical": agree == len(examples),
        "agreement": round(agree / len(examples), 4),
    }
    print(json.dumps(row), flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs (best is kept)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--only", choices=["tiny", "base"], default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true", help="8 examples, 1 repeat")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.quick:
        args.examples, args.repeats = min(args.examples, 8), 1

    quiet_transformers(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        tiny = tiny_models.build_bert_qa(Path(scratch) / "tiny", max_length=512)
        examples = long_examples(args.examples, tiny_models.bert_tokenizer(Path(scratch), 512))
        models = {
            "tiny (d32, 2 layers)": lambda: tiny,
            "bert-base-sized (random)": lambda: build_base_qa(Path(scratch) / "base"),
        }
        for name, build in models.items():
            if args.only and (args.only == "tiny") != name.startswith("tiny"):
                continue
            rows.append(bench_model(name, build(), examples, args.batch_size, args.repeats))
    print(
        "\n| model | examples | context tokens | reference ex/s | nlpsuite ex/s | x reference "
        "| same answers |\n|---|---:|---|---:|---:|---:|---:|"
    )
    for row in rows:
        print(
            f"| {row['model']} | {row['examples']} | {row['context_tokens_min_mean_max']} | "
            f"{row['reference_examples_per_s']:.2f} | {row['nlpsuite_examples_per_s']:.2f} | "
            f"{row['ratio']:.2f} | {row['agreement']:.3f} |"
        )
    report = {
        "benchmark": "question-answering",
        "machine": machine(),
        "settings": {
            "examples": args.examples,
            "repeats": args.repeats,
            "batch_size": args.batch_size,
            "max_length": MAX_LENGTH,
            "doc_stride": DOC_STRIDE,
            "max_answer_length": MAX_ANSWER_LENGTH,
        },
        "results": rows,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "bench_qa.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
