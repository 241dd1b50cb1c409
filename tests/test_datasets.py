"""Dataset loaders on the real shared benchmark files, and their errors on small broken files."""

from __future__ import annotations

import collections
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from nlpsuite_plugins.semantic_search.formats import load_beir, load_sts, read_beir_corpus
from nlpsuite_plugins.sentiment import load_glue_tsv, load_poem_sentiment
from nlpsuite_plugins.summarization import load_scitldr

import nlpsuite.plugins
from nlpsuite import NlpsuiteError, hookimpl
from nlpsuite.catalog import dataset_fingerprint, load_dataset, load_records, resolve_dataset
from nlpsuite.datasets import Dataset, Example, load_parallel, select, sha256_file
from nlpsuite.plugins import Registry
from nlpsuite.squad import load_squad
from tests.conftest import SHARED_DATASETS


def shared(folder: str) -> Path:
    path = SHARED_DATASETS / folder
    if not path.is_dir():
        pytest.skip(f"shared dataset folder {path} is absent")
    return path


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# The real files: counts and quirks from each folder's README.


def test_sst2_dev() -> None:
    folder = shared("glue-sst2")
    examples = load_glue_tsv(folder / "dev.tsv")
    assert len(examples) == 872
    assert collections.Counter(e.reference for e in examples) == {"0": 428, "1": 444}
    first = examples[0]
    assert first.id == "2"  # line numbers; the header is line 1
    assert first.input == {"text": "it 's a charming and often affecting journey . "}
    assert load_dataset(str(folder / "dev.tsv"), "sentiment") == examples


def test_poem_sentiment_without_final_newline() -> None:
    folder = shared("poem-sentiment")
    dev = load_poem_sentiment(folder / "dev.tsv")
    assert len(dev) == 105
    assert collections.Counter(e.reference for e in dev) == {"-1": 19, "0": 69, "1": 17}
    assert dev[-1] == Example(
        "104", {"text": "let me all risk, and leave the deep heart dumb"}, "-1"
    )
    assert len(load_poem_sentiment(folder / "dev.tsv", binary=True)) == 36
    assert len(load_poem_sentiment(folder / "test.tsv", binary=True)) == 35
    assert load_dataset(str(folder / "test.tsv"), "sentiment")[0].id == "0"


def test_squad_v1() -> None:
    folder = shared("squad-v1.1")
    examples = load_squad(folder / "dev-v1.1.json")
    assert len(examples) == 10570
    assert sum(len(e.reference) for e in examples) == 34726
    assert all(1 <= len(e.reference) <= 6 for e in examples)
    first = examples[0]
    assert first.id == "56be4db0acb8001400a502ec"
    assert first.reference == ["Denver Broncos"] * 3
    assert set(first.input) == {"question", "context"}
    assert first.reference[0] in first.input["context"]


def test_squad_v2_unanswerable_keep_their_ids() -> None:
    folder = shared("squad-v2.0")
    examples = load_dataset(str(folder / "dev-v2.0.reconstructed.json"), "question-answering")
    assert len(examples) == 11873
    assert sum(1 for e in examples if e.reference == []) == 5945
    predictions = json.loads(
        (folder / "predictions" / "bert-single-google-ai.dev-v2.0.json").read_text()
    )
    assert {e.id for e in examples} == set(predictions)


@pytest.mark.parametrize(
    ("folder", "source", "reference", "count"),
    [
        ("wmt17-en-de-systems", "newstest2017.src.en", "newstest2017.ref.de", 3004),
        ("flores200-devtest-en-de", "eng_Latn.devtest", "deu_Latn.devtest", 1012),
    ],
)
def test_parallel_text(folder: str, source: str, reference: str, count: int) -> None:
    root = shared(folder)
    examples = load_dataset(f"{root / source}:{root / reference}", "translation")
    assert len(examples) == count
    assert [e.id for e in examples[:2]] == ["1", "2"]
    assert all(len(e.reference) == 1 for e in examples)


def test_flores_first_line_and_several_references() -> None:
    root = shared("flores200-devtest-en-de")
    examples = load_parallel(root / "eng_Latn.devtest", [root / "deu_Latn.devtest"] * 2)
    assert examples[0].input["text"].startswith('"We now have 4-month-old mice')
    assert (
        examples[0].reference
        == [
            "„Wir haben jetzt 4 Monate alte Mäuse, die Diabetes hatten und jetzt keinen mehr "
            "haben“, fügte er hinzu."
        ]
        * 2
    )


