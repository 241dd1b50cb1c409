"""Build the tiny random checkpoints that benchmarks/suite-offline.toml ranks beside the real
all-MiniLM-L6-v2, into benchmarks/out/models/ (gitignored):

    .venv/bin/python benchmarks/make_tiny_models.py [--force]

Real checkpoints of the other tasks need the Hugging Face Hub (benchmarks/suite-online.toml names
them); these are real architectures with random weights, built by the test suite's own builders
(tests/tiny_models.py, tests/tiny_seq2seq.py) in a few seconds each, so the offline leaderboard
exercises every task end to end. Their scores are those of random models. A checkpoint already
built is kept (the builders are seeded, so it would come out the same); --force builds it again.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODELS = ROOT / "benchmarks" / "out" / "models"
sys.path.insert(0, str(ROOT))  # for tests.tiny_models and tests.tiny_seq2seq

# T5 reads its task prefixes (and BART its summarization settings) from task_specific_params, as
# t5-small and distilbart-cnn-12-6 do.
T5_TASK_PARAMS = {
    "summarization": {"prefix": "summarize: ", "max_length": 24, "min_length": 3, "num_beams": 1},
    "translation_en_to_de": {"prefix": "translate English to German: ", "num_beams": 1},
}
BART_TASK_PARAMS = {
    "summarization": {
        "max_length": 24,
        "min_length": 4,
        "no_repeat_ngram_size": 3,
        "num_beams": 2,
        "early_stopping": True,
    },
}


def _builders() -> dict[str, Callable[[Path], Any]]:
    from tests import tiny_models, tiny_seq2seq

    return {
        "tiny-bert-sentiment-a": lambda d: tiny_models.build_bert_classifier(d, seed=0),
        "tiny-bert-sentiment-b": lambda d: tiny_models.build_bert_classifier(d, seed=1),
        "tiny-bert-qa-a": lambda d: tiny_models.build_bert_qa(d, seed=0),
        "tiny-bert-qa-b": lambda d: tiny_models.build_bert_qa(d, seed=1),
        # Semantic search and similarity load the encoder of a BERT checkpoint with AutoModel.
        "tiny-bert-encoder": lambda d: tiny_models.build_bert_classifier(d, seed=2),
        "tiny-marian-en-de": lambda d: tiny_seq2seq.build_marian(d, seed=0),
        "tiny-t5": lambda d: tiny_seq2seq.build_t5(d, seed=0, task_specific_params=T5_TASK_PARAMS),
        "tiny-bart": lambda d: tiny_seq2seq.build_bart(
            d, seed=0, task_specific_params=BART_TASK_PARAMS
        ),
    }


def build(out: Path = MODELS, force: bool = False) -> list[Path]:
    """Build every tiny checkpoint missing under ``out`` (all of them with ``force``)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    out.mkdir(parents=True, exist_ok=True)
    built = []
    for name, builder in _builders().items():
        target = out / name
        if (target / "config.json").exists() and not force:
            print(f"{name}: kept ({target})")
            continue
        start = time.perf_counter()
        # Built beside the target and moved into place, so an interrupted build leaves no
        # half checkpoint that a later run would keep.
        with tempfile.TemporaryDirectory(dir=out, prefix=f".{name}.") as temporary:
            builder(Path(temporary) / name)
            if target.exists():
                shutil.rmtree(target)
            (Path(temporary) / name).rename(target)
        print(f"{name}: built in {time.perf_counter() - start:.1f} s ({target})")
        built.append(target)
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=MODELS, help=f"default: {MODELS}")
    parser.add_argument("--force", action="store_true", help="rebuild checkpoints that exist")
    arguments = parser.parse_args()
    build(arguments.out, arguments.force)


if __name__ == "__main__":
    main()
