"""The JSON API under /api/v1: inspections in (images or edge results), lists, CSV export,
reviews and statistics. Products, stations, users and models are in catalog.py.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import cv2
import numpy as np
from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    request,
    send_file,
)
from werkzeug.datastructures import FileStorage

from qc.db import Database
from qc.db.models import Inspection, utcnow
from qc.heatmap import encode_jpeg, overlay
from qc.imaging import ImageError, read_image
from qc.service import catalog, openapi, stats
from qc.service.auth import STATION, Principal, current_principal, roles_required
from qc.service.database import get_database, get_session
from qc.service.dataset import send_zip
from qc.service.errors import ServiceError
from qc.service.ingest import (
    TEXT_LIMITS,
    Resolver,
    ResultError,
    parse_result,
    parse_uuid,
    record,
    server_row,
    touch_station,
)
from qc.service.jobs import api as jobs_api
from qc.service.queries import (
    file_url,
    get_visible,
    iter_csv,
    list_page,
    request_filters,
    set_review,
    to_dict,
)
from qc.service.runner import get_inspectors
from qc.service.storage import get_storage, sniff_suffix

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api/v1")
HEATMAP_MAX_SIDE = 1280  # stored heatmaps are for eyes, not measurement
VIEWERS = (STATION, "operator", "manager", "engineer")
_OBJECT_REPR = re.compile(r" ?<[^<>]* at 0x[0-9a-f]+>")


@bp.get("/health")
def health() -> Any:
    """Liveness: the service answers (no authentication)."""
    return {"status": "ok"}


@bp.get("/openapi.json")
def openapi_spec() -> Any:
    """This API described as OpenAPI 3.1 (no authentication)."""
    return jsonify(openapi.build_spec(current_app))


@bp.get("/me")
@roles_required(STATION, "operator", "manager", "engineer")
def me() -> Any:
    """Who the caller is: username and role."""
    p = current_principal()
    return {"username": p.username, "role": p.role, "via_key": p.via_key}


def _image_upload(field: str = "image", required: bool = True) -> bytes | None:
    upload: FileStorage | None = request.files.get(field)
    if upload is None:
        if not required:
            return None
        got = ", ".join(sorted(set(request.files) | set(request.form))) or "none"
        raise ServiceError(
            f"send the photo as multipart/form-data file field {field!r} (fields received: {got})"
        )
    data = upload.read()
    if not data:
        raise ServiceError(f"field {field!r} is an empty file")
    return data


def _decode(data: bytes) -> np.ndarray:
    try:
        return read_image(data, max_pixels=current_app.config["MAX_IMAGE_PIXELS"])
    except ImageError as exc:
        message = _OBJECT_REPR.sub("", str(exc))  # Pillow names the BytesIO it was given
        raise ServiceError(f"image refused: {message}", 400) from None


def _form_fields(principal: Principal) -> dict:
    fields = {}
    for key in ("lot", "serial", "operator"):
        value = (request.form.get(key) or "").strip() or None
        if value and len(value) > TEXT_LIMITS[key]:
            raise ServiceError(f"{key} is longer than {TEXT_LIMITS[key]} characters")
        fields[key] = value
    if principal.role == "operator":
        fields["operator"] = principal.username
    return fields


def _heatmap_jpeg(image: np.ndarray, amap: np.ndarray) -> bytes:
    scale = HEATMAP_MAX_SIDE / max(image.shape[:2])
    if scale < 1:
        size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        amap = cv2.resize(amap, size, interpolation=cv2.INTER_LINEAR)
    return encode_jpeg(overlay(image, amap), quality=85)


def _reply(insp: Inspection) -> dict:
    body = to_dict(insp, file_url)
    return {
        k: body[k]
        for k in (
            "id",
            "product",
            "station",
            "verdict",
            "score",
            "defect_type",
            "model_version",
            "latency_ms",
            "inspected_at",
            "heatmap_url",
            "image_url",
        )
    }


@bp.post("/inspections")
@roles_required(STATION, "operator", "engineer")
def create_inspection() -> Any:
    """Inspect an uploaded photo with the product's active model and record the result."""
    principal, db = current_principal(), get_session()
    resolve = Resolver(db, principal)
    try:
        product = resolve.product(request.form.get("product"))
        station_id = resolve.station_id(request.form.get("station"))
        given = request.form.get("id")
        inspection_id = parse_uuid(given) if given else str(uuid.uuid4())
    except ResultError as exc:
        raise ServiceError(str(exc), 400) from None
    fields = _form_fields(principal)
    data = _image_upload()
    known = db.get(Inspection, inspection_id)
    if known is not None:
        if principal.role == STATION and known.station_id != principal.station_id:
            raise ServiceError(f"id {inspection_id} is already used by another station", 409)
        return jsonify(_reply(known)), 200
    version = product.active_model
    if version is None:
        raise ServiceError(
            f"product {product.name!r} has no active model; upload one with "
            "`qc models upload MODEL.onnx --product NAME --activate`",
            409,
        )
    storage = get_storage()
    start = time.perf_counter()
    image = _decode(data)
    verdict = get_inspectors().get(version.sha256, storage.resolve(version.path)).inspect(image)
    verdict.latency_ms = (time.perf_counter() - start) * 1000
    now = utcnow()
    fields["image_path"] = storage.save_inspection_file(
        "images", inspection_id, now, data, sniff_suffix(data)
    )
    fields["heatmap_path"] = storage.save_inspection_file(
        "heatmaps", inspection_id, now, _heatmap_jpeg(image, verdict.anomaly_map), "jpg"
    )
    record(db, [server_row(inspection_id, product, station_id, fields, verdict.to_dict(), now)])
    touch_station(db, principal, now)
    db.commit()
    return jsonify(_reply(db.get(Inspection, inspection_id))), 201