def test_scitldr_multi_reference() -> None:
    folder = shared("scitldr-a")
    examples = load_dataset(str(folder / "test.jsonl"), "summarization")
    assert examples == load_scitldr(folder / "test.jsonl")
    assert len(examples) == 618
    assert sum(len(e.reference) for e in examples) == 1967
    assert all(2 <= len(e.reference) <= 4 for e in examples)
    assert all(r == r.strip() for e in examples for r in e.reference)
    assert all(e.input["text"] == e.input["text"].strip() for e in examples)
    assert examples[0].id == "SJ1Xmf-Rb"


def test_beir_scifact_judged_queries_and_corpus() -> None:
    folder = shared("beir-scifact")
    data = load_beir(folder)
    assert len(data.examples) == 300
    assert sum(len(e.reference) for e in data.examples) == 339
    assert data.examples[0] == Example(
        "1", {"text": data.examples[0].input["text"]}, {"31715818": 1}
    )
    train = load_beir(folder, "train")
    assert (len(train.examples), sum(len(e.reference) for e in train.examples)) == (809, 919)
    documents = data.documents()
    assert len(documents) == 5183
    first = json.loads((folder / "corpus.jsonl").open().readline())
    assert documents[first["_id"]] == f"{first['title']} {first['text']}"
    # Through the dispatcher: the folder is the test split, qrels/train.tsv picks train, and the
    # corpus comes along as the semantic-search task's option.
    assert [e.id for e in load_dataset(str(folder), "semantic-search")] == [
        e.id for e in data.examples
    ]
    assert len(load_dataset(str(folder / "qrels" / "train.tsv"), "semantic-search")) == 809
    assert resolve_dataset(str(folder)).options == {
        "corpus": str(folder / "corpus.jsonl"), "top_k": 100}


def test_sts_benchmark_dev() -> None:
    folder = shared("stsbenchmark")
    examples = load_sts(folder / "sts-dev.csv")
    assert len(examples) == 1500
    assert all(0.0 <= e.reference <= 5.0 for e in examples)
    assert examples[0] == Example(
        "1",
        {
            "text": "A man with a hard hat is dancing.",
            "text_pair": "A man wearing a hard hat is dancing.",
        },
        5.0,
    )
    assert len(load_dataset(str(folder / "sts-test.csv"), "sentence-similarity")) == 1379


def test_fingerprint_matches_published_sha256() -> None:
    folder = shared("beir-scifact")
    assert sha256_file(folder / "qrels" / "test.tsv") == (
        "0864bb985e0ca2367ba217977e72004d549054b2b06666ed9d4825ac7c21284c"
    )
    fingerprint = dataset_fingerprint(str(folder))
    assert [f["sha256"][:8] for f in fingerprint["files"]] == ["dec31c81", "8ff84a7c", "0864bb98"]
    assert fingerprint["bytes"] == sum(f["bytes"] for f in fingerprint["files"])


def test_fingerprint_depends_on_content_not_location(tmp_path: Path) -> None:
    original = shared("poem-sentiment") / "dev.tsv"
    copy = tmp_path / "dev.tsv"
    copy.write_bytes(original.read_bytes())
    assert dataset_fingerprint(str(copy))["sha256"] == dataset_fingerprint(str(original))["sha256"]
    copy.write_bytes(original.read_bytes() + b"\n")
    assert dataset_fingerprint(str(copy))["sha256"] != dataset_fingerprint(str(original))["sha256"]


# Plain records and the dispatcher.


def test_plain_jsonl_records(tmp_path: Path) -> None:
    file = write(
        tmp_path / "qa.jsonl",
        '{"id": "a", "question": "Who?", "context": "Ann did.", "reference": "Ann"}\n'
        "\n"
        '{"question": "Who not?", "context": "Ann did.", "reference": [], "extra": 1}\n',
    )
    assert load_dataset(str(file), "question-answering") == [
        Example("a", {"question": "Who?", "context": "Ann did."}, ["Ann"]),
        Example("3", {"question": "Who not?", "context": "Ann did."}, []),
    ]


def test_references_normalised_per_task(tmp_path: Path) -> None:
    sentiment = write(tmp_path / "s.jsonl", '{"text": "good", "reference": 1}\n')
    assert load_records(sentiment, "sentiment")[0].reference == "1"
    search = write(tmp_path / "q.jsonl", '{"text": "q", "reference": ["d1", 7]}\n')
    assert load_records(search, "semantic-search")[0].reference == {"d1": 1, "7": 1}
    csv_file = write(tmp_path / "t.csv", "text,reference\nHallo,Hello\n")
    assert load_records(csv_file, "translation") == [Example("2", {"text": "Hallo"}, ["Hello"])]
    pairs = write(tmp_path / "p.csv", "text,text_pair,reference\na,b,4.5\n")
    assert load_dataset(str(pairs), "sentence-similarity")[0].reference == 4.5


