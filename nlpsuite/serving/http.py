"""What every route shares: reading a JSON body, and the one error body (OpenAI's shape)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response

# OpenAI's error types, by HTTP status; a status not listed is a server error.
ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable",
    504: "timeout_error",
}


class ServeError(Exception):
    """A request that gets an error answer: its HTTP status and a one-line reason.

    ``param`` names the request field at fault (OpenAI's ``error.param``); ``retry_after`` (s)
    becomes a ``Retry-After`` header (429, 503).
    """

    def __init__(self, status: int, message: str, *, param: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.retry_after = retry_after

    @property
    def kind(self) -> str:
        return ERROR_TYPES.get(self.status, "server_error")

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param,
                          "code": self.status}}


def error_response(error: ServeError) -> JSONResponse:
    from starlette.responses import JSONResponse

    headers = {}
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    return JSONResponse(error.body(), status_code=error.status, headers=headers)


def json_response(data: Any, status: int = 200) -> Response:
    """A JSON answer: every route's one way to write one."""
    from starlette.responses import JSONResponse

    return JSONResponse(data, status_code=status)


async def read_json(request: Request) -> Any:
    """The request's JSON body; 400 naming the problem when it is not JSON."""
    raw = await request.body()
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ServeError(400, f"the request body is not JSON: {error}") from None


def json_object(body: Any, what: str = "the request body") -> dict[str, Any]:
    """``body`` if it is a JSON object, else 422 saying what it is."""
    if not isinstance(body, dict):
        raise ServeError(422, f"{what} must be a JSON object, not {type(body).__name__}")
    return body


def field(body: dict[str, Any], name: str, kind: type | tuple[type, ...],
          default: Any = ...) -> Any:
    """``body[name]``, checked against ``kind``: a missing required field or a value of the
    wrong type is a 422 naming the field."""
    if name not in body or body[name] is None:
        if default is ...:
            raise ServeError(422, f"field '{name}' is required", param=name)
        return default
    value = body[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if isinstance(value, bool) and bool not in kinds:  # JSON true is not a number here
        kinds = ()
    if not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise ServeError(422, f"field '{name}' must be {names}, not {type(value).__name__}",
                         param=name)
    return value
