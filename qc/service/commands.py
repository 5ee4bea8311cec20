"""`qc serve`, `qc users`, `qc stations`, `qc products`, `qc models`, `qc db`: thin click wrappers
over registry.py and friends. Tests pass their app as obj={"app": app}.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click
from sqlalchemy import select

from qc.economics import DEFAULT_COSTS
from qc.service.cli_context import app_from_context, app_session
from qc.service.db_commands import db

log = logging.getLogger(__name__)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--threads", default=8, show_default=True, type=int, help="Requests at once.")
@click.option("--no-worker", is_flag=True, help="Do not start a training worker beside it.")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, threads: int, no_worker: bool) -> None:
    """Run the service with a production WSGI server (gunicorn; waitress on Windows), and a
    training worker beside it (`--no-worker`: run `qc worker` elsewhere)."""
    from qc.service import create_app
    from qc.service.server import serve as run_server

    given = (ctx.find_object(dict) or {}).get("app")  # tests pass their app
    app = given or app_from_context(ctx)  # settings and migrations first
    if not no_worker:
        from qc.service.jobs.child import start_local_worker

        start_local_worker(app)
    if given is None:
        app.extensions["qc.db"].dispose()
    click.echo(f"qc service on http://{host}:{port}/", err=True)
    run_server(lambda: given or create_app(), host, port, threads)


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--instance", type=click.Path(file_okay=False, path_type=Path),
              help="Demo folder (default: $QC_INSTANCE_PATH/demo, else ./instance/demo).")
@click.option("--model", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A flange model to use instead of training one on the sample images.")
@click.option("--reset", is_flag=True, help="Start over with fresh data (keeps the model).")
@click.option("--no-serve", is_flag=True, help="Prepare the demo and exit.")
@click.option("--no-worker", is_flag=True, help="Do not start a training worker beside it.")
def demo(host: str, port: int, instance: Path | None, model: Path | None, reset: bool,
         no_serve: bool, no_worker: bool) -> None:
    """Start a demo plant on SQLite: the sample model, demo users and 30 days of history."""
    import os
    import time

    from qc.service import demo as plant

    start = time.perf_counter()
    instance = instance or Path(os.environ.get("QC_INSTANCE_PATH") or "instance") / "demo"
    try:
        app, done = plant.prepare(instance, model, reset)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    url = f"http://{host}:{port}/"
    click.echo(plant.banner(url, done, instance, time.perf_counter() - start))
    if not no_serve:
        from qc.service.server import serve as run_server

        if not no_worker:
            from qc.service.jobs.child import start_local_worker

            start_local_worker(app)
        app.extensions["qc.db"].dispose()
        del app  # each worker builds its own (after the fork)
        run_server(lambda: plant.demo_app(instance), host, port)


@click.group()
def users() -> None:
    """Manage users (admin, engineer, manager, operator)."""


@users.command("create")
@click.option("--username", required=True)
@click.option(
    "--role", required=True, type=click.Choice(["admin", "engineer", "manager", "operator"])
)
@click.option("--password", help="At least 8 characters; generated and printed if omitted.")
def users_create(username: str, role: str, password: str | None) -> None:
    """Add a user."""
    from qc.service import registry

    with app_session() as (_app, db):
        _user, generated = registry.create_user(db, username, role, password)
        db.commit()
    click.echo(f"user {username!r} ({role}) created", err=True)
    if generated:
        click.echo(f"password: {generated}")


@users.command("set")
@click.option("--username", required=True)
@click.option("--role", type=click.Choice(["admin", "engineer", "manager", "operator"]))
@click.option("--password")
@click.option("--active/--inactive", default=None)
def users_set(username: str, role: str | None, password: str | None, active: bool | None) -> None:
    """Change a user's role, password or active flag."""
    from qc.db.models import User
    from qc.service import registry

    with app_session() as (_app, db):
        registry.update_user(db, registry.find(db, User, username, "user"), role, password, active)
        db.commit()
    click.echo(f"user {username!r} updated", err=True)


@users.command("key")
@click.option("--username", required=True)
def users_key(username: str) -> None:
    """Print a new API key for a user's scripts (replaces the previous one)."""
    from qc.db.models import User

    _print_new_key(User, username, "user")


@users.command("list")
def users_list() -> None:
    """List users."""
    from qc.db.models import User

    with app_session() as (_app, db):
        for u in db.scalars(select(User).order_by(User.username)):
            click.echo(f"{u.username}\t{u.role}\t{'active' if u.active else 'inactive'}")


@click.group()
def stations() -> None:
    """Manage inspection stations and their API keys."""


@stations.command("create")
@click.option("--name", required=True)
@click.option("--line", default=None, help="Production line.")
@click.option("--product", "products", multiple=True,
              help="A product it inspects (repeat); its key downloads only their models.")
def stations_create(name: str, line: str | None, products: tuple[str, ...]) -> None:
    """Add a station and print its API key (shown once)."""
    from qc.service import registry

    with app_session() as (_app, db):
        _station, key = registry.create_station(db, name, line, products)
        db.commit()
    click.echo(f"station {name!r} created; its API key (shown once):", err=True)
    click.echo(key)


@stations.command("set")
@click.option("--name", required=True)
@click.option("--product", "products", multiple=True, required=True,
              help="A product it inspects (repeat; replaces the list).")
