"""The model cache: pull the product's active model from the service, verify its SHA-256 and
that onnxruntime loads it, swap it in atomically, keep the last good one, work offline from the
cache, and poll for a newly activated version without a restart.

Layout under <data_dir>/models: <sha256>.onnx files and state.json {"current", "previous"}.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import threading
from pathlib import Path

from edge.client import ServiceClient, ServiceRefused, ServiceUnavailable
from qc.inference import Inspector
from qc.modelpack import ModelPackError, file_sha256

log = logging.getLogger(__name__)

STATE = "state.json"


class ModelError(RuntimeError):
    """A downloaded model that was refused (checksum, unloadable, wrong product)."""


class _HashingWriter:
    """A file wrapper that hashes what is written through it."""

    def __init__(self, fh):
        self.fh, self.digest = fh, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self.digest.update(data)
        return self.fh.write(data)


class ModelCache:
    """Holds the Inspector in use; refresh() replaces it when the service activates another."""

    def __init__(
        self,
        folder: Path,
        product: str,
        client: ServiceClient | None = None,
        threads: int = 1,
        fixed_path: Path | None = None,
    ):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.product, self.client, self.threads = product, client, threads
        self.fixed_path = fixed_path
        self.inspector: Inspector | None = None
        self.sha256: str | None = None
        self._refused: set[str] = set()
        self._lock = threading.Lock()

    # --- state file --------------------------------------------------------------------------

    def state(self) -> dict:
        """{"current": {...} | None, "previous": {...} | None} as last written."""
        try:
            return json.loads((self.folder / STATE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return {"current": None, "previous": None}

    def _write_state(self, state: dict) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".state-", suffix=".tmp")
        with os.fdopen(fd, "w") as fh:
            json.dump(state, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.folder / STATE)
        _fsync_dir(self.folder)

    # --- loading -----------------------------------------------------------------------------

    def load(self) -> Inspector | None:
        """Load the fixed model, else the cached current one, else the previous (last good)."""
        if self.fixed_path is not None:
            self._use(self._open(self.fixed_path), file_sha256(self.fixed_path))
            return self.inspector
        state = self.state()
        for slot in ("current", "previous"):
            entry = state.get(slot)
            if not entry:
                continue
            path = self.folder / f"{entry['sha256']}.onnx"
            try:
                if file_sha256(path) != entry["sha256"]:
                    raise ModelError(f"{path.name}: file does not match its checksum")
                self._use(self._open(path), entry["sha256"])
                log.info("model %s from the cache (%s)", entry.get("version"), slot)
                return self.inspector
            except (OSError, ModelError, ModelPackError) as exc:
                log.error("cached %s model unusable: %s", slot, exc)
        return None

    def _open(self, path: Path) -> Inspector:
        inspector = Inspector(path, threads=self.threads)
        if inspector.info.product != self.product:
            raise ModelError(
                f"{path.name} is a model for {inspector.info.product!r}, "
                f"this station inspects {self.product!r}"
            )
        return inspector

    def _use(self, inspector: Inspector, sha256: str) -> None:
        with self._lock:
            self.inspector, self.sha256 = inspector, sha256  # one reference swap: atomic

    @property
    def version(self) -> str | None:
        """The running model's version label (its sha256 when it has none)."""
        inspector = self.inspector
        if inspector is None:
            return None
        return inspector.info.version or self.sha256

    # --- refreshing --------------------------------------------------------------------------

    def refresh(self) -> bool:
        """Ask the service for the active model; download and swap if it changed.

        Returns True when a new model is in use. Raises ServiceUnavailable when offline and
        ModelError when the download was refused (the current model stays).
        """
        if self.client is None or self.fixed_path is not None:
            return False
        head = self.client.model_head(self.product)
        if head is None:
            log.warning("the service has no active model for %s", self.product)
            return False
        sha, version = head
        if sha == self.sha256 or sha in self._refused:
            return False
        path = self.folder / f"{sha}.onnx"
        if not (path.is_file() and file_sha256(path) == sha):  # e.g. a rollback to previous
            log.info("new active model %s (%s): downloading", version, sha[:12])
            sha, version = self._download()
            path = self.folder / f"{sha}.onnx"
        try:
            inspector = self._open(path)
        except (ModelError, ModelPackError) as exc:
            self._refused.add(sha)
            path.unlink(missing_ok=True)
            raise ModelError(f"model {version} ({sha[:12]}) refused: {exc}") from exc
        self._promote(sha, version)
        self._use(inspector, sha)
        log.info("model %s (%s) in use", version, sha[:12])
        return True

    def _download(self) -> tuple[str, str]:
        """Download into a temp file, check its checksum, then rename it into place."""
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".download-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                writer = _HashingWriter(fh)
                claimed, version = self.client.download_model(self.product, writer)
                fh.flush()
                os.fsync(fh.fileno())
            got = writer.digest.hexdigest()
            if got != claimed:
                raise ModelError(
                    f"model {version} download refused: its SHA-256 is {got[:12]}…, the service "
                    f"says {claimed[:12]}…; keeping the current model"
                )
            os.replace(tmp, self.folder / f"{claimed}.onnx")
            _fsync_dir(self.folder)
            return claimed, version
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _promote(self, sha: str, version: str) -> None:
        """Record sha as current, the old current as previous; delete older files."""
        state = self.state()
        current = state.get("current")
        if current and current["sha256"] != sha:
            state["previous"] = current
        state["current"] = {"sha256": sha, "version": version}
        self._write_state(state)
        keep = {e["sha256"] + ".onnx" for e in (state["current"], state.get("previous")) if e}
        for path in self.folder.glob("*.onnx"):
            if path.name not in keep:
                path.unlink(missing_ok=True)

    def run(self, stop: threading.Event, poll_s: float) -> None:
        """Poll the service for a newly activated model until stop."""
        while not stop.wait(poll_s):
            self.poll_once()

    def poll_once(self) -> bool:
        """refresh() with its errors logged; True when a new model is in use."""
        try:
            return self.refresh()
        except ServiceUnavailable as exc:
            log.debug("model check skipped, service unavailable: %s", exc)
        except (ServiceRefused, ModelError) as exc:
            log.error("%s", exc)
        return False


def _fsync_dir(folder: Path) -> None:
    """Make a rename in folder durable (POSIX; a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
