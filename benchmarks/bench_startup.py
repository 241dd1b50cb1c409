"""CLI cold start: `nlpsuite --help`, `plugins` and `tasks`, against a bare interpreter start.

    .venv/bin/python benchmarks/bench_startup.py [--repeat 15]

Prints a Markdown table and writes benchmarks/out/startup.json. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "import torch (for scale)": [sys.executable, "-c", "import torch"],
    "nlpsuite --help": [sys.executable, "-m", "nlpsuite", "--help"],
    "nlpsuite plugins": [sys.executable, "-m", "nlpsuite", "plugins"],
    "nlpsuite tasks": [sys.executable, "-m", "nlpsuite", "tasks"],
}


def median_seconds(command: list[str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=15)
    repeat = parser.parse_args().repeat
    results = {name: median_seconds(command, repeat) for name, command in COMMANDS.items()}
    baseline = results["python -c pass (baseline)"]
    print("| command | median s | x bare python |\n|---|---:|---:|")
    for name, seconds in results.items():
        print(f"| {name} | {seconds:.3f} | {seconds / baseline:.1f} |")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / "startup.json").write_text(json.dumps({"repeat": repeat, "seconds": results}, indent=2))


if __name__ == "__main__":
    main()
