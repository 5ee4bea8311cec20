"""The JSON API under /api/v1: inspections in (images or edge results), lists, CSV export,
reviews and statistics. Products, stations, users and models are in catalog.py.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    jsonify,
    request,
    send_file,
)
from sqlalchemy import update

from qc.db import Database
from qc.db.models import Inspection, utcnow
from qc.service import catalog, documents, openapi, photos, replies, schemas, stats
from qc.service.auth import STATION, Principal, current_principal, roles_required
from qc.service.database import get_database, get_session
from qc.service.dataset import send_zip
from qc.service.errors import ServiceError
from qc.service.ingest import (
    Resolver,
    ResultError,
    parse_result,
    parse_uuid,
    record,
    server_row,
    touch_station,
)
from qc.service.jobs import api as jobs_api
from qc.service.openapi import declare
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
from qc.service.storage import Storage, get_storage, sniff_suffix

log = logging.getLogger(__name__)

bp = Blueprint("api", __name__, url_prefix="/api/v1")
VIEWERS = (STATION, "operator", "manager", "engineer")
MAX_OFFSET = 2**31 - 1  # beyond any table here; larger ones overflow the database's integers
IMAGE_MEDIA = "image/png, image/jpeg, image/bmp, image/tiff, application/octet-stream"
PRIVATE = "private, no-store"  # photos of products are plant data: never in shared caches


@bp.get("/health")
@declare(responses={200: replies.Health})
def health() -> Any:
    """Liveness: the service answers (no authentication)."""
    return {"status": "ok"}


@bp.get("/openapi.json")
@declare(responses={200: ("application/json", {"type": "object"})})
def openapi_spec() -> Any:
    """This API described as OpenAPI 3.1 (no authentication)."""
    return jsonify(openapi.build_spec(current_app))


@bp.get("/me")
@declare(responses={200: replies.Me})
@roles_required(STATION, "operator", "manager", "engineer")
def me() -> Any:
    """Who the caller is: username and role."""
    p = current_principal()
    return {"username": p.username, "role": p.role, "via_key": p.via_key}


def _form_fields(principal: Principal) -> dict:
    form = {k: v for k, v in request.form.items() if k in ("lot", "serial", "operator")}
    try:
        fields = schemas.check(schemas.InspectionForm, {**form, "image": b"", "product": ""})
    except schemas.BodyError as exc:
        raise ServiceError(str(exc), 400) from None
    out = {k: (getattr(fields, k) or "").strip() or None for k in ("lot", "serial", "operator")}
    if principal.role == "operator":
        out["operator"] = principal.username
    return out


def _reply(insp: Inspection) -> dict:
    body = to_dict(insp, file_url)
    return {k: body[k] for k in replies.InspectionReply.model_fields}


def _known(db: Any, inspection_id: str, product_id: int, principal: Principal) -> Any:
    """A re-sent id: the recorded result if the caller may see it (else 409 / 404)."""
    known = db.get(Inspection, inspection_id)
    if known is None:
        return None
    if principal.role == STATION and known.station_id != principal.station_id:
        raise ServiceError(f"id {inspection_id} is already used by another station", 409)
    visible = get_visible(db, inspection_id, principal)  # same rule as GET: 404 otherwise
    if visible.product_id != product_id:
        raise ServiceError(f"id {inspection_id} was recorded for another product", 409)
    return jsonify(_reply(visible)), 200


def _write_after_commit(db: Any, storage: Storage, inspection_id: str,
                        files: dict[str, bytes]) -> None:
    """Commit, then write the row's files; if writing fails the row forgets them again."""
    db.commit()
    try:
        for relative, data in files.items():
            storage.save_bytes(relative, data)
    except BaseException:
        for relative in files:
            storage.delete(relative)
        db.execute(update(Inspection).where(Inspection.id == inspection_id)
                   .values(image_path=None, heatmap_path=None))
        db.commit()
        raise


@bp.post("/inspections")
@declare(form=schemas.InspectionForm, errors=(409,), responses={
    201: replies.InspectionReply, 200: replies.InspectionReply})
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
    data = photos.upload_bytes()
    known = _known(db, inspection_id, product.id, principal)
    if known is not None:
        return known
    version = product.active_model
    if version is None:
        raise ServiceError(
            f"product {product.name!r} has no active model; upload one with "
            "`qc models upload MODEL.onnx --product NAME --activate`",
            409,
        )
    storage = get_storage()
    inspector = get_inspectors().get(version.sha256, storage.resolve(version.path))
    with photos.decode_slot():
        start = time.perf_counter()
        image = photos.decode(data)
        verdict = inspector.inspect(image)
        verdict.latency_ms = (time.perf_counter() - start) * 1000
        heatmap = photos.heatmap_jpeg(image, verdict.anomaly_map)
        del image
    now = utcnow()
    files = {
        storage.inspection_path("images", inspection_id, now, sniff_suffix(data)): data,
        storage.inspection_path("heatmaps", inspection_id, now, "jpg"): heatmap,
    }
    fields["image_path"], fields["heatmap_path"] = list(files)
    row = server_row(inspection_id, product, station_id, fields, verdict.to_dict(), now)
    if not record(db, [row]):  # the same id arrived at the same moment: that one stands
        db.rollback()
        return _known(db, inspection_id, product.id, principal)
    touch_station(db, principal, now)
    _write_after_commit(db, storage, inspection_id, files)
    return jsonify(_reply(db.get(Inspection, inspection_id))), 201


