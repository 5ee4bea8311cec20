"""Users, stations, products and model versions: plain functions over a Session, shared by the
API and the `qc` command. Errors are ServiceErrors whose message says what to do.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import asdict, fields
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from qc.db.models import ROLES, ModelActivation, ModelVersion, Product, Station, User, utcnow
from qc.economics import CostParams
from qc.modelpack import ModelPackError, file_sha256
from qc.service import schemas
from qc.service.auth import end_sessions, hash_key, hash_password, new_api_key
from qc.service.errors import ServiceError
from qc.service.model_check import check_model
from qc.service.storage import Storage

log = logging.getLogger(__name__)

COST_FIELDS = tuple(f.name for f in fields(CostParams))


def _unique(db: Session, model: type, name_attr: str, value: str, what: str) -> None:
    if db.scalar(select(model).where(getattr(model, name_attr) == value)) is not None:
        raise ServiceError(f"{what} {value!r} already exists", 409)


def _name(value: object, what: str) -> str:
    text = str(value or "").strip()
    if not text or len(text) > 64:
        raise ServiceError(f"{what} must be 1-64 characters", 400)
    return text


def find(db: Session, model: type, name: str, what: str) -> object:
    """The row of `model` with this name/username, else a 404 ServiceError."""
    attr = "username" if model is User else "name"
    row = db.scalar(select(model).where(getattr(model, attr) == name))
    if row is None:
        raise ServiceError(f"no {what} named {name!r}", 404)
    return row


def create_user(
    db: Session, username: str, role: str, password: str | None = None
) -> tuple[User, str | None]:
    """Add a user; returns (user, generated password or None when one was given)."""
    username = _name(username, "username")
    if role not in ROLES:
        raise ServiceError(f"role must be one of {', '.join(ROLES)}, not {role!r}", 400)
    _unique(db, User, "username", username, "user")
    generated = None
    if not password:
        password = generated = secrets.token_urlsafe(12)
    if len(password) < 8:
        raise ServiceError("password must have at least 8 characters", 400)
    user = User(username=username, role=role, password_hash=hash_password(password), active=True)
    db.add(user)
    db.flush()
    log.info("user %s (%s) created", username, role)
    return user, generated


def update_user(
    db: Session,
    user: User,
    role: str | None = None,
    password: str | None = None,
    active: bool | None = None,
) -> User:
    """Change a user's role, password or active flag."""
    if role is not None:
        if role not in ROLES:
            raise ServiceError(f"role must be one of {', '.join(ROLES)}, not {role!r}", 400)
        user.role = role
    if password is not None:
        if len(password) < 8:
            raise ServiceError("password must have at least 8 characters", 400)
        user.password_hash = hash_password(password)
        end_sessions(user)
    if active is not None:
        user.active = bool(active)
        if not user.active:
            end_sessions(user)
    return user



def issue_key(holder: User | Station) -> str:
    """Give a user (for scripts) or a station a new API key; the old one stops working."""
    key = new_api_key()
    holder.api_key_hash = hash_key(key)
    return key


def create_station(
    db: Session, name: str, line: str | None = None, products: list[str] | tuple[str, ...] = ()
) -> tuple[Station, str]:
    """Add a station inspecting these products; returns (station, its API key — shown once)."""
    name = _name(name, "station name")
    _unique(db, Station, "name", name, "station")
    station = Station(name=name, line=(line or None), active=True)
    station.products = [find(db, Product, p, "product") for p in dict.fromkeys(products)]
    key = issue_key(station)
    db.add(station)
    db.flush()
    return station, key


def set_station_products(db: Session, station: Station, products: list[str]) -> None:
    """The products a station inspects (replaces the list; its key downloads only their models)."""
    station.products = [find(db, Product, p, "product") for p in dict.fromkeys(products)]
    db.flush()


def check_costs(costs: dict) -> dict[str, float]:
    """Validated cost parameters (only the keys given), by the API's model of them."""
    try:
        return schemas.check(schemas.CostsIn, costs).given()
    except schemas.BodyError as exc:
        raise ServiceError(str(exc), 400) from None