def test_summarization_pairs_by_field_names(tmp_path: Path) -> None:
    file = write(
        tmp_path / "docs.jsonl",
        '{"document": ["One. ", " Two."], "summary": "Both."}\n'
        '{"id": 9, "document": "Three.", "summary": ["A.", "B."]}\n',
    )
    assert load_dataset(str(file), "summarization") == [
        Example("1", {"text": "One. Two."}, ["Both."]),
        Example("9", {"text": "Three."}, ["A.", "B."]),
    ]


def test_malformed_jsonl_line_is_located(tmp_path: Path) -> None:
    file = write(
        tmp_path / "in.jsonl",
        '{"text": "fine", "reference": "1"}\n{"text": "fine", "reference": "0"}\n{"text": \n',
    )
    with pytest.raises(NlpsuiteError, match=r"in\.jsonl:3: not valid JSON"):
        load_dataset(str(file), "sentiment")


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ('{"text": "no label"}', r"in\.jsonl:2: missing field 'reference'"),
        ('{"reference": "1"}', r"in\.jsonl:2: missing field 'text'"),
        ('{"text": "  ", "reference": "1"}', r"in\.jsonl:2: field 'text' is empty"),
        ('{"text": "x", "reference": true}', r"in\.jsonl:2: field 'reference' should be a label"),
        ('{"id": "a", "text": "x", "reference": "1"}', r"in\.jsonl:2: duplicate id 'a' .*:1\)"),
    ],
)
def test_bad_record_named_by_line_and_field(tmp_path: Path, row: str, message: str) -> None:
    file = write(tmp_path / "in.jsonl", '{"id": "a", "text": "ok", "reference": "0"}\n' + row)
    with pytest.raises(NlpsuiteError, match=message):
        load_dataset(str(file), "sentiment")


def test_bad_bytes_and_surplus_cells_are_located(tmp_path: Path) -> None:
    (tmp_path / "latin1.jsonl").write_bytes(
        b'{"text": "ok", "reference": "1"}\n{"text": "caf\xe9"}\n'
    )
    with pytest.raises(NlpsuiteError, match=r"latin1\.jsonl:2: not UTF-8 text"):
        load_dataset(str(tmp_path / "latin1.jsonl"), "sentiment")
    surplus = write(tmp_path / "rows.csv", "text,reference\nfine,1\na,1,extra\n")
    with pytest.raises(NlpsuiteError, match=r"rows\.csv:3: more fields than the header names"):
        load_dataset(str(surplus), "sentiment")


def test_parallel_files_must_align(tmp_path: Path) -> None:
    source = write(tmp_path / "src.en", "one\ntwo\nthree\n")
    reference = write(tmp_path / "ref.de", "eins\nzwei\n")
    with pytest.raises(NlpsuiteError, match=r"src\.en has 3 lines, .*ref\.de has 2"):
        load_dataset(f"{source}:{reference}", "translation")
    with pytest.raises(NlpsuiteError, match=r"file not found: .*missing\.de"):
        load_dataset(f"{source}:{tmp_path / 'missing.de'}", "translation")


def test_parallel_lines_split_on_newline_only(tmp_path: Path) -> None:
    # U+2028 and form feeds occur inside real segments; CRLF and a missing final newline too.
    source = write(tmp_path / "src", "a\u2028b\r\nc\x0cd")
    reference = write(tmp_path / "ref", "A\nB\n")
    examples = load_parallel(source, [reference])
    assert [e.input["text"] for e in examples] == ["a\u2028b", "c\x0cd"]
    empty = write(tmp_path / "empty-line", "a\n\n")
    with pytest.raises(NlpsuiteError, match=r"empty-line:2: empty source line"):
        load_parallel(empty, [reference])
    (tmp_path / "latin1").write_bytes(b"fine\ncaf\xe9\n")
    with pytest.raises(NlpsuiteError, match=r"latin1:2: not UTF-8"):
        load_parallel(tmp_path / "latin1", [reference])


def test_format_errors_name_file_line_and_field(tmp_path: Path) -> None:
    squad = write(
        tmp_path / "squad.json",
        json.dumps({"data": [{"paragraphs": [{"context": "c", "qas": [{"id": "1"}]}]}]}),
    )
    with pytest.raises(
        NlpsuiteError,
        match=r"data\[0\]\.paragraphs\[0\]\.qas\[0\]: missing "
        r"field 'question'",
    ):
        load_squad(squad)
    glue = write(tmp_path / "glue.tsv", "text\tlabel\nfine\t1\n")
    with pytest.raises(NlpsuiteError, match=r"glue\.tsv:1: missing column 'sentence'"):
        load_dataset(str(glue), "sentiment")
    sts = write(tmp_path / "sts.csv", "g\tf\t2012\t1\t5.0\ta\tb\ng\tf\t2012\t2\thigh\ta\tb\n")
    with pytest.raises(NlpsuiteError, match=r"sts\.csv:2: field 'score' should be a number"):
        load_dataset(str(sts), "sentence-similarity")


