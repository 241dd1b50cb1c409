"""``GET /``: one small self-contained page to try the served tasks in a browser.

The page (``page.html``, package data: inline CSS and JavaScript, no CDN, no build step) reads
``GET /v1/tasks`` and shows a form per served task, pre-filled with the task's example record;
Send posts the record to ``/v1/tasks/{task}`` and shows the JSON answer and its latency. With
``?task=NAME&send=1`` it sends that task's example as soon as it loads (the browser test uses
this). The page itself holds no data, so it is the same for everyone; when the server has an API
key the page asks for it and sends it as ``Authorization: Bearer``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute

    from nlpsuite.serving.server import Server

# Replaced by whether the server has an API key, so the page asks for one before it fails.
KEY_MARKER = 'data-api-key="unknown"'


def routes(server: Server) -> list[BaseRoute]:
    from starlette.responses import HTMLResponse
    from starlette.routing import Route

    needs_key = "required" if server.config.api_key is not None else "none"
    html = page_html().replace(KEY_MARKER, f'data-api-key="{needs_key}"')
    headers = {
        "Content-Security-Policy": content_security_policy(page_html()),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Cache-Control": "no-cache",
    }

    async def page(request: Request) -> Response:
        """A page to try the served tasks: a form per task, the JSON answer and its latency"""
        return HTMLResponse(html, headers=headers)

    return [Route("/", page, methods=["GET"], name="page")]


@functools.cache
def page_html() -> str:
    return resources.files("nlpsuite.serving").joinpath("page.html").read_text(encoding="utf-8")


def content_security_policy(html: str) -> str:
    """Only the page's own inline script and style run (by their hashes), and it talks only
    to this server: a task's answer shown on the page can never run as code."""
    scripts = " ".join(source_hash(body) for body in inline_blocks(html, "script"))
    styles = " ".join(source_hash(body) for body in inline_blocks(html, "style"))
    return (f"default-src 'none'; script-src {scripts}; style-src {styles}; "
            "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")


def inline_blocks(html: str, tag: str) -> list[str]:
    return re.findall(rf"<{tag}>(.*?)</{tag}>", html, flags=re.DOTALL)


def source_hash(body: str) -> str:
    digest = hashlib.sha256(body.encode("utf-8")).digest()
    return f"'sha256-{base64.b64encode(digest).decode('ascii')}'"
