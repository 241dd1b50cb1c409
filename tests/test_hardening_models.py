"""Broken model folders and inputs far longer than a model's window (issue 16, items 3 and 4)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from nlpsuite import NlpsuiteError
from nlpsuite.batching import encode_truncated
from nlpsuite.models import load_tokenizer
from nlpsuite.records import MAX_RECORD_ENV
from tests.helpers import nlpsuite, one_error_line

NO_TOKENIZER = "tokenizer files (tokenizer.json, vocab.txt, vocab.json or a sentencepiece model)"
NO_WEIGHTS = "weights (model.safetensors or pytorch_model.bin)"


def _without(source: Path, tmp_path: Path, *patterns: str) -> Path:
    folder = tmp_path / "broken"
    shutil.copytree(source, folder)
    for pattern in patterns:
        for file in folder.glob(pattern):
            file.unlink()
    return folder


@pytest.mark.parametrize(
    ("removed", "said"),
    [
        (("tokenizer*", "vocab.txt"), NO_TOKENIZER),
        (("config.json",), "config.json"),
        (("*.safetensors",), NO_WEIGHTS),
        (("*",), f"config.json, {NO_WEIGHTS} and {NO_TOKENIZER}"),
    ],
)
def test_a_folder_missing_a_part_is_one_line(
    tiny_classifier: Path, tmp_path: Path, removed: tuple[str, ...], said: str
) -> None:
    folder = _without(tiny_classifier, tmp_path, *removed)
    done = nlpsuite("run", "sentiment", "--model", str(folder), "A fine film.")
    assert done.returncode == 2 and done.stdout == ""
    assert one_error_line(done.stderr) == f"nlpsuite: error: model folder {folder} has no {said}"


def test_a_folder_with_only_a_tokenizer_config_is_refused(
    tiny_classifier: Path, tmp_path: Path
) -> None:
    # tokenizer_config.json alone made transformers build a 5-token tokenizer that scored at
    # chance; the vocabulary is what a tokenizer needs.
    folder = _without(tiny_classifier, tmp_path, "tokenizer.json", "vocab.txt")
    assert (folder / "tokenizer_config.json").is_file()
    with pytest.raises(NlpsuiteError, match="has no tokenizer files"):
        load_tokenizer(str(folder))


def test_long_inputs_are_cut_before_tokenizing_with_the_same_tokens(tiny_classifier: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_classifier))
    words = ["film", "great", "dull", "plot", "actor"]
    short = " ".join(words[:3])
    long = " ".join(words[i % 7 % 5] for i in range(200_000))
    # One word of 300 characters is one unknown token: a cut by characters alone would leave the
    # window short of text, so the cut must grow until the window is full.
    odd = " ".join(["x" * 300] * 2_000)
    rows, truncated = encode_truncated(tokenizer, [short, long, odd], 64)
    assert truncated == 2
    whole = tokenizer([short, long, odd], truncation=True, max_length=64)
    assert [row["input_ids"] for row in rows] == whole["input_ids"]
    assert len(rows[0]["input_ids"]) < 64 and len(rows[1]["input_ids"]) == 64


class _Recording:
    """A real tokenizer that notes the longest text it was asked to tokenize."""

    def __init__(self, tokenizer: object) -> None:
        self.tokenizer = tokenizer
        self.longest = 0

    def __call__(self, texts: list[str], **options: object) -> object:
        self.longest = max([self.longest, *(len(text) for text in texts)])
        return self.tokenizer(texts, **options)  # type: ignore[operator]


def test_a_huge_input_is_never_tokenized_whole(tiny_classifier: Path) -> None:
    tokenizer = _Recording(load_tokenizer(str(tiny_classifier)))
    huge = "a dull film " * 500_000  # 6 MB on one line
    rows, truncated = encode_truncated(tokenizer, [huge], 128)
    assert truncated == 1 and len(rows[0]["input_ids"]) == 128
    assert tokenizer.longest < 128 * 64


@pytest.mark.parametrize(("name", "text"), [
    ("long.jsonl", '{"text": "a fine film"}\n{"text": "' + "x" * 5000 + '"}\n'),
    ("long.csv", "text\na fine film\n" + "x" * 5000 + "\n"),
])
def test_a_record_over_the_limit_is_one_line(
    tiny_classifier: Path, tmp_path: Path, name: str, text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / name
    path.write_text(text)
    monkeypatch.setenv(MAX_RECORD_ENV, "1000")
    done = nlpsuite("run", "sentiment", "--model", str(tiny_classifier), "--input", str(path))
    assert done.returncode == 2 and done.stdout == ""
    assert one_error_line(done.stderr) == (
        f"nlpsuite: error: {path}:{3 if name.endswith('csv') else 2}: a record longer than 1,000 "
        f"bytes; nlpsuite reads records of at most 1,000 bytes (set {MAX_RECORD_ENV} for more)"
    )


def test_a_stdin_line_over_the_limit_is_one_line(
    tiny_classifier: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(MAX_RECORD_ENV, "1000")
    done = nlpsuite("run", "sentiment", "--model", str(tiny_classifier), "--input", "-",
                    stdin='{"text": "fine"}\n{"text": "' + "y" * 3000 + '"}\n')
    assert done.returncode == 2
    assert one_error_line(done.stderr).startswith("nlpsuite: error: <stdin>:2: a record longer")
