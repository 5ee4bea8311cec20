"""The OpenAPI 3.1 description of /api/v1, built from the app's routes (so no route is missing)
and from the pydantic models of qc/service/schemas.py (requests) and replies.py (so no shape
is written twice).

How an endpoint declares itself: decorate the view with

    @declare(body=schemas.UserIn, responses={201: replies.UserCreated})
    @roles_required("admin")
    def create_user(): ...

`body` is a JSON request model (or `form`, a multipart model whose `bytes` fields are files),
`query` a model of the query parameters, `responses` maps status -> reply model (None: no
schema; a (media type, schema dict) pair for files). Path parameters come from the route,
401/403 from `roles_required`, 400/404/413 are added where a body, a query or a path parameter
can be wrong; every error has the replies.ErrorReply shape.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from flask import Flask
from pydantic import BaseModel

import qc
from qc.service import replies

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
REF = "#/components/schemas/{model}"
_CONVERTER = re.compile(r"<(?:([^:<>]+):)?([^<>]+)>")
ERROR_TEXT = {
    400: "the request is malformed or a value is out of range (the message names it)",
    401: "no or unknown credentials",
    403: "role not allowed",
    404: "no such item (or not visible to the caller)",
    409: "conflicts with what is stored",
    413: "body, batch or image too large",
    429: "too many requests; retry later",
}
Reply = type[BaseModel] | tuple[str, dict] | None


def declare(
    *,
    body: type[BaseModel] | dict | None = None,
    form: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    responses: dict[int, Reply] | None = None,
    errors: tuple[int, ...] = (),
) -> Callable:
    """Attach the request and response shapes of a view (read by build_spec)."""

    def decorator(view: Callable) -> Callable:
        view.api_doc = {
            "body": body,
            "form": form,
            "query": query,
            "responses": responses or {200: None},
            "errors": errors,
        }
        return view

    return decorator


class _Components:
    """Collects the JSON schemas of the models used, by model name."""

    def __init__(self) -> None:
        self.schemas: dict[str, dict] = {}

    def ref(self, model: type[BaseModel], mode: str = "validation") -> dict:
        if model.__name__ not in self.schemas:
            schema = model.model_json_schema(ref_template=REF, mode=mode)
            self.schemas.update(schema.pop("$defs", {}))
            self.schemas[model.__name__] = schema
        return {"$ref": REF.format(model=model.__name__)}


def _media(components: _Components, reply: Reply, description: str) -> dict:
    out: dict[str, Any] = {"description": description}
    if isinstance(reply, tuple):
        media, schema = reply
        out["content"] = {m.strip(): {"schema": schema} for m in media.split(",")}
    elif reply is not None:
        out["content"] = {"application/json": {"schema": components.ref(reply, "serialization")}}
    return out


def _query_parameters(components: _Components, model: type[BaseModel]) -> list[dict]:
    schema = model.model_json_schema(ref_template=REF)
    params = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", "")
        prop.pop("title", None)
        prop.pop("default", None)
        params.append({"name": name, "in": "query", "required": name in schema.get("required", ()),
                       "description": description, "schema": prop})
    return params


def _operation(app: Flask, endpoint: str, method: str, has_path_params: bool,
               components: _Components) -> dict:
    view = app.view_functions[endpoint]
    doc = (view.__doc__ or "").strip().splitlines()
    roles = getattr(view, "roles", None)
    spec = getattr(view, "api_doc", {"responses": {200: None}, "errors": ()})
    op: dict[str, Any] = {
        "operationId": endpoint.split(".")[-1] + ("" if method == "get" else f"_{method}"),
        "summary": doc[0] if doc else endpoint,
    }
    responses = {
        str(status): _media(components, reply, "OK" if 200 <= status < 300 else ERROR_TEXT[status])
        for status, reply in spec["responses"].items()
    }
    errors = set(spec.get("errors", ()))
    if roles:
        op["description"] = "Roles: " + ", ".join(roles) + ", admin."
        errors |= {401, 403}
    else:
        op["security"] = []
    if spec.get("body") is not None:
        body = spec["body"]
        schema = components.ref(body) if isinstance(body, type) else body
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
        errors |= {400, 413}
    if spec.get("form") is not None:
        op["requestBody"] = {
            "required": True,
            "content": {"multipart/form-data": {"schema": components.ref(spec["form"])}},
        }
        errors |= {400, 413}
    if spec.get("query") is not None:
        op["parameters"] = _query_parameters(components, spec["query"])
        errors |= {400, 404}  # a product or station named in the query may not exist
    if has_path_params:
        errors |= {400, 404}
    for status in sorted(errors):
        error = _media(components, replies.ErrorReply, ERROR_TEXT[status])
        responses.setdefault(str(status), error)
    op["responses"] = responses
    return op


def _path_parameter(converter: str | None, name: str) -> dict:
    schema = {"type": "integer", "minimum": 0, "maximum": 2**31 - 1} if converter == "int" else {
        "type": "string"}
    if converter == "any":
        schema = {"type": "string", "enum": ["image", "heatmap"]}
    return {"name": name, "in": "path", "required": True, "schema": schema}


def build_spec(app: Flask) -> dict:
    """The OpenAPI document of every /api/v1 route of app."""
    components = _Components()
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith(PREFIX):
            continue
        path = _CONVERTER.sub(r"{\2}", rule.rule[len(PREFIX) :])
        entry = paths.setdefault(path, {})
        found = _CONVERTER.findall(rule.rule)
        if found:
            entry["parameters"] = [
                _path_parameter(conv.split("(")[0] if conv else None, name) for conv, name in found
            ]
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            entry[method.lower()] = _operation(
                app, rule.endpoint, method.lower(), bool(found), components
            )
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "qc plant service",
            "version": qc.__version__,
            "description": "Inspections, results from stations, statistics and savings. "
            "See docs/service.md, docs/economics.md and docs/security.md.",
        },
        "servers": [{"url": PREFIX}],
        "security": [{"bearer": []}, {"session": []}],
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "station or user API key",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "session",
                    "description": "browser login; state-changing calls need X-CSRFToken",
                },
            },
            "schemas": dict(sorted(components.schemas.items())),
        },
        "paths": paths,
    }
