"""question-answering: the span decoder on synthetic logits, windowing on the real tokenizer, the
whole task on a tiny random checkpoint, and the SQuAD metrics against the official figures."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest
from nlpsuite_plugins.question_answering import (
    TASK,
    QAInput,
    QAOutput,
    Span,
    WindowSpans,
    choose_answers,
    decode_window,
    encode_windows,
)

import nlpsuite
from nlpsuite import NlpsuiteError
from nlpsuite.metrics import EXACT_MATCH, SQUAD_F1, normalize_answer
from nlpsuite.models import load_tokenizer
from nlpsuite.records import to_json
from tests.conftest import SHARED_DATASETS
from tests.helpers import nlpsuite as nlpsuite_cli
from tests.helpers import one_error_line
from tests.tiny_models import WORDS

# A window laid out as the tokenizer does it: CLS, 5 question tokens, SEP, 40 context tokens,
# SEP, then 3 padding positions.
LENGTH = 50
CONTEXT = np.zeros(LENGTH, dtype=bool)
CONTEXT[7:47] = True


def noise(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(0, 0.1, LENGTH), rng.normal(0, 0.1, LENGTH)


def all_spans(starts: np.ndarray, ends: np.ndarray, mask: np.ndarray, longest: int) -> list[Span]:
    """Every valid span scored the slow, obvious way, best first."""

    def softmax(x: np.ndarray) -> np.ndarray:
        allowed = mask.copy()
        allowed[0] = True
        e = np.where(allowed, np.exp(x - x[allowed].max()), 0.0)
        return e / e.sum()

    p_start, p_end = softmax(starts), softmax(ends)
    context = [i for i in range(len(mask)) if mask[i]]
    spans = [
        Span(s, e, float(p_start[s] * p_end[e]), float(starts[s] + ends[e]))
        for s in context for e in context if 0 <= e - s < longest
    ]
    return sorted(spans, key=lambda span: -span.score)


# The span decoder, on logits whose right answer is known.


def test_decoder_finds_the_known_span() -> None:
    starts, ends = noise()
    starts[20], ends[24] = 6.0, 6.0
    found = decode_window(starts, ends, CONTEXT, max_answer_length=30)
    assert [(span.start, span.end) for span in found.spans] == [(20, 24)]
    assert found.spans[0].logit == pytest.approx(12.0)
    assert 0.5 < found.spans[0].score < 1.0


def test_decoder_never_ends_before_it_starts() -> None:
    starts, ends = noise(1)
    starts[30], ends[25] = 8.0, 8.0  # the two peaks form a backwards span
    found = decode_window(starts, ends, CONTEXT, max_answer_length=30, top_k=200)
    assert all(span.end >= span.start for span in found.spans)
    assert (30, 25) not in {(span.start, span.end) for span in found.spans}
    # The best span keeps one of the peaks and pairs it with a forward partner.
    assert found.spans[0].start == 30 or found.spans[0].end == 25


def test_decoder_stays_inside_the_context() -> None:
    starts, ends = noise(2)
    for outside in (0, 1, 3, 6, 47, 48, 49):  # CLS, question, SEPs, padding
        starts[outside] = ends[outside] = 50.0
    found = decode_window(starts, ends, CONTEXT, max_answer_length=30, top_k=1000)
    assert found.spans
    assert all(CONTEXT[span.start] and CONTEXT[span.end] for span in found.spans)
    # CLS took part in the softmax (it is the null answer), question and padding did not.
    assert found.null.score == pytest.approx(1.0, abs=1e-6)


def test_decoder_respects_max_answer_length() -> None:
    starts, ends = noise(3)
    starts[10], ends[40] = 9.0, 9.0
    assert decode_window(starts, ends, CONTEXT, max_answer_length=31).spans[0][:2] == (10, 40)
    short = decode_window(starts, ends, CONTEXT, max_answer_length=5, top_k=100).spans
    assert all(span.end - span.start + 1 <= 5 for span in short)
    assert (10, 40) not in {(span.start, span.end) for span in short}


GAPPY = CONTEXT.copy()
GAPPY[[9, 10, 20, 33]] = False
SHORT = np.zeros(LENGTH, dtype=bool)
SHORT[7:10] = True


@pytest.mark.parametrize(("seed", "mask", "longest"), [
    *((seed, CONTEXT, 7) for seed in range(4)), (4, CONTEXT, 1), (5, GAPPY, 4), (6, SHORT, 30)
])
def test_decoder_top_k_matches_brute_force(seed: int, mask: np.ndarray, longest: int) -> None:
    rng = np.random.default_rng(seed)
    starts, ends = rng.normal(0, 2, LENGTH), rng.normal(0, 2, LENGTH)
    everything = all_spans(starts, ends, mask, longest)
    for k in (1, 10, len(everything) + 5):
        found = decode_window(starts, ends, mask, max_answer_length=longest, top_k=k).spans
        expected = everything[:k]
        assert [(s.start, s.end) for s in found] == [(s.start, s.end) for s in expected]
        assert [s.score for s in found] == pytest.approx([s.score for s in expected], rel=1e-9)
        assert all(a.score >= b.score for a, b in itertools.pairwise(found))


def test_decoder_top_k_beyond_the_spans_there_are() -> None:
    mask = np.zeros(8, dtype=bool)
    mask[4:7] = True  # three context tokens: 6 forward spans
    starts, ends = noise()
    found = decode_window(starts[:8], ends[:8], mask, max_answer_length=30, top_k=50)
    assert sorted((s.start, s.end) for s in found.spans) == [
        (4, 4), (4, 5), (4, 6), (5, 5), (5, 6), (6, 6)
    ]
    assert decode_window(starts[:8], ends[:8], np.zeros(8, bool), max_answer_length=3).spans == []


def offsets_for(length: int) -> np.ndarray:
    """A synthetic offset table: token i covers characters [10 i, 10 i + 5)."""
    return np.array([(10 * i, 10 * i + 5) for i in range(length)])


def test_null_answer_follows_the_threshold() -> None:
    starts, ends = noise(4)
    starts[20], ends[22] = 3.0, 3.0
    starts[0], ends[0] = 4.0, 4.5  # CLS: the null logit 8.5 beats the span's 6.0 by 2.5
    window = decode_window(starts, ends, CONTEXT, max_answer_length=30)
    gap = window.null.logit - window.spans[0].logit
    assert gap == pytest.approx(2.5)
    table = [offsets_for(LENGTH)]

    never = choose_answers([window], table, null_threshold=None)
    assert never == [(200, 225, window.spans[0].score)]
    below = choose_answers([window], table, top_k=2, null_threshold=gap - 0.01)
    assert below[0] == (0, 0, window.null.score) and below[1][:2] == (200, 225)
    above = choose_answers([window], table, null_threshold=gap + 0.01)
    assert above[0][:2] == (200, 225)


def test_null_answer_takes_the_window_most_sure_of_an_answer() -> None:
    starts, ends = noise(5)
    starts[0] = ends[0] = 10.0  # this window is sure the answer is elsewhere
    doubtful = decode_window(starts, ends, CONTEXT, max_answer_length=30)
    starts, ends = noise(6)
    starts[30], ends[31] = 5.0, 5.0
    sure = decode_window(starts, ends, CONTEXT, max_answer_length=30)
    table = [offsets_for(LENGTH), offsets_for(LENGTH) + 1000]
    answers = choose_answers([doubtful, sure], table, null_threshold=0.0)
    assert answers[0][:2] == (1300, 1315)


def test_overlapping_windows_count_a_span_once() -> None:
    first = WindowSpans([Span(3, 4, 0.4, 1.0), Span(5, 5, 0.3, 1.0)], Span(0, 0, 0.1, 0.0))
    second = WindowSpans([Span(1, 2, 0.6, 1.0), Span(3, 3, 0.2, 1.0)], Span(0, 0, 0.1, 0.0))
    # The second window starts two tokens later: its tokens 1-2 are the first one's 3-4.
    answers = choose_answers([first, second], [offsets_for(8), offsets_for(8) + 20], top_k=5)
    assert answers == [(30, 45, 0.6), (50, 55, 0.3)]


# Windows, with the tiny model's real tokenizer (64 positions).


def filler(words: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(words))


def test_long_context_windows_map_back_to_the_text(tiny_qa: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_qa))
    context = filler(300) + "."
    windows = encode_windows(tokenizer, ["where is it?"], [context], max_length=64, doc_stride=20)
    assert len(windows) > 5
    covered: list[tuple[int, int]] = []
    for window in windows:
        assert len(window.context_mask) <= 64
        assert window.features["input_ids"][window.null_index] == tokenizer.cls_token_id
        tokens = tokenizer.convert_ids_to_tokens(window.features["input_ids"])
        starts = [int(s) for s in window.offsets[window.context_mask][:, 0]]
        assert starts == sorted(starts)
        for token, (start, end) in zip(
            np.array(tokens)[window.context_mask], window.offsets[window.context_mask], strict=True
        ):
            assert context[start:end] == token.removeprefix("##")
        covered.append((starts[0], int(window.offsets[window.context_mask][-1, 1])))
    # Consecutive windows overlap and together reach both ends of the context.
    assert covered[0][0] == 0 and covered[-1][1] == len(context)
    assert all(b[0] < a[1] for a, b in itertools.pairwise(covered))


def test_an_answer_late_in_a_long_context_is_found(tiny_qa: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_qa))
    context = filler(250, seed=1) + ". the museum was built in berlin by the king."
    target = context.rindex("berlin")
    windows = encode_windows(tokenizer, ["where?"], [context], max_length=64, doc_stride=16)
    assert len(windows) > 5
    found = []
    for number, window in enumerate(windows):
        starts, ends = np.random.default_rng(number).normal(0, 0.1, (2, len(window.offsets)))
        hits = window.context_mask & (window.offsets[:, 0] == target)
        starts[hits], ends[hits] = 7.0, 7.0  # the model "knows" where the answer is
        found.append(decode_window(starts, ends, window.context_mask, max_answer_length=30,
                                   null_index=window.null_index))
    [answer] = choose_answers(found, [w.offsets for w in windows])
    assert (answer.start, answer.end) == (target, target + len("berlin"))


def test_stride_is_capped_by_the_room_a_question_leaves(tiny_qa: Path) -> None:
    tokenizer = load_tokenizer(str(tiny_qa))
    context = filler(200, seed=2)
    # 128 would be past the tokenizer's hard limit (it panics); it is capped, per question.
    for question in ("who?", "who was the first king of the old country in the long war?"):
        windows = encode_windows(tokenizer, [question], [context], max_length=64, doc_stride=128)
        room = 64 - 3 - len(tokenizer(question, add_special_tokens=False)["input_ids"])
        assert len(windows) > 3
        for before, after in itertools.pairwise(windows):
            shared = {tuple(o) for o in before.offsets[before.context_mask]} & {
                tuple(o) for o in after.offsets[after.context_mask]
            }
            assert len(shared) == room // 2
    with pytest.raises(NlpsuiteError, match="leaves no room for the context"):
        encode_windows(tokenizer, [filler(70)], [context], max_length=64, doc_stride=16)


# The whole task on the tiny random checkpoint.


def random_pairs(count: int, seed: int = 0) -> list[dict[str, str]]:
    """Questions and contexts with capitals, accents, odd spacing and unknown words."""
    rng = random.Random(seed)
    extra = ["Café", "naïve", "Zürich", "x-ray", "(1999)", "U.S.A.", "wörld", "—", "😀"]
    pairs = []
    for _ in range(count):
        words = [rng.choice(WORDS + extra) for _ in range(rng.randint(1, 160))]
        words = [w.capitalize() if rng.random() < 0.2 else w for w in words]
        context = "".join(w + rng.choice([" ", "  ", "\n", ", ", ". ", "\t"]) for w in words)
        question = " " * rng.randint(0, 3) + " ".join(rng.sample(WORDS, 4)) + "?"
        pairs.append({"question": question, "context": rng.choice(["", "  "]) + context})
    return pairs


def test_answers_are_always_slices_of_the_context(tiny_qa: Path) -> None:
    pairs = random_pairs(60)
    outputs = nlpsuite.run("question-answering", pairs, model=str(tiny_qa), options={"top_k": 3})
    assert len(outputs) == len(pairs)
    for pair, output in zip(pairs, outputs, strict=True):
        context = pair["context"]
        assert isinstance(output, QAOutput) and output.answers is not None
        assert output.answers[0] == {
            "answer": output.answer, "score": output.score, "start": output.start, "end": output.end
        }
        for answer in output.answers:
            assert context[answer["start"] : answer["end"]] == answer["answer"] != ""
            assert 0.0 < answer["score"] <= 1.0
        assert [a["score"] for a in output.answers] == sorted(
            (a["score"] for a in output.answers), reverse=True
        )
        json.loads(to_json(output))  # JSONL output stays plain data


def test_batch_size_does_not_change_results(tiny_qa: Path) -> None:
    records = [QAInput(**pair) for pair in random_pairs(12, seed=1)]
    one = nlpsuite.load_runner("question-answering", str(tiny_qa), batch_size=1)(records)
    eight = nlpsuite.load_runner("question-answering", str(tiny_qa), batch_size=8)(records)
    assert [(o.answer, o.start, o.end) for o in one] == [(o.answer, o.start, o.end) for o in eight]
    assert [o.score for o in one] == pytest.approx([o.score for o in eight], abs=1e-5)


def test_python_api_end_to_end(tiny_qa: Path) -> None:
    inputs = [
        {"question": "Where is the tower?", "context": "The tower is in Paris, France."},
        {"question": "Who wrote the book?", "context": "The king wrote a book in London."},
    ]
    outputs = nlpsuite.run("question-answering", inputs, model=str(tiny_qa))
    for item, output in zip(inputs, outputs, strict=True):
        assert item["context"][output.start : output.end] == output.answer
        assert output.answers is None
    # Order follows the input, and leading spaces on a question change nothing.
    flipped = [{**item, "question": "   " + item["question"]} for item in reversed(inputs)]
    again = nlpsuite.run("question-answering", flipped, model=str(tiny_qa))[::-1]
    assert [(o.answer, o.start) for o in again] == [(o.answer, o.start) for o in outputs]
    assert [o.score for o in again] == pytest.approx([o.score for o in outputs], abs=1e-6)
    assert TASK.prediction(outputs[0]) == outputs[0].answer
    assert TASK.render is not None and TASK.render(outputs[0]).endswith(f"\t{outputs[0].score:.4f}")


def test_bad_input_is_one_clear_error(tiny_qa: Path) -> None:
    with pytest.raises(NlpsuiteError, match="'question' is empty"):
        QAInput(" ", "some context")
    with pytest.raises(NlpsuiteError, match="'context' is missing or empty"):
        QAInput("who?")
    with pytest.raises(NlpsuiteError, match="input 2: field 'context' is missing or empty"):
        nlpsuite.run("question-answering", [{"question": "a?", "context": "b"}, "who?"],
                     model=str(tiny_qa))
    with pytest.raises(NlpsuiteError, match="option 'top_k' must be at least 1"):
        nlpsuite.run("question-answering", [], model=str(tiny_qa), options={"top_k": 0})


def test_cli(tiny_qa: Path) -> None:
    model = str(tiny_qa)
    context = "The tower is in Paris, France."
    done = nlpsuite_cli("run", "question-answering", "-m", model, "--context", context,
                        "Where is the tower?", "  What is in Paris?")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 2 and all(float(line.rsplit("\t", 1)[1]) > 0 for line in lines)

    as_json = nlpsuite_cli("run", "question-answering", "-m", model, "--context", context,
                           "--top-k", "2", "--json", "Where is the tower?")
    row = json.loads(as_json.stdout)
    assert context[row["start"] : row["end"]] == row["answer"] and len(row["answers"]) == 2

    missing = nlpsuite_cli("run", "question-answering", "-m", model, "Where is the tower?")
    assert missing.returncode == 2
    assert "argument 1: field 'context' is missing or empty" in one_error_line(missing.stderr)


# SQuAD v1.1 exact match and F1.


def test_squad_normalisation() -> None:
    assert normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
    assert normalize_answer("An apple a day, the\tdoctor") == "apple day doctor"
    assert normalize_answer("Theory of an ANT") == "theory of ant"  # whole words only
    assert normalize_answer("  the  ") == ""


def test_squad_metrics_by_hand() -> None:
    # Case, articles and punctuation do not count against an exact match; the best gold counts.
    assert EXACT_MATCH.compute(["the Denver Broncos", "Paris"],
                               [["Denver Broncos"], ["London", "paris."]]) == 100.0
    assert EXACT_MATCH.compute(["Denver", "Paris"], [["Denver Broncos"], ["Paris"]]) == 50.0
    # {big, red, dog} against {red, dog, barked}: 2 shared, P = R = 2/3, F1 = 2/3.
    assert SQUAD_F1.compute(["the big red dog"], [["a red dog barked"]]) == pytest.approx(200 / 3)
    # Against "dog": P = 1/2, R = 1, F1 = 2/3; against "red dog runs": P = 1, R = 2/3, F1 = 0.8.
    assert SQUAD_F1.compute(["red dog"], [["dog", "the red dog runs"]]) == pytest.approx(80.0)
    # Repeated tokens count once per gold occurrence: P = 1/3, R = 1, F1 = 1/2.
    assert SQUAD_F1.compute(["dog dog dog"], [["dog"]]) == pytest.approx(50.0)
    # Averaged over questions: (1 + 0.5 + 0) / 3.
    assert SQUAD_F1.compute(["Paris", "dog dog dog", ""],
                            [["paris"], ["dog"], ["cat"]]) == pytest.approx(50.0)


SQUAD = SHARED_DATASETS / "squad-v1.1"
# From SQUAD / "README.md": the official v1.1 evaluation of two leaderboard prediction files.
OFFICIAL = {
    "bert-ensemble-google-ai": (86.20624408703878, 92.19557978351145),
    "logistic-regression-baseline-stanford": (40.14191106906339, 50.98153647324461),
}


@pytest.mark.skipif(not (SQUAD / "dev-v1.1.json").is_file(), reason="SQuAD v1.1 dev not present")
def test_squad_metrics_match_the_official_figures() -> None:
    dev = json.loads((SQUAD / "dev-v1.1.json").read_text(encoding="utf-8"))
    questions = [
        (qa["id"], [answer["text"] for answer in qa["answers"]])
        for article in dev["data"] for paragraph in article["paragraphs"] for qa in paragraph["qas"]
    ]
    golds = [answers for _, answers in questions]
    for name, (exact, f1) in OFFICIAL.items():
        path = SQUAD / "predictions" / f"{name}.dev-v1.1.json"
        predicted = json.loads(path.read_text(encoding="utf-8"))
        # Extra ids are ignored; a missing id scores 0, as "" does here (no missing question
        # has a gold answer that normalises to "").
        answers = [predicted.get(question_id, "") for question_id, _ in questions]
        assert EXACT_MATCH.compute(answers, golds) == exact
        assert SQUAD_F1.compute(answers, golds) == f1
