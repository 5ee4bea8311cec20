"""The `qc-edge` command: run the station agent, show its status, inspect one file."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

import click

from edge.config import ConfigError, EdgeConfig, load

log = logging.getLogger(__name__)

STALE_HEARTBEAT_S = 30.0


def _config(path: Path) -> EdgeConfig:
    try:
        return load(path)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def cli(verbose: bool) -> None:
    """qc-edge: the qc station agent (local inspection, offline store-and-forward)."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


CONFIG = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The station TOML file.",
)


@cli.command()
@CONFIG
def run(config_path: Path) -> None:
    """Run the agent until SIGINT/SIGTERM."""
    from edge.agent import Agent
    from edge.models import ModelError
    from qc.modelpack import ModelPackError

    agent = Agent(_config(config_path))

    def _stop(signum: int, _frame: object) -> None:
        log.info("signal %d: stopping", signum)
        agent.stop()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        agent.run()
    except (ModelError, ModelPackError, ConfigError, OSError) as exc:
        agent.close()
        raise click.ClickException(str(exc)) from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@cli.command("inspect-file")
@CONFIG
@click.argument("image", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--serial", default=None, help="Serial number recorded with the result.")
@click.option(
    "--record/--no-record",
    default=True,
    show_default=True,
    help="Write the result to the outbox (sent now if the service answers).",
)
def inspect_file(config_path: Path, image: Path, serial: str | None, record: bool) -> None:
    """Inspect one image file with the station's model and print the result as JSON."""
    from edge.agent import Agent
    from edge.client import ServiceRefused, ServiceUnavailable
    from qc.imaging import ImageError
    from qc.modelpack import ModelPackError

    agent = Agent(_config(config_path))
    try:
        result = agent.inspect_once(image, serial=serial, record=record)
        if record:
            try:
                agent.syncer.sync_once()
            except (ServiceUnavailable, ServiceRefused) as exc:
                log.warning("not sent now (the agent sends it later): %s", exc)
    except (ImageError, ModelPackError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        agent.client and agent.client.close()
        agent.outbox.close()
    click.echo(json.dumps(result, indent=2))


@cli.command()
@CONFIG
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def status(config_path: Path, as_json: bool) -> None:
    """Show the model, backlog, last sync and errors."""
    info = collect_status(_config(config_path))
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        click.echo(format_status(info))


def collect_status(config: EdgeConfig) -> dict:
    """Status figures from the outbox and model cache (works while the agent runs)."""
    from edge.models import ModelCache
    from edge.outbox import Outbox

    outbox = Outbox(config.data_dir)
    try:
        meta, counts, item_error = outbox.meta(), outbox.counts(), outbox.last_error()
    finally:
        outbox.close()
    models = ModelCache(config.data_dir / "models", config.station.product)
    pid = meta.get("agent_pid")
    beat = meta.get("heartbeat_at")
    running = (
        bool(pid) and _alive(pid) and beat is not None and time.time() - beat < STALE_HEARTBEAT_S
    )
    return {
        "station": config.station.name,
        "product": config.station.product,
        "service": config.service.url or None,
        "agent": {"running": running, "pid": pid if running else None, "heartbeat_at": beat},
        "model": {
            "version": meta.get("model_version"),
            "sha256": meta.get("model_sha256"),
            "fixed_path": config.model.path or None,
            "cache": models.state(),
        },
        "backlog": counts,
        "last_sync_ok_at": meta.get("last_sync_ok_at"),
        "last_sync_error": meta.get("last_sync_error"),
        "last_sync_error_at": meta.get("last_sync_error_at"),
        "last_error": meta.get("last_error"),
        "last_error_at": meta.get("last_error_at"),
        "last_rejected": item_error,
    }


def _alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, ValueError):
        return False
    return True


def _ago(at: float | None) -> str:
    if at is None:
        return "never"
    seconds = max(0.0, time.time() - at)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit} ago"
    return f"{seconds:.0f} s ago"


def format_status(s: dict) -> str:
    """Human-readable status lines."""
    agent = s["agent"]
    b = s["backlog"]
    model = s["model"]
    cache = model["cache"] or {}
    previous = (cache.get("previous") or {}).get("version") or "none"
    lines = [
        f"station    {s['station']} (product {s['product']}) -> {s['service'] or 'offline'}",
        "agent      "
        + (
            f"running (pid {agent['pid']}, heartbeat {_ago(agent['heartbeat_at'])})"
            if agent["running"]
            else "not running"
        ),
        f"model      {model['version'] or 'none'} "
        f"({(model['sha256'] or '-')[:12]}); last good kept: {previous}",
        f"backlog    {b['pending']} pending, {b['sending']} sending, {b['sent']} sent; "
        f"oldest unsent {_ago(b['oldest_unsent_at'])}",
        f"images     {b['images']} kept, {b['image_bytes'] / 2**20:.1f} MB, "
        f"{b['images_waiting']} waiting for upload",
        f"last sync  ok {_ago(s['last_sync_ok_at'])}",
    ]
    if s["last_sync_error"]:
        lines.append(f"sync error {s['last_sync_error']} ({_ago(s['last_sync_error_at'])})")
    if s["last_rejected"]:
        lines.append(f"rejected   {b['with_errors']} results; last: {s['last_rejected']}")
    if s["last_error"]:
        lines.append(f"error      {s['last_error']} ({_ago(s['last_error_at'])})")
    return "\n".join(lines)


def main() -> None:
    """Console-script entry point (`qc-edge`)."""
    cli()


if __name__ == "__main__":
    main()
