"""The demo plant shows a finished training job and a product with taught photos."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from qc.db.models import Product, TrainingJob
from qc.service import demo
from qc.service.database import get_session
from qc.service.jobs import teach
from qc.service.jobs.demo import NEW_PRODUCT, TAUGHT
from tests.support.tiny_model import make_tiny_model


@pytest.fixture(scope="module")
def db_url(tmp_path_factory):
    """SQLite only: the demo is SQLite by definition."""
    from qc.db import migrate

    url = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'qc.sqlite3'}"
    migrate.upgrade(url)
    return url


def test_demo_has_a_finished_job_and_taught_photos(tmp_path):
    model = make_tiny_model(tmp_path / "flange.onnx", product=demo.PRODUCT,
                            defect_types=tuple(demo.DEFECT_MIX))
    app, done = demo.prepare(tmp_path / "plant", model=model, plan=demo.Plan(days=2, per_day=5))
    assert done["taught"] == sum(TAUGHT.values())
    with app.app_context():
        db = get_session()
        (job,) = db.scalars(select(TrainingJob)).all()
        assert job.state == "succeeded" and job.product.name == demo.PRODUCT
        assert job.model_version_id == job.product.active_model_id
        counts = teach.counts(db, db.scalar(select(Product).where(Product.name == NEW_PRODUCT)))
        assert counts["good"] == TAUGHT["good"] and counts["defect"] == 6
        assert counts["good"] >= counts["need"]["good"]  # ready to train
        assert counts["defect"] >= counts["need"]["defect"]
