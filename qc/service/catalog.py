"""API routes for products, stations, users and model versions (registered on the api blueprint
by register(); the work is done in registry.py)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from flask import Blueprint, jsonify, request, send_file
from sqlalchemy import select

from qc.db.models import ModelActivation, ModelVersion, Product, Station, User
from qc.service import registry, replies, schemas
from qc.service.auth import STATION, current_principal, roles_required
from qc.service.database import get_session
from qc.service.dataset import safe_name
from qc.service.errors import ServiceError
from qc.service.openapi import declare
from qc.service.storage import get_storage

log = logging.getLogger(__name__)

TRUE = ("1", "true", "yes", "on")


def _body(model: type[schemas.T]) -> schemas.T:
    try:
        return schemas.body(model)
    except schemas.BodyError as exc:
        raise ServiceError(str(exc), 400) from None


def _product(name: str) -> Product:
    return registry.find(get_session(), Product, name, "product")


@declare(responses={200: replies.ProductList})
@roles_required(STATION, "operator", "manager", "engineer")
def list_products() -> Any:
    """Products with their cost parameters and active model."""
    rows = get_session().scalars(select(Product).order_by(Product.name)).all()
    return {"items": [registry.product_dict(p) for p in rows]}


@declare(body=schemas.ProductIn, errors=(409,), responses={201: replies.ProductOut})
@roles_required("admin")
def create_product() -> Any:
    """Add a product: {"name", "sku"?, cost parameters?}."""
    body, db = _body(schemas.ProductIn), get_session()
    product = registry.create_product(db, body.name, body.sku, **body.given())
    db.commit()
    return jsonify(registry.product_dict(product)), 201


@declare(body=schemas.ProductPatch, responses={200: replies.ProductOut})
@roles_required("admin")
def update_product(name: str) -> Any:
    """Change a product's SKU or cost parameters."""
    body, db = _body(schemas.ProductPatch), get_session()
    product = _product(name)
    for key, value in registry.check_costs(body.given()).items():
        setattr(product, key, value)
    if "sku" in body.model_fields_set:
        product.sku = body.sku or None
    db.commit()
    return registry.product_dict(product)


@declare(responses={200: ("application/octet-stream", {"type": "string", "format": "binary"})})
@roles_required(STATION, "engineer")
def download_model(name: str) -> Any:
    """The product's active model file (a station's key: only products linked to it).

    X-Model-Version is the version label percent-encoded (UTF-8), so any label is one safe line.
    """
    product = _product(name)
    principal = current_principal()
    if principal.role == STATION:
        station = get_session().get(Station, principal.station_id)
        if product not in station.products:
            raise ServiceError(
                f"station {station.name!r} is not linked to product {name!r}; an admin links it"
                f" with `qc stations set --name {station.name} --product {name}`", 403)
    version = product.active_model
    if version is None:
        raise ServiceError(f"product {name!r} has no active model", 404)
    response = send_file(
        get_storage().resolve(version.path),
        mimetype="application/octet-stream",
        as_attachment=True,
        download_name=safe_name(f"{name}-{version.version}", "model") + ".onnx",
    )
    response.headers["X-Model-Sha256"] = version.sha256
    response.headers["X-Model-Version"] = quote(version.version, safe="")
    return response


@declare(errors=(409,), responses={200: replies.ModelOut})
@roles_required("engineer")
def rollback(name: str) -> Any:
    """Re-activate the model that was active before the current one."""
    db = get_session()
    product = _product(name)
    version = registry.rollback_model(db, product, current_principal().username)
    db.commit()
    return registry.model_dict(version, product.active_model_id)


@declare(query=schemas.ProductQuery, responses={200: replies.ModelList})
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


@declare(form=schemas.ModelForm, errors=(404,), responses={201: replies.ModelOut})
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


@declare(responses={200: replies.ModelOut})
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


@declare(responses={200: replies.StationList})
@roles_required("manager", "engineer")
def list_stations() -> Any:
    """Stations and when each was last heard from."""
    rows = get_session().scalars(select(Station).order_by(Station.name)).all()
    return {"items": [registry.station_dict(s) for s in rows]}


@declare(body=schemas.StationIn, errors=(404, 409), responses={201: replies.StationWithKey})
@roles_required("admin")
def create_station() -> Any:
    """Add a station inspecting some products; the reply holds its API key, shown this once."""
    body, db = _body(schemas.StationIn), get_session()
    station, key = registry.create_station(db, body.name, body.line, body.products)
    db.commit()
    return jsonify({**registry.station_dict(station), "api_key": key}), 201


@declare(body=schemas.StationPatch, responses={200: replies.StationOut})
@roles_required("admin")
def update_station(name: str) -> Any:
    """Change a station's line or the products it inspects."""
    body, db = _body(schemas.StationPatch), get_session()
    station = registry.find(db, Station, name, "station")
    if "line" in body.model_fields_set:
        station.line = body.line or None
    if body.products is not None:
        registry.set_station_products(db, station, body.products)
    db.commit()
    return registry.station_dict(station)


@declare(responses={200: replies.StationWithKey})
@roles_required("admin")
def rotate_station_key(name: str) -> Any:
    """Give a station a new API key (the old one stops working)."""
    return _new_key(Station, name, "station", registry.station_dict)


@declare(responses={200: replies.UserList})
@roles_required("admin")
def list_users() -> Any:
    """Users and roles."""
    rows = get_session().scalars(select(User).order_by(User.username)).all()
    return {"items": [registry.user_dict(u) for u in rows]}


@declare(body=schemas.UserIn, errors=(409,), responses={201: replies.UserCreated})
@roles_required("admin")
def create_user() -> Any:
    """Add a user: {"username", "role", "password"?}; a generated password is returned once."""
    body, db = _body(schemas.UserIn), get_session()
    user, generated = registry.create_user(db, body.username, body.role, body.password)
    db.commit()
    return jsonify({**registry.user_dict(user), "password": generated}), 201


@declare(body=schemas.UserPatch, responses={200: replies.UserOut})
@roles_required("admin")
def update_user(username: str) -> Any:
    """Change a user's role, password or active flag (a new password ends their sessions)."""
    body, db = _body(schemas.UserPatch), get_session()
    user = registry.find(db, User, username, "user")
    registry.update_user(db, user, body.role, body.password, body.active)
    db.commit()
    return registry.user_dict(user)


@declare(responses={200: replies.UserWithKey})
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
    ("/models/<int(max=2147483647):model_id>/activate", activate, "POST"),  # an INTEGER column
    ("/stations", list_stations, "GET"),
    ("/stations", create_station, "POST"),
    ("/stations/<name>", update_station, "PATCH"),
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
