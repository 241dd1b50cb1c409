"""Finding and loading models: a hub id or a local directory, loaded once per process.

Weights load from safetensors; a pickle-format checkpoint (``pytorch_model.bin``) only through
torch's ``weights_only`` loader, which refuses anything but tensors. ``trust_remote_code`` stays
off unless the caller turns it on.
"""

from __future__ import annotations

import os
import pickle
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nlpsuite.backends import Backend, BackendConfig, backend_label, quiet_transformers
from nlpsuite.checkpoints import (
    check_parts,
    checkpoint_folder,
    files_stamp,
    hub_reachable,
    resolve_model,
)
from nlpsuite.errors import NlpsuiteError, error_line
from nlpsuite.options import Option
from nlpsuite.quantized import QUANTIZE_MODES, load_quantized, quantization_of, quantize_model

_cache: dict[tuple[Any, ...], Any] = {}
_lock = threading.Lock()
# Held while a backend converts and loads; re-entrant, as a conversion loads the torch model.
_backend_lock = threading.RLock()

# Auto classes whose output comes from a task head on top of the encoder. Loaded from a checkpoint
# that lacks the head (a base model, a sentence encoder), transformers initializes it at random
# and the model answers at random, so inference loads refuse that unless told otherwise.
TASK_HEADS = {
    "AutoModelForSequenceClassification": "sequence-classification",
    "AutoModelForQuestionAnswering": "question-answering",
    "AutoModelForTokenClassification": "token-classification",
}


class RandomHeadError(NlpsuiteError):
    """``model`` loaded as a task model would run with newly initialized (random) weights.

    ``train``: the task ``nlpsuite train`` fine-tunes it for, where the caller knows it
    (:func:`nlpsuite.lookup.load_runner` fills it in through :meth:`for_task`); None for a task
    that ``nlpsuite train`` cannot train."""

    def __init__(self, model: str, head: str, keys: Sequence[str],
                 train: str | None = "TASK") -> None:
        self.model, self.head, self.keys = model, head, tuple(keys)
        shown = ", ".join(self.keys[:6]) + (f" and {len(self.keys) - 6} more"
                                            if len(self.keys) > 6 else "")
        verb = "is" if len(self.keys) == 1 else "are"
        how = (f"fine-tune it with nlpsuite train {train} --model {model} --train FILE --out DIR"
               if train is not None else "fine-tune it for the task first")
        super().__init__(
            f"model '{model}' has no trained {head} head ({shown} {verb} newly initialized): "
            f"{how}, or pass --allow-random-head to run it anyway"
        )

    def for_task(self, task: str | None) -> RandomHeadError:
        return RandomHeadError(self.model, self.head, self.keys, task)


def newly_initialized(loading_info: Mapping[str, Any]) -> tuple[str, ...]:
    """The weights transformers made up when it loaded a checkpoint, from the loading info
    ``from_pretrained(..., output_loading_info=True)`` returns: those the checkpoint lacks, and
    those of another shape it replaced."""
    missing = set(loading_info.get("missing_keys") or ())
    missing |= {key for key, *_ in loading_info.get("mismatched_keys") or ()}
    return tuple(sorted(missing))


def refuse_random_head(auto_class: str, model: str, new_weights: Sequence[str]) -> None:
    """Raise :class:`RandomHeadError` where ``model`` loaded as ``auto_class`` runs a task head
    with ``new_weights`` made up at load time."""
    if new_weights and auto_class in TASK_HEADS:
        raise RandomHeadError(model, TASK_HEADS[auto_class], new_weights)


