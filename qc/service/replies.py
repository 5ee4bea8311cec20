"""Reply bodies of /api/v1 as pydantic models: openapi.py documents them and the fuzz test
(tests/qc/service/test_fuzz.py) checks real replies against them. Views build plain dicts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qc.service.schemas import ROLE, VERDICT


class Reply(BaseModel):
    """A response body (documented; the views build plain dicts)."""

    model_config = ConfigDict(extra="allow")


class ErrorDetail(Reply):
    status: int
    title: str
    message: str


class ErrorReply(Reply):
    """Every error: 4xx and 5xx."""

    error: ErrorDetail


class InspectionReply(Reply):
    """An inspection as POST /inspections answers it."""

    id: str
    product: str
    station: str | None
    verdict: VERDICT
    score: float
    defect_type: str | None
    model_version: str | None
    latency_ms: float | None
    inspected_at: str
    heatmap_url: str | None
    image_url: str | None


class ReviewOut(Reply):
    review: Literal["agree", "disagree"]
    label: str | None
    note: str | None
    by: str | None
    at: str | None


class FlagOut(Reply):
    by: str
    at: str | None
    note: str | None


class InspectionOut(InspectionReply):
    """One inspection with its review, operator flag and station flags."""

    lot: str | None
    serial: str | None
    operator: str | None
    raw_score: float | None
    source: Literal["server", "edge"]
    review: ReviewOut | None
    operator_flag: FlagOut | None
    flags: list[str]
    source_name: str | None


class InspectionList(Reply):
    items: list[InspectionOut]
    limit: int
    offset: int
    next_offset: int | None


class Rejected(Reply):
    index: int
    id: str = Field(description="the item's id as sent ('' when it had none)")
    error: str


class ResultsReply(Reply):
    received: int
    accepted: int
    already_known: int
    rejected: list[Rejected]


class Me(Reply):
    username: str
    role: str
    via_key: bool


class Health(Reply):
    status: str


class ModelOut(Reply):
    id: int
    version: str
    sha256: str
    active: bool
    uploaded_by: str | None
    uploaded_at: str
    mode: str | None
    defect_types: list[str]
    metrics: dict[str, Any]
    input_size: Any = None


class ModelListed(ModelOut):
    product: str


class Activation(Reply):
    model_id: int
    action: str
    by: str | None
    at: str


class ModelList(Reply):
    items: list[ModelListed]
    activations: list[Activation]


class ProductOut(Reply):
    name: str
    sku: str | None
    costs: dict[str, float]
    active_model: ModelOut | None


class ProductList(Reply):
    items: list[ProductOut]


class StationOut(Reply):
    name: str
    line: str | None
    active: bool
    last_seen_at: str | None
    products: list[str]


class StationWithKey(StationOut):
    api_key: str = Field(description="shown this once")


class StationList(Reply):
    items: list[StationOut]


class UserOut(Reply):
    username: str
    role: ROLE
    active: bool
    has_api_key: bool


class UserCreated(UserOut):
    password: str | None = Field(description="the generated password, shown once (else null)")


class UserWithKey(UserOut):
    api_key: str


class UserList(Reply):
    items: list[UserOut]


class Stats(Reply):
    """Totals, p-chart, Pareto and savings (docs/economics.md)."""

    filters: dict[str, Any]
    totals: dict[str, Any]
    p_chart: dict[str, Any]
    pareto: list[Any]
    savings: dict[str, Any]


class TrainingJobOut(Reply):
    """A training job (qc/service/jobs/)."""

    id: int
    product: str
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: float = Field(ge=0, le=1)
    stage: str | None
    eta_s: float | None = Field(description="seconds left (running jobs)")
    options: dict
    model_id: int | None
    model_version: str | None
    report_url: str | None
    error: str | None
    retry_of: int | None
    created_by: str | None
    log: str | None = Field(None, description="GET /training-jobs/{job_id} only: the log's tail")


class TrainingJobList(Reply):
    """Newest first."""

    items: list[TrainingJobOut]


class ModelComparison(Reply):
    """A model against the product's active one on its latest reviewed results."""

    units: int
    candidate: dict
    active: dict | None
    disagreement_count: int
    disagreements: list


class TaughtCounts(Reply):
    """Photos taught for a product and what training needs."""

    product: str
    good: int
    defect: int
    defect_types: dict
    need: dict | None
