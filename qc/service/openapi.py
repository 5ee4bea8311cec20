"""The OpenAPI 3.1 description of /api/v1, built from the app's routes (so no route is missing)
with hand-written request and response shapes for the endpoints stations and scripts rely on.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from flask import Flask

import qc

log = logging.getLogger(__name__)

PREFIX = "/api/v1"
_CONVERTER = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")
STR, NUM, INT = {"type": "string"}, {"type": "number"}, {"type": "integer"}
NULLABLE_STR = {"type": ["string", "null"]}


def _q(name: str, description: str, schema: dict | None = None) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or STR,
    }


FILTERS = [
    _q("product", "product name"),
    _q("station", "station name"),
    _q("lot", "lot"),
    _q("serial", "serial number"),
    _q("operator", "operator"),
    _q("verdict", "pass or fail", {"enum": ["pass", "fail"]}),
    _q("defect_type", "defect type"),
    _q("reviewed", "true/false", {"type": "boolean"}),
    _q("from", "ISO 8601; naive = plant time zone"),
    _q("to", "ISO 8601 (exclusive)"),
]
RESULT = {
    "type": "object",
    "required": ["id", "product", "timestamp", "score"],
    "properties": {
        "id": {"type": "string", "format": "uuid", "description": "client UUID: idempotency"},
        "product": STR,
        "station": {**STR, "description": "defaults to the key's station"},
        "timestamp": {**STR, "format": "date-time", "description": "naive = UTC"},
        "score": {**NUM, "minimum": 0, "maximum": 1},
        "verdict": {"enum": ["pass", "fail"], "description": "default: score >= 0.5 fails"},
        "raw_score": NUM,
        "defect_type": STR,
        "model_version": STR,
        "latency_ms": NUM,
        "lot": STR,
        "serial": STR,
        "operator": STR,
        "flags": {
            "type": "array",
            "items": {**STR, "maxLength": 64},
            "maxItems": 16,
            "description": 'image-quality warnings, e.g. ["blurred", "drift:brightness"]',
        },
        "source_name": {
            **STR,
            "maxLength": 255,
            "description": "file or frame name at the station; stored with the result",
        },
    },
}
INSPECTION_REPLY = {
    "type": "object",
    "properties": {
        "id": STR,
        "product": STR,
        "station": NULLABLE_STR,
        "verdict": {"enum": ["pass", "fail"]},
        "score": NUM,
        "defect_type": NULLABLE_STR,
        "model_version": NULLABLE_STR,
        "latency_ms": NUM,
        "inspected_at": STR,
        "heatmap_url": NULLABLE_STR,
        "image_url": NULLABLE_STR,
    },
}
NULLABLE_NUM = {"type": ["number", "null"]}
INSPECTION = {
    "type": "object",
    "properties": {
        **INSPECTION_REPLY["properties"],
        **{k: NULLABLE_STR for k in ("lot", "serial", "operator")},
        "raw_score": NULLABLE_NUM,
        "latency_ms": NULLABLE_NUM,
        "source": {"enum": ["server", "edge"]},
        "review": {
            "type": ["object", "null"],
            "description": "an engineer's review; it refines recall and false-reject rate",
            "properties": {
                "review": {"enum": ["agree", "disagree"]},
                "label": STR,
                "note": NULLABLE_STR,
                "by": STR,
                "at": STR,
            },
        },
        "operator_flag": {
            "type": ["object", "null"],
            "description": "an operator's doubt from the station page; not a label",
            "properties": {"by": STR, "at": STR, "note": NULLABLE_STR},
        },
        "flags": {
            "type": "array",
            "items": STR,
            "description": "image-quality warnings the station sent (empty if none)",
        },
        "source_name": {
            **NULLABLE_STR,
            "description": "file or frame name at the station (null if none was sent)",
        },
    },
}
INSPECTION_LIST = {
    "type": "object",
    "properties": {
        "items": {"type": "array", "items": INSPECTION},
        "limit": INT,
        "offset": INT,
        "next_offset": {"type": ["integer", "null"]},
    },
}
ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "object", "properties": {"status": INT, "title": STR, "message": STR}}
    },
}


def _json_body(schema: dict) -> dict:
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _multipart(properties: dict, required: list[str]) -> dict:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"required": True, "content": {"multipart/form-data": {"schema": schema}}}


def _ok(description: str, schema: dict | None = None, media: str = "application/json") -> dict:
    body = {"description": description}
    if schema is not None:
        body["content"] = {media: {"schema": schema}}
    return body


DETAILS: dict[str, dict] = {
    "api.create_inspection": {
        "requestBody": _multipart(
            {
                "image": {"type": "string", "format": "binary"},
                "product": STR,
                "station": STR,
                "lot": STR,
                "serial": STR,
                "operator": STR,
                "id": {**STR, "format": "uuid"},
            },
            ["image", "product"],
        ),
        "responses": {
            "201": _ok("inspected and recorded", INSPECTION_REPLY),
            "200": _ok("this id was recorded before", INSPECTION_REPLY),
            "409": _ok("the product has no active model", ERROR),
        },
    },
    "api.post_results": {
        "requestBody": _json_body({"type": "array", "items": RESULT}),
        "responses": {
            "200": _ok(
                "counts",
                {
                    "type": "object",
                    "properties": {
                        "received": INT,
                        "accepted": INT,
                        "already_known": INT,
                        "rejected": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "properties": {"index": INT, "id": STR, "error": STR},
                            },
                        },
                    },
                },
            )
        },
    },
    "api.put_image": {
        "requestBody": _multipart(
            {
                "image": {"type": "string", "format": "binary"},
                "heatmap": {"type": "string", "format": "binary"},
            },
            ["image"],
        )
    },
    "api.list_inspections": {
        "parameters": FILTERS + [_q("limit", "1..500", INT), _q("offset", ">= 0", INT)],
        "responses": {"200": _ok("newest first", INSPECTION_LIST)},
    },
    "api.get_inspection": {"responses": {"200": _ok("one inspection", INSPECTION)}},
    "api.export_csv": {
        "parameters": FILTERS,
        "responses": {"200": _ok("CSV", {"type": "string"}, "text/csv")},
    },
    "api.dataset": {
        "parameters": FILTERS,
        "responses": {"200": _ok("zip", {"type": "string"}, "application/zip")},
    },
    "api.review": {
        "responses": {"200": _ok("the reviewed inspection", INSPECTION)},
        "requestBody": _json_body(
            {
                "type": "object",
                "required": ["review"],
                "properties": {
                    "review": {"enum": ["agree", "disagree"]},
                    "label": STR,
                    "note": STR,
                },
            }
        )
    },
    "api.get_stats": {
        "parameters": [
            _q("product", "product name"),
            _q("station", "station name"),
            _q("from", "ISO 8601; naive = plant time zone"),
            _q("to", "ISO 8601"),
            _q("bucket", "subgroup", {"enum": ["hour", "shift", "day", "week"]}),
        ],
        "responses": {
            "200": _ok(
                "totals, p_chart, pareto, savings (see docs/economics.md)",
                {
                    "type": "object",
                    "properties": {
                        k: {"type": "object"} for k in ("filters", "totals", "p_chart", "savings")
                    }
                    | {"pareto": {"type": "array"}},
                },
            )
        },
    },
    "api.upload_model": {
        "requestBody": _multipart(
            {
                "model": {"type": "string", "format": "binary"},
                "product": STR,
                "activate": {"type": "boolean"},
            },
            ["model", "product"],
        )
    },
    "api.list_models": {"parameters": [_q("product", "product name")]},
}

# --- Training jobs and teach mode (qc/service/jobs/) ---
NULLABLE_INT = {"type": ["integer", "null"]}
TRAINING_JOB = {
    "type": "object",
    "required": ["id", "state", "progress", "stage", "model_version", "report_url"],
    "properties": {
        "id": INT,
        "product": STR,
        "state": {"enum": ["queued", "running", "succeeded", "failed", "cancelled"]},
        "progress": {**NUM, "minimum": 0, "maximum": 1},
        "stage": NULLABLE_STR,
        "eta_s": {"type": ["number", "null"], "description": "seconds left (running jobs)"},
        "options": {"type": "object", "description": "mode, size, epochs, ..."},
        "model_id": NULLABLE_INT,
        "model_version": NULLABLE_STR,
        "report_url": NULLABLE_STR,
        "error": NULLABLE_STR,
        "retry_of": NULLABLE_INT,
        "created_by": NULLABLE_STR,
        "log": {**STR, "description": "GET /training-jobs/{job_id} only: the log's tail"},
    },
}
TAUGHT_COUNTS = {
    "type": "object",
    "properties": {"product": STR, "good": INT, "defect": INT,
                   "defect_types": {"type": "object"}, "need": {"type": ["object", "null"]}},
}
DETAILS.update({
    "api.start_training_job": {
        "requestBody": _multipart(
            {
                "product": STR,
                "mode": {**STR, "description": "one of `qc train --mode`; default: its default"},
                "size": {**STR, "description": "320 or WxH"},
                "epochs": INT,
                "patience": INT,
                "max_minutes": NUM,
                "seed": INT,
                "dataset": {"type": "string", "format": "binary",
                            "description": "zip in the qc train layout; default: the "
                                           "product's reviewed results and taught photos"},
            },
            ["product"],
        ),
        "responses": {
            "201": _ok("queued", TRAINING_JOB),
            "400": _ok("bad options or dataset (the message says what)", ERROR),
            "404": _ok("no such product", ERROR),
            "409": _ok("the product already has a job queued or running", ERROR),
        },
    },
    "api.list_training_jobs": {
        "parameters": [_q("product", "product name")],
        "responses": {"200": _ok("newest first", {
            "type": "object", "properties": {"items": {"type": "array", "items": TRAINING_JOB}}})},
    },
    "api.get_training_job": {"responses": {"200": _ok("the job", TRAINING_JOB)}},
    "api.cancel_training_job": {"responses": {
        "200": _ok("cancelled (queued) or asked to stop (running)", TRAINING_JOB),
        "409": _ok("already finished", ERROR)}},
    "api.retry_training_job": {"responses": {
        "201": _ok("a new queued job with the same options and data", TRAINING_JOB),
        "409": _ok("not failed or cancelled, or another job runs", ERROR)}},
    "api.training_job_report": {"responses": {
        "200": _ok("evaluation report", {"type": "string"}, "text/html")}},
    "api.compare_model": {
        "parameters": [_q("last", "reviewed results compared (1..1000, default 100)", INT)],
        "responses": {"200": _ok("recall, false rejects and disagreements of both models", {
            "type": "object", "properties": {
                "units": INT, "candidate": {"type": "object"},
                "active": {"type": ["object", "null"]}, "disagreement_count": INT,
                "disagreements": {"type": "array"}}})},
    },
    "api.teach_photo": {
        "requestBody": _multipart(
            {"image": {"type": "string", "format": "binary"},
             "label": {**STR, "description": "good, or the defect type"}},
            ["image", "label"],
        ),
        "responses": {"201": _ok("stored as a training photo", TAUGHT_COUNTS)},
    },
    "api.taught_photos": {"responses": {"200": _ok("counts", TAUGHT_COUNTS)}},
})
# --- end of training jobs ---


def _operation(app: Flask, endpoint: str, method: str) -> dict:
    view = app.view_functions[endpoint]
    doc = (view.__doc__ or "").strip().splitlines()
    roles = getattr(view, "roles", None)
    op: dict[str, Any] = {
        "operationId": endpoint.split(".")[-1] + ("" if method == "get" else f"_{method}"),
        "summary": doc[0] if doc else endpoint,
        "responses": {"200": _ok("OK")},
    }
    if roles:
        op["description"] = "Roles: " + ", ".join(roles) + ", admin."
        op["responses"].update(
            {"401": _ok("no or unknown credentials", ERROR), "403": _ok("role not allowed", ERROR)}
        )
    else:
        op["security"] = []
    extra = DETAILS.get(endpoint, {})
    op["responses"] = {**op["responses"], **extra.get("responses", {})}
    for key in ("parameters", "requestBody"):
        if key in extra:
            op[key] = extra[key]
    return op


def build_spec(app: Flask) -> dict:
    """The OpenAPI document of every /api/v1 route of app."""
    paths: dict[str, dict] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith(PREFIX):
            continue
        path = _CONVERTER.sub(r"{\1}", rule.rule[len(PREFIX) :])
        entry = paths.setdefault(path, {})
        params = [
            {"name": name, "in": "path", "required": True, "schema": STR}
            for name in _CONVERTER.findall(rule.rule)
        ]
        if params:
            entry["parameters"] = params
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            entry[method.lower()] = _operation(app, rule.endpoint, method.lower())
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "qc plant service",
            "version": qc.__version__,
            "description": "Inspections, results from stations, statistics and savings. "
            "See docs/service.md and docs/economics.md.",
        },
        "servers": [{"url": PREFIX}],
        "security": [{"bearer": []}, {"session": []}],
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "station or user API key",
                },
                "session": {
                    "type": "apiKey",
                    "in": "cookie",
                    "name": "session",
                    "description": "browser login; state-changing calls need X-CSRFToken",
                },
            },
            "schemas": {
                "Result": RESULT,
                "InspectionReply": INSPECTION_REPLY,
                "Inspection": INSPECTION,
                "Error": ERROR,
            },
        },
        "paths": paths,
    }
