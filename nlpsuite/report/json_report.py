"""The leaderboard as JSON values.

The format is versioned (``"schema_version": 1``) and described in ``docs/leaderboard-schema.md``;
the output is strict JSON (NaN and infinities are written as null).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import nlpsuite
from nlpsuite.report.ranking import ALPHA, Group, Leaderboard, Run

SCHEMA_VERSION = 1


def _clean(value: Any) -> Any:
    """JSON values with NaN and infinities as null (the output must be strict JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _scale(group: Group, metric: str) -> list[float] | None:
    scale = group.scales.get(metric)
    return list(scale) if scale is not None else None


def _run_json(run: Run, model: str, group: Group) -> dict[str, Any]:
    results = run.results
    return {
        "run": run.name,
        "model": model,
        "model_id": run.model_id,
        "weights_sha256": results.model.weights_sha256,
        "parameters": run.parameters,
        "weights_bytes": run.weights_bytes,
        "metrics": {
            name: {
                "value": run.value(name),
                "ci95": list(run.ci(name)),
                "higher_is_better": score.higher_is_better,
                "scale": _scale(group, name),
            }
            for name, score in run.metrics.items()
        },
        "examples_per_second": run.examples_per_second,
        "dataset_sha256": results.dataset.sha256,
        "examples": results.dataset.examples,
        "limit": results.limit,
        "sample": results.sample,
        "seed": results.seed,
        "options": dict(results.options),
        "device": results.device,
        "backend": run.backend,
        "versions": dict(results.versions),
        "command": run.command,
    }


def to_json(board: Leaderboard) -> dict[str, Any]:
    """The leaderboard as JSON values (schema: docs/leaderboard-schema.md)."""
    groups = []
    for group in board.groups:
        reference = group.reference
        groups.append(
            {
                "task": group.task,
                "dataset": group.dataset,
                "dataset_sha256": reference.results.dataset.sha256 if reference else None,
                "examples": reference.results.dataset.examples if reference else None,
                "primary_metric": {
                    "name": group.primary,
                    "higher_is_better": group.higher_is_better,
                    "direction_from": group.direction_source,
                },
                "metrics": [
                    {"name": m, "higher_is_better": group.directions[m], "scale": _scale(group, m)}
                    for m in group.metrics
                ],
                "significance_note": group.test_note,
                "rows": [
                    {
                        "rank": row.rank,
                        **_run_json(row.run, row.model, group),
                        "p_vs_first": row.p_value,
                        "significant": row.significant,
                        "shared_examples": row.shared_examples,
                        "test_note": row.test_note,
                    }
                    for row in group.rows
                ],
                "not_comparable": [
                    {**_run_json(excluded.run, excluded.model, group), "reasons": excluded.reasons}
                    for excluded in group.not_comparable
                ],
            }
        )
    return _clean(
        {
            "schema_version": SCHEMA_VERSION,
            "generator": {"name": "nlpsuite", "version": nlpsuite.__version__},
            "source": board.source,
            "significance": {
                "test": "paired bootstrap",
                "resamples": board.resamples,
                "seed": board.seed,
                "alpha": ALPHA,
                "against": "rank 1",
            },
            "groups": groups,
            "skipped": [{"path": path, "error": reason} for path, reason in board.skipped],
        }
    )


def to_json_text(board: Leaderboard) -> str:
    """:func:`to_json` as the text of ``leaderboard.json``."""
    return json.dumps(to_json(board), indent=2, ensure_ascii=False, allow_nan=False) + "\n"
