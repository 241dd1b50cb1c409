"""Benchmark the sentiment task against transformers by hand: a per-example loop calling the
model, and ``pipeline("text-classification", batch_size=32)``; plus nlpsuite with
``--option quantize=int8``. Same SST-2 dev sentences for all, float32 unless int8 is named.

    .venv/bin/python benchmarks/bench_sentiment.py [--sentences 500] [--repeats 2] [--quick]

Two checkpoints: the tiny test classifier and a randomly initialised bert-base-sized one
(``BertConfig()`` defaults: 768 wide, 12 layers, 12 heads, FFN 3072, 512 positions) over the
small WordPiece vocabulary of tests/tiny_models.py. That vocabulary splits most words into
letters, so sentences are about three times as many tokens as with bert-base-uncased's own; pass
``--vocab sst2`` to add every word of the sentences to it and get realistic lengths.

Labels must be identical between the loop, the pipeline and nlpsuite (float32); int8 reports
its agreement with float32. Peak memory is measured per contender in a fresh process
(``ru_maxrss``: after loading, and the growth while classifying). Prints a Markdown table and
writes benchmarks/out/bench_sentiment.json. Absolute figures depend on the machine and on
whatever else runs on it; compare ratios, which are measured in the same run, taking turns.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
SST2_DEV = ROOT.parent / "shared" / "datasets" / "glue-sst2" / "dev.tsv"
sys.path.insert(0, str(ROOT))  # for tests.tiny_models

from timing import best_seconds, machine, quiet_transformers  # noqa: E402

from tests import tiny_models  # noqa: E402

LABELS = ("NEGATIVE", "POSITIVE")
CONTENDERS = ("loop", "pipeline", "nlpsuite", "nlpsuite-int8")


def sst2_sentences(limit: int) -> list[str]:
    """The first ``limit`` SST-2 dev sentences (tab-separated, no quoting: the text has quotes)."""
    with SST2_DEV.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [row[0].strip() for row in rows[1:]][:limit]


def build_base_classifier(folder: Path, extra_words: list[str]) -> Path:
    """A random bert-base-sized classifier (BertConfig defaults), saved like a hub model."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    vocab = tiny_models.write_vocab(folder)
    if extra_words:
        known = vocab.read_text(encoding="utf-8").split()
        words = list(dict.fromkeys(known + extra_words))
        vocab.write_text("\n".join(words) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(vocab=str(vocab), do_lower_case=True, model_max_length=512)
    assert tokenizer.vocab_size == len(vocab.read_text(encoding="utf-8").split())
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        num_labels=2,
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def words_of(sentences: list[str]) -> list[str]:
    return sorted({word for sentence in sentences for word in sentence.lower().split()})


# --- the contenders: each is built (model loaded) first, then called on the sentences -------


def make_loop(folder: Path) -> Callable[[list[str]], list[str]]:
    """What one writes by hand: one sentence at a time through tokenizer and model."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()

    def classify(texts: list[str]) -> list[str]:
        labels = []
        with torch.inference_mode():
            for text in texts:
                logits = model(**tokenizer(text, truncation=True, return_tensors="pt")).logits
                labels.append(model.config.id2label[int(logits[0].argmax())])
        return labels

    return classify


def make_pipeline(folder: Path, batch_size: int) -> Callable[[list[str]], list[str]]:
    from transformers import pipeline

    classifier = pipeline(
        "text-classification", model=str(folder), batch_size=batch_size, device="cpu"
    )
    return lambda texts: [result["label"] for result in classifier(texts, truncation=True)]


def make_nlpsuite(
    folder: Path, batch_size: int, quantize: str | None
) -> Callable[[list[str]], list[str]]:
    from nlpsuite import get_task, load_runner

    options = {"quantize": quantize} if quantize else {}
    runner = load_runner("sentiment", str(folder), batch_size=batch_size, options=options)
    task = get_task("sentiment")

    def classify(texts: list[str]) -> list[str]:
        return [out.label for out in runner([task.make_input(text, "bench") for text in texts])]

    return classify


def make(contender: str, folder: Path, batch_size: int) -> Callable[[list[str]], list[str]]:
    if contender == "loop":
        return make_loop(folder)
    if contender == "pipeline":
        return make_pipeline(folder, batch_size)
    return make_nlpsuite(folder, batch_size, "int8" if contender.endswith("int8") else None)


# --- measuring ----------------------------------------------------------------------------


def max_rss_mib() -> float:
    """This process's peak resident memory. ``VmHWM`` rather than ``ru_maxrss``: Linux carries
    ``ru_maxrss`` over from the parent across fork and exec, so a child of a big parent would
    report the parent's peak."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def memory_probe(contender: str, folder: Path, sentences: int, batch_size: int) -> None:
    """Child process: load one contender, classify once, print its peak memory as JSON."""
    import torch  # noqa: F401  (counted in the baseline, as every contender needs it)
    import transformers  # noqa: F401

    before_load = max_rss_mib()
    classify = make(contender, folder, batch_size)
    after_load = max_rss_mib()
    classify(sst2_sentences(sentences))
    peak = max_rss_mib()
    print(
        json.dumps(
            {
                "imports_mib": round(before_load, 1),
                "load_mib": round(after_load - before_load, 1),
                "run_growth_mib": round(peak - after_load, 1),
                "growth_mib": round(peak - before_load, 1),
                "peak_mib": round(peak, 1),
            }
        )
    )


def measure_memory(contender: str, folder: Path, sentences: int, batch_size: int) -> dict:
    done = subprocess.run(
        [
            sys.executable,
            __file__,
            "--memory-probe",
            contender,
            "--model-dir",
            str(folder),
            "--sentences",
            str(sentences),
            "--batch-size",
            str(batch_size),
        ],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def forward_gflop(folder: Path, texts: list[str]) -> float:
    """Multiply-adds x 2 of a forward pass over the real (unpadded) tokens of ``texts``:
    the linear layers, plus attention scores and mixing."""
    from transformers import AutoConfig, AutoTokenizer

    config = AutoConfig.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True)["input_ids"]]
    hidden, layers, ffn = config.hidden_size, config.num_hidden_layers, config.intermediate_size
    per_token = layers * (4 * hidden * hidden + 2 * hidden * ffn)
    attention = sum(layers * 2 * n * n * hidden for n in lengths)
    return 2 * (per_token * sum(lengths) + attention) / 1e9


