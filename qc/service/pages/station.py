"""The operator's station page: scan, photograph, see PASS/FAIL with the heatmap, disagree.

The page posts photos to POST /api/v1/inspections; this blueprint adds an operator flagging
their own result as doubtful. A flag is no label: an engineer reviews it on the review page.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, render_template, request

from qc.service.auth import current_principal, roles_required
from qc.service.database import get_session
from qc.service.pages.common import defect_types, page_roles, products, stations
from qc.service.queries import flag_dict, get_visible, set_flag

log = logging.getLogger(__name__)

bp = Blueprint("station", __name__)
ROLES = ("operator", "engineer")
NOTE_LIMIT = 500


@bp.get("/station")
@page_roles(*ROLES)
def page() -> Any:
    """Choose product and station once, then scan and inspect item after item."""
    db = get_session()
    items = products(db)
    return render_template(
        "station.html",
        products=[
            {"name": p.name, "has_model": p.active_model is not None, "types": defect_types(p)}
            for p in items
        ],
        stations=[{"name": s.name, "line": s.line} for s in stations(db)],
    )


@bp.post("/station/inspections/<inspection_id>/disagree")
@roles_required(*ROLES)
def disagree(inspection_id: str) -> Any:
    """Flag a verdict as doubtful (operators: their own results); an engineer reviews it."""
    body = request.get_json(silent=True) or {}
    note = str(body.get("note") or "").strip()[:NOTE_LIMIT] or "flagged at the station"
    db = get_session()
    principal = current_principal()
    insp = get_visible(db, inspection_id, principal)
    set_flag(insp, note, principal.username)
    db.commit()
    log.info("inspection %s flagged by %s", insp.id, principal.username)
    return {"id": insp.id, "operator_flag": flag_dict(insp)}


def init_app(app: Flask) -> None:
    """Register the station page."""
    app.register_blueprint(bp)
