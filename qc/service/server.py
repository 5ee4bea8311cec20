"""Serve the app with a production WSGI server: gunicorn (one worker process with threads, which
suits SQLite) where it runs, waitress where it cannot (Windows has no fork)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from flask import Flask

log = logging.getLogger(__name__)

GRACEFUL_TIMEOUT_S = 10  # requests in flight may finish; then the worker stops


def serve(make_app: Callable[[], Flask], host: str, port: int, threads: int = 8,
          workers: int = 1) -> None:
    """Serve until stopped (Ctrl-C / SIGTERM). make_app builds the app in each worker process:
    thread pools (OpenCV, onnxruntime) and connections never cross a fork."""
    try:
        from gunicorn.app.base import BaseApplication
    except ImportError:  # gunicorn needs fcntl and fork: not on Windows
        return _waitress(make_app(), host, port, threads)

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
                "control_socket_disable": True,  # gunicorn >= 25; nothing here uses it
                "worker_exit": _exit_now,
            }
            for key, value in settings.items():
                if key in self.cfg.settings:
                    self.cfg.set(key, value)

        def load(self) -> Flask:
            return make_app()

    log.info("serving on http://%s:%d/ with gunicorn (%d thread(s))", host, port, threads)
    Application().run()
    return None


def _exit_now(_server: object, _worker: object) -> None:
    """End a worker without interpreter teardown: onnxruntime, imported before the fork, aborts
    in its static destructors in a forked child (the master then waited the graceful timeout)."""
    logging.shutdown()
    os._exit(0)


def _waitress(app: Flask, host: str, port: int, threads: int) -> None:
    from waitress import serve as waitress_serve

    log.info("serving on http://%s:%d/ with waitress (%d thread(s))", host, port, threads)
    waitress_serve(app, host=host, port=port, threads=threads)
