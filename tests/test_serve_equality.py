"""The promise of `nlpsuite serve`: a micro-batched answer is exactly what `nlpsuite run` gives for
that input alone. 200 concurrent mixed-length requests go to one real server (uvicorn on a free
loopback port) serving three tasks: `embedding` on the real MiniLM, `sentiment` on a tiny
classifier and greedy `text-generation` on a tiny Llama. Each answer's JSON text must equal, byte
for byte, the JSON of the task's runner on that input alone (a batch of one), and that of
`nlpsuite run --json` on all the inputs at once; and the server must really have batched."""

from __future__ import annotations

import asyncio
import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from nlpsuite import get_task
from nlpsuite.lookup import load_runner
from nlpsuite.records import to_json
from nlpsuite.serving.server import ServeConfig
from tests.helpers import nlpsuite
from tests.serving import serve_in_thread
from tests.tiny_models import WORDS

GENERATION = {"max_new_tokens": 8}  # greedy: temperature 0 is the task's default


def mixed_texts(count: int, seed: int, longest: int) -> list[str]:
    chooser = random.Random(seed)
    return [" ".join(chooser.choice(WORDS) for _ in range(chooser.randint(1, longest)))
            for _ in range(count)]


def requests_to_send() -> list[tuple[str, dict[str, Any]]]:
    """200 (task, record) pairs, tasks interleaved, texts of 1 to 150 words."""
    embedding = [{"text": text} for text in mixed_texts(80, seed=11, longest=60)]
    sentiment = [{"text": text} for text in mixed_texts(80, seed=12, longest=150)]
    generation = [{"prompt": text} for text in mixed_texts(40, seed=13, longest=20)]
    tagged = ([("embedding", r) for r in embedding] + [("sentiment", r) for r in sentiment]
              + [("text-generation", r) for r in generation])
    random.Random(14).shuffle(tagged)
    return tagged


def alone(task_name: str, model: str, records: list[dict[str, Any]],
          options: dict[str, Any] | None = None) -> list[str]:
    """The JSON of the task's runner on each record alone, in a batch of one."""
    task = get_task(task_name)
    runner = load_runner(task, model, batch_size=1, options=options)
    return [to_json(runner([task.make_input(record, "test")])[0]) for record in records]


async def send_all(base_url: str, tagged: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Every request at once, each on its own connection; the answers' texts in order."""
    import httpx

    limits = httpx.Limits(max_connections=len(tagged))
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=120) as client:
        responses = await asyncio.gather(
            *(client.post(f"/v1/tasks/{task}", json=record) for task, record in tagged)
        )
    assert [r.status_code for r in responses] == [200] * len(tagged)
    return [r.text for r in responses]


def batch_sizes(metrics: str, task: str) -> dict[float, float]:
    """The cumulative buckets of ``nlpsuite_batch_size`` for ``task``: upper bound -> count."""
    found = {}
    pattern = re.compile(r'nlpsuite_batch_size_bucket\{(.*?)\} (\S+)')
    for labels, count in pattern.findall(metrics):
        if f'task="{task}"' in labels:
            bound = re.search(r'le="([^"]+)"', labels)
            assert bound is not None
            found[float(bound.group(1))] = float(count)
    return found


@pytest.mark.slow
def test_200_concurrent_answers_equal_each_input_run_alone(
    minilm: Path, tiny_classifier: Path, tiny_llama: Path, tmp_path: Path
) -> None:
    import httpx

    models = {"embedding": str(minilm), "sentiment": str(tiny_classifier),
              "text-generation": str(tiny_llama)}
    config = ServeConfig(tasks=tuple(models), models=models,
                         options={"text-generation": GENERATION})
    tagged = requests_to_send()
    with serve_in_thread(config) as base_url:
        answers = asyncio.run(send_all(base_url, tagged))
        metrics = httpx.get(f"{base_url}/metrics", timeout=30).text

    for task, model in models.items():
        positions = [i for i, (name, _) in enumerate(tagged) if name == task]
        records = [tagged[i][1] for i in positions]
        expected = alone(task, model, records, GENERATION if task == "text-generation" else None)
        differing = [i for i, text in zip(positions, expected, strict=True) if answers[i] != text]
        assert not differing, f"{task}: requests {differing} differ from their input run alone"
        assert len(set(expected)) > len(records) // 2  # the answers depend on the inputs

        buckets = batch_sizes(metrics, task)
        one_record_batches, batches = buckets[1.0], buckets[float("inf")]
        assert batches < len(records), f"{task}: no batching, {batches} forward passes"
        assert one_record_batches < batches, f"{task}: every batch held one record"

    # `nlpsuite run --json` over all the inputs at once (its batches of 32) prints the same.
    for task in ("embedding", "sentiment"):
        records = [record for name, record in tagged if name == task]
        inputs = tmp_path / f"{task}.jsonl"
        inputs.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
        done = nlpsuite("run", task, "--model", models[task], "--input", str(inputs), "--json")
        assert done.returncode == 0, done.stderr
        served = [answers[i] for i, (name, _) in enumerate(tagged) if name == task]
        assert done.stdout.splitlines() == served
