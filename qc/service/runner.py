"""One Inspector per model version per process, loaded on first use and shared by threads
(onnxruntime sessions are safe to run concurrently)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from flask import current_app

from qc.inference import Inspector

log = logging.getLogger(__name__)


class InspectorCache:
    """Inspectors keyed by model checksum."""

    def __init__(self, threads: int | None = None, capacity: int = 8):
        self.threads = threads
        self.capacity = capacity  # products x versions in use at once; older ones are dropped
        self._lock = threading.Lock()
        self._items: dict[str, Inspector] = {}

    def get(self, sha256: str, path: Path) -> Inspector:
        """The Inspector of a model file, loading it once."""
        with self._lock:
            inspector = self._items.get(sha256)
            if inspector is None:
                log.info("loading model %s", path)
                inspector = Inspector(path, threads=self.threads)
                if len(self._items) >= self.capacity:
                    self._items.pop(next(iter(self._items)))
                self._items[sha256] = inspector
            return inspector

    def clear(self) -> None:
        """Forget all loaded models."""
        with self._lock:
            self._items.clear()


def get_inspectors() -> InspectorCache:
    """The InspectorCache of the current app."""
    return current_app.extensions["qc.inspectors"]
