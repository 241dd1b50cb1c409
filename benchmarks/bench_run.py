"""`nlpsuite run sentiment` time to first output, with the model load measured separately.

    .venv/bin/python benchmarks/bench_run.py [--repeat 5]

Each figure is the median of ``--repeat`` fresh processes on the tiny test classifier:

* ``nlpsuite run`` to first output: from starting the CLI until its first output line arrives;
* the same work written by hand in one script (import torch and transformers, load tokenizer and
  model, classify one text), split into its phases: interpreter start, imports, model load
  (``from_pretrained`` of tokenizer and model), first classification.

The CLI's own overhead is its time to first output minus (imports + model load) of the hand
script, which any program using the model pays too. Target: under 1.5 s. Prints a Markdown table
and writes benchmarks/out/bench_run.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
sys.path.insert(0, str(ROOT))  # for tests.tiny_models

from timing import machine  # noqa: E402

from tests import tiny_models  # noqa: E402

BY_HAND = """
import json, sys, time
started = time.perf_counter()
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
imported = time.perf_counter()
tokenizer = AutoTokenizer.from_pretrained(sys.argv[1])
model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1]).eval()
loaded = time.perf_counter()
with torch.inference_mode():
    logits = model(**tokenizer("a great film", return_tensors="pt")).logits
print(model.config.id2label[int(logits[0].argmax())], flush=True)
done = time.perf_counter()
print(json.dumps({"imports_s": imported - started, "model_load_s": loaded - imported,
                  "first_output_s": done - loaded}))
"""


def time_to_first_line(command: list[str]) -> float:
    started = time.perf_counter()
    with subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    ) as process:
        assert process.stdout is not None
        line = process.stdout.readline()
        elapsed = time.perf_counter() - started
        process.communicate()
    if process.returncode != 0 or not line.strip():
        raise SystemExit(f"{command[:4]} failed (exit {process.returncode})")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    args = parser.parse_args()
    repeat = 3 if args.quick else args.repeat
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    with tempfile.TemporaryDirectory() as scratch:
        model = str(tiny_models.build_bert_classifier(Path(scratch) / "tiny"))
        cli = [
            sys.executable,
            "-m",
            "nlpsuite",
            "run",
            "sentiment",
            "--model",
            model,
            "a great film",
        ]
        bare, ttfo, phases = [], [], []
        for _ in range(repeat):  # taking turns, so that a burst of other work hits all alike
            bare.append(time_to_first_line([sys.executable, "-c", "print(1)"]))
            ttfo.append(time_to_first_line(cli))
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", BY_HAND, model], check=True, capture_output=True, text=True
            )
            total = time.perf_counter() - started
            phases.append({**json.loads(done.stdout.splitlines()[-1]), "total_s": total})
    median = {key: statistics.median(p[key] for p in phases) for key in phases[0]}
    result: dict[str, Any] = {
        "python_start_s": statistics.median(bare),
        "nlpsuite_run_first_output_s": statistics.median(ttfo),
        "by_hand": median,
    }
    result["cli_overhead_s"] = (
        result["nlpsuite_run_first_output_s"] - median["imports_s"] - median["model_load_s"]
    )
    result["target_met"] = result["cli_overhead_s"] < 1.5
    rows = [
        ("python start (print 1)", result["python_start_s"]),
        ("by hand: import torch + transformers", median["imports_s"]),
        ("by hand: model load (tokenizer + model from_pretrained)", median["model_load_s"]),
        ("by hand: first classification", median["first_output_s"]),
        ("by hand: whole script", median["total_s"]),
        ("`nlpsuite run sentiment` to first output", result["nlpsuite_run_first_output_s"]),
        ("nlpsuite run minus (imports + model load)", result["cli_overhead_s"]),
    ]
    print(f"| step (tiny classifier, median of {repeat}) | s |\n|---|---:|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.3f} |")
    print(f"\nCLI overhead under 1.5 s: {result['target_met']}")
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / "bench_run.json"
    path.write_text(
        json.dumps(
            {
                "benchmark": "run-first-output",
                "machine": machine(),
                "repeat": repeat,
                "result": result,
            },
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    print(f"wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
