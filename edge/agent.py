"""The station agent: source -> guard -> inspect -> outbox -> line signals, with an uploader and
a model poller beside it. Workers loop on one stop event; start-up re-queues results a crash
left in flight and removes half-written image files.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import cv2
import numpy as np

from edge import guard
from edge.client import ServiceClient
from edge.config import EdgeConfig
from edge.models import ModelCache
from edge.outbox import Outbox
from edge.outputs import Outputs
from edge.sources import Frame, make_source
from edge.sync import Syncer
from qc.imaging import ImageError, quality_stats, read_image
from qc.inference import Inspector, Verdict

log = logging.getLogger(__name__)

_OBJECT_REPR = re.compile(r" ?<[^<>]* at 0x[0-9a-f]+>")
RESULT_NAMESPACE = uuid.UUID("6f1c3a52-9a7e-4d0c-8a55-3c2f8f1e7b10")
NO_MODEL_POLL_S = 5.0  # how often to ask for a model while the station has none
SOURCE_WAIT_S = 0.5


def result_id(station: str, key: str | None) -> str:
    """A file's result id is derived from its identity (re-reading it after a crash gives the
    same id, so it is recorded once); camera frames get a random UUID."""
    if key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(RESULT_NAMESPACE, f"{station}/{key}"))


def utc_timestamp(at: float | None = None) -> str:
    """ISO 8601 UTC with a Z, millisecond precision."""
    moment = datetime.fromtimestamp(time.time() if at is None else at, timezone.utc)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_result(
    config: EdgeConfig, frame: Frame, verdict: Verdict, flags: list[str], model_version: str | None
) -> dict:
    """The result record sent to the service (its API contract) plus the guard flags."""
    outcome, defect_type = verdict.verdict, verdict.defect_type
    if flags and config.guard.action == "fail":
        outcome, defect_type = "fail", "image_quality"
    return {
        "id": result_id(config.station.name, frame.key),
        "product": config.station.product,
        "station": config.station.name,
        "lot": frame.lot or config.station.lot or None,
        "serial": frame.serial,
        "timestamp": utc_timestamp(frame.captured_at),
        "score": round(verdict.score, 6),
        "raw_score": round(verdict.raw_score, 6),
        "verdict": outcome,
        "defect_type": defect_type,
        "model_version": model_version,
        "latency_ms": round(verdict.latency_ms, 3),
        "flags": flags,
        "source_name": frame.name,
    }


def image_policy(config: EdgeConfig, verdict: str) -> tuple[bool, bool]:
    """(keep, upload) for the image of a result with this verdict."""
    r = config.retention

    def applies(policy: str) -> bool:
        return policy == "all" or (policy == "fail" and verdict == "fail")

    keep = applies(r.keep_images)
    return keep, keep and applies(r.upload_images)


def _decode(frame: Frame) -> np.ndarray:
    """read_image with the frame's name in the error (Pillow names only its buffer)."""
    try:
        return read_image(frame.data)
    except ImageError as exc:
        message = _OBJECT_REPR.sub("", str(exc)).removeprefix("upload: ")
        raise ImageError(f"{frame.name}: {message}") from None


