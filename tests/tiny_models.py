"""Tiny random checkpoints of real architectures, built in seconds and saved like hub models.

Tokenizers come from a written WordPiece vocabulary; every test loads the saved directory through
the same code path as a downloaded model.
"""

from __future__ import annotations

from pathlib import Path

WORDS = """
the a an of to and in is was it that for on with as by at from this be are not but or his her
their they we you i he she its which have has had one two three first new film movie great good
bad terrible wonderful awful love hate boring delightful story plot actors acting fun dull best
worst paris france capital city river rome italy berlin germany london england water fire earth
who what where when why how many much year born located founded built wrote won tower museum
king queen war peace music art science history university school student teacher cat dog house
car tree book world country people time day night long short big small old young
""".split()  # noqa: SIM905

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PUNCTUATION = list(".,!?;:'\"()-") + [str(d) for d in range(10)]
SUBWORDS = [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"] + list("abcdefghijklmnopqrstuvwxyz")


def write_vocab(folder: Path) -> Path:
    vocab = folder / "vocab.txt"
    tokens = list(dict.fromkeys(SPECIAL + PUNCTUATION + SUBWORDS + WORDS))
    vocab.write_text("\n".join(tokens) + "\n", encoding="utf-8")
    return vocab


def bert_tokenizer(folder: Path, max_length: int = 128):
    from transformers import BertTokenizer

    vocab = write_vocab(folder)
    # transformers 5 ignores vocab_file=; vocab= is the argument that takes the file.
    tokenizer = BertTokenizer(vocab=str(vocab), do_lower_case=True, model_max_length=max_length)
    assert tokenizer.vocab_size == len(vocab.read_text().split()), "vocabulary not loaded"
    return tokenizer


def bert_config(vocab_size: int, max_length: int, **extra):
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=max_length,
        **extra,
    )


def build_bert_classifier(
    folder: Path,
    labels: tuple[str, ...] = ("NEGATIVE", "POSITIVE"),
    max_length: int = 128,
    seed: int = 0,
) -> Path:
    import torch
    from transformers import BertForSequenceClassification

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = bert_tokenizer(folder, max_length)
    torch.manual_seed(seed)
    config = bert_config(
        tokenizer.vocab_size,
        max_length,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def build_bert_qa(folder: Path, max_length: int = 64, seed: int = 0) -> Path:
    import torch
    from transformers import BertForQuestionAnswering

    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = bert_tokenizer(folder, max_length)
    torch.manual_seed(seed)
    BertForQuestionAnswering(bert_config(tokenizer.vocab_size, max_length)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
