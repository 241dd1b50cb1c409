"""The SQuAD JSON dataset format (v1.1 and v2.0) that question answering registers. A v2.0 file
(any question with ``is_impossible``) is scored by the official v2.0 rules: its dataset carries
:data:`nlpsuite.metrics.SQUAD_V2_METRICS`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from nlpsuite.datasets import Dataset, DatasetFormat, file_dataset
from nlpsuite.metrics import SQUAD_V2_METRICS
from nlpsuite.squad import load_squad, squad_version

TASK_NAME = "question-answering"


def open_squad(spec: str) -> Dataset:
    """A SQuAD file as a dataset; a v2.0 file with the official v2.0 metrics."""
    path = Path(spec)
    dataset = file_dataset(path, "SQuAD JSON", TASK_NAME, load_squad)
    if squad_version(path) == "v2.0":
        dataset = dataclasses.replace(dataset, metrics=SQUAD_V2_METRICS)
    return dataset


def is_squad(spec: str) -> bool:
    return spec.lower().endswith(".json") and Path(spec).is_file()


SQUAD_FORMAT = DatasetFormat(
    "SQuAD JSON", (TASK_NAME,), is_squad, open_squad,
    suffixes=(".json",), expects="a SQuAD object with a 'data' list",
)