def _result_list() -> list:
    try:
        body = schemas.json_body()
    except schemas.BodyError as exc:
        raise ServiceError(f"send a JSON list of results ({exc})", 400) from None
    if isinstance(body, dict):
        body = body.get("results")
    if not isinstance(body, list):
        raise ServiceError("send a JSON list of results with Content-Type: application/json")
    return body


@bp.post("/results")
@declare(body=schemas.ResultsIn, responses={200: replies.ResultsReply})
@roles_required(STATION, "engineer")
def post_results() -> Any:
    """Record results inspected at the edge; idempotent by id."""
    body = _result_list()
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
            rejected.append({"index": index, "id": ident if isinstance(ident, str) else "",
                             "error": str(exc)})
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
@declare(form=schemas.ImageForm, errors=(409,), responses={200: replies.InspectionReply})
@roles_required(STATION, "engineer")
def put_image(inspection_id: str) -> Any:
    """Attach the photo (and optional heatmap) of a result recorded at the edge, once."""
    db = get_session()
    insp = get_visible(db, inspection_id, current_principal())
    if insp.image_path is not None or insp.source != "edge":
        raise ServiceError(f"inspection {inspection_id} already has its photo", 409)
    data = photos.upload_bytes()
    heatmap = photos.upload_bytes("heatmap", required=False)
    with photos.decode_slot():
        for blob in (data, heatmap):
            if blob is not None:
                photos.decode(blob)  # refuse what is not an image before storing it
    storage = get_storage()
    files = {storage.inspection_path("images", insp.id, insp.inspected_at, sniff_suffix(data)):
             data}
    if heatmap is not None:
        files[storage.inspection_path("heatmaps", insp.id, insp.inspected_at,
                                      sniff_suffix(heatmap))] = heatmap
    paths = list(files) + [None]
    claimed = db.execute(
        update(Inspection)
        .where(Inspection.id == insp.id, Inspection.image_path.is_(None))
        .values(image_path=paths[0], heatmap_path=paths[1])
    ).rowcount
    if claimed != 1:  # another upload of this result got there first
        db.rollback()
        raise ServiceError(f"inspection {inspection_id} already has its photo", 409)
    _write_after_commit(db, storage, insp.id, files)
    db.refresh(insp)
    return jsonify(_reply(insp))


def _paging() -> tuple[int, int]:
    try:
        limit, offset = int(request.args.get("limit", 50)), int(request.args.get("offset", 0))
    except ValueError:
        raise ServiceError("limit and offset must be integers", 400) from None
    if not 0 <= offset <= MAX_OFFSET:
        raise ServiceError(f"offset must be 0..{MAX_OFFSET}", 400)
    return limit, offset


@bp.get("/inspections")
@declare(query=schemas.ListQuery, responses={200: replies.InspectionList})
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
@declare(query=schemas.FilterQuery, responses={200: ("text/csv", {"type": "string"})})
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
@declare(responses={200: replies.InspectionOut})
@roles_required(*VIEWERS)
def get_inspection(inspection_id: str) -> Any:
    """One inspection."""
    return to_dict(get_visible(get_session(), inspection_id, current_principal()), file_url)


@bp.get("/inspections/<inspection_id>/<any(image, heatmap):kind>")
@declare(responses={200: (IMAGE_MEDIA, {"type": "string", "format": "binary"})})
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
    response = send_file(path, conditional=False)
    response.headers["Cache-Control"] = PRIVATE
    return response


@bp.post("/inspections/<inspection_id>/review")
@declare(body=schemas.ReviewIn, responses={200: replies.InspectionOut})
@roles_required("engineer")
def review(inspection_id: str) -> Any:
    """Agree or disagree with a verdict, with a corrected label and a note."""
    body = schemas.body(schemas.ReviewIn)
    db = get_session()
    insp = get_visible(db, inspection_id, current_principal())
    set_review(insp, body, current_principal().username)
    db.commit()
    return to_dict(insp, file_url)


@bp.get("/stats")
@declare(query=schemas.StatsQuery, responses={200: replies.Stats})
@roles_required("manager", "engineer")
def get_stats() -> Any:
    """Totals, p-chart, Pareto and savings for a product/station and period."""
    db = get_session()
    req = stats.parse_request(db, request.args, current_app.config)
    return stats.compute(db, req, current_app.config["REVIEW_PRIOR_WEIGHT"])


@bp.get("/dataset.zip")
@declare(query=schemas.FilterQuery, responses={200: ("application/zip", {"type": "string"})})
@roles_required("engineer")
def dataset() -> Any:
    """Stored photos of ?product in `qc train` layout (reviewed only unless reviewed=false)."""
    return send_zip(request_filters())


documents.register(bp)  # before catalog: the role test rotates user keys last
jobs_api.register(bp)
catalog.register(bp)
