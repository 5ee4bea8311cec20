"""What the page blueprints share: the role guard for HTML views and catalog look-ups."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, redirect, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import Session

from qc.db.models import Product, Station


def page_roles(*roles: str) -> Callable:
    """Allow an HTML view to these roles (and admin); others log in first or get 403."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if not current_user.has_role(*roles):
                abort(403, f"this page is for {', '.join(roles)} accounts")
            return view(*args, **kwargs)

        wrapped.roles = roles
        return wrapped

    return decorator


def products(db: Session) -> list[Product]:
    """All products by name."""
    return list(db.scalars(select(Product).order_by(Product.name)))


def stations(db: Session) -> list[Station]:
    """Active stations by name."""
    return list(db.scalars(select(Station).where(Station.active).order_by(Station.name)))


def defect_types(product: Product | None) -> list[str]:
    """The defect types the product's active model knows (may be empty)."""
    if product is None or product.active_model is None:
        return []
    return list(product.active_model.info.get("defect_types") or [])
