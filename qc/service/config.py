"""Service configuration from QC_* environment variables, with a test override.

No secret has a default: SECRET_KEY comes from QC_SECRET_KEY or is generated once and kept in
the instance folder with mode 0600.
"""

from __future__ import annotations

import logging
import os
import secrets
import time
from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from qc.economics import DEFAULT_PRIOR_WEIGHT
from qc.spc import parse_shift_starts

log = logging.getLogger(__name__)

SECRET_FILE = "secret_key"


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


def _env_bool(name: str, default: bool) -> bool:
    value = _env(name)
    return default if value is None else value.strip().lower() in ("1", "true", "yes", "on")


def from_env(instance_path: str) -> dict[str, Any]:
    """Settings read from the environment (documented in docs/service.md)."""
    instance = Path(instance_path)
    idle = float(_env("QC_SESSION_IDLE_MINUTES", "30"))
    return {
        "DATABASE_URL": _env("QC_DATABASE_URL", f"sqlite:///{instance / 'qc.sqlite3'}"),
        "DATA_DIR": _env("QC_DATA_DIR", str(instance)),
        "AUTO_MIGRATE": _env_bool("QC_AUTO_MIGRATE", True),
        # Why 32 MB: a 20 MP PNG from an industrial camera fits; larger bodies are refused by
        # Werkzeug before the view runs.
        "MAX_CONTENT_LENGTH": int(float(_env("QC_MAX_UPLOAD_MB", "32")) * 1024 * 1024),
        "MAX_IMAGE_PIXELS": int(_env("QC_MAX_IMAGE_PIXELS", "50000000")),
        # Why 200 MB: a 50 MP 8-bit RGB photo fits; larger decodes are refused or made 8-bit.
        "MAX_DECODED_BYTES": int(float(_env("QC_MAX_DECODED_MB", "200")) * 1024 * 1024),
        # Photos decoded and inspected at once per process; others wait their turn.
        "MAX_DECODES": int(_env("QC_MAX_DECODES", "2")),
        "MAX_BATCH": int(_env("QC_MAX_BATCH", "1000")),
        # Failed log-ins allowed per user name and per address (Flask-Limiter syntax).
        "LOGIN_LIMIT_USER": _env("QC_LOGIN_LIMIT_USER", "5 per minute;20 per hour"),
        "LOGIN_LIMIT_ADDRESS": _env("QC_LOGIN_LIMIT_ADDRESS", "20 per minute;100 per hour"),
        # Where the counters live: memory (per process), or e.g. redis://host:6379 for several.
        "RATELIMIT_STORAGE_URI": _env("QC_RATELIMIT_STORAGE_URI", "memory://"),
        "RETAIN_PASS_DAYS": int(_env("QC_RETAIN_PASS_DAYS", "30")),
        "RETAIN_FAIL_DAYS": int(_env("QC_RETAIN_FAIL_DAYS", "365")),
        # The service applies retention itself this often (0: never, e.g. when cron runs it).
        "RETENTION_EVERY_HOURS": float(_env("QC_RETENTION_EVERY_HOURS", "24")),
        # Why 5 minutes: start-up (migrations, first requests, the other workers) settles first.
        "RETENTION_FIRST_DELAY_S": 300.0,
        # Training jobs' queue (Huey): default the qc database; on SQLite a file beside it.
        "QUEUE_URL": _env("QC_QUEUE_URL"),
        "TIMEZONE": _env("QC_TIMEZONE", "UTC"),
        "SHIFTS": _env("QC_SHIFTS", "6,14,22"),
        "INFERENCE_THREADS": int(_env("QC_INFERENCE_THREADS", "0")) or None,
        "REVIEW_PRIOR_WEIGHT": float(_env("QC_REVIEW_PRIOR_WEIGHT", str(DEFAULT_PRIOR_WEIGHT))),
        "PASSWORD_HASH_METHOD": _env("QC_PASSWORD_HASH_METHOD", "scrypt"),
        "PERMANENT_SESSION_LIFETIME": timedelta(minutes=idle),
        "SESSION_REFRESH_EACH_REQUEST": True,  # the lifetime counts from the last request: idle
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _env_bool("QC_SECURE_COOKIES", False),
        "REMEMBER_COOKIE_DURATION": timedelta(seconds=0),
        "WTF_CSRF_CHECK_DEFAULT": False,  # qc.service checks CSRF itself (bearer requests exempt)
        "WTF_CSRF_TIME_LIMIT": None,  # the token lives as long as the (idle-limited) session
        "SECRET_KEY": _env("QC_SECRET_KEY"),
    }


def load_secret_key(instance_path: str) -> str:
    """The secret key stored in the instance folder, generated (mode 0600) on first use."""
    path = Path(instance_path) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_secret(path)
    key = secrets.token_hex(32)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
    log.info("generated a new secret key in %s", path)
    return key


def _read_secret(path: Path) -> str:
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by others; chmod 600 it", path)
    for _ in range(50):  # another worker may be writing it right now
        key = path.read_text().strip()
        if key:
            return key
        time.sleep(0.02)
    raise ValueError(f"{path} is empty: delete it or set QC_SECRET_KEY")


def validate(config: dict[str, Any]) -> None:
    """Fail at start-up, with the variable to fix, on unusable settings."""
    try:
        ZoneInfo(config["TIMEZONE"])
    except Exception as exc:
        raise ValueError(f"QC_TIMEZONE={config['TIMEZONE']!r} is not an IANA time zone") from exc
    parse_shift_starts(config["SHIFTS"])
    every = config["RETENTION_EVERY_HOURS"]
    if not 0 <= every < float("inf"):
        raise ValueError(
            f"QC_RETENTION_EVERY_HOURS={every!r}: give hours (24 = daily), or 0 to turn it off"
        )
    if config["MAX_DECODES"] < 1:
        raise ValueError("QC_MAX_DECODES must be at least 1")
    if not config.get("SECRET_KEY"):
        raise ValueError("no SECRET_KEY: set QC_SECRET_KEY")
