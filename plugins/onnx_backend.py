"""onnx: encoder checkpoints on ONNX Runtime (``pip install 'nlpsuite[onnx]'``).

Serves the auto classes of the encoder tasks: ``AutoModelForSequenceClassification``
(sentiment), ``AutoModelForQuestionAnswering`` and ``AutoModel`` (semantic search). A checkpoint
is exported once with torch's TorchScript-based ONNX exporter (dynamic batch and sequence axes;
the torch.export-based one needs onnxscript and took five times as long on MiniLM), checked
against torch on a batch of another shape than the traced one, and kept under
``~/.cache/nlpsuite/onnx/`` keyed by the sha256 of the weights. ``quantize=int8`` adds a dynamic
int8 copy (onnxruntime.quantization, per-channel weights), made once as well.

    nlpsuite run sentiment --backend onnx "A delightful film."
    nlpsuite run semantic-search --backend onnx:quantize=int8 --corpus docs.jsonl "query"
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from nlpsuite import NlpsuiteError, hookimpl
from nlpsuite.backends import Backend, BackendConfig, cache_dir, convert_once, cpu_threads
from nlpsuite.checkpoints import weights_sha256
from nlpsuite.models import load_config, local_checkpoint, newly_initialized
from nlpsuite.options import Option
from nlpsuite.quantized import QUANTIZE_MODES as TORCH_MODES

# What each auto class returns, by name, and the transformers output class that carries it.
OUTPUTS = {
    "AutoModel": (("last_hidden_state",), "BaseModelOutput"),
    "AutoModelForSequenceClassification": (("logits",), "SequenceClassifierOutput"),
    "AutoModelForQuestionAnswering": (
        ("start_logits", "end_logits"), "QuestionAnsweringModelOutput"
    ),
}
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
QUANTIZE_MODES = ("int8",)
# Bumped when the export changes, so conversions made by an older nlpsuite are not reused.
# 2: meta.json records the weights the export's torch load made up (a missing task head).
EXPORT_VERSION = 2
OPSET = 17
# An export must reproduce torch to this (float32 noise is about 1e-5 on bert-base).
TOLERANCE = 1e-3


def load(config: BackendConfig) -> OnnxModel:
    quantize = config.options["quantize"]
    if quantize is not None and quantize not in QUANTIZE_MODES:

        if quantize in TORCH_MODES:
            raise NlpsuiteError(
                f"backend 'onnx': quantize '{quantize}' is torch-only (use "
                f"{', '.join(QUANTIZE_MODES)}, or --backend torch)"
            )
        raise NlpsuiteError(
            f"backend 'onnx': unknown quantize '{quantize}' (use {', '.join(QUANTIZE_MODES)})"
        )
    folder = local_checkpoint(config)
    sha = weights_sha256(str(folder))
    if sha is None:
        raise NlpsuiteError(f"model '{config.model}': no weight files in {folder} to export")
    target = cache_dir("onnx", f"{sha[:32]}-{config.auto_class}-v{EXPORT_VERSION}")
    convert_once(target, lambda scratch: export(config, folder, scratch))
    path = target / "model.onnx"
    if quantize == "int8":
        path = _quantized(path, target / "model-int8.onnx")
    meta = json.loads((target / "meta.json").read_text())
    return OnnxModel(path, load_config(str(folder), trust_remote_code=config.trust_remote_code),
                     meta["inputs"], config.auto_class, meta["newly_initialized"])


def export(config: BackendConfig, folder: Path, out: Path) -> None:
    """``folder``'s checkpoint as ``out/model.onnx`` with ``meta.json``; checked against torch."""
    import torch
    import transformers

    logging.getLogger("nlpsuite").info(
        "exporting %s to ONNX (once; cached in %s)", config.model, out.parent
    )
    loader = getattr(transformers, config.auto_class)
    model, info = loader.from_pretrained(str(folder), trust_remote_code=config.trust_remote_code,
                                         output_loading_info=True)
    accepted = inspect.signature(model.forward).parameters
    inputs = [name for name in INPUTS if name in accepted]
    outputs = list(OUTPUTS[config.auto_class][0])
    # eval() on the wrapper too: a new module is in training mode, and export restores the mode
    # it found, which would leave dropout on in the check below.
    wrapper = _positional(model, inputs, outputs).eval()
    # Padded rows of different lengths, so the attention mask is traced as a real input.
    traced = _example(model.config, inputs, [8, 5])
    axes = {name: {0: "batch", 1: "sequence"} for name in inputs}
    axes |= {name: {0: "batch", 1: "sequence"} if name != "logits" else {0: "batch"}
             for name in outputs}
    with warnings.catch_warnings(), torch.no_grad():
        # The legacy exporter announces its deprecation and the tracer flags transformers'
        # Python-level shape checks; the check below is what tells whether the trace is right.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper, tuple(traced), str(out / "model.onnx"), input_names=inputs,
            output_names=outputs, dynamic_axes=axes, opset_version=OPSET, dynamo=False,
        )
        check = _example(model.config, inputs, [11, 3, 7])
        expected = [tensor.numpy() for tensor in wrapper(*check)]
    got = _session(out / "model.onnx").run(
        outputs, {name: tensor.numpy() for name, tensor in zip(inputs, check, strict=True)}
    )
    worst = max(float(abs(a - b).max()) for a, b in zip(got, expected, strict=True))
    if worst > TOLERANCE:
        raise NlpsuiteError(
            f"the ONNX export of '{config.model}' differs from torch by {worst:.2g}; "
            f"use --backend torch"
        )
    meta = {"model": config.model, "weights_sha256": weights_sha256(str(folder)),
            "auto_class": config.auto_class, "inputs": inputs, "outputs": outputs,
            "opset": OPSET, "torch": torch.__version__,
            "transformers": transformers.__version__, "max_abs_diff": worst,
            "newly_initialized": list(newly_initialized(info))}
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")


