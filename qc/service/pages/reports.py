"""The managers' reports page: issue a signed period quality report or a lot certificate, and
show the plant's public key to hand to customers and lenders (docs/reports.md)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy import select

from qc.db.models import Inspection
from qc.reports.keyring import public_pem
from qc.reports.pdf import PAPERS
from qc.reports.period import ReportPeriod
from qc.service.database import get_session
from qc.service.documents import FORMATS, ISSUERS, choice, get_keyring
from qc.service.errors import ServiceError
from qc.service.pages.common import page_roles, products

log = logging.getLogger(__name__)

bp = Blueprint("reports", __name__)


def _issue(action: str, product_names: list[str]) -> Any:
    """The API URL a filled-in form asks for; ServiceError with what to fix otherwise."""
    fmt = choice("format", FORMATS, "pdf")
    paper = choice("paper", PAPERS, "a4")
    if action == "report":
        period = ReportPeriod.from_args(request.args)
        if period.product and period.product not in product_names:
            raise ServiceError(f"no product named {period.product!r}")
        args = {"from": period.first.isoformat(), "to": period.last.isoformat()}
        if period.product:
            args["product"] = period.product
        return url_for("api.quality_report", format=fmt, paper=paper, **args)
    lot = (request.args.get("lot") or "").strip()
    if not lot:
        raise ServiceError("give the lot number")
    found = get_session().scalar(select(Inspection.id).where(Inspection.lot == lot).limit(1))
    if found is None:
        raise ServiceError(f"no inspections in lot {lot!r}")
    return url_for("api.lot_certificate", lot=lot, format=fmt, paper=paper)


@bp.get("/reports")
@page_roles(*ISSUERS)
def page() -> Any:
    """The forms; a filled-in form is sent on to the signed document's API URL."""
    names = [p.name for p in products(get_session())]
    action, error = request.args.get("action"), None
    if action in ("report", "certificate"):
        try:
            return redirect(_issue(action, names), 303)
        except ServiceError as exc:
            error = exc.message
    today = datetime.now(ZoneInfo(current_app.config["TIMEZONE"])).date()
    key = get_keyring().current()
    return render_template(
        "reports.html", products=names, papers=PAPERS, error=error, args=request.args,
        first=request.args.get("from") or (today - timedelta(days=29)).isoformat(),
        last=request.args.get("to") or today.isoformat(),
        fingerprint=key.fingerprint, pem=public_pem(key.public))


@bp.get("/reports/plant.pem")
@page_roles(*ISSUERS)
def public_key() -> Any:
    """The current public key as a PEM file, to send with the documents."""
    pem = public_pem(get_keyring().current().public)
    return Response(pem, mimetype="application/x-pem-file",
                    headers={"Content-Disposition": 'attachment; filename="plant.pem"'})


def init_app(app: Flask) -> None:
    """Register the reports page."""
    app.register_blueprint(bp)
