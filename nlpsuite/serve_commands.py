"""The commands that serve models over HTTP: ``nlpsuite serve`` and ``nlpsuite loadtest``.

A thin layer like the rest of the command line: flags become a
:class:`~nlpsuite.serving.server.ServeConfig` or a load-test config, and starlette, uvicorn and
the models load only when a command runs.
"""

from __future__ import annotations

import os
import signal
import socket
from typing import Any

import click

from nlpsuite.errors import NlpsuiteError
from nlpsuite.lookup import get_task
from nlpsuite.options import parse_key_values

DEFAULT_TASKS = ("embedding", "sentence-similarity")  # both run offline on the packaged MiniLM
API_KEY_ENV = "NLPSUITE_API_KEY"


@click.command("serve")
@click.argument("task_names", metavar="[TASK]...", nargs=-1)
@click.option("--model", "-m", "models", multiple=True, metavar="ID|DIR|TASK=ID",
              help="The model to serve: for every task, or TASK=MODEL for one (repeatable) "
              "[default: each task's default model].")
@click.option("--option", "-O", "options", multiple=True, metavar="[TASK.]KEY=VALUE",
              help="A task option, for the tasks that declare it or TASK.KEY=VALUE for one.")
@click.option("--backend", default="torch", show_default=True, metavar="SPEC",
              help="Inference engine, e.g. onnx or onnx:quantize=int8.")
@click.option("--device", default="cpu", show_default=True,
              type=click.Choice(["cpu", "cuda", "auto"]))
