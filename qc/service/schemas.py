"""Request bodies, forms and query parameters of /api/v1, declared once as pydantic models:
views validate with them (`body()`, `check()`) and openapi.py turns them into the document's
schemas. Replies are declared in replies.py.

Request models are strict: a string field takes only a JSON string, a number field only a JSON
number (never `true` or "0.5"), a boolean only `true`/`false`.

A new endpoint declares its bodies with `openapi.declare(body=..., responses={...})` on the view
(see openapi.py) and validates with `schemas.body(Model)`; nothing else needs to change.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from annotated_types import Ge, Le
from flask import request
from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError

T = TypeVar("T", bound=BaseModel)

ROLE = Literal["admin", "engineer", "manager", "operator"]
VERDICT = Literal["pass", "fail"]
Name = Annotated[str, Field(min_length=1, max_length=64)]
TEXT_MAX = 64  # lot, defect type, model version: the stored columns' width
Text64 = Annotated[str, Field(max_length=TEXT_MAX)]
Unit = Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)]
Finite = Annotated[float, Field(allow_inf_nan=False)]
Cost = Annotated[float, Field(ge=0, allow_inf_nan=False)]
MAX_JSON_BYTES = 8 * 1024 * 1024  # a batch of 1000 results is ~0.5 MB


class BodyError(ValueError):
    """A request body that does not match its model; the message names the field."""


class Strict(BaseModel):
    """A request body: exact JSON types, surrounding blanks trimmed, unknown keys refused."""

    model_config = ConfigDict(strict=True, extra="forbid", str_strip_whitespace=True)


# --- requests -----------------------------------------------------------------------------


class ResultIn(Strict):
    """One result inspected at a station (POST /results); unknown keys are ignored."""

    model_config = ConfigDict(extra="ignore")

    id: str = Field(description="client UUID: re-sending it records it once")
    product: str
    timestamp: str = Field(description="ISO 8601; naive = UTC")
    score: Unit = Field(description="0..1, fails at >= 0.5")
    station: str | None = Field(None, description="defaults to the key's station")
    verdict: VERDICT | None = Field(None, description="default: score >= 0.5 fails")
    raw_score: Finite | None = None
    latency_ms: Finite | None = None
    defect_type: Text64 | None = None
    model_version: Text64 | None = None
    lot: Text64 | None = None
    serial: Annotated[str, Field(max_length=128)] | None = None
    operator: Text64 | None = None
    flags: Annotated[list[Annotated[str, Field(max_length=64)]], Field(max_length=16)] | None = (
        Field(None, description='image-quality warnings, e.g. ["blurred", "drift:brightness"]')
    )
    source_name: Annotated[str, Field(max_length=255)] | None = Field(
        None, description="file or frame name at the station"
    )


class ResultBatch(Strict):
    """POST /results as an object."""

    results: list[ResultIn]


class ResultsIn(RootModel[list[ResultIn] | ResultBatch]):
    """POST /results: a JSON list of results, or {"results": [...]}; bad items are rejected
    one by one (documented here; each item is validated as ResultIn)."""


class ReviewIn(Strict):
    """An engineer's review of a verdict."""

    review: Literal["agree", "disagree"]
    label: Text64 | None = Field(None, description="corrected label (good or a defect type)")
    note: Annotated[str, Field(max_length=2000)] | None = None


class CostsIn(Strict):
    """Cost parameters of a product (docs/economics.md); those left out keep their value."""

    manual_inspection_cost: Cost | None = None
    manual_miss_rate: Annotated[float, Field(ge=0, le=1, allow_inf_nan=False)] | None = None
    escape_cost: Cost | None = None
    internal_failure_cost: Cost | None = None
    false_reject_cost: Cost | None = None
    qc_cost_per_unit: Cost | None = None

    def given(self) -> dict[str, float]:
        """The cost parameters that were sent."""
        return {k: v for k, v in self.model_dump(exclude={"name", "sku"}).items() if v is not None}


class ProductIn(CostsIn):
    """A new product."""

    name: Name
    sku: Text64 | None = None


