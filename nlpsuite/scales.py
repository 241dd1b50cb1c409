"""The range a metric's values lie in, and the one way a score is written as text.

Scores keep the scale of their reference implementation (SQuAD and sacrebleu 0-100, scikit-learn
and rouge-score 0-1, correlations -1 to 1), so every place that prints one also says its scale:
``exact_match 1.00 (0-100)`` is not ``accuracy 1.0000 (0-1)``. The precision comes from the
scale, never from the values, so a metric reads the same in the CLI, Markdown and HTML.
"""

from __future__ import annotations

import math
from typing import Any

# (lowest, highest) value; None where unknown (a Hugging Face evaluate metric, older results).
Scale = tuple[float, float]

UNIT: Scale = (0.0, 1.0)
PERCENT: Scale = (0.0, 100.0)
CORRELATION: Scale = (-1.0, 1.0)


def check_scale(scale: Any, owner: str) -> None:
    """``scale`` is None or two finite numbers, low < high (a plugin's metric is checked)."""
    if scale is None:
        return
    if (
        not isinstance(scale, tuple)
        or len(scale) != 2
        or not all(isinstance(x, int | float) and not isinstance(x, bool) for x in scale)
        or not all(math.isfinite(x) for x in scale)
        or not scale[0] < scale[1]
    ):
        raise ValueError(f"{owner}: scale must be None or (low, high) with low < high, "
                         f"got {scale!r}")


def scale_from_json(value: Any) -> Scale | None:
    """``[low, high]`` as results.json records it; anything else (or absent) is unknown."""
    if not isinstance(value, list) or len(value) != 2:
        return None
    low, high = value
    numbers = all(isinstance(x, int | float) and not isinstance(x, bool) for x in value)
    if not numbers or not math.isfinite(low) or not math.isfinite(high) or low >= high:
        return None
    return (float(low), float(high))


def scale_label(scale: Scale | None) -> str:
    """``0-100``, ``0-1``, ``-1 to 1``; ``scale unknown`` where it is not known."""
    if scale is None:
        return "scale unknown"
    low, high = scale
    return f"{low:g}-{high:g}" if low >= 0 else f"{low:g} to {high:g}"


def titled(name: str, scale: Scale | None) -> str:
    """A metric's name with its scale, as column headers and axes show it: ``f1 (0-100)``."""
    return f"{name} ({scale_label(scale)})"


def decimals(scale: Scale | None) -> int:
    """2 decimals on a scale at least 10 wide (0-100), else 4 (0-1, -1 to 1, unknown)."""
    return 2 if scale is not None and scale[1] - scale[0] >= 10 else 4


def format_number(value: float, scale: Scale | None) -> str:
    return f"{value:.{decimals(scale)}f}"


def format_interval(low: float | None, high: float | None, scale: Scale | None) -> str | None:
    """``[low, high]`` at the scale's precision; None where either end is unknown or NaN."""
    if low is None or high is None or math.isnan(low) or math.isnan(high):
        return None
    return f"[{format_number(low, scale)}, {format_number(high, scale)}]"


def format_score(
    value: float | None, low: float | None, high: float | None, scale: Scale | None,
    missing: str = "—",
) -> str:
    """``value [low, high]``, the interval left out where unknown; ``missing`` for no value."""
    if value is None:
        return missing
    interval = format_interval(low, high, scale)
    return format_number(value, scale) + (f" {interval}" if interval else "")
