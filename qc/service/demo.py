"""The demo plant behind `qc demo` (`make run`): the sample flange's model, demo users, three
stations and 30 days of history with a tool-wear drift on one station that the p-chart
catches, then a fix and a lower defect rate after it.
"""

from __future__ import annotations

import logging
import random
import shutil
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from qc.db.models import Inspection, ModelVersion, Product, Station, User, utcnow
from qc.service import registry
from qc.service.ingest import record
from qc.service.jobs.demo import add_training_story
from qc.service.queries import set_flag
from qc.service.storage import Storage

log = logging.getLogger(__name__)

PRODUCT = "flange"
STATIONS = (("L1-A", "line 1"), ("L1-B", "line 1"), ("L2-A", "line 2"))
# (username, role, password): fixed and printed, they are demo accounts
USERS = (
    ("operator", "operator", "operator-demo"),
    ("manager", "manager", "manager-demo"),
    ("engineer", "engineer", "engineer-demo"),
    ("admin", "admin", "admin-demo"),
)
CREWS = {"L1-A": ("anna", "ben"), "L1-B": ("chen", "dana"), "L2-A": ("emil", "fatma")}
DEFECT_MIX = {"scratch": 0.35, "dent": 0.25, "stain": 0.25, "crack": 0.15}
COSTS = {"manual_inspection_cost": 0.06, "escape_cost": 40.0, "internal_failure_cost": 3.5,
         "false_reject_cost": 0.8}  # a machined part: a customer return is expensive
SHIFT_HOURS = (6, 22)  # two shifts, 06-14 and 14-22 local time
WEEKDAY_VOLUME = (1.0, 1.0, 1.0, 1.0, 1.0, 0.6, 0.0)  # Saturday: one shift and a bit; Sunday off
SAMPLES = Path(__file__).resolve().parents[2] / "sample_images"


@dataclass(frozen=True)
class Plan:
    """The story the seeded history tells (day numbers count from the first day, 0)."""

    days: int = 30
    per_day: int = 260  # items per station on a weekday
    base_rate: float = 0.032  # defect rate before the fix
    improved_rate: float = 0.018  # after the fix
    drift_station: str = "L1-B"
    drift_start: int = 16  # a cutting tool starts to wear: scratches ramp up
    drift_peak: float = 0.13
    fix_day: int = 21  # tool changed and the process tightened
    review_share: float = 0.2  # share of failed items an engineer reviewed
    seed: int = 7


def defect_rate(plan: Plan, day: int, station: str) -> float:
    """Expected defect rate of a station on a day of the plan."""
    rate = plan.base_rate if day < plan.fix_day else plan.improved_rate
    if station == plan.drift_station and plan.drift_start <= day < plan.fix_day:
        ramp = min(1.0, 2.0 * (day - plan.drift_start + 1) / (plan.fix_day - plan.drift_start))
        rate += (plan.drift_peak - plan.base_rate) * ramp
    return rate


def _defect_type(rng: random.Random, drifting: bool) -> str:
    if drifting and rng.random() < 0.75:
        return "scratch"  # the worn tool
    return rng.choices(list(DEFECT_MIX), weights=list(DEFECT_MIX.values()))[0]


def _review(rng: random.Random, failed: bool, dtype: str | None, at: datetime, plan: Plan) -> dict:
    """Review columns: engineers check a share of the fails and a few passes (all good: an
    escape found among a few dozen reviewed passes would rightly sink the estimated recall)."""
    share = plan.review_share if failed else plan.review_share / 20
    if rng.random() >= share:
        return dict.fromkeys(("review", "review_label", "review_note", "reviewed_by",
                              "reviewed_at"))
    wrong = failed and rng.random() < 0.06  # a false reject
    label = "good" if wrong or not failed else dtype
    return {"review": "disagree" if wrong else "agree", "review_label": label,
            "review_note": None, "reviewed_by": "engineer", "reviewed_at": at + timedelta(hours=2)}


def day_rows(
    plan: Plan, rng: random.Random, day: int, local_day: date, station: Station,
    version: ModelVersion, tz: ZoneInfo, now: datetime,
) -> list[dict]:
    """The inspections of one station on one day (none after `now`)."""
    n = round(plan.per_day * WEEKDAY_VOLUME[local_day.weekday()] * rng.uniform(0.9, 1.1))
    rate = defect_rate(plan, day, station.name)
    drifting = station.name == plan.drift_station and day >= plan.drift_start
    start = datetime.combine(local_day, datetime.min.time(), tz) + timedelta(hours=SHIFT_HOURS[0])
    span = (SHIFT_HOURS[1] - SHIFT_HOURS[0]) * 3600
    rows = []
    for k, offset in enumerate(sorted(rng.uniform(0, span) for _ in range(n))):
        at = (start + timedelta(seconds=offset)).astimezone(timezone.utc)
        if at > now:
            break
        failed = rng.random() < rate
        dtype = _defect_type(rng, drifting) if failed else None
        shift = 0 if offset < span / 2 else 1
        row = {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "product_id": version.product_id,
            "station_id": station.id,
            "model_version_id": version.id,
            "model_version": version.version,
            "lot": f"L{local_day:%y%m%d}-{shift + 1}",
            "serial": f"FL{local_day:%y%m%d}{station.id}{k:04d}",
            "operator": CREWS.get(station.name, ("demo", "demo"))[shift],
            "inspected_at": at,
            "received_at": at,
            "source": "edge",
            "raw_score": None,
            "image_path": None,
            "heatmap_path": None,
        }
        row.update(_outcome(rng, failed, dtype))
        rows.append({**row, **_review(rng, failed, dtype, at, plan)})
    return rows