@click.option("--host", default="127.0.0.1", show_default=True,
              help="The address to listen on (0.0.0.0: every interface).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535))
@click.option("--max-batch-tokens", default=16384, show_default=True, type=click.IntRange(1),
              help="Tokens per forward pass; a record over it gets 413.")
@click.option("--max-batch-requests", default=64, show_default=True, type=click.IntRange(1),
              help="Records per forward pass (1: no micro-batching).")
@click.option("--max-wait-ms", default=5.0, show_default=True, type=click.FloatRange(0),
              help="How long a batch waits for more records after its first.")
@click.option("--max-queue", default=1024, show_default=True, type=click.IntRange(1),
              help="Records waiting per task; beyond it, 429 with Retry-After.")
@click.option("--request-timeout", default=60.0, show_default=True,
              type=click.FloatRange(0, min_open=True),
              help="Seconds a request waits for its answer; beyond it, 504.")
@click.option("--api-key", envvar=API_KEY_ENV, metavar="KEY",
              help=f"Require 'Authorization: Bearer KEY' on every route but /health "
              f"[env: {API_KEY_ENV}].")
@click.option("--trust-remote-code", is_flag=True, help="Run code that a model repository ships.")
def serve_command(task_names: tuple[str, ...], models: tuple[str, ...], options: tuple[str, ...],
                  backend: str, device: str, host: str, port: int, max_batch_tokens: int,
                  max_batch_requests: int, max_wait_ms: float, max_queue: int,
                  request_timeout: float, api_key: str | None, trust_remote_code: bool) -> None:
    """Serve TASKs over HTTP with dynamic micro-batching [default: embedding and
    sentence-similarity, on the packaged MiniLM]. Every model loads before the port opens."""
    from nlpsuite.serving.server import BatchLimits, ServeConfig

    tasks = tuple(dict.fromkeys(task_names or DEFAULT_TASKS))
    limits = BatchLimits(max_batch_tokens=max_batch_tokens, max_batch_requests=max_batch_requests,
                         max_wait_ms=max_wait_ms, max_queue=max_queue,
                         request_timeout_s=request_timeout)
    config = ServeConfig(
        tasks=tasks, models=models_by_task(models, tasks), options=options_by_task(options, tasks),
        backend=backend, device=device, batch_limits=limits, api_key=api_key or None, host=host,
        port=port, trust_remote_code=trust_remote_code,
    )
    run_server(config)


def models_by_task(given: tuple[str, ...], tasks: tuple[str, ...]) -> dict[str, str]:
    """``--model`` values: ``TASK=MODEL`` for one served task, a bare model for the others."""
    chosen: dict[str, str] = {}
    every: str | None = None
    for value in given:
        name, separator, model = value.partition("=")
        if separator and name in tasks:
            chosen[name] = model.strip() or reject(f"--model {value}: no model after '='")
        elif separator and not os.path.exists(value) and "/" not in name:
            raise NlpsuiteError(f"--model {value}: task '{name}' is not served "
                                f"(served: {', '.join(tasks)})")
        elif every is not None:
            raise NlpsuiteError(f"--model given twice for every task ({every}, {value}); "
                                "name the task: --model TASK=MODEL")
        else:
            every = value
    if every is not None:
        chosen = {task: chosen.get(task, every) for task in tasks}
    return chosen


def options_by_task(given: tuple[str, ...], tasks: tuple[str, ...]) -> dict[str, dict[str, str]]:
    """``--option`` values: ``TASK.KEY=VALUE`` for one task; ``KEY=VALUE`` for every served
    task that declares KEY (none declaring it is an error naming the tasks)."""
    chosen: dict[str, dict[str, str]] = {}
    for key, value in parse_key_values(given, "--option").items():
        name, dot, option = key.rpartition(".")
        if dot and name in tasks:
            chosen.setdefault(name, {})[option] = value
            continue
        if dot:
            raise NlpsuiteError(f"--option {key}={value}: task '{name}' is not served "
                                f"(served: {', '.join(tasks)})")
        takers = [task for task in tasks if key in {o.name for o in get_task(task).options}]
        if not takers:
            raise NlpsuiteError(f"--option {key}: no served task has an option '{key}' "
                                f"(served: {', '.join(tasks)})")
        for task in takers:
            chosen.setdefault(task, {})[key] = value
    return chosen


def reject(message: str) -> Any:
    raise NlpsuiteError(message)


def run_server(config: Any) -> None:
    """Load every model, say what is served, then serve until SIGTERM or Ctrl-C (exit 0 once
    the requests in flight are answered)."""
    # start-up: starlette, uvicorn and the models load only when `nlpsuite serve` runs
    import uvicorn

    from nlpsuite.serving.app import build_app
    from nlpsuite.serving.server import load_server

    # Bound first, so a port in use fails before minutes of loading; it listens (accepts
    # connections) only once every model has loaded.
    listener = bind(config.host, config.port)
    server = load_server(config)
    for served in server.tasks.values():
        click.echo(f"{served.name}\t{served.model}\t({config.backend}, {config.device})")
    settings = uvicorn.Config(
        build_app(server), host=config.host, port=config.port, log_level="warning",
        lifespan="on", access_log=False,
        timeout_graceful_shutdown=int(config.batch_limits.request_timeout_s) + 10,
    )
    instance = uvicorn.Server(settings)
    # uvicorn raises the signal that stopped it again once it has shut down, which would end
    # the process by that signal; a handler that does nothing lets it exit 0 instead.
    for stop in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop, lambda number, frame: None)
    announce_when_listening(instance, config.host, listener.getsockname()[1])
    instance.run(sockets=[listener])


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (not listening yet); a one-line error if it cannot
    be, e.g. the port is in use."""
    try:
        family, kind, protocol, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    except socket.gaierror as error:
        raise NlpsuiteError(f"--host {host}: {error.strerror}") from None
    listener = socket.socket(family, kind, protocol)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
    except OSError as error:
        listener.close()
        raise NlpsuiteError(f"cannot listen on {host}:{port}: {error.strerror}") from None
    return listener


def announce_when_listening(instance: Any, host: str, port: int) -> None:
    """Print ``serving on http://HOST:PORT`` once the server listens (and the port is known,
    also for --port 0)."""
    startup = instance.startup

    async def startup_then_announce(sockets: Any = None) -> None:
        await startup(sockets=sockets)
        if instance.started:
            shown = f"[{host}]" if ":" in host else host
            click.echo(f"serving on http://{shown}:{port}")

    instance.startup = startup_then_announce


@click.command("loadtest")
@click.argument("url")
@click.option("--task", "-t", required=True, help="The served task to call.")
@click.option("--concurrency", "-c", default=8, show_default=True, type=click.IntRange(1))
@click.option("--requests", "-n", "requests", default=200, show_default=True,
              type=click.IntRange(1))
@click.option("--input", "input_file", metavar="FILE.jsonl",
              help="Records to send, in turn [default: the task's example record].")
@click.option("--api-key", envvar=API_KEY_ENV, metavar="KEY", help="Bearer key of the server.")
@click.option("--json", "as_json", is_flag=True, help="The report as JSON.")
def loadtest_command(url: str, task: str, concurrency: int, requests: int,
                     input_file: str | None, api_key: str | None, as_json: bool) -> None:
    """Fire REQUESTS at URL's TASK from CONCURRENCY clients; report requests/s, tokens/s,
    latency percentiles and errors."""
    # start-up: the load generator (httpx) loads only when this command runs
    from nlpsuite.loadtest import LoadTestConfig, run_loadtest

    records = load_records(input_file) if input_file else None
    config = LoadTestConfig(url=url, task=task, concurrency=concurrency, requests=requests,
                            records=records, api_key=api_key)
    report = run_loadtest(config)
    click.echo(report.to_json() if as_json else report.table())


def load_records(path: str) -> list[dict[str, Any]]:
    """The JSON objects of a JSONL file, as they are (the server checks their fields)."""
    from nlpsuite.records import iter_rows

    rows = [row for _, row in iter_rows(path)]
    if not rows:
        raise NlpsuiteError(f"{path}: no records")
    return rows


SERVE_COMMANDS = (serve_command, loadtest_command)
