"""Security headers on every response (Flask-Talisman) and the log-in throttle (Flask-Limiter):
failed log-ins are counted per user name and per address; past the limit the form answers 429.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_talisman import Talisman

from qc.service.errors import ServiceError

log = logging.getLogger(__name__)

EXTENSION = "qc.limiter"
# Scripts, styles and data only from this service; never framed (clickjacking). Styles may be
# inline (Chart.js sizes its canvas); photos from the camera are blob: URLs.
CSP = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self' 'unsafe-inline'",
    "img-src": "'self' data: blob:",
    "media-src": "'self' blob: mediastream:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def _strings(value: object) -> Iterator[str]:
    """Every string (keys included) inside parsed JSON, without recursion."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            yield item
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def refuse_nul_characters() -> None:
    """400 for a NUL character in the path, query, form or JSON: no database stores it in text
    (PostgreSQL refuses it) and no name or label needs it."""
    texts = [request.path, *request.args.keys(), *request.args.values()]
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        texts += [*request.form.keys(), *request.form.values()]
        if request.is_json:
            texts += _strings(request.get_json(silent=True))
    if any(isinstance(text, str) and "\x00" in text for text in texts):
        raise ServiceError("text must not contain NUL (\\u0000) characters", 400)


def failed_login(response: Response) -> bool:
    """Only failed log-ins count against the limits."""
    return response.status_code == 401


def login_username() -> str:
    """The throttle key of the user name tried (case-insensitive)."""
    return "user:" + (request.form.get("username") or "").strip().lower()[:64]


def throttle_login(app: Flask, endpoint: str) -> None:
    """Throttle a log-in view per user name and per address (counting failures only)."""
    limiter: Limiter = app.extensions[EXTENSION]
    per_user = limiter.limit(
        lambda: current_app.config["LOGIN_LIMIT_USER"], key_func=login_username,
        methods=["POST"], deduct_when=failed_login, scope="login-user")
    per_address = limiter.limit(
        lambda: current_app.config["LOGIN_LIMIT_ADDRESS"], methods=["POST"],
        deduct_when=failed_login, scope="login-address")
    app.view_functions[endpoint] = per_address(per_user(app.view_functions[endpoint]))


def init_app(app: Flask) -> None:
    """Headers on every response; the limiter's counters (QC_RATELIMIT_STORAGE_URI). One
    instance of each per app, so a discarded app is freed with them."""
    secure = bool(app.config["SESSION_COOKIE_SECURE"])
    Talisman(
        app,
        force_https=False,  # TLS ends at the reverse proxy (docs/service.md)
        strict_transport_security=secure,
        session_cookie_secure=secure,
        frame_options="DENY",
        content_security_policy=CSP,
        referrer_policy="same-origin",
    )
    app.before_request(refuse_nul_characters)
    app.extensions[EXTENSION] = Limiter(
        get_remote_address, app=app, default_limits=[], headers_enabled=False
    )