@bp.post("/results")
@roles_required(STATION, "engineer")
def post_results() -> Any:
    """Record results inspected at the edge; idempotent by id."""
    body = request.get_json(silent=True)
    if isinstance(body, dict):
        body = body.get("results")
    if not isinstance(body, list):
        raise ServiceError("send a JSON list of results with Content-Type: application/json")
    limit = current_app.config["MAX_BATCH"]
    if len(body) > limit:
        raise ServiceError(f"{len(body)} results in one batch; send at most {limit}", 413)
    db, now = get_session(), utcnow()
    resolve = Resolver(db, current_principal())
    rows, rejected = [], []
    for index, item in enumerate(body):
        try:
            rows.append(parse_result(item, resolve, now))
        except ResultError as exc:
            ident = item.get("id") if isinstance(item, dict) else None
            rejected.append({"index": index, "id": ident, "error": str(exc)})
    inserted = record(db, rows)
    touch_station(db, current_principal(), now)
    db.commit()
    if rejected:
        log.warning(
            "results: %d of %d rejected, first: %s", len(rejected), len(body), rejected[0]["error"]
        )
    return {
        "received": len(body),
        "accepted": len(inserted),
        "already_known": len(rows) - len(inserted),
        "rejected": rejected,
    }


@bp.put("/inspections/<inspection_id>/image")
@roles_required(STATION, "engineer")
def put_image(inspection_id: str) -> Any:
    """Attach the photo (and optional heatmap) of a result recorded at the edge."""
    db = get_session()
    insp = get_visible(db, inspection_id, current_principal())
    data = _image_upload()
    _decode(data)  # refuse what is not an image before storing it
    storage = get_storage()
    insp.image_path = storage.save_inspection_file(
        "images", insp.id, insp.inspected_at, data, sniff_suffix(data)
    )
    heatmap = _image_upload("heatmap", required=False)
    if heatmap is not None:
        _decode(heatmap)
        insp.heatmap_path = storage.save_inspection_file(
            "heatmaps", insp.id, insp.inspected_at, heatmap, sniff_suffix(heatmap)
        )
    db.commit()
    return jsonify(_reply(insp))


def _paging() -> tuple[int, int]:
    try:
        return int(request.args.get("limit", 50)), int(request.args.get("offset", 0))
    except ValueError:
        raise ServiceError("limit and offset must be integers", 400) from None


@bp.get("/inspections")
@roles_required(*VIEWERS)
def list_inspections() -> Any:
    """Inspections, newest first, filtered; operators see their own, stations theirs."""
    limit, offset = _paging()
    items, more = list_page(get_session(), request_filters(), current_principal(), limit, offset)
    return {
        "items": [to_dict(i, file_url) for i in items],
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if more else None,
    }


def _own_session(database: Database, producer: Any, *args: Any) -> Iterator[str]:
    """Run a streaming producer on its own session: it outlives the request's."""
    db = database.session()
    try:
        yield from producer(db, *args)
    finally:
        db.close()


@bp.get("/inspections.csv")
@roles_required("manager", "engineer")
def export_csv() -> Any:
    """The filtered inspections as CSV (oldest first), streamed."""
    chunks = _own_session(get_database(), iter_csv, request_filters(), current_principal())
    name = f"inspections-{utcnow():%Y%m%d-%H%M}.csv"
    return Response(
        chunks,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/inspections/<inspection_id>")
@roles_required(*VIEWERS)
def get_inspection(inspection_id: str) -> Any:
    """One inspection."""
    return to_dict(get_visible(get_session(), inspection_id, current_principal()), file_url)


@bp.get("/inspections/<inspection_id>/<any(image, heatmap):kind>")
@roles_required(*VIEWERS)
def inspection_file(inspection_id: str, kind: str) -> Any:
    """The stored photo or heatmap of an inspection (404 once retention removed it)."""
    insp = get_visible(get_session(), inspection_id, current_principal())
    relative = insp.image_path if kind == "image" else insp.heatmap_path
    path = get_storage().resolve(relative) if relative else None
    if path is None or not path.exists():
        raise ServiceError(
            f"no {kind} stored for {inspection_id} (retention may have removed it)", 404
        )
    return send_file(path, max_age=3600)


@bp.post("/inspections/<inspection_id>/review")
@roles_required("engineer")
def review(inspection_id: str) -> Any:
    """Agree or disagree with a verdict, with a corrected label and a note."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ServiceError('send JSON like {"review": "disagree", "label": "good", "note": "..."}')
    db = get_session()
    insp = get_visible(db, inspection_id, current_principal())
    set_review(insp, body, current_principal().username)
    db.commit()
    return to_dict(insp, file_url)


@bp.get("/stats")
@roles_required("manager", "engineer")
def get_stats() -> Any:
    """Totals, p-chart, Pareto and savings for a product/station and period."""
    db = get_session()
    req = stats.parse_request(db, request.args, current_app.config)
    return stats.compute(db, req, current_app.config["REVIEW_PRIOR_WEIGHT"])


@bp.get("/dataset.zip")
@roles_required("engineer")
def dataset() -> Any:
    """Stored photos of ?product in `qc train` layout (reviewed only unless reviewed=false)."""
    return send_zip(request_filters())


jobs_api.register(bp)
catalog.register(bp)