def bench_model(
    name: str, folder: Path, texts: list[str], batch_size: int, repeats: int, memory: bool
) -> dict[str, Any]:
    from transformers import AutoTokenizer

    lengths = [len(ids) for ids in AutoTokenizer.from_pretrained(folder)(texts)["input_ids"]]
    classifiers = [make(contender, folder, batch_size) for contender in CONTENDERS]
    seconds, labels = best_seconds(
        [lambda classify=classify: classify(texts) for classify in classifiers], repeats
    )
    by_name = dict(zip(CONTENDERS, labels, strict=True))
    float_labels = by_name["nlpsuite"]
    gflop = forward_gflop(folder, texts)
    rows = {}
    for contender, spent in zip(CONTENDERS, seconds, strict=True):
        rows[contender] = {
            "examples_per_s": round(len(texts) / spent, 2),
            "gflop_per_s": round(gflop / spent, 1),
            "x_loop": round(seconds[0] / spent, 2),
            "x_pipeline": round(seconds[1] / spent, 2),
            "agreement_with_nlpsuite_float32": round(
                sum(a == b for a, b in zip(by_name[contender], float_labels, strict=True))
                / len(texts),
                4,
            ),
        }
        if memory:
            rows[contender]["memory"] = measure_memory(contender, folder, len(texts), batch_size)
    identical = by_name["loop"] == by_name["pipeline"] == float_labels
    return {
        "model": name,
        "sentences": len(texts),
        "tokens_min_mean_max": [min(lengths), round(sum(lengths) / len(lengths), 1), max(lengths)],
        "forward_gflop": round(gflop, 1),
        "float32_labels_identical": identical,
        "contenders": rows,
    }


def print_table(results: list[dict[str, Any]]) -> None:
    print(
        "\n| model | contender | ex/s | x loop | x pipeline(32) | GFLOP/s | agree vs fp32 "
        "| peak MiB | +MiB over imports |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for result in results:
        for contender, row in result["contenders"].items():
            memory = row.get("memory", {})
            print(
                f"| {result['model']} | {contender} | {row['examples_per_s']:.1f} | "
                f"{row['x_loop']:.2f} | {row['x_pipeline']:.2f} | {row['gflop_per_s']:.0f} | "
                f"{row['agreement_with_nlpsuite_float32']:.3f} | "
                f"{memory.get('peak_mib', '-')} | {memory.get('growth_mib', '-')} |"
            )
    for result in results:
        print(
            f"\n{result['model']}: {result['sentences']} sentences, tokens min/mean/max "
            f"{result['tokens_min_mean_max']}; float32 labels identical across loop, "
            f"pipeline and nlpsuite: {result['float32_labels_identical']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs (best is kept)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--only", choices=["tiny", "base"], default=None)
    parser.add_argument(
        "--vocab",
        choices=["tiny", "sst2"],
        default="tiny",
        help="bert-base vocabulary: the tiny test one, or with the SST-2 words",
    )
    parser.add_argument("--no-memory", action="store_true", help="skip the memory probes")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's own choice)"
    )
    parser.add_argument("--quick", action="store_true", help="100 sentences, 1 repeat")
    parser.add_argument("--memory-probe", choices=CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.memory_probe:
        memory_probe(args.memory_probe, args.model_dir, args.sentences, args.batch_size)
        return
    if args.quick:
        args.sentences, args.repeats = min(args.sentences, 100), 1

    quiet_transformers(args.threads)
    texts = sst2_sentences(args.sentences)
    results = []
    with tempfile.TemporaryDirectory() as scratch:
        models = {
            "tiny (d32, 2 layers)": lambda: tiny_models.build_bert_classifier(
                Path(scratch) / "tiny"
            ),
            f"bert-base-sized (random, vocab {args.vocab})": lambda: build_base_classifier(
                Path(scratch) / "base", words_of(texts) if args.vocab == "sst2" else []
            ),
        }
        for name, build in models.items():
            if args.only and (args.only == "tiny") != name.startswith("tiny"):
                continue
            result = bench_model(
                name, build(), texts, args.batch_size, args.repeats, not args.no_memory
            )
            results.append(result)
            print(json.dumps(result), flush=True)
    print_table(results)
    report = {
        "benchmark": "sentiment",
        "machine": machine(),
        "settings": {
            "sentences": len(texts),
            "repeats": args.repeats,
            "batch_size": args.batch_size,
            "vocab": args.vocab,
        },
        "results": results,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "bench_sentiment.json"
    path.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
