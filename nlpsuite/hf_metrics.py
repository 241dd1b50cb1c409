"""Hugging Face ``evaluate`` metrics as nlpsuite :class:`~nlpsuite.metrics.Metric` values, for
``--metric NAME`` where no plugin registered the name (see :func:`nlpsuite.lookup.find_metric`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nlpsuite.errors import NlpsuiteError
from nlpsuite.metrics import Metric


def evaluate_metric(
    name_or_dir: str, *, higher_is_better: bool = True, known: Sequence[str] = ()
) -> Metric:
    """A :class:`Metric` wrapping ``evaluate.load(name_or_dir)``.

    ``name_or_dir`` is a local metric directory (holding ``<dirname>.py``) or a Hub name; append
    ``#KEY`` to pick one score from a metric that returns several (e.g. ``rouge#rougeL``). The
    value is the result's key named like the metric, else its only number. No statistics: the
    bootstrap recomputes it. ``evaluate`` is an optional extra and is imported only here (it
    takes seconds to import).
    """
    import importlib
    import importlib.util

    target, _, key = name_or_dir.partition("#")
    local = Path(target).expanduser()
    # A name that is neither registered nor a folder is most likely a typo: say that first.
    subject = (
        f"metric '{target}' is not a known metric (known: {', '.join(known)}); as a Hugging "
        "Face evaluate metric it"
        if known and not local.exists() else f"metric '{target}'"
    )
    if importlib.util.find_spec("evaluate") is None:
        raise NlpsuiteError(
            f"{subject} needs the optional package 'evaluate': pip install 'nlpsuite[evaluate]'"
        )
    offline_message = (
        f"{subject} needs the Hugging Face Hub; offline, pass a local metric directory"
    )
    if not local.exists() and _hub_offline():
        raise NlpsuiteError(offline_message)  # fail fast, without paying for importing evaluate
    # Through importlib: evaluate ships no type information, and is an optional extra.
    evaluate = importlib.import_module("evaluate")
    try:
        module = evaluate.load(str(local) if local.exists() else target)
    except (FileNotFoundError, ConnectionError, OSError) as error:
        if local.exists():
            first = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise NlpsuiteError(f"{local}: not a Hugging Face evaluate metric ({first})") from None
        raise NlpsuiteError(offline_message) from None
    except ImportError as error:  # the metric script imports a package that is not installed
        raise NlpsuiteError(f"metric '{target}' cannot load: {error}") from None
    metric_name = str(getattr(module, "name", "") or local.name or target)

    def compute(predictions: Sequence[Any], references: Sequence[Any]) -> float:
        result = module.compute(predictions=list(predictions), references=list(references))
        return _pick_score(result, key or metric_name, bool(key), name_or_dir)

    about = str(getattr(module, "description", "") or "").strip().split("\n")[0]
    description = f"Hugging Face evaluate metric {target}" + (f": {about}" if about else "")
    # evaluate's metrics report on their own scales (its bleu 0-1, sacrebleu 0-100): unknown.
    return Metric(metric_name, higher_is_better, compute, description, scale=None)


def _pick_score(result: Any, key: str, explicit: bool, name: str) -> float:
    if isinstance(result, Mapping):
        if key in result:
            return float(result[key])
        numbers = [k for k, v in result.items() if isinstance(v, int | float)]
        if not explicit and len(numbers) == 1:
            return float(result[numbers[0]])
        keys = ", ".join(str(k) for k in result) or "none"
        raise NlpsuiteError(
            f"metric '{name}' returned several scores ({keys}); pick one with NAME#KEY"
            if not explicit
            else f"metric '{name}' returned no score '{key}' (it returned: {keys})"
        )
    if isinstance(result, int | float):
        return float(result)
    raise NlpsuiteError(f"metric '{name}' returned {type(result).__name__}, not a score")


def _hub_offline() -> bool:

    return any(
        os.environ.get(variable, "").strip().lower() in {"1", "true", "yes", "on"}
        for variable in ("HF_HUB_OFFLINE", "HF_EVALUATE_OFFLINE", "HF_DATASETS_OFFLINE")
    )
