"""`qc keys show|rotate` and `qc report verify FILE`: no database and no server needed."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from qc.reports.keyring import Keyring, fingerprint, load_public, public_pem
from qc.reports.signing import VerificationError, verify_bytes

log = logging.getLogger(__name__)

INSTANCE = click.option(
    "--instance", type=click.Path(file_okay=False, path_type=Path),
    help="Instance folder holding the keys (default: $QC_INSTANCE_PATH, else the service's).")


def instance_folder(path: Path | None = None) -> Path:
    """The folder the service keeps its secret and signing keys in (as create_app finds it)."""
    if path is not None:
        return path
    if os.environ.get("QC_INSTANCE_PATH"):
        return Path(os.environ["QC_INSTANCE_PATH"]).resolve()
    from flask import Flask

    return Path(Flask("qc.service").instance_path)


@click.group()
def keys() -> None:
    """The plant's signing key for reports and certificates."""


@keys.command("show")
@INSTANCE
def keys_show(instance: Path | None) -> None:
    """Print the public key (PEM) and its fingerprint, to give to customers and lenders."""
    ring = Keyring(instance_folder(instance))
    current = ring.ensure()
    click.echo(f"fingerprint (SHA-256 of the raw Ed25519 key): {current.fingerprint}")
    click.echo(public_pem(current.public), nl=False)
    retired = sorted(set(ring.public_keys()) - {current.fingerprint})
    for fp in retired:
        click.echo(f"retired key, still verifies older documents: {fp}")


@keys.command("rotate")
@INSTANCE
def keys_rotate(instance: Path | None) -> None:
    """Sign from now on with a new key; documents signed before keep verifying."""
    old, new = Keyring(instance_folder(instance)).rotate()
    click.echo(f"new signing key: {new.fingerprint}")
    if old:
        click.echo(f"retired (public key kept): {old}")


@click.group()
def report() -> None:
    """Signed quality reports and lot certificates."""


@report.command("verify")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--key", "key_files", multiple=True,
              type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A trusted public key (PEM, from `qc keys show`); repeatable. "
                   "Default: every key of the instance folder.")
@INSTANCE
def report_verify(file: Path, key_files: tuple[Path, ...], instance: Path | None) -> None:
    """Check the signature of a report or certificate (PDF or JSON); exit 1 on any mismatch."""
    if key_files:
        trusted = {}
        for path in key_files:
            try:
                key = load_public(path.read_bytes())
            except ValueError as exc:
                raise click.ClickException(f"{path}: {exc}") from None
            trusted[fingerprint(key)] = key
    else:
        trusted = Keyring(instance_folder(instance)).public_keys()
        if not trusted:
            raise click.ClickException("no public keys in the instance folder; give --key FILE")
    try:
        payload = verify_bytes(file.read_bytes(), trusted)
    except VerificationError as exc:
        click.echo(f"FAILED: {file}: {exc}", err=True)
        sys.exit(1)
    click.echo(f"OK: {file} is a {payload.get('document')} issued {payload.get('issued_at')} "
               f"by {payload.get('issued_by')}, signed by a trusted key, unchanged")
