"""The Starlette application: the core routes, the OpenAI- and TEI-compatible ones, the page,
and what wraps them all (the API key, the body-size limit, request counts, one-line errors)."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

from nlpsuite.records import to_json
from nlpsuite.serving import openai_api, page, tei_api
from nlpsuite.serving.http import ServeError, error_response, json_response, read_json
from nlpsuite.serving.server import Server

if TYPE_CHECKING:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import BaseRoute
    from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("nlpsuite.serve")

# The largest request body read: a bigger one is a 413 before it is held in memory.
MAX_BODY_BYTES = 16 * 2**20
# Answered without the API key: the page at / holds no data and asks for the key itself.
OPEN_PATHS = frozenset({"/health", "/"})
COMPATIBLE = (openai_api, tei_api, page)  # modules with routes(server) beside the core ones


def build_app(server: Server, max_body_bytes: int = MAX_BODY_BYTES) -> Starlette:
    """The ASGI application serving ``server``'s tasks."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.middleware import Middleware

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await server.start()
        yield
        await server.stop()  # uvicorn has finished the requests in flight: drain the queues

    routes = core_routes(server) + compatible_routes(server)
    app = Starlette(
        routes=routes,
        middleware=[Middleware(ServeMiddleware, server=server, max_body_bytes=max_body_bytes)],
        exception_handlers={ServeError: serve_error, HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.server = server
    return app


def core_routes(server: Server) -> list[BaseRoute]:
    from starlette.routing import Route

    from nlpsuite.serving.openapi import openapi_document

    async def predict(request: Request) -> Response:
        return await task_route(server, request)

    listed: list[dict[str, Any]] = []  # made once: example records may read datasets

    async def tasks(request: Request) -> Response:
        if not listed:
            listed.extend(await asyncio.to_thread(task_list, server))
        return json_response(listed)

    async def health(request: Request) -> Response:
        return json_response({"status": "ok"})

    async def ready(request: Request) -> Response:
        if server.draining:
            raise ServeError(503, "the server is shutting down", retry_after=1)
        return json_response({"status": "ready", "tasks": list(server.tasks)})

    async def metrics(request: Request) -> Response:
        from starlette.responses import Response

        body, content_type = server.telemetry.exposition()
        return Response(body, media_type=content_type)

    async def openapi(request: Request) -> Response:
        return json_response(openapi_document(server, request.app.routes,
                                              compatible_openapi(server)))

    return [
        Route("/v1/tasks/{task}", predict, methods=["POST"], name="predict"),
        Route("/v1/tasks", tasks, methods=["GET"], name="tasks"),
        Route("/health", health, methods=["GET"], name="health"),
        Route("/ready", ready, methods=["GET"], name="ready"),
        Route("/metrics", metrics, methods=["GET"], name="metrics"),
        Route("/openapi.json", openapi, methods=["GET"], name="openapi"),
    ]


def compatible_routes(server: Server) -> list[BaseRoute]:
    """The OpenAI- and TEI-compatible routes and the page, each from its own module."""
    return [route for module in COMPATIBLE for route in module.routes(server)]


def compatible_openapi(server: Server) -> dict[str, Any]:
    """The OpenAPI path items those modules describe: ``openapi_paths()`` or
    ``openapi_paths(server)``, where a module has it."""
    paths: dict[str, Any] = {}
    for module in COMPATIBLE:
        describe = getattr(module, "openapi_paths", None)
        if describe is not None:
            wants_server = bool(inspect.signature(describe).parameters)
            paths.update(describe(server) if wants_server else describe())
    return paths


async def task_route(server: Server, request: Request) -> Response:
    """``POST /v1/tasks/{task}``: a record in, its output out; a list in, a list out, in
    order. Each output is what ``nlpsuite run --json`` prints for it, byte for byte."""
    served = server.served(request.path_params["task"])
    body = await read_json(request)
    records = served.parse(body)
    outputs = await served.predict(records, request)
    lines = [to_json(output) for output in outputs]
    text = "[" + ", ".join(lines) + "]" if isinstance(body, list) else lines[0]
    return raw_json(text)


def task_list(server: Server) -> list[dict[str, Any]]:
    """What ``GET /v1/tasks`` shows of each served task."""
    from nlpsuite.task_inputs import example_record, input_fields

    shown = []
    for served in server.tasks.values():
        fields = [{"name": f.name, "type": f.type, "required": f.required}
                  for f in input_fields(served.task)]
        shown.append({"name": served.name, "description": served.task.description,
                      "model": served.model, "input_fields": fields,
                      "example": example_record(served.task)})
    return shown


def raw_json(text: str, status: int = 200) -> Response:
    from starlette.responses import Response

    return Response(text.encode("utf-8"), status_code=status, media_type="application/json")


async def serve_error(request: Request, error: Exception) -> Response:
    assert isinstance(error, ServeError)
    return error_response(error)


async def http_error(request: Request, error: Exception) -> Response:
    """Starlette's own 404 (no such route) and 405, in the one error body."""
    status = getattr(error, "status_code", 500)
    reasons = {404: f"no route {request.method} {request.url.path}",
               405: f"method {request.method} is not allowed on {request.url.path}"}
    reason = reasons.get(status, str(getattr(error, "detail", "")) or "error")
    return error_response(ServeError(status, reason))


class ServeMiddleware:
    """Around every HTTP request: the API key (``Authorization: Bearer KEY``, all routes but
    ``/health``), the body-size limit, the request count by route template and status, and a
    one-line 500 for any exception a route lets through (never a traceback page)."""

    def __init__(self, app: ASGIApp, server: Server, max_body_bytes: int) -> None:
        self.app = app
        self.server = server
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        started = False

        async def counted_send(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                status, started = message["status"], True
            await send(message)

        try:
            refusal = self.refusal(scope)
            if refusal is not None:
                await error_response(refusal)(scope, receive, counted_send)
            else:
                await self.app(scope, self.limited(receive), counted_send)
        except Exception as error:
            logger.exception("request %s %s failed", scope["method"], scope["path"])
            if not started:
                await error_response(ServeError(500, one_line(error)))(
                    scope, receive, counted_send)
        finally:
            self.count(scope, status)

    def refusal(self, scope: Scope) -> ServeError | None:
        """401 without the API key; 413 for a body whose declared length is over the limit."""
        headers = {key.decode("latin-1").lower(): value.decode("latin-1")
                   for key, value in scope["headers"]}
        key = self.server.config.api_key
        if key and scope["path"] not in OPEN_PATHS:
            given = headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(),
                                                                     key.encode()):
                what = "a wrong API key" if given else "no API key"
                return ServeError(401, f"{what}: send the header 'Authorization: Bearer KEY' "
                                       "with the key the server was started with (--api-key)")
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            return self.too_large()
        return None

    def too_large(self) -> ServeError:
        return ServeError(413, f"the request body is over {self.max_body_bytes:,} bytes")

    def limited(self, receive: Receive) -> Callable[[], Awaitable[Message]]:
        """``receive``, refusing a body (sent in chunks, without a length) past the limit."""
        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise self.too_large()
            return message

        return receive_limited

    def count(self, scope: Scope, status: int) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        if self.server.telemetry is not None:
            self.server.telemetry.request(template, status)


def one_line(error: BaseException) -> str:
    text = str(error).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(error).__name__}: {first}" if first else type(error).__name__