class OfflineModelError(NlpsuiteError):
    """``model`` is on neither this machine nor its Hugging Face cache, and the Hub cannot be
    reached. ``offline``: what works without the Hub instead, where the caller knows the task
    (:func:`nlpsuite.lookup.load_runner` fills it in through :meth:`with_offline`)."""

    def __init__(self, model: str, offline: Sequence[str] = ()) -> None:
        self.model, self.offline = model, tuple(offline)
        instead = f"; offline, {' or '.join(self.offline)}" if self.offline else ""
        super().__init__(
            f"model '{model}' is not in the local cache and the Hugging Face Hub cannot be "
            f"reached; download it elsewhere (hf download {model} --local-dir DIR), "
            f"then pass --model DIR{instead}"
        )

    def with_offline(self, offline: Sequence[str]) -> OfflineModelError:
        return OfflineModelError(self.model, offline)


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
    allow_random_head: bool = False,
    **kwargs: Any,
) -> Any:
    """``transformers.<auto_class>.from_pretrained(model)`` on ``device``, in eval mode, cached.

    A task model (:data:`TASK_HEADS`) whose checkpoint lacks weights of it, so that they would be
    newly initialized, is a :class:`RandomHeadError` unless ``allow_random_head``.

    ``quantize="int8"``: dynamic int8 quantization of every ``nn.Linear`` (weights stored as int8,
    activations quantized on the fly), CPU only. Faster on CPU, at a small cost in accuracy; the
    quantized model is cached apart from the float one. ``quantize="int8-mixed"``: the same, but
    the feed-forward output projections stay float32 (BERT-style, RoBERTa, DistilBERT and ALBERT
    encoders; other models are an error). Another inference engine: :func:`nlpsuite.lookup.
    load_model`, which takes a backend spec.
    """
    if "backend" in kwargs:
        raise NlpsuiteError(
            "nlpsuite.models.load_model loads with torch only; for backend="
            f"{kwargs['backend']!r} call nlpsuite.lookup.load_model"
        )
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
        if quantization_of(source) is not None:  # an `nlpsuite quantize` export: int8 already
            return load_quantized(loader, source, device=device,
                                  trust_remote_code=trust_remote_code, **kwargs), ()
        loaded, info = loader.from_pretrained(
            source, trust_remote_code=trust_remote_code, local_files_only=local_only,
            output_loading_info=True, **kwargs
        )
        loaded = loaded.to(device).eval()
        loaded = quantize_model(loaded, quantize) if quantize is not None else loaded
        return loaded, newly_initialized(info)

    # Cached with what the load made up, not with the permission: every load decides anew.
    loaded, new_weights = _cached(key, model, load, ("config", "weights"))
    if not allow_random_head:
        refuse_random_head(auto_class, model, new_weights)
    return loaded


def load_on_backend(backend: Backend, options: Mapping[str, Any], auto_class: str, model: str,
                    *, device: str = "cpu", trust_remote_code: bool = False,
                    quantize: str | None = None, allow_random_head: bool = False,
                    **kwargs: Any) -> Any:
    """``model`` loaded by ``backend`` (options checked, defaults filled), cached per process.

    What comes back stands in for the transformers model of ``auto_class`` (see
    :mod:`nlpsuite.backends`). ``quantize``, a task's own option, means the same to a backend
    that declares a ``quantize`` option. A task head the checkpoint lacks is refused on every
    backend, as :func:`load_model` refuses it, unless ``allow_random_head``.
    """
    options = dict(options)
    if backend.name == TORCH.name:
        return load_model(auto_class, model, device=device, trust_remote_code=trust_remote_code,
                          quantize=quantize or options.get("quantize"),
                          allow_random_head=allow_random_head, **kwargs)
    if not backend.supports(auto_class):
        runs = ", ".join(backend.auto_classes or ())
        raise NlpsuiteError(
            f"backend '{backend.name}' does not run {auto_class} models (it runs {runs}); "
            f"use --backend torch"
        )
    if device.split(":")[0] not in backend.devices:
        raise NlpsuiteError(
            f"backend '{backend.name}' runs on {', '.join(backend.devices)}, not on '{device}'"
        )
    if quantize is not None:
        if "quantize" not in options:
            raise NlpsuiteError(
                f"quantize={quantize} is a torch option; backend '{backend.name}' takes "
                f"{', '.join(o.name for o in backend.options) or 'no options'}"
            )
        options["quantize"] = next(o for o in backend.options if o.name == "quantize").coerce(
            quantize
        )
    if kwargs:
        raise NlpsuiteError(f"backend '{backend.name}' takes no {', '.join(sorted(kwargs))}")
    label = backend_label(backend, options)
    key = ("backend-model", label, auto_class, model, device, trust_remote_code)
    with _backend_lock:
        if key not in _cache:
            quiet_transformers()
            config = BackendConfig(auto_class, model, device, options, trust_remote_code)
            _cache[key] = backend.load(config)
        loaded = _cache[key]
    if not allow_random_head:
        refuse_random_head(auto_class, model, getattr(loaded, "newly_initialized", ()))
    return loaded


