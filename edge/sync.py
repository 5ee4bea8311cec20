"""Store-and-forward: send outbox results to the service in batches, back off while it is down,
upload kept images afterwards, and apply the retention policy now and then.

Exactly once: a result leaves "sending" for "sent" only after the service answered for it; a
crash or a lost reply re-sends it, and the service counts a known id as already_known.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from edge.client import ServiceClient, ServiceRefused, ServiceUnavailable
from edge.config import RetentionConfig, SyncConfig
from edge.outbox import Item, Outbox

log = logging.getLogger(__name__)

REJECT_BACKOFF_BASE_S = 60.0  # a result the service refused waits for someone to fix the cause
REJECT_BACKOFF_MAX_S = 3600.0
RETENTION_EVERY_S = 600.0
HEARTBEAT_EVERY_S = 5.0
IMAGES_PER_ROUND = 10


def next_backoff(
    attempt: int,
    base: float = 1.0,
    cap: float = 300.0,
    jitter: float = 0.25,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after `attempt` consecutive failures: base * 2^(attempt-1), capped at
    cap, shortened by up to `jitter` (a fraction) so stations do not retry in lock-step."""
    if attempt <= 0:
        return 0.0
    delay = min(cap, base * 2.0 ** min(attempt - 1, 60))
    return delay * (1.0 - jitter * rand())


class Syncer:
    """The uploader: one thread, woken after each new result or by its interval."""

    def __init__(
        self,
        outbox: Outbox,
        client: ServiceClient | None,
        config: SyncConfig,
        retention: RetentionConfig,
    ):
        self.outbox, self.client, self.config, self.retention = outbox, client, config, retention
        self.batch_size = config.batch_size
        self.failures = 0
        self._wake = threading.Event()
        self._last_retention = 0.0
        self._last_heartbeat = 0.0

    def wake(self) -> None:
        """Send soon (a new result is in the outbox, or the agent is stopping)."""
        self._wake.set()

    def sync_once(self) -> int:
        """Send one batch; returns how many results the service confirmed (0: nothing due)."""
        if self.client is None:  # an offline station: results stay in the outbox
            return 0
        items = self.outbox.claim(self.batch_size)
        if not items:
            return 0
        ids = [i.id for i in items]
        try:
            reply = self.client.post_results([i.payload for i in items])
        except ServiceRefused as exc:
            self.outbox.release(ids, time.time(), str(exc))
            if exc.status == 413 and self.batch_size > 1:
                self.batch_size = max(1, self.batch_size // 2)
                log.warning("service refused the batch size; now sending %d", self.batch_size)
            raise
        except BaseException as exc:
            self.outbox.release(ids, time.time(), f"{type(exc).__name__}: {exc}")
            raise
        return self._settle(items, reply)

    def _settle(self, items: list[Item], reply: dict) -> int:
        """Mark answered results sent; re-queue rejected ones with their own backoff."""
        rejected: dict[str, str] = {}
        for entry in reply.get("rejected") or []:
            index = entry.get("index")
            if isinstance(index, int) and 0 <= index < len(items):
                rejected[items[index].id] = str(entry.get("error"))
        ok = [i.id for i in items if i.id not in rejected]
        self.outbox.mark_sent(ok)
        now = time.time()
        for item in items:
            if item.id in rejected:
                wait = next_backoff(item.attempts + 1, REJECT_BACKOFF_BASE_S, REJECT_BACKOFF_MAX_S)
                self.outbox.release([item.id], now + wait, rejected[item.id], count=True)
        if rejected:
            log.error(
                "service rejected %d results (retrying later): %s",
                len(rejected),
                next(iter(rejected.values())),
            )
        log.debug(
            "sent %d: %s accepted, %s already known",
            len(ok),
            reply.get("accepted"),
            reply.get("already_known"),
        )
        return len(ok)

    def upload_images(self, limit: int = IMAGES_PER_ROUND) -> int:
        """Upload kept images of sent results; returns how many went."""
        done = 0
        if self.client is None:
            return 0
        for result_id, path in self.outbox.images_to_upload(limit):
            if not path.is_file() or path.stat().st_size == 0:
                self.outbox.mark_image(result_id, "dropped")
                continue
            try:
                self.client.put_image(result_id, path)
            except ServiceRefused as exc:
                log.warning("image of %s not accepted (%s); kept locally only", result_id, exc)
                self.outbox.mark_image(result_id, "kept")
                continue
            self.outbox.mark_image(result_id, "sent")
            done += 1
        return done

    def step(self) -> bool:
        """One round; True if there may be more to send right away."""
        sent = self.sync_once()
        self.failures = 0
        if sent:
            self.outbox.set_meta(last_sync_ok_at=time.time(), last_sync_error=None)
            return sent >= self.batch_size
        return self.upload_images() >= IMAGES_PER_ROUND

    def run(self, stop: threading.Event) -> None:
        """Loop until stop: send, back off on errors, housekeeping."""
        while not stop.is_set():
            self._housekeeping()
            try:
                more = self.step()
            except (ServiceUnavailable, ServiceRefused) as exc:
                self._failed(exc, stop)
                continue
            except Exception:  # keep the uploader alive; the outbox holds the data
                log.exception("sync round failed")
                self._failed(RuntimeError("internal error, see the agent log"), stop)
                continue
            if not more:
                self._wake.wait(self.config.interval_s)
                self._wake.clear()

    def _failed(self, exc: Exception, stop: threading.Event) -> None:
        self.failures += 1
        delay = next_backoff(self.failures, self.config.backoff_base_s, self.config.backoff_max_s)
        level = logging.ERROR if isinstance(exc, ServiceRefused) else logging.WARNING
        log.log(
            level, "sync failed (%d in a row), retrying in %.1f s: %s", self.failures, delay, exc
        )
        self.outbox.set_meta(last_sync_error=str(exc), last_sync_error_at=time.time())
        deadline = time.monotonic() + delay
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            stop.wait(min(left, HEARTBEAT_EVERY_S))
            self._housekeeping()

    def _housekeeping(self) -> None:
        now = time.time()
        if now - self._last_heartbeat >= HEARTBEAT_EVERY_S:
            self.outbox.set_meta(heartbeat_at=now)
            self._last_heartbeat = now
        if now - self._last_retention >= RETENTION_EVERY_S:
            self._last_retention = now
            try:
                self.outbox.enforce(self.retention, now)
            except OSError as exc:
                log.error("retention failed: %s", exc)
