"""Browser pages: the operator's station, the manager's dashboard and the engineer's review.

They read and write through the same queries as the JSON API; charts are drawn in the browser
with the Chart.js copy served from static/vendor (stations are often offline).
"""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the station, dashboard, review, reports and models blueprints."""
    from qc.service.pages import dashboard, models, reports, review, station

    for module in (station, dashboard, review, reports, models):
        module.init_app(app)