def _example(model_config: Any, inputs: Sequence[str], lengths: Sequence[int]) -> list[Any]:
    import torch

    width = max(lengths)
    top = min(int(getattr(model_config, "vocab_size", 100)), 100)
    ids = torch.tensor([[5 + (row * 7 + i) % (top - 5) for i in range(width)] for row in
                        range(len(lengths))])
    mask = torch.tensor([[1] * n + [0] * (width - n) for n in lengths])
    made = {"input_ids": ids * mask, "attention_mask": mask,
            "token_type_ids": torch.zeros_like(ids)}
    return [made[name] for name in inputs]


def _quantized(source: Path, target: Path) -> Path:
    """A dynamic int8 copy of ``source`` (made once, written atomically)."""
    if target.exists():
        return target
    from onnxruntime.quantization import QuantType, quantize_dynamic

    scratch = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    # quantize_dynamic advises pre-processing through the root logger on every call.
    logging.disable(logging.WARNING)
    try:
        # Per-channel scales: per-tensor ones cost MiniLM embeddings a cosine of 0.93 against
        # float32 on STS-B sentences, per-channel 0.989 at the worst sentence.
        quantize_dynamic(str(source), str(scratch), weight_type=QuantType.QInt8,
                         per_channel=True)
        os.replace(scratch, target)
    finally:
        logging.disable(logging.NOTSET)
        scratch.unlink(missing_ok=True)
    return target


def _session(path: Path) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # One pool, as wide as the cores we may use: ONNX Runtime's default also counts cores it
    # cannot use under a CPU quota, and oversubscribed threads spin against each other.
    options.intra_op_num_threads = cpu_threads()
    options.inter_op_num_threads = 1
    # Idle threads sleep rather than spin: spinning takes the cores from whatever else runs in
    # the process between passes (a server's event loop, the next batch's tokenizer).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _positional(model: Any, inputs: Sequence[str], outputs: Sequence[str]) -> Any:
    """The model as a module of positional tensors returning a tuple: what tracing needs."""
    import torch

    class Positional(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> tuple[Any, ...]:
            result = self.model(**dict(zip(inputs, tensors, strict=True)))
            return tuple(result[name] for name in outputs)

    return Positional()


class OnnxModel:
    """Stands in for the transformers model: called with the tokenized batch, it returns the same
    ``ModelOutput`` class with torch tensors (on the CPU). ``newly_initialized``: the weights
    the exported torch model made up at load time (see :mod:`nlpsuite.backends`)."""

    def __init__(self, path: Path, config: Any, inputs: Sequence[str], auto_class: str,
                 newly_initialized: Sequence[str] = ()) -> None:
        import transformers.modeling_outputs as outputs

        self.path = path
        self.newly_initialized = tuple(newly_initialized)
        self.config = config
        self.inputs = list(inputs)
        self.outputs, class_name = OUTPUTS[auto_class]
        self.output_class: Callable[..., Any] = getattr(outputs, class_name)
        self.session = _session(path)

    def __call__(self, **batch: Any) -> Any:
        import numpy as np
        import torch

        given = {name: _numpy(value) for name, value in batch.items() if value is not None}
        if "input_ids" not in given:
            raise NlpsuiteError("backend 'onnx': the batch has no input_ids")
        ids = given["input_ids"]
        defaults = {"attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        feed = {name: given.get(name, defaults.get(name)) for name in self.inputs}
        values = self.session.run(list(self.outputs), feed)
        return self.output_class(**{
            name: torch.from_numpy(value) for name, value in zip(self.outputs, values, strict=True)
        })

    def eval(self) -> OnnxModel:
        return self

    def to(self, device: Any) -> OnnxModel:
        return self


def _numpy(value: Any) -> Any:
    import numpy as np

    array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
    return array.astype(np.int64, copy=False)


BACKEND = Backend(
    name="onnx",
    description="ONNX Runtime on the CPU: encoders (sentiment, question answering, search)",
    load=load,
    auto_classes=tuple(OUTPUTS),
    options=(Option("quantize", str, None,
                    "int8: dynamic int8 weights (per channel), made once from the export"),),
    requires=("onnxruntime", "onnx"),
    extra="onnx",
)


@hookimpl
def register_backends(register: Callable[[Backend], None]) -> None:
    register(BACKEND)
