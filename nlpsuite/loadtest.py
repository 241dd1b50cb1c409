"""A closed-loop load test of a served task: ``concurrency`` clients, each sending its next
request as soon as its last one is answered, until ``requests`` have been sent.

The server is checked first with httpx (imported inside the function, so the command line starts
without it); the timed requests go through a minimal HTTP/1.1 client on asyncio streams (see
``_Connection`` for why).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
import time
import urllib.parse
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from nlpsuite.errors import NlpsuiteError

# Where the tokens of tokens/s come from: the response's OpenAI-style ``usage``, else the
# whitespace-separated words of the request's text fields (the task route reports no usage).
TOKENS_FROM_USAGE = "usage"
TOKENS_FROM_WORDS = "words of the inputs"


@dataclass(frozen=True)
class LoadTestConfig:
    url: str  # the server's base URL, e.g. http://127.0.0.1:8000
    task: str
    concurrency: int = 8
    requests: int = 200
    # Request bodies sent in turn; None: the task's example record from ``GET /v1/tasks``.
    records: Sequence[Mapping[str, Any]] | None = None
    api_key: str | None = None
    route: str | None = None  # default: /v1/tasks/{task}
    timeout_s: float = 60.0
    # Requests sent (by every client at once) before the clock starts, and not reported: the
    # first forward passes of a process are slower.
    warmup_requests: int = 0


@dataclass(frozen=True)
class LoadReport:
    url: str
    route: str
    task: str
    concurrency: int
    requests: int
    succeeded: int
    errors: Mapping[str, int]  # HTTP status, "timeout" or "transport" -> count
    duration_s: float
    requests_per_s: float
    tokens: int
    tokens_per_s: float
    tokens_from: str  # TOKENS_FROM_USAGE or TOKENS_FROM_WORDS (or both, joined by " and ")
    # Latency of the answered (2xx) requests; None when none was.
    latency_p50_ms: float | None
    latency_p90_ms: float | None
    latency_p99_ms: float | None
    latency_max_ms: float | None

    def table(self) -> str:
        """The report as an aligned two-column table, one measure a row."""
        errors = ", ".join(f"{status}: {count}" for status, count in self.errors.items())
        rows = [
            ("target", f"{self.url}{self.route}"),
            ("concurrency", str(self.concurrency)),
            ("requests", f"{self.requests} ({self.succeeded} ok)"),
            ("errors", errors or "0"),
            ("duration", f"{self.duration_s:.2f} s"),
            ("requests/s", f"{self.requests_per_s:.1f}"),
            ("tokens/s", f"{self.tokens_per_s:.1f} (tokens: {self.tokens_from})"),
            ("latency p50", _milliseconds(self.latency_p50_ms)),
            ("latency p90", _milliseconds(self.latency_p90_ms)),
            ("latency p99", _milliseconds(self.latency_p99_ms)),
            ("latency max", _milliseconds(self.latency_max_ms)),
        ]
        names = max(len(name) for name, _ in rows)
        values = max(len(value) for _, value in rows)
        lines = [f"| {'measure'.ljust(names)} | {'value'.ljust(values)} |",
                 f"|-{'-' * names}-|-{'-' * values}-|"]
        lines += [f"| {name.ljust(names)} | {value.ljust(values)} |" for name, value in rows]
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)


@dataclass(frozen=True)
class _Outcome:
    status: str  # "200", "429", ..., "timeout" or "transport"
    latency_s: float
    tokens: int
    tokens_from: str


def run_loadtest(config: LoadTestConfig) -> LoadReport:
    """Run the load test against a running server; a server that cannot be reached, or that
    does not serve the task, is an :class:`NlpsuiteError` before any load is sent."""
    _check(config)
    return asyncio.run(_run(config))


def _check(config: LoadTestConfig) -> None:
    if config.concurrency < 1:
        raise NlpsuiteError(f"concurrency must be at least 1, got {config.concurrency}")
    if config.requests < 1:
        raise NlpsuiteError(f"requests must be at least 1, got {config.requests}")
    if config.records is not None and not config.records:
        raise NlpsuiteError("records: give at least one, or None for the task's example")
    if not config.url.startswith(("http://", "https://")):
        raise NlpsuiteError(f"url '{config.url}' must start with http:// or https://")


async def _run(config: LoadTestConfig) -> LoadReport:
    base = config.url.rstrip("/")
    route = config.route or f"/v1/tasks/{config.task}"
    records = await _records(config)
    target = _Target.of(base)
    requests = [target.post(route, json.dumps(record).encode("utf-8"), config.api_key)
                for record in records]
    words = [_words(record) for record in records]
    if config.warmup_requests:
        await _closed_loop(target, requests, words, config, config.warmup_requests)
    started = time.perf_counter()
    outcomes = await _closed_loop(target, requests, words, config, config.requests)
    duration = time.perf_counter() - started
    return _report(config, base, route, outcomes, duration)


async def _records(config: LoadTestConfig) -> list[Mapping[str, Any]]:
    """The records to send; first checks that the server answers and serves the task."""
    import httpx

    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    try:
        async with httpx.AsyncClient(timeout=config.timeout_s, headers=headers) as client:
            response = await client.get(f"{config.url.rstrip('/')}/v1/tasks")
    except httpx.HTTPError as error:
        raise NlpsuiteError(f"cannot reach {config.url}: {_one_line(error)}") from None
    if response.status_code == 401:
        raise NlpsuiteError(f"{config.url} wants an API key: give --api-key (or a right one)")
    if response.status_code != 200:
        raise NlpsuiteError(f"{config.url}/v1/tasks answered {response.status_code}: is it an "
                            "nlpsuite server?")
    try:
        served = {entry["name"]: entry for entry in response.json()}
    except (ValueError, TypeError, KeyError):
        raise NlpsuiteError(f"{config.url}/v1/tasks is not a list of tasks: is it an nlpsuite "
                            "server?") from None
    if config.task not in served:
        raise NlpsuiteError(f"task '{config.task}' is not served at {config.url} "
                            f"(served: {', '.join(served) or 'none'})")
    if config.records is not None:
        return list(config.records)
    return [served[config.task]["example"]]


async def _closed_loop(
    target: _Target, requests: Sequence[bytes], words: Sequence[int], config: LoadTestConfig,
    count: int,
) -> list[_Outcome]:
    """``config.concurrency`` clients, a connection each, take the next request number until
    ``count`` were sent; request ``i`` sends body ``i mod len(requests)``."""
    issued = iter(range(count))
    outcomes: list[_Outcome] = []

    async def client() -> None:
        connection = _Connection(target)
        try:
            for number in issued:  # one iterator shared: each number is sent once
                index = number % len(requests)
                outcomes.append(await _send(connection, requests[index], words[index],
                                            config.timeout_s))
        finally:
            connection.close()

    await asyncio.gather(*(client() for _ in range(min(config.concurrency, count))))
    return outcomes


async def _send(connection: _Connection, request: bytes, words: int,
                timeout_s: float) -> _Outcome:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(timeout_s):
            status, body = await connection.exchange(request)
    except TimeoutError:
        connection.close()
        return _Outcome("timeout", time.perf_counter() - started, 0, TOKENS_FROM_WORDS)
    except (OSError, EOFError, ValueError, IndexError):  # refused, reset, closed, not HTTP
        connection.close()
        return _Outcome("transport", time.perf_counter() - started, 0, TOKENS_FROM_WORDS)
    latency = time.perf_counter() - started
    success = 200 <= status < 300
    used = _usage_tokens(body) if success else None
    if used is not None:
        return _Outcome(str(status), latency, used, TOKENS_FROM_USAGE)
    return _Outcome(str(status), latency, words if success else 0, TOKENS_FROM_WORDS)


# The requests of the timed loop go through this minimal HTTP/1.1 client rather than httpx: a
# load generator must cost far less CPU than the server it measures, which shares the machine.
# Measured on 2 cores against uvicorn: httpx.AsyncClient spent 1.6 ms of CPU a request at 32
# connections and 5 ms at 128 (more than the server); this client about 0.2 ms.


@dataclass(frozen=True)
class _Target:
    host: str
    port: int
    tls: bool
    prefix: str  # the path of the base URL, if any

    @classmethod
    def of(cls, url: str) -> _Target:
        parts = urllib.parse.urlsplit(url)
        tls = parts.scheme == "https"
        try:
            port = parts.port or (443 if tls else 80)
        except ValueError:
            raise NlpsuiteError(f"url '{url}': the port is not a number") from None
        return cls(parts.hostname or "localhost", port, tls, parts.path.rstrip("/"))

    def post(self, route: str, body: bytes, api_key: str | None) -> bytes:
        """The bytes of one POST of JSON ``body`` to ``route``, sent as they are each time."""
        host = self.host if ":" not in self.host else f"[{self.host}]"
        lines = [f"POST {self.prefix}{route} HTTP/1.1", f"Host: {host}:{self.port}",
                 "Content-Type: application/json", f"Content-Length: {len(body)}"]
        if api_key:
            lines.append(f"Authorization: Bearer {api_key}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Connection:
    """One keep-alive connection, opened on first use and again after a failure."""

    def __init__(self, target: _Target) -> None:
        self.target = target
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        """Send ``request``; the response's status and body."""
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(
                self.target.host, self.target.port, ssl=self.target.tls or None)
        self.writer.write(request)
        await self.writer.drain()
        status_line = await self.reader.readline()
        if not status_line:
            raise EOFError("the server closed the connection")
        status = int(status_line.split(None, 2)[1])
        headers = await self.read_headers()
        if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
            body = await self.read_chunked()
        elif b"content-length" in headers:
            body = await self.reader.readexactly(int(headers[b"content-length"]))
        else:  # the body runs to the end of the connection
            body = await self.reader.read()
            self.close()
        if headers.get(b"connection", b"").lower() == b"close":
            self.close()
        return status, body

    async def read_headers(self) -> dict[bytes, bytes]:
        assert self.reader is not None
        headers = {}
        while (line := await self.reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.partition(b":")
            headers[name.strip().lower()] = value.strip()
        return headers

    async def read_chunked(self) -> bytes:
        assert self.reader is not None
        chunks = []
        while size := int((await self.reader.readline()).split(b";")[0], 16):
            chunks.append(await self.reader.readexactly(size))
            await self.reader.readexactly(2)  # the CRLF after the chunk
        while (await self.reader.readline()) not in (b"\r\n", b"\n", b""):
            pass  # trailers
        return b"".join(chunks)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def _usage_tokens(content: bytes) -> int | None:
    """``usage.total_tokens`` (or prompt + completion tokens) of an OpenAI-style answer."""
    if b'"usage"' not in content:  # most answers: no JSON parse needed
        return None
    try:
        usage = json.loads(content).get("usage")
    except (ValueError, AttributeError):
        return None
    if not isinstance(usage, dict):
        return None
    total = usage.get("total_tokens")
    if isinstance(total, int):
        return total
    parts = [usage.get("prompt_tokens"), usage.get("completion_tokens")]
    counted = [part for part in parts if isinstance(part, int)]
    return sum(counted) if counted else None


def _words(value: Any) -> int:
    """Whitespace-separated words in every string of a JSON value."""
    if isinstance(value, str):
        return len(value.split())
    if isinstance(value, Mapping):
        return sum(_words(item) for item in value.values())
    if isinstance(value, list | tuple):
        return sum(_words(item) for item in value)
    return 0


def _report(
    config: LoadTestConfig, base: str, route: str, outcomes: Sequence[_Outcome], duration: float
) -> LoadReport:
    answered = sorted(o.latency_s for o in outcomes if o.status.startswith("2"))
    errors = Counter(o.status for o in outcomes if not o.status.startswith("2"))
    tokens = sum(o.tokens for o in outcomes)
    sources = sorted({o.tokens_from for o in outcomes if o.status.startswith("2")})
    elapsed = max(duration, 1e-9)
    return LoadReport(
        url=base,
        route=route,
        task=config.task,
        concurrency=config.concurrency,
        requests=len(outcomes),
        succeeded=len(answered),
        errors=dict(sorted(errors.items())),
        duration_s=round(duration, 4),
        requests_per_s=round(len(outcomes) / elapsed, 2),
        tokens=tokens,
        tokens_per_s=round(tokens / elapsed, 2),
        tokens_from=" and ".join(sources) or TOKENS_FROM_WORDS,
        latency_p50_ms=_percentile_ms(answered, 50),
        latency_p90_ms=_percentile_ms(answered, 90),
        latency_p99_ms=_percentile_ms(answered, 99),
        latency_max_ms=_percentile_ms(answered, 100),
    )


def _percentile_ms(ordered: Sequence[float], percent: float) -> float | None:
    """The nearest-rank percentile of ascending latencies in seconds, in milliseconds."""
    if not ordered:
        return None
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return round(ordered[rank - 1] * 1000, 3)


def _milliseconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    return text or type(error).__name__
