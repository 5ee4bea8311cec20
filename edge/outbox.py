"""The local durable outbox: every result is committed here (SQLite, WAL, synchronous=FULL)
before anything else happens to it, then sent to the service in batches.

Result states: pending -> sending -> sent. A crash leaves rows in "sending"; the agent re-queues
them at start-up (the service is idempotent by id, so a re-send is harmless). Result rows are
never dropped before they are sent; images are bounded by the retention policy (enforce()).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edge.config import RetentionConfig

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    id TEXT PRIMARY KEY,
    created_at REAL NOT NULL,
    verdict TEXT NOT NULL,
    payload TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending',   -- pending | sending | sent
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try REAL NOT NULL DEFAULT 0,
    sent_at REAL,
    last_error TEXT,
    image_path TEXT,                         -- relative to the images folder
    image_bytes INTEGER NOT NULL DEFAULT 0,
    image_state TEXT NOT NULL DEFAULT 'none' -- none | pending | kept | sent | dropped
);
CREATE INDEX IF NOT EXISTS results_queue ON results (state, next_try, created_at);
CREATE INDEX IF NOT EXISTS results_images ON results (image_state, created_at);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""
DAY = 86400.0


@dataclass
class Item:
    """A result row claimed for sending."""

    id: str
    payload: dict
    attempts: int


class Outbox:
    """Thread-safe access to the outbox database and its image folder."""

    def __init__(self, data_dir: Path, synchronous: str = "FULL"):
        self.dir = Path(data_dir)
        self.images_dir = self.dir / "images"
        self.images_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / "outbox.sqlite3"
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            self.path, timeout=30, isolation_level=None, check_same_thread=False
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        # Why FULL: a result acknowledged to the line must survive a power cut, not only a crash.
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.execute("PRAGMA busy_timeout=30000")
        with self._lock:
            self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction under the lock: one commit (one fsync) for many statements."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def journal_mode(self) -> str:
        return self._db.execute("PRAGMA journal_mode").fetchone()[0]

    # --- writing results -------------------------------------------------------------------

    def has(self, result_id: str) -> bool:
        """True if a result with this id is already recorded."""
        with self._lock:
            row = self._db.execute("SELECT 1 FROM results WHERE id = ?", (result_id,)).fetchone()
        return row is not None

    def add(
        self, result: dict, image: bytes | None = None, suffix: str = "jpg", upload: bool = False
    ) -> bool:
        """Commit one result (and keep its image if given); False if its id was already known."""
        rel, size, image_state = None, 0, "none"
        if image is not None:
            rel = self._write_image(result["id"], image, suffix)
            size, image_state = len(image), ("pending" if upload else "kept")
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO results (id, created_at, verdict, payload, image_path,"
                " image_bytes, image_state) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    result["id"],
                    time.time(),
                    result["verdict"],
                    json.dumps(result),
                    rel,
                    size,
                    image_state,
                ),
            )
        if cur.rowcount == 0 and rel is not None:
            log.info("result %s was already in the outbox", result["id"])
        return cur.rowcount == 1

    def _write_image(self, result_id: str, data: bytes, suffix: str) -> str:
        """Write the image under images/YYYYMMDD/ (tmp + rename); returns its relative path."""
        day = time.strftime("%Y%m%d", time.gmtime())
        folder = self.images_dir / day
        folder.mkdir(exist_ok=True)
        final = folder / f"{result_id}.{suffix}"
        tmp = folder / f".{result_id}.{suffix}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, final)
        return f"{day}/{final.name}"

    # --- sending -----------------------------------------------------------------------------

    def requeue_in_flight(self) -> int:
        """Put rows left in "sending" by a crash back to pending (run once at agent start-up)."""
        with self._lock:
            cur = self._db.execute("UPDATE results SET state = 'pending' WHERE state = 'sending'")
        if cur.rowcount:
            log.warning("re-queued %d results left in flight by the last run", cur.rowcount)
        return cur.rowcount

    def claim(
        self, limit: int, now: float | None = None, retried: bool | None = None
    ) -> list[Item]:
        """Mark up to limit due pending results "sending" (oldest first) and return them; retried
        True claims only results that failed before (attempts > 0), False only the others."""
        now = time.time() if now is None else now
        which = {None: "", True: " AND attempts > 0", False: " AND attempts = 0"}[retried]
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, payload, attempts FROM results WHERE state = 'pending'"
                f" AND next_try <= ?{which} ORDER BY created_at LIMIT ?",
                (now, limit),
            ).fetchall()
            db.executemany(
                "UPDATE results SET state = 'sending' WHERE id = ?", [(r[0],) for r in rows]
            )
        return [Item(r[0], json.loads(r[1]), r[2]) for r in rows]

    def mark_sent(self, ids: list[str], now: float | None = None) -> None:
        """The service has these results."""
        now = time.time() if now is None else now
        with self._tx() as db:
            db.executemany(
                "UPDATE results SET state = 'sent', sent_at = ?, last_error = NULL WHERE id = ?",
                [(now, i) for i in ids],
            )

    def release(self, ids: list[str], next_try: float, error: str, count: bool = False) -> None:
        """Back to pending, to be tried at next_try; count adds an attempt (item-level errors)."""
        with self._tx() as db:
            db.executemany(
                "UPDATE results SET state = 'pending', next_try = ?, last_error = ?,"
                " attempts = attempts + ? WHERE id = ?",
                [(next_try, error[:500], int(count), i) for i in ids],
            )

    def images_to_upload(self, limit: int) -> list[tuple[str, Path]]:
        """Kept images waiting for upload whose result the service already has."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, image_path FROM results WHERE image_state = 'pending'"
                " AND state = 'sent' ORDER BY created_at LIMIT ?",
                (limit,),
            ).fetchall()
        return [(r[0], self.images_dir / r[1]) for r in rows]

    def mark_image(self, result_id: str, state: str) -> None:
        """Record an image upload outcome: sent, or dropped (unusable file)."""
        with self._lock:
            self._db.execute("UPDATE results SET image_state = ? WHERE id = ?", (state, result_id))

    # --- status ------------------------------------------------------------------------------

    def counts(self) -> dict:
        """Backlog figures for `qc-edge status`."""
        with self._lock:
            by_state = dict(
                self._db.execute("SELECT state, COUNT(*) FROM results GROUP BY state").fetchall()
            )
            oldest = self._db.execute(
                "SELECT MIN(created_at) FROM results WHERE state != 'sent'"
            ).fetchone()[0]
            images = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(image_bytes), 0),"
                " COALESCE(SUM(image_state = 'pending'), 0) FROM results"
                " WHERE image_path IS NOT NULL"
            ).fetchone()
            errors = self._db.execute(
                "SELECT COUNT(*) FROM results WHERE state != 'sent' AND last_error IS NOT NULL"
            ).fetchone()[0]
        return {
            "pending": by_state.get("pending", 0),
            "sending": by_state.get("sending", 0),
            "sent": by_state.get("sent", 0),
            "oldest_unsent_at": oldest,
            "with_errors": errors,
            "images": images[0],
            "image_bytes": images[1],
            "images_waiting": images[2],
        }

    def last_error(self) -> str | None:
        """The latest item-level error of a result not yet sent."""
        with self._lock:
            row = self._db.execute(
                "SELECT last_error FROM results WHERE state != 'sent' AND last_error IS NOT NULL"
                " ORDER BY created_at DESC LIMIT 1"
            ).fetchone()
        return row[0] if row else None

    def set_meta(self, **values: object) -> None:
        """Store status values (last sync, errors, model) for `qc-edge status`."""
        with self._tx() as db:
            db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(k, json.dumps(v)) for k, v in values.items()],
            )

    def meta(self) -> dict:
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM meta").fetchall()
        return {k: json.loads(v) for k, v in rows}

    # --- retention ---------------------------------------------------------------------------

    def enforce(self, policy: RetentionConfig, now: float | None = None) -> dict[str, int]:
        """Apply the retention policy (docs/edge.md; a limit of 0 is no limit); returns what was
        removed."""
        now = time.time() if now is None else now
        removed = {"images_by_age": 0, "images_by_size": 0, "rows": 0}
        removed["images_by_age"] = self._drop_images(
            self._select_images(
                "verdict != 'fail' AND created_at < ? OR verdict = 'fail' AND created_at < ?",
                (_cutoff(now, policy.pass_image_days), _cutoff(now, policy.fail_image_days)),
            )
        )
        if policy.max_images_mb:
            removed["images_by_size"] = self._drop_over_size(int(policy.max_images_mb * 2**20))
        if policy.sent_result_days:
            removed["rows"] = self._drop_sent_rows(_cutoff(now, policy.sent_result_days))
        if any(removed.values()):
            log.info("retention: %s", removed)
        return removed

    def _select_images(self, where: str, params: tuple) -> list[tuple[str, str, int]]:
        with self._lock:
            return self._db.execute(
                "SELECT id, image_path, image_bytes FROM results WHERE image_path IS NOT NULL"
                f" AND ({where}) ORDER BY created_at",
                params,
            ).fetchall()

    def _drop_over_size(self, budget: int) -> int:
        """Drop images until the total fits: passes before fails, uploaded/unwanted before
        waiting, oldest first."""
        with self._lock:
            total = self._db.execute(
                "SELECT COALESCE(SUM(image_bytes), 0) FROM results WHERE image_path IS NOT NULL"
            ).fetchone()[0]
        if total <= budget:
            return 0
        with self._lock:
            rows = self._db.execute(
                "SELECT id, image_path, image_bytes FROM results WHERE image_path IS NOT NULL"
                " ORDER BY verdict = 'fail', image_state = 'pending', created_at"
            ).fetchall()
        victims = []
        for row in rows:
            if total <= budget:
                break
            victims.append(row)
            total -= row[2]
        return self._drop_images(victims)

    def _drop_images(self, rows: list[tuple[str, str, int]]) -> int:
        for _id, rel, _size in rows:
            with contextlib.suppress(FileNotFoundError):
                (self.images_dir / rel).unlink()
        with self._tx() as db:
            db.executemany(
                "UPDATE results SET image_path = NULL, image_bytes = 0,"
                " image_state = CASE image_state WHEN 'sent' THEN 'sent' ELSE 'dropped' END"
                " WHERE id = ?",
                [(r[0],) for r in rows],
            )
        return len(rows)

    def _drop_sent_rows(self, before: float) -> int:
        old = self._select_images("state = 'sent' AND sent_at < ?", (before,))
        self._drop_images(old)
        with self._lock:
            cur = self._db.execute(
                "DELETE FROM results WHERE state = 'sent' AND sent_at < ?", (before,)
            )
        return cur.rowcount

    def remove_orphans(self) -> int:
        """Delete image files no row refers to (a crash between file and row); start-up only."""
        with self._lock:
            known = {
                r[0]
                for r in self._db.execute(
                    "SELECT image_path FROM results WHERE image_path IS NOT NULL"
                )
            }
        removed = 0
        for path in self.images_dir.glob("*/*"):
            rel = f"{path.parent.name}/{path.name}"
            if rel not in known:
                path.unlink(missing_ok=True)
                removed += 1
        for folder in self.images_dir.iterdir():
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        return removed


def _cutoff(now: float, days: float) -> float:
    """The creation time before which something is too old; 0 days = no limit."""
    return now - days * DAY if days else float("-inf")
