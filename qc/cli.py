"""The `qc` command. Subcommands live next to the code they drive and are imported lazily, so the
base install (no torch, no Flask) starts fast and says which extra to install when one is missing.
"""

from __future__ import annotations

import importlib
import logging

import click

# command name -> (module, attribute, extra that provides its dependencies)
COMMANDS = {
    "train": ("training.commands", "train", "train"),
    "evaluate": ("training.commands", "evaluate", "train"),
    "split": ("training.commands", "split", "train"),
    "inspect": ("qc.inspect_command", "inspect", None),
    "serve": ("qc.service.commands", "serve", "service"),
    "demo": ("qc.service.commands", "demo", "service"),
    "users": ("qc.service.commands", "users", "service"),
    "stations": ("qc.service.commands", "stations", "service"),
    "products": ("qc.service.commands", "products", "service"),
    "models": ("qc.service.commands", "models", "service"),
    "db": ("qc.service.commands", "db", "service"),
    "keys": ("qc.reports.commands", "keys", "service"),
    "report": ("qc.reports.commands", "report", "service"),
    "worker": ("qc.service.jobs.worker", "worker", "service,train"),
}


class LazyGroup(click.Group):
    """A click group that imports each subcommand only when it is run or listed."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, extra = COMMANDS[name]
        try:
            return getattr(importlib.import_module(module), attr)
        except ModuleNotFoundError as exc:
            if extra is None or exc.name in (module, module.rsplit(".", 1)[0]):
                raise
            return _missing_extra(name, extra, exc.name)


def _missing_extra(name: str, extra: str, missing: str | None) -> click.Command:
    @click.command(name, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def stub(args: tuple[str, ...]) -> None:
        raise click.ClickException(
            f"'qc {name}' needs the {extra} extra ({missing} is not installed): "
            f"pip install 'qc[{extra}]'"
        )

    return stub


@click.group(cls=LazyGroup)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def cli(verbose: bool) -> None:
    """qc: train defect-detection models, inspect images, run the plant service."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # Migration steps are for -v; a command's own output comes first.
    logging.getLogger("alembic").setLevel(logging.NOTSET if verbose else logging.WARNING)


def main() -> None:
    """Console-script entry point."""
    cli()


if __name__ == "__main__":
    main()
