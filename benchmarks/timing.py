"""Timing, and a description of the machine it ran on, shared by the benchmark scripts."""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def best_seconds(actions: list[Callable[[], Any]], repeats: int) -> tuple[list[float], list[Any]]:
    """Each action's fastest of ``repeats`` runs and its last result.

    One untimed run of each first: the first pass over a checkpoint pages its weights in, and
    the first pass at a new shape is several times slower than the next. Then the actions take
    turns, so that a burst of other work on a shared machine cannot land on one contender only.
    """
    results = [action() for action in actions]
    timings: list[list[float]] = [[] for _ in actions]
    for _ in range(repeats):
        for i, action in enumerate(actions):
            started = time.perf_counter()
            results[i] = action()
            timings[i].append(time.perf_counter() - started)
    return [min(spent) for spent in timings], results


def quiet_transformers(threads: int | None = None) -> None:
    """No transformers warnings or progress bars in the output; ``threads`` torch threads if
    given (else torch's own choice)."""
    import torch
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
    if threads:
        torch.set_num_threads(threads)


def machine(**extra: Any) -> dict[str, Any]:
    """The machine a benchmark ran on, for the ``"machine"`` entry of its JSON report.

    CPU model and count, torch threads, platform, the versions of python, torch, transformers
    and numpy, and the load average: other work on a shared machine skews figures, the load says
    how busy it was. ``extra`` entries are added (``device="cuda"``, say). Call it after the
    timings, so that torch threads are those the benchmark ran with.
    """
    import numpy
    import torch
    import transformers

    cpu = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "numpy": numpy.__version__,
        "load_average_1_5_15_min": list(os.getloadavg()),
        **extra,
    }
