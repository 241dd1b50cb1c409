"""The OpenAPI 3.1 document at ``/openapi.json``: every route, and for each served task the
JSON schemas of its input and output records, made from their dataclasses' type hints."""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nlpsuite import __version__

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from nlpsuite.serving.server import Server

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["message", "type"],
        "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                       "param": {"type": ["string", "null"]},
                       "code": {"type": ["integer", "string", "null"]}},
    }},
}
PLAIN_TYPES: dict[Any, dict[str, Any]] = {
    str: {"type": "string"}, int: {"type": "integer"}, float: {"type": "number"},
    bool: {"type": "boolean"}, type(None): {"type": "null"}, Any: {},
}


class Schemas:
    """The ``components.schemas`` being built: each record type once, under a name of its own
    (two plugins' ``TextInput`` classes get the second a module-qualified name)."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {"Error": ERROR_SCHEMA}
        self.names: dict[type, str] = {}

    def ref(self, record_type: type) -> str:
        return f"#/components/schemas/{self.record(record_type)}"

    def record(self, record_type: type) -> str:
        """Describe dataclass ``record_type`` (once); its name in ``schemas``."""
        if record_type in self.names:
            return self.names[record_type]
        name = record_type.__name__
        if name in self.schemas:
            name = f"{record_type.__module__}.{record_type.__qualname__}"
        self.names[record_type] = name
        self.schemas[name] = {}  # a placeholder, so a record that holds itself ends
        self.schemas[name] = self.describe(record_type, name)
        return name

    def describe(self, record_type: type, name: str) -> dict[str, Any]:
        try:
            hints = typing.get_type_hints(record_type)
        except Exception:  # annotations that do not resolve: every field any JSON
            hints = {}
        properties, required = {}, []
        for field in dataclasses.fields(record_type):
            schema = self.type(hints.get(field.name, Any))
            if field.default is not dataclasses.MISSING and is_json(field.default):
                schema["default"] = field.default
            elif (field.default is dataclasses.MISSING
                  and field.default_factory is dataclasses.MISSING):
                required.append(field.name)
            properties[field.name] = schema
        described = {"type": "object", "title": record_type.__name__, "properties": properties,
                     "required": required, "additionalProperties": False}
        doc = (record_type.__doc__ or "").strip()
        if doc and not doc.startswith(f"{record_type.__name__}("):  # not dataclass's own
            described["description"] = doc.splitlines()[0]
        return described

    def type(self, hint: Any) -> dict[str, Any]:
        """The JSON schema of a type hint."""
        if hint in PLAIN_TYPES:
            return dict(PLAIN_TYPES[hint])
        origin, arguments = typing.get_origin(hint), typing.get_args(hint)
        if origin in (typing.Union, types.UnionType):
            return {"anyOf": [self.type(argument) for argument in arguments]}
        if origin is typing.Literal:
            return {"enum": list(arguments)}
        if hint in (list, tuple) or origin in (list, tuple, Sequence):
            if origin is tuple and len(arguments) == 2 and arguments[1] is Ellipsis:
                arguments = arguments[:1]
            items = ({} if not arguments else self.type(arguments[0]) if len(arguments) == 1
                     else {"anyOf": [self.type(argument) for argument in arguments]})
            return {"type": "array", "items": items}
        if hint is dict or origin in (dict, Mapping):
            values = self.type(arguments[1]) if len(arguments) == 2 else {}
            return {"type": "object", "additionalProperties": values}
        if dataclasses.is_dataclass(hint) and isinstance(hint, type):
            return {"$ref": self.ref(hint)}
        return {}


def is_json(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def task_path(name: str, input_ref: str, output_ref: str, description: str) -> dict[str, Any]:
    """``POST /v1/tasks/NAME``: one record or a list of them, answered in kind."""
    one_in, one_out = {"$ref": input_ref}, {"$ref": output_ref}
    body = {"oneOf": [one_in, {"type": "array", "items": one_in, "minItems": 1}]}
    answer = {"oneOf": [one_out, {"type": "array", "items": one_out}]}
    return {"post": {
        "summary": f"Run task '{name}' on a record or a list of records",
        "description": description, "operationId": f"predict_{name.replace('-', '_')}",
        "tags": ["tasks"],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {"200": json_content("The outputs, in input order", answer),
                      **error_responses()},
    }}


def json_content(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def error_responses() -> dict[str, Any]:
    reasons = {"400": "The body is not JSON", "401": "No or a wrong API key",
               "404": "The task is not served", "413": "A record over the batch token budget, "
               "or a body over the size limit", "422": "A record's field is missing or wrong",
               "429": "The queue is full (see Retry-After)", "500": "The record failed",
               "504": "No answer within the request timeout"}
    error = {"$ref": "#/components/schemas/Error"}
    return {status: json_content(reason, error) for status, reason in reasons.items()}


def core_paths() -> dict[str, Any]:
    text = {"description": "OK", "content": {"text/plain": {"schema": {"type": "string"}}}}
    status = {"type": "object", "properties": {"status": {"type": "string"}}}
    return {
        "/v1/tasks": {"get": {"summary": "The served tasks: model, input fields, an example",
                              "tags": ["tasks"],
                              "responses": {"200": json_content("The tasks", {
                                  "type": "array", "items": {"type": "object"}})}}},
        "/health": {"get": {"summary": "The process answers", "tags": ["health"],
                            "responses": {"200": json_content("Alive", status)}}},
        "/ready": {"get": {"summary": "Every model is loaded and the server is not draining",
                           "tags": ["health"],
                           "responses": {"200": json_content("Ready", status),
                                         "503": json_content("Shutting down", {
                                             "$ref": "#/components/schemas/Error"})}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "tags": ["health"],
                             "responses": {"200": text}}},
    }


def route_paths(routes: Sequence[BaseRoute], known: Mapping[str, Any]) -> dict[str, Any]:
    """The routes not described otherwise: methods and the endpoint's first doc line."""
    paths: dict[str, Any] = {}
    for route in routes:
        # path_format: the template without converters ("/v1/models/{model:path}" has one)
        path = getattr(route, "path_format", None) or getattr(route, "path", None)
        if path is None or path in known or path in ("/openapi.json", "/v1/tasks/{task}"):
            continue
        doc = (getattr(getattr(route, "endpoint", None), "__doc__", None) or "").strip()
        summary = doc.splitlines()[0] if doc else path
        methods = sorted(set(getattr(route, "methods", None) or {"GET"}) - {"HEAD"})
        paths[path] = {method.lower(): {"summary": summary, "responses": {
            "200": {"description": "OK"}, **error_responses()}} for method in methods}
    return paths


def openapi_document(server: Server, routes: Sequence[BaseRoute],
                     described: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The whole OpenAPI 3.1 document for ``server`` and its ``routes``; ``described``: path
    items the routes' own modules give (the others get their methods and doc line)."""
    schemas = Schemas()
    paths: dict[str, Any] = {}
    for served in server.tasks.values():
        task = served.task
        paths[f"/v1/tasks/{served.name}"] = task_path(
            served.name, schemas.ref(task.input_type), schemas.ref(task.output_type),
            f"{task.description} (model: {served.model})")
    paths.update(core_paths())
    paths.update(described or {})
    paths.update(route_paths(routes, paths))
    return {
        "openapi": "3.1.0",
        "info": {"title": "nlpsuite serve", "version": __version__,
                 "description": "Every served task behind one HTTP server, with dynamic "
                                "micro-batching."},
        "paths": paths,
        "components": {"schemas": schemas.schemas,
                       "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        **({"security": [{"bearer": []}]} if server.config.api_key else {}),
    }
