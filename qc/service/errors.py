"""One error_response() for the whole service: JSON to API clients, a small HTML page to
browsers; unexpected errors roll the request's session back and are logged once.
"""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify, redirect, render_template_string, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.http import HTTP_STATUS_CODES

log = logging.getLogger(__name__)

ERROR_PAGE = """{% extends "base.html" %}
{% block title %}{{ status }} {{ title }}{% endblock %}
{% block content %}<h1>{{ status }} {{ title }}</h1><p>{{ message }}</p>{% endblock %}"""


class ServiceError(Exception):
    """An error meant for the client: HTTP status and a message that says what to do."""

    def __init__(self, message: str, status: int = 400, **extra: object):
        super().__init__(message)
        self.message = message
        self.status = status
        self.extra = extra


def wants_json() -> bool:
    """API paths always get JSON; elsewhere, clients that prefer JSON over HTML do."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "application/json"


def error_response(status: int, message: str | None = None, **extra: object) -> Response:
    """An error as {"error": {"status", "title", "message", ...}} or as an HTML page."""
    title = HTTP_STATUS_CODES.get(status, "Error")
    message = message or title
    if wants_json():
        response = jsonify(
            {"error": {"status": status, "title": title, "message": message, **extra}}
        )
    else:
        response = Response(
            render_template_string(ERROR_PAGE, status=status, title=title, message=message),
            mimetype="text/html",
        )
    response.status_code = status
    return response


def _handle_service_error(exc: ServiceError) -> Response:
    if exc.status == 401 and not wants_json():
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    return error_response(exc.status, exc.message, **exc.extra)


def _handle_http(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status == 401 and not wants_json():
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    if status == 413:
        limit = request.max_content_length
        mb = f"{limit / 1024 / 1024:.0f} MB" if limit else "the limit"
        return error_response(413, f"upload is larger than {mb} (QC_MAX_UPLOAD_MB)")
    response = error_response(status, exc.description)
    if status == 405 and exc.valid_methods:
        response.headers["Allow"] = ", ".join(exc.valid_methods)
    return response


def _handle_body_error(exc: Exception) -> Response:
    return error_response(400, str(exc))


def _handle_recursion(exc: RecursionError) -> Response:
    from qc.service.database import rollback

    rollback()
    log.warning("%s %s: input nested too deeply", request.method, request.path)
    return error_response(400, "input nested too deeply")


def _handle_unexpected(exc: Exception) -> Response:
    from qc.service.database import rollback

    rollback()
    log.exception("unhandled error on %s %s", request.method, request.path)
    return error_response(500, "internal error; the request was not recorded (see the log)")


def init_app(app: Flask) -> None:
    """Register the error handlers."""
    from qc.service.schemas import BodyError

    app.register_error_handler(ServiceError, _handle_service_error)
    app.register_error_handler(BodyError, _handle_body_error)
    app.register_error_handler(RecursionError, _handle_recursion)
    app.register_error_handler(HTTPException, _handle_http)
    app.register_error_handler(Exception, _handle_unexpected)