def local_checkpoint(config: BackendConfig) -> Path:
    """The folder holding ``config.model``'s files for a backend to convert: a directory as
    given, a bundled model, or the Hugging Face cache (downloaded first where the hub can be
    reached)."""
    snapshot = checkpoint_folder(config.model)
    if snapshot is None:
        # Only to fetch the files: whether a random head may run is load_on_backend's call.
        load_model(config.auto_class, config.model, trust_remote_code=config.trust_remote_code,
                   allow_random_head=True)
        snapshot = checkpoint_folder(config.model)
    if snapshot is None:
        raise NlpsuiteError(f"model '{config.model}': no local copy of its files to convert")
    return snapshot


def load_tokenizer(model: str, *, trust_remote_code: bool = False, **kwargs: Any) -> Any:
    """``AutoTokenizer.from_pretrained(model)``, cached."""
    key = ("tokenizer", model, trust_remote_code, tuple(sorted(kwargs.items())))

    def load(source: str, local_only: bool) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(
            source, trust_remote_code=trust_remote_code, local_files_only=local_only, **kwargs
        )

    return _cached(key, model, load, ("tokenizer",))


def load_config(model: str, *, trust_remote_code: bool = False) -> Any:
    """``AutoConfig.from_pretrained(model)``, cached."""

    def load(source: str, local_only: bool) -> Any:
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(
            source, trust_remote_code=trust_remote_code, local_files_only=local_only
        )

    return _cached(("config", model, trust_remote_code), model, load, ("config",))


def forget_model(model: str) -> None:
    """Drop every cached load whose key names ``model`` (a folder being rewritten, say)."""
    with _lock:
        for key in [key for key in _cache if model in key]:
            del _cache[key]


def _cached(key: tuple[Any, ...], model: str, load: Any, needed: tuple[str, ...]) -> Any:
    # A model saved again into the same folder (retrained, re-exported) is loaded again.
    key = (*key, files_stamp(model))
    with _lock:
        if key in _cache:
            return _cache[key]
        quiet_transformers()
        source = resolve_model(model)
        if Path(source).is_dir():
            check_parts(Path(source), needed)
        _cache[key] = load_or_explain(source, model, load)
        return _cache[key]


def load_or_explain(source: str, model: str, load: Any) -> Any:
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
            raise NlpsuiteError(f"cannot load model from {source}: {error_line(error)}") from None
    except Exception as error:
        raise NlpsuiteError(f"cannot load model '{model}': {error_line(error)}") from None
    if os.environ.get("HF_HUB_OFFLINE") or not hub_reachable():
        raise OfflineModelError(model)
    try:
        return load(source, False)
    except Exception as error:
        raise NlpsuiteError(
            f"cannot load model '{model}' from the Hugging Face Hub: {error_line(error)}; "
            f"pass --model DIR to use a local checkpoint"
        ) from None





def _load_torch(config: BackendConfig) -> Any:
    return load_model(config.auto_class, config.model, device=config.device,
                      trust_remote_code=config.trust_remote_code,
                      quantize=config.options.get("quantize"))


# Part of the core rather than a plugin, so that NLPSUITE_LOAD_PLUGINS can never leave a suite
# without its default engine.
TORCH = Backend(
    name="torch",
    description="PyTorch and transformers, as the checkpoint was written (the default)",
    load=_load_torch,
    devices=("cpu", "cuda"),
    options=(Option("quantize", str, None,
                    "int8: dynamic int8 quantization of the linear layers (CPU only); "
                    "int8-mixed: all but the feed-forward output layers"),),
    requires=("torch", "transformers"),
)
