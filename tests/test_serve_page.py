"""The page at ``GET /``: self-contained, and driven in headless Chromium (as the leaderboard
test does) against a REAL server on the real all-MiniLM-L6-v2: it lists the served tasks, sends
a task's example record and shows the JSON answer and the latency; a screenshot is saved."""

from __future__ import annotations

import html
import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from nlpsuite import get_task
from nlpsuite.lookup import load_runner
from tests.helpers import browse as browse_in_chromium
from tests.test_report import ARTIFACTS

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")

from nlpsuite.serving.server import ServeConfig
from tests.serving import serve_in_thread

API_KEY = "page-test-key"


def browse(url: str, *arguments: str) -> subprocess.CompletedProcess[str]:
    """Chromium on ``url``; the virtual-time budget lets the page's requests finish first."""
    return browse_in_chromium(url, "--virtual-time-budget=20000", *arguments)


def element_text(dom: str, element_id: str) -> str:
    found = re.search(rf'<(\w+)[^>]*\bid="{re.escape(element_id)}"[^>]*>(.*?)</\1>', dom, re.S)
    assert found, f"no element #{element_id} in the page"
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(2)))


def attribute(dom: str, element_id: str, name: str) -> str | None:
    tag = re.search(rf'<\w+[^>]*\bid="{re.escape(element_id)}"[^>]*>', dom)
    assert tag, f"no element #{element_id} in the page"
    value = re.search(rf'\b{name}="([^"]*)"', tag.group(0))
    return html.unescape(value.group(1)) if value else None


@pytest.fixture(scope="module")
def served(minilm: Path) -> Iterator[str]:
    config = ServeConfig(tasks=("embedding", "sentence-similarity"),
                         models={"embedding": str(minilm), "sentence-similarity": str(minilm)})
    with serve_in_thread(config) as base_url:
        yield base_url


def test_the_page_is_one_self_contained_file(served: str) -> None:
    import httpx

    page = httpx.get(f"{served}/", timeout=30)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    # No CDN, no other file: every script and style is inline, and nothing is fetched from
    # another origin.
    assert "<script src" not in text and "<link" not in text
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert 'data-api-key="none"' in text
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert re.search(r"script-src 'sha256-[A-Za-z0-9+/=]+'", policy)


def test_the_page_sends_an_example_and_shows_the_answer_and_latency(
    served: str, minilm: Path
) -> None:
    dumped = browse(f"{served}/?task=embedding&send=1", "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    assert element_text(dom, "status") == "2 tasks are served."
    assert element_text(dom, "title-sentence-similarity") == "sentence-similarity"
    # Each form is pre-filled with its task's example record.
    pair = json.loads(element_text(dom, "input-sentence-similarity"))
    assert set(pair) == {"text", "text_pair"}

    example = json.loads(element_text(dom, "input-embedding"))
    task = get_task("embedding")
    expected = load_runner(task, str(minilm))([task.make_input(example, "test")])[0]
    shown = json.loads(element_text(dom, "result-embedding"))
    assert shown == {"embedding": list(expected.embedding)}  # every digit, as the API answers
    assert attribute(dom, "answer-embedding", "data-status") == "200"
    latency = float(attribute(dom, "answer-embedding", "data-latency-ms") or "nan")
    assert latency >= 0
    assert re.fullmatch(r"HTTP 200 OK in \d+\.\d ms", element_text(dom, "meta-embedding"))
    # The task not sent shows no answer yet.
    assert attribute(dom, "answer-sentence-similarity", "data-status") is None

    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "serve-page.png"
    shot.unlink(missing_ok=True)
    done = browse(f"{served}/?task=embedding&send=1", f"--screenshot={shot}",
                  "--window-size=1280,1100")
    assert done.returncode == 0 and shot.stat().st_size > 10_000, done.stderr[-2000:]


def test_with_an_api_key_the_page_loads_and_asks_for_the_key(minilm: Path) -> None:
    import httpx

    config = ServeConfig(tasks=("embedding",), models={"embedding": str(minilm)},
                         api_key=API_KEY)
    with serve_in_thread(config) as base_url:
        page = httpx.get(f"{base_url}/", timeout=30)
        assert page.status_code == 200 and 'data-api-key="required"' in page.text
        assert API_KEY not in page.text
        assert httpx.get(f"{base_url}/v1/tasks", timeout=30).status_code == 401

        dumped = browse(f"{base_url}/", "--dump-dom")
    assert dumped.returncode == 0, dumped.stderr[-2000:]
    dom = dumped.stdout
    assert attribute(dom, "key-section", "hidden") is None  # the key field is shown
    assert "needs an API key" in element_text(dom, "status")