def _outcome(rng: random.Random, failed: bool, dtype: str | None) -> dict:
    score = rng.uniform(0.55, 0.98) if failed else rng.betavariate(1.5, 9) * 0.49
    return {"score": round(score, 4), "verdict": "fail" if failed else "pass",
            "defect_type": dtype, "latency_ms": round(max(20.0, rng.gauss(95, 12)), 1)}


def seed_history(
    db: Session, version: ModelVersion, stations: list[Station], tz: ZoneInfo,
    plan: Plan = Plan(), now: datetime | None = None,
) -> int:
    """Insert the plan's history ending today (plant-local); returns the number of rows."""
    rng, now = random.Random(plan.seed), now or utcnow()
    first = now.astimezone(tz).date() - timedelta(days=plan.days - 1)
    total = 0
    for day in range(plan.days):
        rows = []
        for station in stations:
            rows += day_rows(plan, rng, day, first + timedelta(days=day), station, version, tz, now)
        total += len(record(db, rows))
    return total


def ensure_model(cache: Path, samples: Path = SAMPLES) -> Path:
    """The demo model, trained on the sample flanges on first use and kept in `cache`."""
    out = cache / f"{PRODUCT}.onnx"
    if out.exists():
        return out
    try:
        from training.commands import run_training
    except ImportError as exc:
        raise RuntimeError(
            f"training the demo model needs the train extra ({exc.name} is missing): "
            "pip install 'qc[train]', or pass --model FILE.onnx"
        ) from None
    cache.mkdir(parents=True, exist_ok=True)
    if not (samples / "good").is_dir():
        from training.synth import generate_dataset

        samples = cache / "sample_images"
        generate_dataset(samples, n_good=48, n_per_type=12, size=256, seed=0)
    start = time.perf_counter()
    config = _train_config(training_subset(samples, cache / "train_set"),
                           cache / f"{PRODUCT}.tmp.onnx")
    log.info("training the demo model (%s mode) on %s", config.mode, config.data)
    result = run_training(config)
    Path(result.path).replace(out)
    log.info("demo model ready in %.0f s: %s", time.perf_counter() - start, out)
    return out


def training_subset(samples: Path, folder: Path, per_type: int = 4) -> Path:
    """All good photos and the first few of each defect type (with masks): the threshold needs
    only a few defects, and each one costs scoring time on the first start."""
    shutil.rmtree(folder, ignore_errors=True)
    (folder / "good").mkdir(parents=True)
    for path in sorted((samples / "good").iterdir()):
        shutil.copy2(path, folder / "good" / path.name)
    for kind in sorted(p for p in (samples / "defect").glob("*") if p.is_dir()):
        for path in sorted(kind.iterdir())[:per_type]:
            (folder / "defect" / kind.name).mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, folder / "defect" / kind.name / path.name)
            mask = samples / "masks" / kind.name / f"{path.stem}.png"
            if mask.exists():
                (folder / "masks" / kind.name).mkdir(parents=True, exist_ok=True)
                shutil.copy2(mask, folder / "masks" / kind.name / mask.name)
    return folder


def _train_config(data: Path, out: Path):
    """Anomaly mode (learns from good photos in well under a minute) when available, else a
    short supervised run. Recall 0.9: the sample flanges' faintest defects would otherwise
    push the threshold into the good parts."""
    from training.config import TrainConfig

    try:
        import training.anomaly_fit  # noqa: F401
    except ImportError:
        log.warning("anomaly training is not available; a short supervised run instead")
        return TrainConfig(data=data, out=out, product=PRODUCT, mode="supervised",
                           size=(128, 128), epochs=3, max_minutes=1.5)
    return TrainConfig(data=data, out=out, product=PRODUCT, mode="anomaly", target_recall=0.9)


def demo_app(instance: Path, reset: bool = False) -> Flask:
    """The service app on the demo's own SQLite database and data folder under `instance`."""
    from qc.service import create_app

    if reset and instance.exists():
        for child in instance.iterdir():
            if child.name != "cache":  # keep the trained model
                shutil.rmtree(child) if child.is_dir() else child.unlink()
    instance.mkdir(parents=True, exist_ok=True)
    return create_app({
        "INSTANCE_PATH": str(instance),
        "DATABASE_URL": f"sqlite:///{instance / 'qc.sqlite3'}",
        "DATA_DIR": str(instance / "data"),
        "AUTO_MIGRATE": True,
    })