class ProductPatch(CostsIn):
    """Changes to a product."""

    sku: Text64 | None = None


class StationIn(Strict):
    """A new station and the products it inspects (it may download only their models)."""

    name: Name
    line: Text64 | None = None
    products: list[Name] = Field(default_factory=list)


class StationPatch(Strict):
    """Changes to a station: its line, or the products it inspects (replaces the list)."""

    line: Text64 | None = None
    products: list[Name] | None = None


class UserIn(Strict):
    """A new user; without a password one is generated and returned once."""

    username: Name
    role: ROLE
    password: Annotated[str, Field(min_length=8, max_length=256)] | None = None


class UserPatch(Strict):
    """Changes to a user; a new password or deactivation ends the user's sessions."""

    role: ROLE | None = None
    password: Annotated[str, Field(min_length=8, max_length=256)] | None = None
    active: bool | None = None


class InspectionForm(BaseModel):
    """POST /inspections (multipart/form-data): a photo for the product's active model."""

    image: bytes = Field(description="PNG, JPEG, BMP or TIFF")
    product: str
    station: str | None = None
    lot: Text64 | None = None
    serial: Annotated[str, Field(max_length=128)] | None = None
    operator: Text64 | None = Field(None, description="operators are recorded as themselves")
    id: str | None = Field(None, description="client UUID: re-sending it answers the result")


class ImageForm(BaseModel):
    """PUT /inspections/ID/image (multipart/form-data): the photo of an edge result."""

    image: bytes
    heatmap: bytes | None = None


class ModelForm(BaseModel):
    """POST /models (multipart/form-data): a qc ONNX package."""

    model: bytes
    product: str
    activate: Literal["true", "false", "1", "0", "yes", "no", "on", "off", ""] | None = None


class TrainingJobForm(BaseModel):
    """POST /training-jobs (multipart/form-data): train a product's model on the server."""

    product: str
    mode: str | None = Field(None, description="one of `qc train --mode`; default: its default")
    size: str | None = Field(None, description="320 or WxH; default: the photos' aspect ratio")
    epochs: str | None = Field(None, description="integer 1..1000")
    views: str | None = Field(None, description="integer 1..16 (supervised)")
    folds: str | None = Field(None, description="integer 2..20 (supervised)")
    max_minutes: str | None = Field(None, description="number 0..1440")
    seed: str | None = Field(None, description="integer")
    dataset: bytes | None = Field(None, description="zip in the qc train layout; default: the "
                                  "product's reviewed results and taught photos")


class TeachForm(BaseModel):
    """POST /products/NAME/taught-photos (multipart/form-data): a training photo."""

    image: bytes
    label: str = Field(description="good, or the defect type")


class CompareQuery(BaseModel):
    """How many of the product's latest reviewed results to compare on."""

    last: Annotated[int, Field(ge=1, le=1000)] | None = 100


class FilterQuery(BaseModel):
    """Which inspections: every filter is optional."""

    product: str | None = None
    station: str | None = None
    lot: str | None = None
    serial: str | None = None
    operator: str | None = None
    verdict: VERDICT | None = None
    defect_type: str | None = None
    reviewed: Literal["true", "false", "1", "0"] | None = Field(
        None, description="true: reviewed only; false or absent: no filter (dataset: reviewed"
        " only unless false)")
    from_: str | None = Field(None, alias="from", description="ISO 8601; naive = plant time")
    to: str | None = Field(None, description="ISO 8601 (exclusive)")


class ListQuery(FilterQuery):
    """Filters and paging."""

    limit: Annotated[int, Field(ge=1, le=500)] | None = 50
    offset: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = 0


class StatsQuery(BaseModel):
    """Statistics of a product/station and period."""

    product: str | None = None
    station: str | None = None
    from_: str | None = Field(None, alias="from", description="ISO 8601; naive = plant time")
    to: str | None = Field(None, description="ISO 8601 (exclusive)")
    bucket: Literal["hour", "shift", "day", "week"] | None = "day"


class ProductQuery(BaseModel):
    """Optionally one product."""

    product: str | None = None


