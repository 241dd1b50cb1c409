"""Model resolution and safe loading."""

from __future__ import annotations

import os
import pickle
import shutil
from pathlib import Path

import pytest

from nlpsuite import NlpsuiteError, run
from nlpsuite.checkpoints import resolve_model, weights_sha256
from nlpsuite.models import load_model, resolve_device


def test_local_directory_and_hub_id_resolve(tiny_classifier: Path, minilm: Path) -> None:
    assert resolve_model(str(tiny_classifier)) == str(tiny_classifier.resolve())
    assert resolve_model("sentence-transformers/all-MiniLM-L6-v2") == str(minilm)
    assert (
        resolve_model("distilbert/distilbert-base-uncased") == "distilbert/distilbert-base-uncased"
    )
    with pytest.raises(NlpsuiteError, match="model directory not found"):
        resolve_model("./no/such/dir")


def test_offline_hub_id_fails_in_one_line() -> None:
    with pytest.raises(NlpsuiteError) as raised:
        load_model("AutoModel", "nobody/nothing-here")
    message = str(raised.value)
    assert "nobody/nothing-here" in message and "--model DIR" in message
    assert "\n" not in message


def test_device_names() -> None:
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") in {"cpu", "cuda"}
    with pytest.raises(NlpsuiteError, match="unknown device"):
        resolve_device("tpu")


class _Exploit:
    """Unpickling this runs code; weights_only loading must refuse it."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def _pickle_checkpoint(source: Path, target: Path, state: object) -> Path:
    target.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(source / name, target / name)
    with (target / "pytorch_model.bin").open("wb") as handle:
        pickle.dump(state, handle)
    return target


def test_pickle_checkpoint_with_code_is_refused(tiny_classifier: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    folder = _pickle_checkpoint(tiny_classifier, tmp_path / "evil", _Exploit(marker))
    with pytest.raises(NlpsuiteError, match=r"refusing to load model .* convert it to safetensors"):
        run("sentiment", ["hello"], model=str(folder))
    assert not marker.exists()


def test_pickle_checkpoint_of_plain_tensors_loads(tiny_classifier: Path, tmp_path: Path) -> None:
    import torch
    from safetensors.torch import load_file

    folder = tmp_path / "bin"
    folder.mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(tiny_classifier / name, folder / name)
    torch.save(load_file(tiny_classifier / "model.safetensors"), folder / "pytorch_model.bin")
    from_bin = run("sentiment", ["a good film"], model=str(folder))
    from_safetensors = run("sentiment", ["a good film"], model=str(tiny_classifier))
    assert from_bin[0].label == from_safetensors[0].label
    assert from_bin[0].score == pytest.approx(from_safetensors[0].score, abs=1e-6)
    assert weights_sha256(str(folder)) != weights_sha256(str(tiny_classifier))
