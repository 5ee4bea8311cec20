"""`qc keys` and `qc report verify` through the real `qc` entry point (no server, no database)."""

from __future__ import annotations

import json

from click.testing import CliRunner

from qc.cli import cli
from qc.reports import signing
from qc.reports.keyring import Keyring


def test_keys_and_verify_through_the_qc_command(tmp_path, monkeypatch):
    monkeypatch.setenv("QC_INSTANCE_PATH", str(tmp_path / "instance"))
    runner = CliRunner()
    shown = runner.invoke(cli, ["keys", "show"])
    assert shown.exit_code == 0, shown.output
    ring = Keyring(tmp_path / "instance")
    fp = ring.current().fingerprint
    assert fp in shown.output and "BEGIN PUBLIC KEY" in shown.output
    document = tmp_path / "doc.json"
    document.write_text(json.dumps(signing.sign_document({"document": "x", "n": 1},
                                                         ring.current())))
    ok = runner.invoke(cli, ["report", "verify", str(document)])
    assert ok.exit_code == 0 and "OK" in ok.output
    rotated = runner.invoke(cli, ["keys", "rotate"])
    assert rotated.exit_code == 0 and f"retired (public key kept): {fp}" in rotated.output
    assert runner.invoke(cli, ["report", "verify", str(document)]).exit_code == 0
    document.write_text(document.read_text().replace('"n": 1', '"n": 2'))
    failed = runner.invoke(cli, ["report", "verify", str(document)])
    assert failed.exit_code == 1 and "FAILED" in failed.output


def test_verify_without_any_trusted_key_says_what_to_do(tmp_path):
    document = tmp_path / "doc.json"
    document.write_text("{}")
    result = CliRunner().invoke(cli, ["report", "verify", str(document), "--instance",
                                      str(tmp_path / "empty")])
    assert result.exit_code == 1 and "give --key FILE" in result.output
    bad_key = tmp_path / "bad.pem"
    bad_key.write_text("not a key")
    result = CliRunner().invoke(cli, ["report", "verify", str(document), "--key", str(bad_key)])
    assert result.exit_code == 1 and "bad.pem" in result.output