class ReportQuery(BaseModel):
    """The signed period quality report (documents.py, docs/reports.md)."""

    from_: str = Field(alias="from", description="first day, YYYY-MM-DD (plant time zone)")
    to: str = Field(description="last day, YYYY-MM-DD, inclusive; at most 366 days")
    product: str | None = Field(None, description="product name (default: all)")
    format: Literal["json", "pdf"] | None = Field(
        "json", description="json: the signed document; pdf: the signed PDF carrying it")
    paper: Literal["a4", "letter"] | None = Field("a4", description="PDF paper size")


class CertificateQuery(BaseModel):
    """The signed lot certificate of conformance."""

    product: str | None = Field(None, description="only this product's units of the lot")
    format: Literal["pdf", "json"] | None = "pdf"
    paper: Literal["a4", "letter"] | None = Field("a4", description="PDF paper size")


# --- validation ---------------------------------------------------------------------------


def check(model: type[T], data: object) -> T:
    """data validated as model; BodyError names the first bad field and what it must be."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BodyError(describe(model, exc.errors()[0])) from None


def json_body() -> object:
    """The request's JSON (any type); BodyError if it is missing, malformed or nested too deep."""
    if not request.is_json:
        raise BodyError("send JSON with Content-Type: application/json")
    data = request.get_data(cache=True)
    if len(data) > MAX_JSON_BYTES:
        raise BodyError(f"JSON body over {MAX_JSON_BYTES // 1024 // 1024} MB")
    try:
        return json.loads(data)
    except RecursionError:
        raise BodyError("JSON is nested too deeply") from None
    except ValueError as exc:
        raise BodyError(f"body is not valid JSON ({exc})") from None


def body(model: type[T]) -> T:
    """The request's JSON object validated as model (BodyError otherwise)."""
    data = json_body()
    if not isinstance(data, dict):
        raise BodyError("send a JSON object with Content-Type: application/json")
    return check(model, data)


_KINDS = {
    "string_type": "a string",
    "float_type": "a number",
    "int_type": "an integer",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "an object",
    "model_type": "an object",
}


def describe(model: type[BaseModel], error: dict) -> str:
    """One pydantic error as a sentence: "<field> must be ...", "<field> is required"."""
    loc = _where(error["loc"])
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "missing":
        return f"{loc} is required"
    if kind == "extra_forbidden":
        known = ", ".join(model.model_fields)
        return f"unknown field {loc!r}; known: {known}"
    if kind in _KINDS:
        return f"{loc} must be {_KINDS[kind]}, not {_short(value)}"
    if kind == "string_too_long":
        return f"{loc} is longer than {ctx['max_length']} characters"
    if kind == "string_too_short":
        return f"{loc} must have at least {ctx['min_length']} characters"
    if kind == "too_long":
        return f"{loc}: at most {ctx['max_length']} items"
    if kind == "literal_error":
        return f"{loc} must be {ctx['expected']}, not {_short(value)}"
    if kind == "finite_number":
        return f"{loc} must be a finite number, not {_short(value)}"
    if kind in ("greater_than_equal", "less_than_equal"):
        low, high = _bounds(model, error["loc"])
        span = f"within {low:g}..{high:g}" if high is not None else f">= {low:g}"
        return f"{loc} must be {span}, not {_short(value)}"
    return f"{loc}: {error['msg']}"


def _where(loc: tuple) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _bounds(model: type[BaseModel], loc: tuple) -> tuple[float, float | None]:
    """(ge, le) declared on a top-level field (0, None if not found)."""
    info = model.model_fields.get(str(loc[0])) if loc else None
    low, high = 0.0, None
    for meta in _metadata(info):
        if isinstance(meta, Ge):
            low = float(meta.ge)
        if isinstance(meta, Le):
            high = float(meta.le)
    return low, high


def _metadata(info: Any) -> list:
    if info is None:
        return []
    found = list(info.metadata)
    for arg in getattr(info.annotation, "__args__", ()):  # Optional[Annotated[...]]
        found.extend(getattr(arg, "__metadata__", ()))
    for meta in list(found):
        found.extend(getattr(meta, "metadata", ()))  # FieldInfo inside Annotated
    return found