def is_seeded(db: Session) -> bool:
    """True when the demo product already has inspections."""
    product = db.scalar(select(Product).where(Product.name == PRODUCT))
    return product is not None and bool(
        db.scalar(select(func.count()).select_from(Inspection).where(
            Inspection.product_id == product.id)))


def create_catalog(
    db: Session, storage: Storage, model: Path
) -> tuple[ModelVersion, list[Station]]:
    """Demo users, the product with its model active, and the stations (idempotent)."""
    for username, role, password in USERS:
        if db.scalar(select(User).where(User.username == username)) is None:
            registry.create_user(db, username, role, password)
    product = db.scalar(select(Product).where(Product.name == PRODUCT))
    if product is None:
        product = registry.create_product(db, PRODUCT, "FL-80", **COSTS)
    version = registry.upload_model(db, storage, model, product, "demo", activate=True)
    stations = []
    for name, line in STATIONS:
        station = db.scalar(select(Station).where(Station.name == name))
        stations.append(station or registry.create_station(db, name, line, [PRODUCT])[0])
    return version, stations


def sample_photos(samples: Path = SAMPLES) -> list[Path]:
    """A dozen sample photos for the live part of the demo: good ones and each defect type."""
    good = sorted((samples / "good").glob("*.jpg"))[:5]
    defects = [p for t in DEFECT_MIX for p in sorted((samples / "defect" / t).glob("*.jpg"))[:2]]
    photos = good + defects[:7]
    random.Random(3).shuffle(photos)
    return photos


def inspect_samples(app: Flask, station: Station, photos: list[Path]) -> list[dict]:
    """Inspect photos through POST /api/v1/inspections as the station, as an operator would."""
    with app.app_context():
        from qc.service.database import get_session

        db = get_session()
        key = registry.issue_key(db.get(Station, station.id))
        db.commit()
    client, replies = app.test_client(), []
    for k, path in enumerate(photos):
        with path.open("rb") as fh:
            reply = client.post(
                "/api/v1/inspections",
                headers={"Authorization": f"Bearer {key}"},
                data={"image": (fh, path.name), "product": PRODUCT, "station": station.name,
                      "operator": "operator", "lot": "L-DEMO", "serial": f"FL-LIVE-{k:03d}"},
            )
        if reply.status_code != 201:
            raise RuntimeError(f"demo inspection of {path} failed: {reply.get_json()}")
        replies.append(reply.get_json())
    return replies


def flag_some(db: Session, replies: list[dict]) -> int:
    """The operator flags one failed live result as doubtful (shown on the review page)."""
    found = next((r for r in replies if r["verdict"] == "fail"), None)
    if found is None:
        return 0
    set_flag(db.get(Inspection, found["id"]), "looks fine to me", "operator")
    return 1


def prepare(
    instance: Path, model: Path | None = None, reset: bool = False, plan: Plan = Plan(),
    samples: Path = SAMPLES,
) -> tuple[Flask, dict]:
    """Build (or reuse) the demo plant under `instance`; returns the app and what was done."""
    from qc.service.database import get_session
    from qc.service.storage import get_storage

    app = demo_app(instance, reset)
    done: dict = {"seeded": 0, "live": 0}
    with app.app_context():
        db = get_session()
        if is_seeded(db):
            return app, done
        model = model or ensure_model(instance / "cache", samples)
        version, stations = create_catalog(db, get_storage(), model)
        done["taught"] = add_training_story(db, get_storage(), version, samples)
        start = time.perf_counter()
        done["seeded"] = seed_history(db, version, stations, ZoneInfo(app.config["TIMEZONE"]), plan)
        db.commit()
        log.info("seeded %d inspections in %.1f s", done["seeded"], time.perf_counter() - start)
    photos = sample_photos(samples) if (samples / "good").is_dir() else []
    replies = inspect_samples(app, stations[0], photos) if photos else []
    with app.app_context():
        db = get_session()
        done["live"], done["flagged"] = len(replies), flag_some(db, replies)
        db.commit()
    return app, done


def banner(url: str, done: dict, instance: Path, seconds: float) -> str:
    """What `qc demo` prints: the URL, the demo log-ins and where the data lives."""
    pages = {"operator": "/station", "manager": "/dashboard",
             "engineer": "/station, /dashboard, /review, /models", "admin": "everything"}
    if done.get("seeded"):
        news = f"seeded {done['seeded']:,} inspections and {done.get('live', 0)} live ones"
    else:
        news = "reusing the existing demo data (--reset starts over)"
    lines = [
        "",
        f"qc demo ready in {seconds:.0f} s ({news}) at  {url}",
        "",
        "  demo log-ins (demo accounts only):",
        *(f"    {u:<9} password {p:<15} {pages[r]}" for u, r, p in USERS),
        "",
        f"  data: {instance}   stop: Ctrl+C",
        "",
    ]
    return "\n".join(lines)
