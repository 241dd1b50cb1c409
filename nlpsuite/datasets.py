"""Named evaluation datasets: examples pairing a task input with its reference."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Example:
    """One evaluation example: a stable id, the task's input record and the reference."""

    id: str
    input: Any
    reference: Any


@dataclass(frozen=True)
class Dataset:
    """A dataset a plugin registers by name, e.g. for ``nlpsuite eval TASK --dataset NAME``."""

    name: str
    task: str
    description: str
    licence: str
    load: Callable[[], Sequence[Example]]
