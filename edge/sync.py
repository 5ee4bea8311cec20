"""Store-and-forward: send outbox results to the service in batches, back off while it is down,
upload kept images afterwards, and apply the retention policy now and then.

Exactly once: a result leaves "sending" for "sent" only after the service answered for it; a
crash or a lost reply re-sends it, and the service counts a known id as already_known.

A server error (500) on a batch may come from one result the service cannot handle: the batch
size is halved until that result is sent alone, then it is set aside on its own backoff and the
results behind it go on; the size doubles back after each batch that goes through. A single
result too large for the service (413 when alone) is set aside the same way. A result that
failed before is sent alone when it is due again, ahead of the batch, so it never fails a batch
twice.
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
# A proxy with no service behind it, or the service saying "not now": an outage, not the content.
OUTAGE_STATUSES = frozenset({429, 502, 503, 504})


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


def suspects_content(status: int | None) -> bool:
    """True for a 5xx reply that the batch's content may cause (a server bug such as a 500);
    False for an outage: no reply at all (None), 429, 502, 503 or 504."""
    return status is not None and status >= 500 and status not in OUTAGE_STATUSES


def alone_at_fault(exc: Exception) -> bool:
    """True when a POST of a single result failed because of that result: a server error its
    content may cause (suspects_content), or 413: too large for the service on its own."""
    if isinstance(exc, ServiceRefused):
        return exc.status == 413
    return isinstance(exc, ServiceUnavailable) and suspects_content(exc.status)


def halved(size: int) -> int:
    """The next batch size after a failed batch of `size` results."""
    return max(1, size // 2)


def grown(size: int, limit: int) -> int:
    """The next batch size after a batch went through: doubled, up to limit."""
    return min(limit, size * 2)


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
        self.batch_size = config.batch_size  # halved on server errors, regrows to batch_limit
        self.batch_limit = config.batch_size  # lowered for good when the service answers 413
        self._limit_before_413 = 0  # restored if a single result turns out to be too large
        self.failures = 0
        self._wake = threading.Event()
        self._last_retention = 0.0
        self._last_heartbeat = 0.0

    def wake(self) -> None:
        """Send soon (a new result is in the outbox, or the agent is stopping)."""
        self._wake.set()

    def sync_once(self) -> int:
        """One round: a due result that failed before goes alone, then one batch; returns how
        many results the service confirmed."""
        return self._round()[0]

    def _round(self) -> tuple[int, bool]:
        """sync_once, also saying whether more may be due right away."""
        if self.client is None:  # an offline station: results stay in the outbox
            return 0, False
        now = time.time()
        # Why alone and first: a result that failed before may fail again, and in a batch it
        # would fail the results with it and start the search by halving all over again.
        retried = self.outbox.claim(1, now, retried=True)
        sent = self._send_alone(retried[0]) if retried else 0
        size = self.batch_size
        items = self.outbox.claim(size, now, retried=False)
        if items:
            sent += self._settle(items, self._post(items))
            self._grow()
        return sent, bool(retried) or len(items) >= size

    def _send_alone(self, item: Item) -> int:
        """Send a result that failed before on its own; if it fails on its own again (a server
        error, too large) it is set aside once more and the round goes on."""
        try:
            reply = self._post([item])
        except (ServiceUnavailable, ServiceRefused) as exc:
            if not alone_at_fault(exc):
                raise
            return 0
        return self._settle([item], reply)

    def _post(self, items: list[Item]) -> dict:
        """POST results; if that fails, put them back (see _put_back) and raise."""
        try:
            return self.client.post_results([i.payload for i in items])
        except (ServiceRefused, ServiceUnavailable) as exc:
            self._put_back(items, exc)
            raise
        except BaseException as exc:
            self.outbox.release([i.id for i in items], time.time(), f"{type(exc).__name__}: {exc}")
            raise

    def _put_back(self, items: list[Item], exc: ServiceRefused | ServiceUnavailable) -> None:
        """Back to the outbox. A single result at fault is set aside on its own backoff so the
        ones behind it go on; otherwise a 413 lowers the batch size and its limit for good, and
        a server error halves the batch."""
        now = time.time()
        error = str(exc) if isinstance(exc, ServiceRefused) else f"{type(exc).__name__}: {exc}"
        if len(items) == 1 and alone_at_fault(exc):
            self._set_aside(items[0], exc, error, now)
            return
        self.outbox.release([i.id for i in items], now, error)
        if isinstance(exc, ServiceRefused):
            if exc.status == 413 and self.batch_size > 1:
                self._limit_before_413 = self._limit_before_413 or self.batch_limit
                self.batch_size = self.batch_limit = halved(self.batch_size)
                log.warning("service refused the batch size; now sending %d", self.batch_size)
        elif suspects_content(exc.status):
            self.batch_size = halved(len(items))
            log.warning(
                "service failed on a batch of %d (%s); now sending %d to find the result at fault",
                len(items),
                exc,
                self.batch_size,
            )

    def _set_aside(self, item: Item, exc: Exception, error: str, now: float) -> None:
        """One result the service cannot take: on its own backoff, an attempt counted."""
        wait = self._retry_later(item, error, now)
        too_large = isinstance(exc, ServiceRefused)
        log.error(
            "result %s %s on its own (%s): set aside for %.0f s (attempt %d), the results"
            " behind it go on",
            item.id,
            "is too large for the service" if too_large else "fails on the service",
            exc,
            wait,
            item.attempts + 1,
        )
        # A result not tried before was in the batches refused with 413 that lowered the limit:
        # they may have been too large only because of it, so the old limit holds again.
        if too_large and item.attempts == 0 and self._limit_before_413:
            self.batch_limit, self._limit_before_413 = self._limit_before_413, 0
            log.info("batches may grow back to %d results", self.batch_limit)

    def _retry_later(self, item: Item, error: str, now: float) -> float:
        """Re-queue one result on its own backoff, counting an attempt; returns the wait."""
        wait = next_backoff(item.attempts + 1, REJECT_BACKOFF_BASE_S, REJECT_BACKOFF_MAX_S)
        self.outbox.release([item.id], now + wait, error, count=True)
        return wait

    def _grow(self) -> None:
        """After a batch went through: back toward the full batch size."""
        size = grown(self.batch_size, self.batch_limit)
        if size != self.batch_size and size == self.batch_limit:
            log.info("sending %d results per batch again", size)
        self.batch_size = size

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
                self._retry_later(item, rejected[item.id], now)
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
                if exc.status == 409:  # the service has this photo already (a lost reply)
                    self.outbox.mark_image(result_id, "sent")
                    continue
                log.warning("image of %s not accepted (%s); kept locally only", result_id, exc)
                self.outbox.mark_image(result_id, "kept")
                continue
            self.outbox.mark_image(result_id, "sent")
            done += 1
        return done

    def step(self) -> bool:
        """One round; True if there may be more to send right away."""
        sent, more = self._round()
        self.failures = 0
        if sent:
            self.outbox.set_meta(last_sync_ok_at=time.time(), last_sync_error=None)
            return more
        return more or self.upload_images() >= IMAGES_PER_ROUND

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
