"""What an explanation costs, and how faithful each method's is, on an SST-2 MiniLM classifier.

    .venv/bin/python benchmarks/bench_explain.py [--quick] [--sentences 200] [--methods ig,lime]

For each method (``ig`` with 50 steps, ``occlusion``, ``lime`` and ``shap`` with 200 samples),
the first N SST-2 dev sentences are explained one at a time toward the predicted label, after
one untimed explanation, and the seconds per explanation are set against the baseline measured
in the same run: one prediction of the same sentences, one at a time, with the task's runner.
Faithfulness is the mean comprehensiveness (higher: removing the top words changes the
prediction) and sufficiency (lower: the top words alone keep it), with 95% bootstrap intervals,
computed exactly as ``nlpsuite eval --explain`` computes them.

The classifier is `bench_serve.py`'s: `train_minilm.py`'s fine-tuned MiniLM if it was made,
else MiniLM fine-tuned once on 2,000 SST-2 train sentences (kept in benchmarks/out/models/).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from bench_serve import sentiment_model, sst2_sentences
from timing import machine, quiet_transformers

OUT = Path(__file__).resolve().parent / "out"
METHODS = ("ig", "occlusion", "lime", "shap")


def prediction_seconds(model: str, sentences: list[str]) -> float:
    """The baseline: seconds per prediction, one sentence at a time."""
    from nlpsuite.lookup import get_task, load_runner

    task = get_task("sentiment")
    runner = load_runner(task, model, batch_size=1)
    inputs = [task.make_input(text, "sentence") for text in sentences]
    runner(inputs[:1])  # untimed: the first call pays for one-off work
    start = time.perf_counter()
    for item in inputs:
        runner([item])
    return (time.perf_counter() - start) / len(inputs)


def explain_method(model: str, method: str, sentences: list[str]) -> dict[str, Any]:
    from nlpsuite.explaining import load_explainer
    from nlpsuite.metrics import bootstrap, mean_metric

    explainer = load_explainer("sentiment", model, method=method)
    explainer.explain(sentences[:1])  # untimed warm-up
    start = time.perf_counter()
    explanations = explainer.explain(sentences)
    seconds = (time.perf_counter() - start) / len(sentences)
    found: dict[str, Any] = {"method": method, "seconds_per_explanation": round(seconds, 4)}
    for measure, higher in (("comprehensiveness", True), ("sufficiency", False)):
        values = [getattr(explanation, measure) for explanation in explanations]
        score = bootstrap(mean_metric(measure, higher, measure), values, [None] * len(values))
        found[measure] = {"mean": round(score.value, 4),
                          "ci95": [round(score.low or 0.0, 4), round(score.high or 0.0, 4)]}
    deltas = [abs(e.convergence_delta) for e in explanations if e.convergence_delta is not None]
    if deltas:
        found["mean_abs_convergence_delta"] = sum(deltas) / len(deltas)
    return found


def line(row: dict[str, Any], baseline: float) -> str:
    comp, suff = row["comprehensiveness"], row["sufficiency"]
    return (f"| {row['method']} | {row['seconds_per_explanation']:.3f} | "
            f"{row['seconds_per_explanation'] / baseline:.0f}x | "
            f"{comp['mean']:.4f} [{comp['ci95'][0]:.4f}, {comp['ci95'][1]:.4f}] | "
            f"{suff['mean']:.4f} [{suff['ci95'][0]:.4f}, {suff['ci95'][1]:.4f}] |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="40 sentences instead of 200")
    parser.add_argument("--sentences", type=int, help="SST-2 dev sentences to explain")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--sentiment-model", help="the SST-2 classifier (a folder)")
    args = parser.parse_args()
    methods = [name.strip() for name in args.methods.split(",") if name.strip()]
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown method {unknown[0]} (known: {', '.join(METHODS)})")
    quiet_transformers()
    model, described = sentiment_model(args.sentiment_model)
    sentences = sst2_sentences(args.sentences or (40 if args.quick else 200))

    started = time.perf_counter()
    baseline = prediction_seconds(model, sentences)
    print(f"{len(sentences)} SST-2 dev sentences; {described}")
    print(f"baseline: one prediction {baseline * 1000:.1f} ms\n")
    print("| method | s / explanation | vs one prediction | comprehensiveness ↑ [95% CI] "
          "| sufficiency ↓ [95% CI] |")
    print("|---|--:|--:|--:|--:|")
    rows = []
    for method in methods:
        rows.append(explain_method(model, method, sentences))
        print(line(rows[-1], baseline), flush=True)
    report = {
        "machine": machine(),
        "model": described,
        "sentences": len(sentences),
        "prediction_seconds": round(baseline, 5),
        "rows": rows,
        "seconds": round(time.perf_counter() - started, 1),
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "bench_explain.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {OUT / 'bench_explain.json'} ({report['seconds']} s)")


if __name__ == "__main__":
    main()