def test_beir_errors(tmp_path: Path) -> None:
    (tmp_path / "qrels").mkdir()
    write(tmp_path / "corpus.jsonl", '{"_id": "d1", "title": "T", "text": "x"}\n')
    write(tmp_path / "queries.jsonl", '{"_id": "q1", "text": "query"}\n')
    write(tmp_path / "qrels" / "test.tsv", "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td1\t1\n")
    with pytest.raises(NlpsuiteError, match=r"test\.tsv:3: query 'q2' is not in .*queries"):
        load_dataset(str(tmp_path), "semantic-search")
    with pytest.raises(NlpsuiteError, match=r"no qrels for split 'dev' \(found: test\)"):
        load_beir(tmp_path, "dev")
    assert read_beir_corpus(tmp_path / "corpus.jsonl") == {"d1": "T x"}


def test_wrong_task_and_unknown_names(tmp_path: Path) -> None:
    squad = write(tmp_path / "squad.json", '{"data": []}')
    with pytest.raises(
        NlpsuiteError,
        match=r"SQuAD JSON, a 'question-answering' dataset; it "
        r"cannot evaluate 'sentiment'",
    ):
        load_dataset(str(squad), "sentiment")
    with pytest.raises(
        NlpsuiteError,
        match=r"no dataset file, folder or registered dataset "
        r"named 'no-such-set' \(known datasets: ",
    ):
        load_dataset("no-such-set", "sentiment")
    with pytest.raises(NlpsuiteError, match="not a BEIR dataset"):
        load_dataset(str(tmp_path), "semantic-search")
    with pytest.raises(NlpsuiteError, match=r"SOURCE:REFERENCE"):
        load_dataset(str(write(tmp_path / "plain.txt", "x\n")), "translation")


class TinyDatasets:
    @hookimpl
    def register_datasets(self, register: Callable[[Dataset], None]) -> None:
        examples = [Example(str(i), {"text": f"text {i}"}, str(i % 2)) for i in range(10)]
        register(Dataset("tiny", "sentiment", "ten texts", "CC0", lambda: examples))


def test_registered_dataset_by_name(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = Registry()
    registry.add(TinyDatasets(), "tiny-plugin")
    monkeypatch.setattr(nlpsuite.plugins, "registry", lambda: registry)
    assert [e.id for e in load_dataset("tiny", "sentiment", limit=3)] == ["0", "1", "2"]
    with pytest.raises(NlpsuiteError, match="dataset 'tiny' is for task 'sentiment', not 'x'"):
        load_dataset("tiny", "x")
    with pytest.raises(NlpsuiteError, match=r"\(known datasets: tiny\)"):
        load_dataset("tinyy", "sentiment")
    fingerprint = dataset_fingerprint("tiny")
    assert fingerprint["hashed"] == "examples" and len(fingerprint["sha256"]) == 64


def test_limit_and_sample() -> None:
    examples = [Example(str(i), {"text": str(i)}, "0") for i in range(100)]
    assert select(examples, limit=5) == examples[:5]
    first = select(examples, sample=10, seed=1)
    assert first == select(examples, sample=10, seed=1)
    assert first != select(examples, sample=10, seed=2)
    assert [int(e.id) for e in first] == sorted(int(e.id) for e in first)
    assert len({e.id for e in first}) == 10
    assert select(examples, sample=500) == examples
    with pytest.raises(NlpsuiteError, match="not both"):
        select(examples, limit=1, sample=1)
    with pytest.raises(NlpsuiteError, match="limit must be at least 1"):
        select(examples, limit=0)


def test_sample_through_load_dataset_is_deterministic() -> None:
    folder = shared("glue-sst2")
    one = load_dataset(str(folder / "dev.tsv"), "sentiment", sample=50, seed=7)
    two = load_dataset(str(folder / "dev.tsv"), "sentiment", sample=50, seed=7)
    assert one == two and len(one) == 50
    with pytest.raises(NlpsuiteError, match="not both"):
        load_dataset(str(folder / "dev.tsv"), "sentiment", limit=5, sample=5)


def test_a_hub_dataset_offline_is_one_clear_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(NlpsuiteError) as raised:
        load_dataset("stanfordnlp/sst2", "sentiment")
    message = str(raised.value)
    assert "'stanfordnlp/sst2'" in message and "cannot be reached" in message
    assert "\n" not in message
