"""API routes for products, stations, users and model versions (registered on the api blueprint
by register(); the work is done in registry.py)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Blueprint, jsonify, request, send_file
from sqlalchemy import select

from qc.db.models import ModelActivation, ModelVersion, Product, Station, User
from qc.service import registry
from qc.service.auth import STATION, current_principal, roles_required
from qc.service.database import get_session
from qc.service.errors import ServiceError
from qc.service.storage import get_storage

log = logging.getLogger(__name__)

TRUE = ("1", "true", "yes", "on")


def _json() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ServiceError("send a JSON object with Content-Type: application/json")
    return body


def _product(name: str) -> Product:
    return registry.find(get_session(), Product, name, "product")


@roles_required(STATION, "operator", "manager", "engineer")
def list_products() -> Any:
    """Products with their cost parameters and active model."""
    rows = get_session().scalars(select(Product).order_by(Product.name)).all()
    return {"items": [registry.product_dict(p) for p in rows]}


@roles_required("admin")
def create_product() -> Any:
    """Add a product: {"name", "sku"?, cost parameters?}."""
    body, db = _json(), get_session()
    costs = {k: v for k, v in body.items() if k not in ("name", "sku")}
    product = registry.create_product(db, body.get("name"), body.get("sku"), **costs)
    db.commit()
    return jsonify(registry.product_dict(product)), 201


@roles_required("admin")
def update_product(name: str) -> Any:
    """Change a product's SKU or cost parameters."""
    body, db = _json(), get_session()
    product = _product(name)
    for key, value in registry.check_costs({k: v for k, v in body.items() if k != "sku"}).items():
        setattr(product, key, value)
    if "sku" in body:
        product.sku = body["sku"] or None
    db.commit()
    return registry.product_dict(product)


@roles_required(STATION, "engineer")
def download_model(name: str) -> Any:
    """The product's active model file (stations fetch it to inspect locally)."""
    version = _product(name).active_model
    if version is None:
        raise ServiceError(f"product {name!r} has no active model", 404)
    response = send_file(
        get_storage().resolve(version.path),
        mimetype="application/octet-stream",
        as_attachment=True,
        download_name=f"{name}-{version.version}.onnx",
    )
    response.headers["X-Model-Sha256"] = version.sha256
    response.headers["X-Model-Version"] = version.version
    return response


@roles_required("engineer")
def rollback(name: str) -> Any:
    """Re-activate the model that was active before the current one."""
    db = get_session()
    product = _product(name)
    version = registry.rollback_model(db, product, current_principal().username)
    db.commit()
    return registry.model_dict(version, product.active_model_id)


@roles_required("manager", "engineer")
def list_models() -> Any:
    """Model versions (of ?product=NAME) with activation history."""
    db = get_session()
    query = select(ModelVersion).order_by(ModelVersion.id.desc())
    history = select(ModelActivation).order_by(ModelActivation.at.desc())
    if request.args.get("product"):
        product = _product(request.args["product"])
        query = query.where(ModelVersion.product_id == product.id)
        history = history.where(ModelActivation.product_id == product.id)
    actives = set(db.scalars(select(Product.active_model_id)))
    items = [
        {**registry.model_dict(v, v.id if v.id in actives else None), "product": v.product.name}
        for v in db.scalars(query)
    ]
    events = [
        {
            "model_id": a.model_version_id,
            "action": a.action,
            "by": a.username,
            "at": a.at.isoformat(),
        }
        for a in db.scalars(history.limit(200))
    ]
    return {"items": items, "activations": events}


@roles_required("engineer")
def upload_model() -> Any:
    """Upload a qc ONNX package (multipart 'model' + 'product', optional activate=true)."""
    upload = request.files.get("model")
    if upload is None:
        raise ServiceError("send the ONNX file as multipart/form-data field 'model'")
    db = get_session()
    product = _product(request.form.get("product", ""))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "upload.onnx"
        upload.save(path)
        version = registry.upload_model(
            db,
            get_storage(),
            path,
            product,
            current_principal().username,
            activate=request.form.get("activate", "").lower() in TRUE,
        )
    db.commit()
    return jsonify(registry.model_dict(version, product.active_model_id)), 201


@roles_required("engineer")
def activate(model_id: int) -> Any:
    """Make a model version its product's active model."""
    db = get_session()
    version = db.get(ModelVersion, model_id)
    if version is None:
        raise ServiceError(f"no model version {model_id}", 404)
    registry.activate_model(db, version.product, version, current_principal().username)
    db.commit()
    return registry.model_dict(version, version.id)


@roles_required("manager", "engineer")
def list_stations() -> Any:
    """Stations and when each was last heard from."""
    rows = get_session().scalars(select(Station).order_by(Station.name)).all()
    return {"items": [registry.station_dict(s) for s in rows]}


@roles_required("admin")
def create_station() -> Any:
    """Add a station; the reply holds its API key, shown this once."""
    body, db = _json(), get_session()
    station, key = registry.create_station(db, body.get("name"), body.get("line"))
    db.commit()
    return jsonify({**registry.station_dict(station), "api_key": key}), 201


@roles_required("admin")
def rotate_station_key(name: str) -> Any:
    """Give a station a new API key (the old one stops working)."""
    return _new_key(Station, name, "station", registry.station_dict)


@roles_required("admin")
def list_users() -> Any:
    """Users and roles."""
    rows = get_session().scalars(select(User).order_by(User.username)).all()
    return {"items": [registry.user_dict(u) for u in rows]}


@roles_required("admin")
def create_user() -> Any:
    """Add a user: {"username", "role", "password"?}; a generated password is returned once."""
    body, db = _json(), get_session()
    user, generated = registry.create_user(
        db, body.get("username"), body.get("role"), body.get("password")
    )
    db.commit()
    return jsonify({**registry.user_dict(user), "password": generated}), 201


@roles_required("admin")
def update_user(username: str) -> Any:
    """Change a user's role, password or active flag."""
    body, db = _json(), get_session()
    user = registry.find(db, User, username, "user")
    registry.update_user(db, user, body.get("role"), body.get("password"), body.get("active"))
    db.commit()
    return registry.user_dict(user)


@roles_required("admin")
def issue_user_key(username: str) -> Any:
    """Give a user an API key for scripts (shown once; replaces the previous one)."""
    return _new_key(User, username, "user", registry.user_dict)


def _new_key(model: type, name: str, what: str, as_dict: Callable[[Any], dict]) -> dict:
    """Give the user or station named `name` a new API key; its JSON view with the key."""
    db = get_session()
    holder = registry.find(db, model, name, what)
    key = registry.issue_key(holder)
    db.commit()
    return {**as_dict(holder), "api_key": key}


ROUTES = (
    ("/products", list_products, "GET"),
    ("/products", create_product, "POST"),
    ("/products/<name>", update_product, "PATCH"),
    ("/products/<name>/model", download_model, "GET"),
    ("/products/<name>/rollback", rollback, "POST"),
    ("/models", list_models, "GET"),
    ("/models", upload_model, "POST"),
    ("/models/<int:model_id>/activate", activate, "POST"),
    ("/stations", list_stations, "GET"),
    ("/stations", create_station, "POST"),
    ("/stations/<name>/key", rotate_station_key, "POST"),
    ("/users", list_users, "GET"),
    ("/users", create_user, "POST"),
    ("/users/<username>", update_user, "PATCH"),
    ("/users/<username>/key", issue_user_key, "POST"),
)


def register(bp: Blueprint) -> None:
    """Add the catalog routes to the api blueprint."""
    for rule, view, method in ROUTES:
        bp.add_url_rule(rule, view_func=view, methods=[method])
