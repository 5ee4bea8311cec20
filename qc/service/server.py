"""Serve the app with a production WSGI server: gunicorn (one worker process with threads, which
suits SQLite) where it runs, waitress where it cannot (Windows has no fork)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask

log = logging.getLogger(__name__)

GRACEFUL_TIMEOUT_S = 10  # requests in flight may finish; then the worker stops


def serve(app: Flask, host: str, port: int, threads: int = 8, workers: int = 1) -> None:
    """Serve until stopped (Ctrl-C / SIGTERM)."""
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:  # gunicorn needs fcntl and fork: not on Windows
        return _waitress(app, host, port, threads)

    class Application(BaseApplication):
        """gunicorn serving an app object built before it starts."""

        def load_config(self) -> None:
            settings = {
                "bind": f"{host}:{port}",
                "workers": workers,
                "threads": threads,
                "worker_class": "gthread",
                "graceful_timeout": GRACEFUL_TIMEOUT_S,
                "accesslog": None,
                "errorlog": "-",
                "post_fork": _after_fork,
            }
            for key, value in settings.items():
                self.cfg.set(key, value)

        def load(self) -> Flask:
            return app

    log.info("serving on http://%s:%d/ with gunicorn (%d thread(s))", host, port, threads)
    Application().run()
    return None


def _after_fork(_server: Any, worker: Any) -> None:
    """A forked worker opens its own database connections (never share the parent's)."""
    app = worker.app.wsgi()
    database = app.extensions.get("qc.db")
    if database is not None:
        database.engine.dispose(close=False)


def _waitress(app: Flask, host: str, port: int, threads: int) -> None:
    from waitress import serve as waitress_serve

    log.info("serving on http://%s:%d/ with waitress (%d thread(s))", host, port, threads)
    waitress_serve(app, host=host, port=port, threads=threads)
