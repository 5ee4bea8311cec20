"""A job's progress read from what training already shows a person: its tqdm bars (checking
images, features (view v/V), cross-validation, evaluating) and its log records. Nothing in
training/ changes.

`watch()` wraps tqdm's update/close for the duration of a job (one job per worker process) and
attaches a log handler; a heartbeat thread writes stage, progress, ETA and the new log lines to
the job's row every HEARTBEAT_S and reads back whether someone asked to cancel.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from tqdm import tqdm

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
# Share of the bar each phase fills: data check, fit, export + parity, evaluation.
CHECK, FIT, EXPORT, EVALUATE = 0.05, 0.80, 0.05, 0.10
_VIEW = re.compile(r"^features \(view (\d+)/(\d+)\)$")  # supervised: trunk features per view
FEATURES = 0.6  # share of the fit phase the supervised trunk features take (then the folds)
_FORMAT = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")


class JobCancelled(BaseException):  # noqa: N818 (BaseException: training's `except Exception` lets it through)
    """Raised inside training when the job was cancelled."""


@dataclass
class Progress:
    """What a job shows: stage text, 0..1, ETA and the log lines not yet written."""

    stage: str = "starting"
    value: float = 0.0
    started: float = field(default_factory=time.monotonic)
    new_log: list[str] = field(default_factory=list)
    cancelled: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def set(self, stage: str, value: float) -> None:
        """A new stage and position (the bar never moves back)."""
        with self.lock:
            self.stage = stage
            self.value = min(1.0, max(self.value, value))

    def eta_s(self) -> float | None:
        """Seconds left, from the time spent so far and the position."""
        if self.value < 0.02:
            return None
        spent = time.monotonic() - self.started
        return spent * (1 - self.value) / self.value

    def take_log(self) -> str:
        """The log lines since the last call."""
        with self.lock:
            text, self.new_log = "".join(self.new_log), []
        return text

    def on_bar(self, desc: str, n: int, total: int | None) -> None:
        """A tqdm bar moved (called in the training thread: cancelling raises here)."""
        if self.cancelled.is_set():
            raise JobCancelled()
        within = n / total if total else 0.0
        view = _VIEW.match(desc or "")
        if desc == "checking images":
            self.set("checking images", CHECK * within)
        elif view:
            v, views = int(view.group(1)), int(view.group(2))
            self.set(f"features, view {v} of {views}",
                     CHECK + FIT * FEATURES * min(1.0, (v - 1 + within) / max(views, 1)))
        elif desc == "cross-validation":
            self.set(f"cross-validation, fold {min(n + 1, total or 1)} of {total}",
                     CHECK + FIT * (FEATURES + (1 - FEATURES) * within))
        elif desc == "evaluating":
            self.set("evaluation", CHECK + FIT + EXPORT + EVALUATE * within)
        elif self.value < CHECK + FIT:  # anomaly mode's features, memory bank, references
            self.set(desc or "training", max(self.value, CHECK + FIT * 0.5 * within))

    def on_record(self, record: logging.LogRecord) -> None:
        """A log record from training (stage changes that have no bar)."""
        line = _FORMAT.format(record) + "\n"
        message = record.getMessage()
        with self.lock:
            self.new_log.append(line)
        if message.startswith(("memory bank", "anomaly model trained", "auto mode:")):
            self.set("export and parity check", CHECK + FIT)
        elif message.startswith("exported"):
            self.set("export and parity check", CHECK + FIT + EXPORT)


class _Handler(logging.Handler):
    def __init__(self, progress: Progress):
        super().__init__(logging.INFO)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(Exception):
            self.progress.on_record(record)


@contextlib.contextmanager
def watch(progress: Progress, beat: Callable[[Progress], bool]) -> Iterator[Progress]:
    """Feed tqdm bars and log records to progress, and call beat(progress) every HEARTBEAT_S in
    a thread (it writes the row; it returns True when the job should be cancelled)."""
    handler = _Handler(progress)
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    if root.level > logging.INFO or root.level == logging.NOTSET:
        root.setLevel(logging.INFO)
    update, close = tqdm.update, tqdm.close

    def tracked_update(bar, n=1):
        result = update(bar, n)
        progress.on_bar(bar.desc, bar.n, bar.total)
        return result

    def tracked_close(bar):
        if not bar.disable:
            with contextlib.suppress(JobCancelled):  # close runs in finally and in __del__
                progress.on_bar(bar.desc, bar.n, bar.total)
        return close(bar)

    stop = threading.Event()
    thread = threading.Thread(target=_beat_loop, args=(progress, beat, stop), daemon=True,
                              name="job-heartbeat")
    tqdm.update, tqdm.close = tracked_update, tracked_close
    thread.start()
    try:
        yield progress
    finally:
        tqdm.update, tqdm.close = update, close
        root.removeHandler(handler)
        root.setLevel(old_level)
        stop.set()
        thread.join()


def _beat_loop(progress: Progress, beat: Callable[[Progress], bool], stop: threading.Event):
    while not stop.wait(HEARTBEAT_S):
        try:
            if beat(progress):
                progress.cancelled.set()
        except Exception:  # a database hiccup must not kill the job; the next beat retries
            log.exception("heartbeat failed")