def create_product(db: Session, name: str, sku: str | None = None, **costs: float) -> Product:
    """Add a product; cost parameters not given take the documented defaults."""
    name = _name(name, "product name")
    _unique(db, Product, "name", name, "product")
    values = {**asdict(CostParams()), **check_costs(costs)}
    product = Product(name=name, sku=sku or None, **values)
    db.add(product)
    db.flush()
    return product


def upload_model(
    db: Session,
    storage: Storage,
    path: Path,
    product: Product,
    username: str | None,
    activate: bool = False,
) -> ModelVersion:
    """Store a qc ONNX package for a product (idempotent by checksum); optionally activate it."""
    try:
        info = check_model(path)  # metadata types and a warm-up run, now, not at inspection
    except ModelPackError as exc:
        raise ServiceError(f"not a usable qc model: {exc}", 400) from exc
    if info.product != product.name:
        raise ServiceError(
            f"the model was trained for product {info.product!r}, not {product.name!r}; "
            f"train one for it with `qc train DATA --product {product.name} ...`, or upload "
            f"this one with --product {info.product}", 400
        )
    sha = file_sha256(path)
    version = db.scalar(
        select(ModelVersion).where(
            ModelVersion.product_id == product.id, ModelVersion.sha256 == sha
        )
    )
    if version is None:
        version = ModelVersion(
            product_id=product.id,
            version=(info.version or sha[:12])[:64],
            sha256=sha,
            path=storage.save_model(path, sha),
            info=asdict(info),
            uploaded_by=username,
        )
        db.add(version)
        db.flush()
        log.info("model %s (%s) uploaded for %s", version.version, sha[:12], product.name)
    if activate and product.active_model_id != version.id:
        activate_model(db, product, version, username)
    return version


def activate_model(
    db: Session,
    product: Product,
    version: ModelVersion,
    username: str | None,
    action: str = "activate",
) -> None:
    """Make a version the product's active model and record who did it and when."""
    if version.product_id != product.id:
        raise ServiceError(f"model {version.id} belongs to another product", 400)
    product.active_model_id = version.id
    db.add(
        ModelActivation(
            product_id=product.id,
            model_version_id=version.id,
            action=action,
            username=username,
            at=utcnow(),
        )
    )
    db.flush()
    log.info("%s: model %s %sd by %s", product.name, version.version, action, username)


def rollback_model(db: Session, product: Product, username: str | None) -> ModelVersion:
    """Re-activate the model that was active before the current one."""
    history = db.scalars(
        select(ModelActivation)
        .where(ModelActivation.product_id == product.id)
        .order_by(ModelActivation.at.desc(), ModelActivation.id.desc())
    ).all()
    for entry in history:
        if entry.model_version_id != product.active_model_id:
            version = db.get(ModelVersion, entry.model_version_id)
            activate_model(db, product, version, username, action="rollback")
            return version
    raise ServiceError(f"product {product.name!r} has no earlier model to roll back to", 409)


def product_dict(p: Product) -> dict:
    """JSON view of a product."""
    active = p.active_model
    return {
        "name": p.name,
        "sku": p.sku,
        "costs": {k: getattr(p, k) for k in COST_FIELDS},
        "active_model": model_dict(active, active.id) if active else None,
    }


def model_dict(v: ModelVersion, active_id: int | None = None) -> dict:
    """JSON view of a model version."""
    return {
        "id": v.id,
        "version": v.version,
        "sha256": v.sha256,
        "active": v.id == active_id,
        "uploaded_by": v.uploaded_by,
        "uploaded_at": v.uploaded_at.isoformat(),
        "mode": v.info.get("mode"),
        "defect_types": v.info.get("defect_types", []),
        "metrics": v.info.get("metrics", {}),
        "input_size": v.info.get("input_size"),
    }


def station_dict(s: Station) -> dict:
    """JSON view of a station (never its key)."""
    seen = s.last_seen_at.isoformat() if s.last_seen_at else None
    return {"name": s.name, "line": s.line, "active": s.active, "last_seen_at": seen,
            "products": sorted(p.name for p in s.products)}


def user_dict(u: User) -> dict:
    """JSON view of a user (never the hashes)."""
    return {
        "username": u.username,
        "role": u.role,
        "active": u.active,
        "has_api_key": u.api_key_hash is not None,
    }
