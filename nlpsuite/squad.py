"""SQuAD JSON files (v1.1 and v2.0) read as the official evaluation scripts read them: used by
the question-answering plugin's dataset format and by ``nlpsuite score``."""

from __future__ import annotations

import json
from pathlib import Path

from nlpsuite.datasets import Example, required_field
from nlpsuite.errors import NlpsuiteError
from nlpsuite.records import read_json


def squad_version(path: Path) -> str:
    """``"v2.0"`` when any question carries ``is_impossible`` (SQuAD 2.0), else ``"v1.1"``."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, OSError):
        return "v1.1"  # load_squad reports what is wrong with the file, with its location
    articles = document.get("data", []) if isinstance(document, dict) else []
    for article in articles if isinstance(articles, list) else []:
        for paragraph in article.get("paragraphs", []) if isinstance(article, dict) else []:
            for qa in paragraph.get("qas", []) if isinstance(paragraph, dict) else []:
                if isinstance(qa, dict) and "is_impossible" in qa:
                    return "v2.0"
    return "v1.1"


def load_squad(path: str | Path) -> list[Example]:
    """SQuAD v1.1 or v2.0 JSON (``data`` / ``paragraphs`` / ``qas``), keys read by name.

    The reference is the list of gold answer texts, duplicates kept as the official scorers see
    them; an unanswerable v2.0 question (``is_impossible``) has ``[]``.
    """
    file = Path(path)
    document = read_json(file, "dataset file")
    if not isinstance(document, dict) or not isinstance(document.get("data"), list):
        raise NlpsuiteError(f"{file}: not a SQuAD file (expected an object with a 'data' list)")
    examples = []
    seen: dict[str, str] = {}
    for a, article in enumerate(document["data"]):
        at = f"{file}: data[{a}]"
        for p, paragraph in enumerate(required_field(article, "paragraphs", list, at)):
            where = f"{at}.paragraphs[{p}]"
            context = required_field(paragraph, "context", str, where)
            for q, qa in enumerate(required_field(paragraph, "qas", list, where)):
                here = f"{where}.qas[{q}]"
                raw_id = required_field(qa, "id", (str, int), here)
                question = required_field(qa, "question", str, here)
                impossible = qa.get("is_impossible", False) is True
                answers = required_field(qa, "answers", list, here)
                golds = (
                    []
                    if impossible
                    else [
                        required_field(answer, "text", str, f"{here}.answers[{n}]")
                        for n, answer in enumerate(answers)
                    ]
                )
                identifier = str(raw_id)
                if identifier in seen:
                    raise NlpsuiteError(
                        f"{here}: duplicate id '{identifier}' (first at {seen[identifier]})"
                    )
                seen[identifier] = here
                examples.append(
                    Example(identifier, {"question": question, "context": context}, golds)
                )
    return examples
