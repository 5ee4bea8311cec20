"""Signed documents over HTTP: GET /api/v1/reports/quality (the period quality report) and
GET /api/v1/lots/LOT/certificate (the lot certificate), as signed JSON or signed PDF.

The payloads come from qc.reports (the same numbers as /api/v1/stats), the key from the
instance folder (created at start-up, `qc keys show`); docs/reports.md.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from qc.db.models import utcnow
from qc.reports import lot as lot_report
from qc.reports import period as period_report
from qc.reports import render
from qc.reports.keyring import Keyring
from qc.reports.pdf import PAPERS
from qc.reports.signing import sign_document, sign_pdf
from qc.service import schemas
from qc.service.auth import current_principal, roles_required
from qc.service.database import get_session
from qc.service.errors import ServiceError
from qc.service.openapi import declare

log = logging.getLogger(__name__)

ISSUERS = ("manager", "engineer")  # and admin; operators and stations get 403
FORMATS = ("json", "pdf")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def get_keyring() -> Keyring:
    """The app's signing keys (instance folder)."""
    return current_app.extensions["qc.keyring"]


def choice(name: str, allowed: tuple[str, ...] | dict, default: str) -> str:
    """A query argument that must be one of `allowed` (400 otherwise)."""
    value = (request.args.get(name) or default).strip().lower()
    if value not in allowed:
        raise ServiceError(f"{name} must be one of {', '.join(allowed)}, not {value!r}", 400)
    return value


def _send(payload: dict, fmt: str, paper: str, to_pdf: Callable[[dict, str], bytes],
          filename: str) -> Response:
    """Sign a payload and answer it as JSON document or as PDF carrying that document."""
    key = get_keyring().current()
    document = sign_document(payload, key)
    if fmt == "json":
        response = jsonify(document)
        suffix = "json"
    else:
        response = Response(sign_pdf(to_pdf(document, paper), key), mimetype="application/pdf")
        suffix = "pdf"
    response.headers["Content-Disposition"] = f'inline; filename="{filename}.{suffix}"'
    response.headers["Cache-Control"] = "no-store"
    return response


SIGNED = ("application/json, application/pdf",
          {"description": "JSON: {payload, signature}; PDF: attaches that document, signed"})


@declare(query=schemas.ReportQuery, responses={200: SIGNED})
@roles_required(*ISSUERS)
def quality_report() -> Any:
    """The signed period quality report (?from=YYYY-MM-DD&to=YYYY-MM-DD[&product=]
    [&format=json|pdf][&paper=a4|letter])."""
    fmt, paper = choice("format", FORMATS, "json"), choice("paper", PAPERS, "a4")
    period = period_report.ReportPeriod.from_args(request.args)
    payload = period_report.build(get_session(), period, current_app.config,
                                  current_principal().username, utcnow())
    name = f"quality-report-{period.first}-{period.last}"
    if period.product:
        name += "-" + _UNSAFE.sub("_", period.product)
    return _send(payload, fmt, paper, render.quality_report, name)


@declare(query=schemas.CertificateQuery, responses={200: SIGNED})
@roles_required(*ISSUERS)
def lot_certificate(lot: str) -> Any:
    """The signed certificate of conformance of a lot ([?product=][&format=pdf|json]
    [&paper=a4|letter])."""
    fmt, paper = choice("format", FORMATS, "pdf"), choice("paper", PAPERS, "a4")
    product = (request.args.get("product") or "").strip() or None
    payload = lot_report.build(get_session(), lot, product, current_principal().username,
                               utcnow())
    return _send(payload, fmt, paper, render.lot_certificate,
                 f"certificate-{_UNSAFE.sub('_', lot)[:64]}")


def register(bp: Blueprint) -> None:
    """Add the document routes to the api blueprint (lot names may hold slashes)."""
    bp.add_url_rule("/reports/quality", view_func=quality_report, methods=["GET"])
    bp.add_url_rule("/lots/<path:lot>/certificate", view_func=lot_certificate, methods=["GET"])


def init_app(app: Flask) -> None:
    """The signing key: created in the instance folder on first start (mode 0600)."""
    keyring = Keyring(app.instance_path)
    keyring.ensure()
    app.extensions["qc.keyring"] = keyring
