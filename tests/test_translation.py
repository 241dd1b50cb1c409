"""The translation task on tiny random Marian and T5 checkpoints."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import pytest
from nlpsuite_plugins.translation import TranslationInput, default_limit, translation_prefix

from nlpsuite import NlpsuiteError, RunConfig, get_task, load_runner, run
from nlpsuite.generation import Seq2Seq, join_sentences, load_seq2seq, split_sentences
from nlpsuite.metrics import BLEU, CHRF
from tests import tiny_seq2seq
from tests.helpers import nlpsuite, one_error_line

# Tiny models gain nothing from a second thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(tiny_seq2seq.sentence(rng) for _ in range(sentences))


def texts(count: int = 12, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [paragraph(rng, rng.randint(1, 4)) for _ in range(count)]


def seq2seq_for(model: Path, source: str = "en", target: str = "de") -> Seq2Seq:
    """The same model and prefix the task uses, to translate pieces one at a time."""
    return load_seq2seq(RunConfig(model=str(model)),
                        lambda config, tok: translation_prefix(config, tok, source, target))


def translate_alone(seq2seq: Seq2Seq, pieces: list[str]) -> list[str]:
    return [seq2seq.generate([piece], max_new_tokens=default_limit, num_beams=1)[0].text
            for piece in pieces]


def test_outputs_follow_inputs_and_do_not_depend_on_batching(tiny_marian: Path) -> None:
    inputs = texts()
    together = run("translation", inputs, model=str(tiny_marian), batch_size=32)
    small = run("translation", inputs, model=str(tiny_marian), batch_size=3)
    one_by_one = [run("translation", [text], model=str(tiny_marian))[0] for text in inputs]
    assert together == small == one_by_one
    assert [o.segments for o in together] == [len(split_sentences(t)) for t in inputs]
    assert all(o.translation for o in together)


def test_each_sentence_is_translated_and_the_layout_kept(tiny_marian: Path) -> None:
    text = "The city is old. The river is long!\nA new line.\n\nA new paragraph."
    output = run("translation", [text], model=str(tiny_marian))[0]
    pairs = split_sentences(text)
    expected = translate_alone(seq2seq_for(tiny_marian), [s for s, _ in pairs])
    assert output.segments == 4
    assert output.translation == join_sentences(
        [(t, sep) for t, (_, sep) in zip(expected, pairs, strict=True)])
    assert output.translation.count("\n") == 3


def test_a_text_ten_windows_long_is_translated_whole(tiny_marian: Path) -> None:
    seq2seq = seq2seq_for(tiny_marian)
    rng = random.Random(7)
    text = paragraph(rng, 60)
    assert seq2seq.count([text])[0] > 10 * seq2seq.window
    output = run("translation", [text], model=str(tiny_marian))[0]
    sentences = [s for s, _ in split_sentences(text)]
    assert output.segments == len(sentences) == 60
    assert output.translation == " ".join(translate_alone(seq2seq, sentences))


def test_a_sentence_longer_than_the_window_is_cut_not_truncated(
    tiny_marian: Path, caplog: pytest.LogCaptureFixture
) -> None:
    seq2seq = seq2seq_for(tiny_marian)
    rng = random.Random(8)
    sentence = " ".join(rng.choice(tiny_seq2seq.WORDS) for _ in range(300))  # no full stop
    with caplog.at_level(logging.WARNING, logger="nlpsuite"):
        output = run("translation", [sentence, "Short."], model=str(tiny_marian))[0]
    pieces = seq2seq.fit([sentence])[0]
    assert (f"1 of 2 sentences were longer than the model's window of 64 tokens; they were "
            f"translated in {len(pieces)} pieces") in caplog.text
    assert output.segments == len(pieces) >= 5
    assert all(n <= seq2seq.window for n in seq2seq.count(pieces))
    assert " ".join(pieces) == sentence
    assert output.translation == " ".join(translate_alone(seq2seq, pieces))


def test_max_new_tokens_bounds_each_sentence(tiny_marian: Path) -> None:
    seq2seq = seq2seq_for(tiny_marian)
    inputs = texts(6, seed=1)
    for limit in (1, 3):
        outputs = run("translation", inputs, model=str(tiny_marian),
                      options={"max_new_tokens": limit})
        for text, output in zip(inputs, outputs, strict=True):
            sentences = [s for s, _ in split_sentences(text)]
            generated = seq2seq.generate(sentences, max_new_tokens=limit, num_beams=1)
            assert all(len(g.token_ids) <= limit for g in generated)
            assert output.translation == join_sentences([(g.text, " ") for g in generated])
    # By default a sentence gets twice its length plus 16 tokens.
    sentence = "The city."
    (generated,) = seq2seq.generate([sentence], max_new_tokens=default_limit, num_beams=1)
    assert len(generated.token_ids) <= 2 * seq2seq.count([sentence])[0] + 16


def test_greedy_by_default_beams_on_request(tiny_marian: Path) -> None:
    inputs = texts(4, seed=2)
    greedy = run("translation", inputs, model=str(tiny_marian))
    # The checkpoint's generation config asks for 4 beams; the task's default is greedy.
    assert greedy == run("translation", inputs, model=str(tiny_marian), options={"num_beams": 1})
    beams = run("translation", inputs, model=str(tiny_marian), options={"num_beams": 3})
    assert [o.segments for o in beams] == [o.segments for o in greedy]
    assert all(o.translation for o in beams)


def test_t5_prefix_comes_from_the_checkpoint_or_the_language_names(tiny_t5: Path) -> None:
    assert seq2seq_for(tiny_t5, "en", "de").prefix == "translate English to German: "
    assert seq2seq_for(tiny_t5, "en", "ro").prefix == "ro: "  # declared, not built
    assert seq2seq_for(tiny_t5, "en", "fr").prefix == "translate English to French: "
    seq2seq = seq2seq_for(tiny_t5, "en", "fr")
    inputs = texts(5, seed=3)
    outputs = run("translation", inputs, model=str(tiny_t5),
                  options={"source_lang": "en", "target_lang": "fr"})
    for text, output in zip(inputs, outputs, strict=True):
        expected = translate_alone(seq2seq, [s for s, _ in split_sentences(text)])
        assert output.translation == " ".join(expected)
    with pytest.raises(NlpsuiteError, match="no T5 prefix for en->xh"):
        run("translation", ["Hello."], model=str(tiny_t5), options={"target_lang": "xh"})


def test_multilingual_marian_gets_its_target_token(tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    folder = tiny_seq2seq.build_marian(tmp_path / "marian-multi", language_codes=("fr", "es"))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert seq2seq_for(folder, "en", "es").prefix == ">>es<< "
    assert seq2seq_for(folder, "en", "es").encode(["the city"])[0][0] == (
        tokenizer.convert_tokens_to_ids(">>es<<"))
    with pytest.raises(NlpsuiteError, match="translates into fr, es; not into 'it'"):
        seq2seq_for(folder, "en", "it")


@pytest.mark.parametrize(("options", "message"), [
    ({"num_beams": 0}, "option 'num_beams' must be at least 1, got 0"),
    ({"max_new_tokens": 0}, "option 'max_new_tokens' must be at least 1, got 0"),
    ({"source_lang": "english"}, "option 'source_lang': 'english' is not a language code"),
    ({"target_lang": "d e"}, "option 'target_lang': 'd e' is not a language code"),
    ({"target_lang": "en"}, "source and target language are both 'en'"),
])
def test_bad_options_fail_before_loading(options: dict[str, object], message: str) -> None:
    with pytest.raises(NlpsuiteError, match=message):
        load_runner("translation", "/nonexistent/never-loaded", options=options)


def test_a_missing_default_model_names_the_pair() -> None:
    with pytest.raises(NlpsuiteError) as error:
        load_runner("translation", options={"source_lang": "en", "target_lang": "xx"})
    message = str(error.value)
    assert message.startswith("translating en to xx: ")
    assert "Helsinki-NLP/opus-mt-en-xx" in message and "\n" not in message


def test_empty_text_is_refused() -> None:
    with pytest.raises(NlpsuiteError, match="field 'text' is empty"):
        TranslationInput(" \n\u200b ")


def test_metrics_score_the_translation_field(tiny_marian: Path) -> None:
    task = get_task("translation")
    assert [m.name for m in task.metrics] == ["bleu", "chrf"]
    inputs = texts(4, seed=4)
    predictions = [task.prediction(o) for o in run(task, inputs, model=str(tiny_marian))]
    assert BLEU.compute(inputs, inputs) == pytest.approx(100.0)
    assert 0 <= BLEU.compute(predictions, inputs) < 100
    assert 0 <= CHRF.compute(predictions, inputs) < 100


def test_cli_translates_arguments_and_stdin(tiny_marian: Path) -> None:
    inputs = texts(3, seed=5)
    expected = run("translation", inputs, model=str(tiny_marian))
    done = nlpsuite("run", "translation", "--model", str(tiny_marian), *inputs, "--json")
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["translation"] for r in records] == [o.translation for o in expected]
    assert [r["segments"] for r in records] == [o.segments for o in expected]
    done = nlpsuite("run", "translation", "-m", str(tiny_marian), "--max-new-tokens", "2",
                    "--num-beams", "1", stdin="\n".join(inputs) + "\n")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.splitlines()) == 3


@pytest.mark.parametrize(("args", "message"), [
    (["   "], "argument 1: field 'text' is empty"),
    (["fine", "--num-beams", "0"], "option 'num_beams' must be at least 1"),
    (["fine", "--max-new-tokens", "many"], "option 'max_new_tokens': expected int"),
    (["fine", "--target-lang", "german"], "'german' is not a language code"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tiny_marian: Path, args: list[str],
                                              message: str) -> None:
    done = nlpsuite("run", "translation", "--model", str(tiny_marian), *args)
    assert done.returncode == 2
    assert message in one_error_line(done.stderr)
