"""The plant database: SQLAlchemy 2 models, engine/session handling and Alembic migrations."""

from qc.db.models import (
    Base,
    Inspection,
    InspectionCount,
    ModelActivation,
    ModelVersion,
    Product,
    Station,
    User,
)
from qc.db.session import Database, make_engine

__all__ = [
    "Base",
    "Database",
    "Inspection",
    "InspectionCount",
    "ModelActivation",
    "ModelVersion",
    "Product",
    "Station",
    "User",
    "make_engine",
]
