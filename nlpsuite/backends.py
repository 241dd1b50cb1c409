"""Inference engines as plugins: the :class:`Backend` contract, and what backends share.

A backend turns a checkpoint into an object that stands in for the transformers model of one auto
class, for what the tasks use of it: called with a tokenized batch (torch tensors) it returns a
transformers ``ModelOutput`` (``.logits``, ``.start_logits``/``.end_logits``,
``.last_hidden_state``) holding torch tensors on the CPU, and it has ``.config``. A seq2seq model
has ``.generation_config`` and either transformers' ``generate`` or :meth:`TokenGenerator.
generate_tokens`. Tasks never name a backend: they call :func:`nlpsuite.models.load_model` with
``backend=config.backend`` and get whichever the user chose.

A backend is chosen by a spec string: its name, optionally with options, e.g. ``onnx``,
``onnx:quantize=int8``, ``ctranslate2:compute_type=int8``. ``torch`` is the default and always
installed; the others are optional extras (``pip install 'nlpsuite[onnx]'``). A backend that
converts a checkpoint does it once and keeps the result under :func:`cache_dir`, keyed by the
sha256 of the weights.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nlpsuite.errors import NlpsuiteError
from nlpsuite.tasks import Option

DEFAULT_BACKEND = "torch"
CACHE_ENV = "NLPSUITE_CACHE"


@dataclass(frozen=True)
class BackendConfig:
    """What a backend's ``load`` gets: which model to load, where, and the backend's options."""

    auto_class: str  # e.g. "AutoModelForSequenceClassification"
    model: str  # a hub id or a local directory, as the user gave it
    device: str = "cpu"
    options: Mapping[str, Any] = field(default_factory=dict)  # declared options, defaults filled
    trust_remote_code: bool = False


@dataclass(frozen=True)
class Backend:
    """One inference engine. ``auto_classes`` None: it loads every auto class (torch)."""

    name: str
    description: str
    load: Callable[[BackendConfig], Any]
    auto_classes: tuple[str, ...] | None = None
    devices: tuple[str, ...] = ("cpu",)
    options: tuple[Option, ...] = ()
    # Top-level modules the engine needs; checked without importing them, so listing is cheap.
    requires: tuple[str, ...] = ()
    # The nlpsuite extra that installs them: pip install 'nlpsuite[<extra>]'.
    extra: str | None = None

    @property
    def installed(self) -> bool:
        return all(importlib.util.find_spec(module) is not None for module in self.requires)

    def install_hint(self) -> str:
        if self.extra is not None:
            return f"pip install 'nlpsuite[{self.extra}]'"
        return "pip install " + " ".join(self.requires)

    def supports(self, auto_class: str) -> bool:
        return self.auto_classes is None or auto_class in self.auto_classes


class TokenGenerator(Protocol):
    """What a seq2seq model from a backend may offer instead of transformers' ``generate``."""

    def generate_tokens(
        self, rows: Sequence[Sequence[int]], limits: Sequence[int], options: Mapping[str, Any]
    ) -> list[list[int]]:
        """For each row of input ids (special tokens included, no padding) the generated ids,
        without the decoder start token, at most its limit long, ending with EOS if it ended.
        ``options`` are ``generate()`` keyword arguments (``num_beams``, ``min_length``...)."""
        ...


def _load_torch(config: BackendConfig) -> Any:
    from nlpsuite.models import load_model

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


def get_backend(name: str) -> Backend:
    """The registered backend called ``name``."""
    from nlpsuite.plugins import registry

    return registry().backend(name)


def list_backends() -> list[Backend]:
    """Every registered backend, sorted by name."""
    from nlpsuite.plugins import registry

    return sorted(registry().backends.values(), key=lambda backend: backend.name)


def parse_backend(spec: str) -> tuple[Backend, dict[str, Any]]:
    """``name[:key=value,...]`` to the backend and its options (validated, defaults filled).

    Unknown names and options, and engines that are not installed, are one-line errors.
    """
    name, _, given = spec.strip().partition(":")
    backend = get_backend(name.strip())
    declared = {option.name: option for option in backend.options}
    values: dict[str, Any] = {}
    for pair in filter(None, (part.strip() for part in given.split(","))):
        key, separator, value = pair.partition("=")
        key = key.strip()
        if not separator or not key:
            raise NlpsuiteError(f"backend '{spec}': expected NAME:KEY=VALUE,..., got {pair!r}")
        if key not in declared:
            known = ", ".join(declared) or "none"
            raise NlpsuiteError(
                f"unknown option '{key}' for backend '{backend.name}' (known options: {known})"
            )
        values[key] = declared[key].coerce(value.strip())
    if not backend.installed:
        raise NlpsuiteError(
            f"backend '{backend.name}' is not installed: {backend.install_hint()}"
        )
    return backend, {
        option.name: values.get(option.name, option.default) for option in backend.options
    }


def backend_label(backend: Backend, options: Mapping[str, Any]) -> str:
    """The canonical spec: the name, then the options that differ from their defaults."""
    changed = [
        f"{option.name}={options[option.name]}"
        for option in backend.options
        if options.get(option.name, option.default) != option.default
    ]
    return backend.name + (":" + ",".join(changed) if changed else "")


def canonical_backend(spec: str) -> str:
    """``spec`` checked and written the one way results and caches record it."""
    return backend_label(*parse_backend(spec))


def cache_dir(*parts: str) -> Path:
    """Where backends keep conversions: ``$NLPSUITE_CACHE``, else ``~/.cache/nlpsuite``."""
    root = os.environ.get(CACHE_ENV) or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    ) / "nlpsuite"
    return Path(root).expanduser().joinpath(*parts)


def local_checkpoint(config: BackendConfig) -> Path:
    """The folder holding ``config.model``'s files: a directory as given, a bundled model, or the
    Hugging Face cache (the torch loader downloads it first where the hub can be reached)."""
    from nlpsuite.models import load_model, resolve_model

    found = Path(resolve_model(config.model))
    if found.is_dir():
        return found
    snapshot = _hub_snapshot(config.model)
    if snapshot is None:
        load_model(config.auto_class, config.model, trust_remote_code=config.trust_remote_code)
        snapshot = _hub_snapshot(config.model)
    if snapshot is None:
        raise NlpsuiteError(f"model '{config.model}': no local copy of its files to convert")
    return snapshot


def _hub_snapshot(model: str) -> Path | None:
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model, local_files_only=True))
    except Exception:  # not cached, or no huggingface_hub: the caller downloads or explains
        return None


def convert_once(target: Path, convert: Callable[[Path], None]) -> Path:
    """``target``, made by ``convert(folder)`` into a fresh folder and renamed into place, so a
    crash or a second process converting at the same time never leaves half a conversion."""
    if target.is_dir():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    scratch.mkdir()
    try:
        convert(scratch)
        try:
            scratch.rename(target)
        except OSError:
            if not target.is_dir():  # not a race lost to another process: a real failure
                raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target


def cpu_threads() -> int:
    """The cores this process may use (cgroup and affinity limits included, where visible)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
