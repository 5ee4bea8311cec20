"""Latency of GET /api/v1/stats over 1,000,000 seeded inspections (target: <= 200 ms).

    python -m bench.stats_latency [--rows 1000000] [--days 90] [--runs 15]
                                  [--db PATH | --db-url URL]

Seeds through the service's own ingest path (bulk INSERT ... ON CONFLICT DO NOTHING plus the
hourly pre-aggregate upsert, in chunks) and then times typical dashboard questions through the
app (query, statistics, savings and JSON). --db PATH keeps the SQLite file; an already seeded
file is reused, so reruns skip the seeding.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sqlalchemy import func, select

from qc.db.models import Inspection, Product, Station
from qc.service import create_app, registry
from qc.service.database import get_session
from qc.service.ingest import record
from qc.service.storage import get_storage
from tests.support.tiny_model import make_tiny_model

PRODUCTS = ("widget", "gear")
STATIONS = ("s1", "s2", "s3", "s4", "s5")
TYPES = ("scratch", "stain", "dent", "crack")
CHUNK = 20_000


def setup(db, root: Path) -> tuple[list[int], list[int], dict[int, int]]:
    """Products with active models, stations, a manager; returns ids."""
    products, versions = [], {}
    for name in PRODUCTS:
        product = registry.create_product(db, name)
        model = make_tiny_model(root / f"{name}.onnx", product=name, version=f"{name}-1")
        versions[product.id] = registry.upload_model(db, get_storage(), model, product, "bench",
                                                     activate=True).id
        products.append(product.id)
    stations = [registry.create_station(db, name)[0].id for name in STATIONS]
    registry.create_user(db, "manager", "manager", "bench-password")
    db.commit()
    return products, stations, versions


def seed(db, rows: int, days: int, products, stations, versions) -> float:
    """Insert `rows` inspections spread evenly over the last `days`; returns seconds."""
    rng = random.Random(7)
    end = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    step = timedelta(days=days) / rows
    start_time, t0 = end - timedelta(days=days), time.perf_counter()
    for first in range(0, rows, CHUNK):
        batch = []
        for n in range(first, min(rows, first + CHUNK)):
            product = products[n % len(products)]
            failed = rng.random() < (0.12 if (n // 50_000) % 9 == 4 else 0.04)  # some bad days
            batch.append({
                "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "product_id": product, "station_id": stations[n % len(stations)],
                "model_version_id": versions[product], "model_version": "bench",
                "lot": f"L{n // 5000}", "serial": f"SN{n:09d}", "operator": "op",
                "inspected_at": start_time + step * n, "received_at": end, "source": "edge",
                "score": 0.8 if failed else 0.1, "raw_score": None,
                "verdict": "fail" if failed else "pass",
                "defect_type": rng.choice(TYPES) if failed else None, "latency_ms": 10.0,
                "image_path": None, "heatmap_path": None,
            })
        record(db, batch)
        db.commit()
        if first % 200_000 == 0:
            print(f"  seeded {first + len(batch):,} rows ({time.perf_counter() - t0:.0f} s)")
    return time.perf_counter() - t0


def scenarios(days: int) -> dict[str, dict]:
    """Dashboard questions, as query strings."""
    now = datetime.now(timezone.utc)
    iso = lambda delta: (now - delta).isoformat()  # noqa: E731
    return {
        "one product, by day, 30 days": {"product": "widget", "bucket": "day",
                                         "from": iso(timedelta(days=30))},
        f"all products, by week, {days} days": {"bucket": "week",
                                                "from": iso(timedelta(days=days))},
        "one station, by hour, 48 h": {"station": "s3", "bucket": "hour",
                                       "from": iso(timedelta(hours=48))},
        "one product, by shift, 14 days": {"product": "gear", "bucket": "shift",
                                           "from": iso(timedelta(days=14))},
        f"everything, by day, {days} days": {"bucket": "day", "from": iso(timedelta(days=days))},
    }


def time_queries(app, key: str, days: int, runs: int) -> float:
    """Print median/p95/max per scenario; returns the worst median in ms."""
    client, worst = app.test_client(), 0.0
    headers = {"Authorization": f"Bearer {key}"}
    for name, args in scenarios(days).items():
        times = []
        for _ in range(runs + 1):
            t0 = time.perf_counter()
            reply = client.get("/api/v1/stats", headers=headers, query_string=args)
            times.append((time.perf_counter() - t0) * 1000)
            assert reply.status_code == 200, reply.json
        times = sorted(times[1:])  # the first run warms caches
        n = reply.json["totals"]["inspected"]
        print(f"  {name:<36} n={n:>9,}  median {statistics.median(times):6.1f} ms  "
              f"p95 {times[int(0.95 * (len(times) - 1))]:6.1f} ms  max {times[-1]:6.1f} ms")
        worst = max(worst, statistics.median(times))
    return worst


def plant_args(description: str, days: int, runs: int) -> argparse.Namespace:
    """The options of a bench over a seeded plant database (rows, days, runs, --db, --db-url)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=days)
    parser.add_argument("--runs", type=int, default=runs)
    parser.add_argument("--db", type=Path, help="SQLite file to keep (reused if seeded)")
    parser.add_argument("--db-url", help="any SQLAlchemy URL (e.g. PostgreSQL) instead")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    return args


def plant_app(root: Path, args: argparse.Namespace, name: str):
    """The service app on the bench's database (args.db / args.db_url, else a temporary one)."""
    url = args.db_url or f"sqlite:///{(args.db or root / f'{name}.sqlite3').resolve()}"
    data_dir = (args.db.parent / "bench-data") if args.db else root / "data"
    return create_app({"INSTANCE_PATH": str(root / "instance"), "DATA_DIR": str(data_dir),
                       "DATABASE_URL": url, "SECRET_KEY": "bench",
                       "PASSWORD_HASH_METHOD": "pbkdf2:sha256:1000"})


def main() -> None:
    args = plant_args(__doc__.splitlines()[0], days=90, runs=15)
    with tempfile.TemporaryDirectory(prefix="qc-bench-") as tmp:
        root = Path(tmp)
        app = plant_app(root, args, "stats")
        with app.app_context():
            db = get_session()
            key = _seeded(db, root, args)
        worst = time_queries(app, key, args.days, args.runs)
        app.extensions["qc.db"].dispose()
    print(f"stats latency: worst median {worst:.1f} ms over {args.rows:,} inspections; "
          f"target <= 200 ms: {'OK' if worst <= 200 else 'MISSED'}")


def _seeded(db, root: Path, args) -> str:
    """Seed unless the database already holds the rows; returns a manager API key."""
    from qc.db.models import User

    have = db.scalar(select(func.count()).select_from(Inspection))
    if have >= args.rows:
        print(f"reusing {have:,} seeded inspections")
    else:
        if have or db.scalar(select(func.count()).select_from(Product)):
            raise SystemExit("the database holds other data; pass a fresh --db")
        ids = setup(db, root)
        print(f"seeding {args.rows:,} inspections over {args.days} days "
              f"({len(PRODUCTS)} products, {len(STATIONS)} stations)...")
        seconds = seed(db, args.rows, args.days, *ids)
        print(f"seeding: {seconds:.0f} s ({args.rows / seconds:,.0f} rows/s)")
    assert db.scalar(select(func.count()).select_from(Station)) == len(STATIONS)
    manager = db.scalar(select(User).where(User.username == "manager"))
    key = registry.issue_key(manager)
    db.commit()
    return key


if __name__ == "__main__":
    main()
