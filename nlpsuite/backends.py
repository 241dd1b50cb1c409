"""Inference engines as plugins: the :class:`Backend` contract, and what backends share.

A backend turns a checkpoint into an object that stands in for the transformers model of one auto
class, for what the tasks use of it: called with a tokenized batch (torch tensors) it returns a
transformers ``ModelOutput`` (``.logits``, ``.start_logits``/``.end_logits``,
``.last_hidden_state``) holding torch tensors on the CPU, and it has ``.config``. A seq2seq model
has ``.generation_config`` and either transformers' ``generate`` or :meth:`TokenGenerator.
generate_tokens`. Tasks never name a backend: they call :func:`nlpsuite.lookup.load_model` with
``backend=config.backend`` and get whichever the user chose.

A backend is chosen by a spec string: its name, optionally with options, e.g. ``onnx``,
``onnx:quantize=int8``, ``ctranslate2:compute_type=int8``. ``torch`` is the default and always
installed; the others are optional extras (``pip install 'nlpsuite[onnx]'``). A backend that
converts a checkpoint does it once and keeps the result under :func:`cache_dir`, keyed by the
sha256 of the weights. What it returns has ``newly_initialized``: the weights its conversion's
transformers load made up (:func:`nlpsuite.models.newly_initialized`), so that a task head the
checkpoint lacks is refused as on torch (absent: nothing made up).
"""

from __future__ import annotations

import functools
import importlib.util
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nlpsuite.options import Option
from nlpsuite.records import write_folder_atomic

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


def backend_label(backend: Backend, options: Mapping[str, Any]) -> str:
    """The canonical spec: the name, then the options that differ from their defaults."""
    changed = [
        f"{option.name}={options[option.name]}"
        for option in backend.options
        if options.get(option.name, option.default) != option.default
    ]
    return backend.name + (":" + ",".join(changed) if changed else "")


def cache_dir(*parts: str) -> Path:
    """Where backends keep conversions: ``$NLPSUITE_CACHE``, else ``~/.cache/nlpsuite``."""
    root = os.environ.get(CACHE_ENV) or Path(
        os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    ) / "nlpsuite"
    return Path(root).expanduser().joinpath(*parts)


def convert_once(target: Path, convert: Callable[[Path], None]) -> Path:
    """``target``, made by ``convert(folder)`` once: a crash or a second process converting at
    the same time never leaves half a conversion."""
    return write_folder_atomic(target, convert, replace=False)


def cpu_threads() -> int:
    """The cores this process may use (cgroup and affinity limits included, where visible)."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


@functools.cache
def quiet_transformers() -> None:
    """Progress bars and advice from transformers would bury our own one-line messages."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()
