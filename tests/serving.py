"""Test helpers that start a REAL ``nlpsuite serve`` server: uvicorn on a free loopback port,
in a thread of the test process (so tests can also look at the server object)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

from nlpsuite.serving.server import ServeConfig, Server, load_server


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def serve_in_thread(config: ServeConfig, *, server: Server | None = None,
                    ready_timeout_s: float = 120.0, **app_options: Any) -> Iterator[str]:
    """Serve ``config`` (or an already loaded ``server``) on a free 127.0.0.1 port; yield its
    base URL once ``/ready`` answers 200; shut it down cleanly (queues drained) after.
    ``app_options`` go to ``build_app`` (``max_body_bytes``)."""
    import uvicorn

    from nlpsuite.serving.app import build_app

    loaded = server or load_server(config)
    port = free_port()
    app = build_app(loaded, **app_options)
    settings = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                              lifespan="on", access_log=False)
    instance = uvicorn.Server(settings)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            instance.run()
        except BaseException as error:  # shown by the test that waits for the server
            failure.append(error)

    thread = threading.Thread(target=run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(base_url, thread, failure, ready_timeout_s, loaded.config.api_key)
        yield base_url
    finally:
        instance.should_exit = True
        thread.join(timeout=60)
    if failure:
        raise RuntimeError(f"the server failed: {failure[0]!r}")


def wait_ready(base_url: str, thread: threading.Thread, failure: list[BaseException],
               timeout_s: float, api_key: str | None = None) -> None:
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError(f"the server stopped before it was ready: {failure[:1]!r}")
        try:
            if httpx.get(f"{base_url}/ready", headers=headers, timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{base_url} was not ready within {timeout_s} s")


def post(base_url: str, path: str, body: Any, **kwargs: Any) -> Any:
    """``POST`` JSON ``body`` to ``path``; the httpx response."""
    import httpx

    return httpx.post(f"{base_url}{path}", json=body, timeout=kwargs.pop("timeout", 60),
                      **kwargs)