def stations_set(name: str, products: tuple[str, ...]) -> None:
    """Link a station to the products it inspects."""
    from qc.db.models import Station
    from qc.service import registry

    with app_session() as (_app, db):
        registry.set_station_products(db, registry.find(db, Station, name, "station"), products)
        db.commit()
    click.echo(f"station {name!r} inspects {', '.join(products)}", err=True)


@stations.command("key")
@click.option("--name", required=True)
def stations_key(name: str) -> None:
    """Print a new API key for a station (the old one stops working)."""
    from qc.db.models import Station

    _print_new_key(Station, name, "station")


def _print_new_key(model: type, name: str, what: str) -> None:
    """Give the user or station named `name` a new API key and print it."""
    from qc.service import registry

    with app_session() as (_app, db):
        key = registry.issue_key(registry.find(db, model, name, what))
        db.commit()
    click.echo(key)


@stations.command("list")
def stations_list() -> None:
    """List stations."""
    from qc.db.models import Station

    with app_session() as (_app, db):
        for s in db.scalars(select(Station).order_by(Station.name)):
            seen = s.last_seen_at.isoformat() if s.last_seen_at else "never"
            click.echo(f"{s.name}\t{s.line or '-'}\tlast seen {seen}")


def _cost_options(func: click.decorators.FC) -> click.decorators.FC:
    for name in reversed(DEFAULT_COSTS):
        flag = "--" + name.replace("_", "-")
        func = click.option(
            flag, name, type=float, default=None, help=f"Default {DEFAULT_COSTS[name]}."
        )(func)
    return func


@click.group()
def products() -> None:
    """Manage products and their cost parameters."""


@products.command("create")
@click.option("--name", required=True)
@click.option("--sku", default=None)
@_cost_options
def products_create(name: str, sku: str | None, **costs: float | None) -> None:
    """Add a product (cost flags default as in docs/economics.md)."""
    from qc.service import registry

    with app_session() as (_app, db):
        registry.create_product(db, name, sku, **{k: v for k, v in costs.items() if v is not None})
        db.commit()
    click.echo(f"product {name!r} created")


@products.command("set")
@click.option("--name", required=True)
@_cost_options
def products_set(name: str, **costs: float | None) -> None:
    """Change a product's cost parameters."""
    from qc.db.models import Product
    from qc.service import registry

    with app_session() as (_app, db):
        product = registry.find(db, Product, name, "product")
        changes = registry.check_costs({k: v for k, v in costs.items() if v is not None})
        for key, value in changes.items():
            setattr(product, key, value)
        db.commit()
    click.echo(f"product {name!r} updated")


@products.command("list")
def products_list() -> None:
    """List products and their active model."""
    from qc.db.models import Product

    with app_session() as (_app, db):
        for p in db.scalars(select(Product).order_by(Product.name)):
            model = p.active_model.version if p.active_model else "no active model"
            click.echo(f"{p.name}\t{p.sku or '-'}\t{model}")


@click.group()
def models() -> None:
    """Upload, activate and roll back model versions."""


@models.command("upload")
@click.argument("model_path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--product", required=True)
@click.option("--activate", is_flag=True, help="Make it the product's active model.")
@click.option("--by", "username", default="cli", show_default=True, help="Recorded uploader.")
def models_upload(model_path: Path, product: str, activate: bool, username: str) -> None:
    """Store a qc ONNX package for a product."""
    from qc.db.models import Product
    from qc.service import registry
    from qc.service.storage import get_storage

    with app_session() as (_app, db):
        prod = registry.find(db, Product, product, "product")
        version = registry.upload_model(db, get_storage(), model_path, prod, username, activate)
        db.commit()
        state = "active" if prod.active_model_id == version.id else "not active"
        click.echo(f"model {version.version} ({version.sha256[:12]}) for {product}: {state}")


@models.command("list")
@click.option("--product", default=None)
def models_list(product: str | None) -> None:
    """List model versions."""
    from qc.db.models import ModelVersion, Product

    with app_session() as (_app, db):
        actives = set(db.scalars(select(Product.active_model_id)))
        query = select(ModelVersion).order_by(ModelVersion.id)
        for v in db.scalars(query):
            if product and v.product.name != product:
                continue
            mark = "*" if v.id in actives else " "
            click.echo(
                f"{mark} {v.id}\t{v.product.name}\t{v.version}\t{v.sha256[:12]}\t"
                f"{v.uploaded_at:%Y-%m-%d %H:%M}"
            )


@models.command("activate")
@click.argument("model_id", type=int)
@click.option("--by", "username", default="cli", show_default=True)
def models_activate(model_id: int, username: str) -> None:
    """Make model MODEL_ID (see `qc models list`) its product's active model."""
    from qc.db.models import ModelVersion
    from qc.service import registry

    with app_session() as (_app, db):
        version = db.get(ModelVersion, model_id)
        if version is None:
            raise click.ClickException(f"no model version {model_id}")
        registry.activate_model(db, version.product, version, username)
        db.commit()
    click.echo(f"model {model_id} active")


@models.command("rollback")
@click.option("--product", required=True)
@click.option("--by", "username", default="cli", show_default=True)
def models_rollback(product: str, username: str) -> None:
    """Re-activate the product's previous model."""
    from qc.db.models import Product
    from qc.service import registry

    with app_session() as (_app, db):
        version = registry.rollback_model(
            db, registry.find(db, Product, product, "product"), username
        )
        db.commit()
    click.echo(f"{product}: rolled back to model {version.id} ({version.version})")


__all__ = ["db", "demo", "models", "products", "serve", "stations", "users"]
