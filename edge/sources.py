"""Image sources. Each gives Frames through next(timeout) and hears back through finish():
FolderSource (files an industrial camera drops; tests and demos use it like a camera) and
CameraSource (a USB or RTSP camera through OpenCV, a frame per trigger).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.config import CameraConfig, EdgeConfig, FolderConfig
from edge.triggers import (
    HttpTrigger,
    IntervalTrigger,
    KeyTrigger,
    MqttTrigger,
    Trigger,
    TriggerQueue,
)
from qc.imaging import is_image_path

log = logging.getLogger(__name__)

PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")
FRAME_WAIT_S = 2.0  # how long a trigger waits for a frame captured after it


@dataclass
class Frame:
    """One picture to inspect: encoded bytes (files) or an RGB array (cameras)."""

    name: str
    data: bytes | None = None
    image: np.ndarray | None = None  # RGB uint8 (H, W, 3)
    key: str | None = None  # stable identity of a file: the same file gives the same result id
    serial: str | None = None
    lot: str | None = None
    path: Path | None = None
    stat: tuple[int, int] | None = None  # (size, mtime_ns) when read
    trigger: Trigger | None = None
    captured_at: float | None = None  # epoch seconds: file mtime or frame capture time


def _file_state(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


class FolderSource:
    """Image files in a folder, oldest first, each taken once settle_polls polls in a row saw
    the same size and mtime; handled files go to done/ (or are deleted), unreadable ones to
    failed/; other files are ignored."""

    def __init__(self, config: FolderConfig, resolve: Callable[[str], Path]):
        self.config = config
        self.folder = resolve(config.path)
        self.done_dir = resolve(config.done_dir) if config.done_dir else self.folder / "done"
        self.failed_dir = (
            resolve(config.failed_dir) if config.failed_dir else self.folder / "failed"
        )
        for folder in (self.folder, self.done_dir, self.failed_dir):
            folder.mkdir(parents=True, exist_ok=True)
        self._seen: dict[str, tuple[int, int, int]] = {}  # name -> (size, mtime_ns, polls)
        self._ready: deque[Path] = deque()
        self._busy: set[str] = set()
        self._next_scan = 0.0

    def start(self) -> None:
        log.info("watching %s", self.folder)

    def close(self) -> None:
        pass

    def scan(self) -> list[Path]:
        """One poll of the folder; returns the files that just became complete."""
        current: dict[str, tuple[int, int]] = {}
        with os.scandir(self.folder) as entries:
            for entry in entries:
                name = entry.name
                if name.startswith(".") or name.lower().endswith(PARTIAL_SUFFIXES):
                    continue
                if not is_image_path(Path(name)) or name in self._busy or not entry.is_file():
                    continue
                st = entry.stat()
                current[name] = (st.st_size, st.st_mtime_ns)
        ready, seen = [], {}
        for name, (size, mtime) in current.items():
            old = self._seen.get(name)
            polls = old[2] + 1 if old and old[:2] == (size, mtime) else 1
            seen[name] = (size, mtime, polls)
            if polls >= self.config.settle_polls and size > 0:
                ready.append((mtime, name))
        self._seen = {n: v for n, v in seen.items() if n not in {r[1] for r in ready}}
        return [self.folder / name for _mtime, name in sorted(ready)]

    def next(self, timeout: float) -> Frame | None:
        """The next complete file as a Frame, or None after timeout."""
        deadline = time.monotonic() + timeout
        while not self._ready:
            now = time.monotonic()
            if now >= self._next_scan:
                self._next_scan = now + self.config.poll_s
                self._ready.extend(self.scan())
                continue
            if now >= deadline:
                return None
            time.sleep(min(self._next_scan, deadline) - now)
        return self._read(self._ready.popleft())

    def _read(self, path: Path) -> Frame | None:
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        state = _file_state(path)
        if state is None:
            return None
        self._busy.add(path.name)
        serial = path.stem[:128] if self.config.serial_from_name else None
        key = f"{path.name}:{state[0]}:{state[1]}"
        return Frame(name=path.name, data=data, key=key, serial=serial, path=path, stat=state,
                     captured_at=state[1] / 1e9)

    def finish(self, frame: Frame, ok: bool) -> None:
        """Move a handled file to done/ (or delete it), an unreadable one to failed/."""
        path = frame.path
        self._busy.discard(frame.name)
        if path is None:
            return
        if not ok and _file_state(path) != frame.stat:
            log.info("%s changed while being read; it will be taken again", path.name)
            return
        try:
            if ok and self.config.after == "delete":
                path.unlink()
            else:
                os.replace(path, _free_name(self.done_dir if ok else self.failed_dir, path.name))
        except FileNotFoundError:
            pass


def _free_name(folder: Path, name: str) -> Path:
    """folder/name, or folder/stem-N.suffix when a file of that name is already there."""
    target = folder / name
    n = 1
    while target.exists():
        target = folder / f"{Path(name).stem}-{n}{Path(name).suffix}"
        n += 1
    return target


def parse_device(device: str) -> int | str:
    """A camera index ("0") or a URL/path for cv2.VideoCapture."""
    return int(device) if device.strip().isdigit() else device


class CameraSource:
    """Frames from cv2.VideoCapture, one per trigger, always captured after the trigger."""

    def __init__(
        self,
        config: CameraConfig,
        triggers: TriggerQueue,
        capture_factory: Callable[[int | str], object] = cv2.VideoCapture,
    ):
        self.config, self.triggers = config, triggers
        self._factory = capture_factory
        self._latest: tuple[np.ndarray, float] | None = None
        self._cond = threading.Condition()
        self._closed = threading.Event()
        self._count = 0
        self._reader = threading.Thread(target=self._read_loop, name="camera", daemon=True)

    def start(self) -> None:
        self._reader.start()

    def close(self) -> None:
        self._closed.set()
        self._reader.join(timeout=5)

    def _read_loop(self) -> None:
        """Keep grabbing so the newest frame is at hand (RTSP buffers otherwise lag)."""
        failures = 0
        while not self._closed.is_set():
            capture = self._factory(parse_device(self.config.device))
            if not capture.isOpened():
                failures += 1
                log.error("camera %s cannot be opened; retrying", self.config.device)
                self._closed.wait(min(30.0, 2.0**failures))
                continue
            log.info("camera %s open", self.config.device)
            failures = 0
            while not self._closed.is_set():
                ok, frame = capture.read()
                if not ok:
                    log.warning(
                        "camera %s stopped delivering frames; reopening", self.config.device
                    )
                    break
                with self._cond:
                    self._latest = (frame, time.monotonic())
                    self._cond.notify_all()
            capture.release()
            self._closed.wait(1.0)

    def _frame_after(self, t: float, timeout: float) -> np.ndarray | None:
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self._latest is not None and self._latest[1] > t, timeout
            )
            return self._latest[0] if ok else None

    def next(self, timeout: float) -> Frame | None:
        """Wait for a trigger, then take the first frame captured after it."""
        trigger = self.triggers.get(timeout)
        if trigger is None:
            return None
        bgr = self._frame_after(trigger.at, FRAME_WAIT_S)
        if bgr is None:
            trigger.finish(None, f"no frame from camera {self.config.device}")
            return None
        self._count += 1
        rgb = (
            cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
            if bgr.ndim == 3
            else cv2.cvtColor(bgr, cv2.COLOR_GRAY2RGB)
        )
        return Frame(
            name=f"frame-{self._count}",
            image=rgb,
            serial=trigger.serial,
            lot=trigger.lot,
            trigger=trigger,
            captured_at=time.time(),
        )

    def finish(self, frame: Frame, ok: bool) -> None:
        """Nothing to clean up: the trigger hears the outcome from the agent."""


def make_source(config: EdgeConfig) -> tuple[FolderSource | CameraSource | None, list]:
    """The configured source and the trigger objects to close with it."""
    kind = config.source.kind
    if kind == "folder":
        return FolderSource(config.source.folder, config.resolve), []
    if kind == "none":
        return None, []
    cam = config.source.camera
    triggers = TriggerQueue()
    closers: list = []
    if cam.trigger == "http":
        closers.append(HttpTrigger(triggers, cam))
    elif cam.trigger == "key":
        closers.append(KeyTrigger(triggers))
    elif cam.trigger == "mqtt":
        closers.append(MqttTrigger(triggers, config.mqtt, config.station.name))
    else:
        closers.append(IntervalTrigger(triggers, cam.interval_s))
    return CameraSource(cam, triggers), closers