class Agent:
    """One station: owns the outbox, model cache, source, outputs and worker threads."""

    def __init__(self, config: EdgeConfig, source=None, outputs: Outputs | None = None):
        self.config = config
        self.stop_event = threading.Event()
        self.outbox = Outbox(config.data_dir)
        self.client = ServiceClient(config.service) if config.service.url else None
        fixed = config.resolve(config.model.path) if config.model.path else None
        self.models = ModelCache(
            config.data_dir / "models",
            config.station.product,
            self.client,
            config.model.threads,
            fixed,
        )
        self.syncer = Syncer(self.outbox, self.client, config.sync, config.retention)
        self.source, self._closers = (source, []) if source is not None else (None, [])
        self._outputs = outputs
        self._threads: list[threading.Thread] = []
        self._closed = False

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Recover from the last run, load a model, start the workers and the source."""
        self.outbox.requeue_in_flight()
        orphans = self.outbox.remove_orphans()
        if orphans:
            log.info("removed %d image files a crash left without a result", orphans)
        self.ensure_model()
        if self.source is None:
            self.source, self._closers = make_source(self.config)
        if self._outputs is None:
            c = self.config
            self._outputs = Outputs.from_config(c.mqtt, c.webhook, c.station.name)
        self._spawn("sync", self.syncer.run, self.stop_event)
        if self.client is not None:
            self._spawn("model-poll", self._poll_models)
        if self.source is not None:
            self.source.start()
        self.outbox.set_meta(
            agent_pid=os.getpid(), started_at=time.time(), heartbeat_at=time.time()
        )

    def ensure_model(self) -> Inspector | None:
        """The model in use: fixed file, else cache, then the service's active one if newer."""
        if self.models.inspector is None:
            self.models.load()
        self.models.poll_once()
        self._note_model()
        if self.models.inspector is None:
            log.warning("no model yet for %s: waiting for the service", self.config.station.product)
        return self.models.inspector

    def _note_model(self) -> None:
        self.outbox.set_meta(model_version=self.models.version, model_sha256=self.models.sha256)

    def _spawn(self, name: str, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _poll_models(self) -> None:
        while True:
            wait = NO_MODEL_POLL_S if self.models.inspector is None else self.config.model.poll_s
            if self.stop_event.wait(wait):
                return
            if self.models.poll_once():
                self._note_model()

    def stop(self) -> None:
        """Ask every worker to finish (signal handlers call this)."""
        self.stop_event.set()
        self.syncer.wake()

    def close(self) -> None:
        """Stop and release everything; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        if self.source is not None:
            self.source.close()
        for closer in self._closers:
            closer.close()
        self._closers = []
        for thread in self._threads:
            thread.join(timeout=self.config.service.timeout_s + 2)
        self._threads = []
        if self._outputs is not None:
            self._outputs.close()
            self._outputs = None
        if self.client is not None:
            self.client.close()
        self.outbox.set_meta(agent_pid=None, stopped_at=time.time())
        self.outbox.close()

    def run(self) -> None:
        """Start, inspect until stopped, close."""
        self.start()
        try:
            self.loop()
        finally:
            self.close()

    # --- inspecting --------------------------------------------------------------------------

    def loop(self) -> None:
        """Take frames from the source and handle them until the stop event is set."""
        while not self.stop_event.is_set():
            if self.models.inspector is None:
                self.stop_event.wait(1.0)
                continue
            frame = self.source.next(SOURCE_WAIT_S)
            if frame is None:
                continue
            try:
                self.handle(frame)
            except Exception as exc:  # one bad frame must not stop the station
                log.exception("%s: inspection failed", frame.name)
                self.outbox.set_meta(last_error=f"{frame.name}: {exc}", last_error_at=time.time())
                self._finish(frame, None, f"inspection failed: {exc}")

    def handle(self, frame: Frame) -> dict | None:
        """Inspect one frame, commit it to the outbox, then signal and acknowledge it."""
        rid = result_id(self.config.station.name, frame.key)
        if frame.key is not None and self.outbox.has(rid):
            log.info("%s was already inspected (result %s)", frame.name, rid)
            self.source.finish(frame, ok=True)
            return None
        try:
            result, rgb = self.inspect(frame)
        except ImageError as exc:
            log.error("%s", exc)
            self.outbox.set_meta(last_error=str(exc), last_error_at=time.time())
            self._finish(frame, None, str(exc))
            return None
        self.record(result, frame, rgb)
        self._finish(frame, result, None)
        return result

    def inspect(self, frame: Frame) -> tuple[dict, np.ndarray]:
        """Decode, guard and inspect; returns the result record and the RGB image."""
        inspector = self.models.inspector  # read once: a model swap mid-frame cannot mix
        start = time.perf_counter()
        rgb = frame.image if frame.image is not None else _decode(frame)
        flags = guard.check(quality_stats(rgb), self.config.guard, inspector.info.image_stats)
        verdict = inspector.inspect(rgb, with_map=False)
        verdict.latency_ms = (time.perf_counter() - start) * 1000
        if flags:
            log.warning("%s: image-quality flags %s", frame.name, ", ".join(flags))
        version = inspector.info.version or self.models.sha256
        return build_result(self.config, frame, verdict, flags, version), rgb

    def record(self, result: dict, frame: Frame, rgb: np.ndarray) -> None:
        """Commit the result (and its image, per policy) to the outbox; wake the uploader."""
        keep, upload = image_policy(self.config, result["verdict"])
        image, suffix = None, "jpg"
        if keep:
            image, suffix = self._image_bytes(frame, rgb)
        self.outbox.add(result, image, suffix, upload)
        self.syncer.wake()

    def _image_bytes(self, frame: Frame, rgb: np.ndarray) -> tuple[bytes, str]:
        if frame.data is not None:
            suffix = Path(frame.name).suffix.lower().lstrip(".") or "img"
            return frame.data, suffix
        quality = self.config.source.camera.jpeg_quality if self.config.source.camera else 90
        ok, buf = cv2.imencode(
            ".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality]
        )
        if not ok:
            raise ImageError(f"{frame.name}: cannot encode the frame as JPEG")
        return buf.tobytes(), "jpg"

    def _finish(self, frame: Frame, result: dict | None, error: str | None) -> None:
        if result is not None and self._outputs is not None:
            self._outputs.send(result)
        if self.source is not None:
            self.source.finish(frame, ok=error is None)
        if frame.trigger is not None:
            frame.trigger.finish(result, error)

    # --- one shot ----------------------------------------------------------------------------

    def inspect_once(self, path: Path, serial: str | None = None, record: bool = True) -> dict:
        """Inspect one file without starting the workers; records it unless record=False."""
        if self.ensure_model() is None:
            raise RuntimeError(
                f"no model for {self.config.station.product}: the service has none active and "
                "the cache is empty (or set model.path)"
            )
        frame = Frame(name=Path(path).name, data=Path(path).read_bytes(), serial=serial)
        result, rgb = self.inspect(frame)
        if record:
            self.record(result, frame, rgb)
        return result
