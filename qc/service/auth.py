"""Who is calling: browser users log in with a session (idle-limited), stations and scripts send
`Authorization: Bearer <api key>`. Role decorators guard every endpoint; admin may do everything.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    current_app,
    redirect,
    render_template,
    render_template_string,
    request,
    session,
    url_for,
)
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import select
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from qc.db.models import Station, User, utcnow
from qc.service import security
from qc.service.database import get_session
from qc.service.errors import ServiceError

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)
login_manager = LoginManager()
csrf = CSRFProtect()

STATION = "station"  # the role of a station's API key
KEY_PREFIX = "qc_"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
HOME_PAGE = """{% extends "base.html" %}{% block content %}
<h1>qc</h1><p>Signed in as <b>{{ current_user.username }}</b> ({{ current_user.role }}).</p>
<p>API description: <a href="{{ url_for('api.openapi_spec') }}">/api/v1/openapi.json</a></p>
{% endblock %}"""


@dataclass
class Principal:
    """The caller of one request: a user (session or key) or a station (key)."""

    username: str
    role: str
    user_id: int | None = None
    station_id: int | None = None
    via_key: bool = False
    session_epoch: int = 0
    is_authenticated: bool = True
    is_active: bool = True
    is_anonymous: bool = False

    def get_id(self) -> str | None:
        """Session id (users only): "<user id>:<session epoch>", so a bumped epoch ends it."""
        return f"{self.user_id}:{self.session_epoch}" if self.user_id is not None else None

    def has_role(self, *roles: str) -> bool:
        """True if admin or one of roles."""
        return self.role == "admin" or self.role in roles


def new_api_key() -> str:
    """A fresh random API key (shown once; only its hash is stored)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    """SHA-256 of an API key: keys are 256-bit random, so no slow hash is needed."""
    return hashlib.sha256(key.encode()).hexdigest()


def hash_password(password: str) -> str:
    """Salted hash of a password (method from PASSWORD_HASH_METHOD)."""
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def bearer_token() -> str | None:
    """The API key sent in the Authorization header, if any."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def end_sessions(user: User) -> None:
    """End every browser session of the user: cookies signed with the old epoch stop working."""
    user.session_epoch = (user.session_epoch or 0) + 1


def user_principal(user: User, via_key: bool = False) -> Principal:
    """Principal of a user row."""
    return Principal(user.username, user.role, user_id=user.id, via_key=via_key,
                     session_epoch=user.session_epoch or 0)


@login_manager.user_loader
def _load_user(session_id: str) -> Principal | None:
    user_id, _, epoch = session_id.partition(":")
    if not (user_id.isdigit() and epoch.isdigit()):
        return None  # a cookie from before session epochs, or forged: log in again
    user = get_session().get(User, int(user_id))
    if user is None or not user.active or (user.session_epoch or 0) != int(epoch):
        return None
    return user_principal(user)


@login_manager.request_loader
def _load_from_key(_request: Any) -> Principal | None:
    token = bearer_token()
    if not token:
        return None
    digest = hash_key(token)
    db = get_session()
    station = db.scalar(select(Station).where(Station.api_key_hash == digest))
    if station is not None and station.active:
        return Principal(f"station:{station.name}", STATION, station_id=station.id, via_key=True)
    user = db.scalar(select(User).where(User.api_key_hash == digest))
    if user is not None and user.active:
        return user_principal(user, via_key=True)
    return None


def current_principal() -> Principal:
    """The authenticated caller (views behind roles_required only)."""
    return current_user._get_current_object()


def roles_required(*roles: str) -> Callable:
    """Allow a view to these roles (and admin); 401 without credentials, 403 for other roles."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                if request.headers.get("Authorization"):
                    raise ServiceError("API key not recognised (revoked or mistyped)", 401)
                raise ServiceError("log in or send 'Authorization: Bearer <api key>'", 401)
            if not current_user.has_role(*roles):
                raise ServiceError(
                    f"role {current_user.role!r} may not do this (needs {', '.join(roles)})", 403
                )
            return view(*args, **kwargs)

        wrapped.roles = roles  # read by the role tests and the OpenAPI description
        return wrapped

    return decorator


class LoginForm(FlaskForm):
    """Username and password."""

    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=256)])


@functools.cache
def _dummy_hash(method: str) -> str:
    """A hash made like real ones, checked when the user does not exist: timing does not tell."""
    return generate_password_hash(secrets.token_hex(16), method=method)


def check_login(username: str, password: str) -> User | None:
    """The active user with this username and password, else None."""
    user = get_session().scalar(select(User).where(User.username == username))
    if user is None or not user.active:
        check_password_hash(_dummy_hash(current_app.config["PASSWORD_HASH_METHOD"]), password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    """Log in with username and password; the session ends after QC_SESSION_IDLE_MINUTES idle."""
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        user = check_login(form.username.data, form.password.data)
        if user is not None:
            session.clear()
            session.permanent = True
            login_user(user_principal(user))
            user.last_login_at = utcnow()
            get_session().commit()
            log.info("user %s logged in", user.username)
            return redirect(_safe_next(request.args.get("next")))
        error = "Unknown user or wrong password."
        log.warning("failed log-in as %r from %s", form.username.data[:64], request.remote_addr)
    elif request.method == "POST":
        error = "Please fill in both fields (and reload the page if it was open a long time)."
    return render_template("login.html", form=form, error=error), (401 if error else 200)


@bp.route("/logout", methods=["POST"])
def logout() -> Any:
    """End the session, and every other session of the same user."""
    if current_user.is_authenticated and current_user.user_id is not None:
        db = get_session()
        user = db.get(User, current_user.user_id)
        if user is not None:
            end_sessions(user)
            db.commit()
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.route("/")
def home() -> Any:
    """A minimal landing page (the station and dashboard pages link from here)."""
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return render_template_string(HOME_PAGE)


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths; anything else goes home."""
    if target and target.startswith("/") and not target.startswith("//"):
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc:
            return target
    return url_for("auth.home")


def _csrf_unless_key() -> None:
    """Forms and session-authenticated API calls need a CSRF token; bearer-key calls do not."""
    if request.method in SAFE_METHODS or not current_app.config.get("WTF_CSRF_ENABLED", True):
        return
    if current_user.is_authenticated and current_user.via_key:
        return  # a key authenticated this request, not the (forgeable) session cookie
    if request.path.startswith("/api/") and not current_user.is_authenticated:
        return  # nothing a forged request could use; the view answers 401
    csrf.protect(apply_exemptions=True)


def init_app(app: Flask) -> None:
    """Sessions, CSRF and the login pages."""
    login_manager.init_app(app)
    login_manager.session_protection = "basic"
    csrf.init_app(app)
    app.before_request(_csrf_unless_key)
    app.register_blueprint(bp)
    security.throttle_login(app, "auth.login")
