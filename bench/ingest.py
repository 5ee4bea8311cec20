"""Sustained ingest rate of POST /api/v1/results (batches of 100) over real HTTP, on SQLite by
default (target: >= 300 results/s on a 2-core machine).

    python -m bench.ingest [--batches 200] [--batch-size 100] [--clients 1]
                           [--db-url URL | --postgres]

Starts the service in-process (Werkzeug, threaded) on a free loopback port with a fresh database,
posts batches of new results as a station would, and prints results/s, batch latencies and the
SQL statements per batch. --postgres starts a throwaway PostgreSQL server (the tests' helper,
Debian's binaries) for the run and removes it afterwards.
"""

from __future__ import annotations

import argparse
import http.client
import json
import logging
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from werkzeug.serving import make_server

from qc.service import create_app, registry
from qc.service.database import get_session
from qc.service.storage import get_storage
from tests.support.postgres import PostgresServer
from tests.support.tiny_model import make_tiny_model

TYPES = ("scratch", "stain", "dent", "crack")


def make_batch(size: int, start: datetime, seq: int) -> list[dict]:
    """`size` new results, about 5 % of them failed."""
    out = []
    for i in range(size):
        n = seq * size + i
        failed = n % 20 == 0
        out.append({
            "id": str(uuid.uuid4()), "product": "widget",
            "timestamp": (start + timedelta(seconds=n)).isoformat(),
            "score": 0.8 if failed else 0.1, "defect_type": TYPES[n % 4] if failed else None,
            "model_version": "tiny-1", "lot": f"L{n // 1000}", "serial": f"SN{n:08d}",
            "latency_ms": 12.5,
        })
    return out


def prepare(root: Path, db_url: str | None):
    """App with a product, active tiny model and a station; returns (app, station key)."""
    app = create_app({"INSTANCE_PATH": str(root / "instance"), "DATA_DIR": str(root / "data"),
                      "DATABASE_URL": db_url or f"sqlite:///{root / 'bench.sqlite3'}",
                      "SECRET_KEY": "bench", "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000"})
    model = make_tiny_model(root / "tiny.onnx")
    with app.app_context():
        db = get_session()
        product = registry.create_product(db, "widget")
        registry.upload_model(db, get_storage(), model, product, "bench", activate=True)
        _station, key = registry.create_station(db, "bench-station")
        db.commit()
    return app, key


def post(port: int, key: str, body: bytes) -> dict:
    """One POST /api/v1/results over a fresh connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/api/v1/results", body=body, headers={
            "Authorization": f"Bearer {key}", "Content-Type": "application/json"})
        response = conn.getresponse()
        payload = json.loads(response.read())
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}: {payload}")
        return payload
    finally:
        conn.close()


def run(port: int, key: str, batches: list[bytes], clients: int) -> tuple[float, list[float]]:
    """Post all batches from `clients` threads; returns (seconds, per-batch latencies)."""
    latencies: list[float] = []
    lock = threading.Lock()
    queue = list(batches)

    def worker() -> None:
        while True:
            with lock:
                if not queue:
                    return
                body = queue.pop()
            t0 = time.perf_counter()
            reply = post(port, key, body)
            assert reply["accepted"] > 0, reply
            with lock:
                latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start, latencies


class StatementCounter:
    """Counts the SQL statements an engine sends, by first keyword (an executemany counts once)."""

    def __init__(self, engine) -> None:
        self.counts: Counter[str] = Counter()
        self.on = False
        event.listen(engine, "before_cursor_execute", self._count)
        event.listen(engine, "commit", self._commit)

    def _count(self, _conn, _cursor, statement: str, *_args) -> None:
        if self.on:
            self.counts[statement.lstrip().split(None, 1)[0].upper()] += 1

    def _commit(self, _conn) -> None:
        if self.on:
            self.counts["COMMIT"] += 1

    def per_batch(self, batches: int) -> str:
        """'7 (SELECT 3, INSERT 2, ...)': statements per batch."""
        total = sum(self.counts.values()) / batches
        parts = ", ".join(f"{k} {n / batches:g}" for k, n in self.counts.most_common())
        return f"{total:g} ({parts})"


def measure(args: argparse.Namespace, db_url: str | None) -> None:
    """Run the bench against db_url (None: a fresh SQLite file) and print the figures."""
    with tempfile.TemporaryDirectory(prefix="qc-bench-") as tmp:
        app, key = prepare(Path(tmp), db_url)
        counter = StatementCounter(app.extensions["qc.db"].engine)
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        start = datetime.now(timezone.utc) - timedelta(days=7)
        bodies = [json.dumps(make_batch(args.batch_size, start, i)).encode()
                  for i in range(args.batches + 5)]
        run(server.port, key, bodies[:5], 1)  # warm-up: connections, caches
        counter.on = True
        seconds, latencies = run(server.port, key, bodies[5:], args.clients)
        counter.on = False
        server.shutdown()
        app.extensions["qc.db"].dispose()
    total = args.batches * args.batch_size
    ms = sorted(x * 1000 for x in latencies)
    print(f"database: {make_url(db_url).get_backend_name() if db_url else 'sqlite'}, "
          f"{args.clients} client(s), {args.batches} batches of {args.batch_size}")
    print(f"ingest: {total / seconds:,.0f} results/s ({total} results in {seconds:.2f} s); "
          f"batch latency p50 {statistics.median(ms):.1f} ms, p95 {ms[int(0.95 * len(ms))]:.1f} ms")
    print(f"SQL per batch: {counter.per_batch(args.batches)}")
    print("target: >= 300 results/s: " + ("OK" if total / seconds >= 300 else "MISSED"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--clients", type=int, default=1, help="concurrent stations")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--db-url", help="default: a fresh SQLite file in a temporary folder")
    where.add_argument("--postgres", action="store_true",
                       help="start a throwaway PostgreSQL server for the run")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    if not args.postgres:
        measure(args, args.db_url)
        return
    server = PostgresServer().start()
    try:
        measure(args, server.create_database("qc_bench"))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
