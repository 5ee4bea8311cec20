"""The qc-edge command: status, inspect-file, and the import footprint (no torch, no Flask)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from edge.cli import cli
from tests.edge.conftest import base_settings, merge, toml_text, write_image
from tests.support.tiny_model import make_tiny_model

ROOT = Path(__file__).resolve().parents[2]


def _config_file(tmp_path: Path, settings: dict) -> Path:
    path = tmp_path / "station.toml"
    path.write_text(toml_text(settings))
    return path


def test_inspect_file_then_status(tmp_path, tiny_model):
    config = _config_file(tmp_path, base_settings(tmp_path, model=tiny_model))
    image = write_image(tmp_path / "part.png", 210)
    runner = CliRunner()
    out = runner.invoke(cli, ["inspect-file", "--config", str(config), str(image),
                              "--serial", "SN1"])
    assert out.exit_code == 0, out.output
    result = json.loads(out.stdout)
    assert (result["verdict"], result["serial"], result["station"]) == ("fail", "SN1", "S1")
    out = runner.invoke(cli, ["inspect-file", "--config", str(config), str(image), "--no-record"])
    assert out.exit_code == 0
    status = runner.invoke(cli, ["status", "--config", str(config), "--json"])
    info = json.loads(status.stdout)
    assert info["backlog"]["pending"] == 1 and info["backlog"]["images"] == 1
    assert info["agent"]["running"] is False and info["model"]["version"] == "tiny-1"
    text = runner.invoke(cli, ["status", "--config", str(config)]).stdout
    assert "1 pending" in text and "not running" in text and "tiny-1" in text


def test_errors_are_one_line_messages(tmp_path, tiny_model):
    settings = merge(base_settings(tmp_path, model=tiny_model), {"sync": {"batch": 1}})
    config = _config_file(tmp_path, settings)
    runner = CliRunner()
    out = runner.invoke(cli, ["status", "--config", str(config)])
    assert out.exit_code == 1 and "unknown key 'batch' in [sync]" in out.output
    good = _config_file(tmp_path, base_settings(tmp_path, model=tiny_model))
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"not an image")
    out = runner.invoke(cli, ["inspect-file", "--config", str(good), str(junk)])
    assert out.exit_code == 1 and "junk.png: not a readable image" in out.output


def test_run_refuses_a_model_for_another_product(tmp_path):
    gear = make_tiny_model(tmp_path / "gear.onnx", product="gear")
    config = _config_file(tmp_path, base_settings(tmp_path, model=gear))
    out = CliRunner().invoke(cli, ["run", "--config", str(config)])
    assert out.exit_code == 1 and "is a model for 'gear'" in out.output


def test_station_runtime_imports_neither_torch_nor_flask():
    code = (
        "import sys, edge.cli, edge.agent, edge.sources, edge.outputs, edge.models, edge.sync\n"
        "bad = [m for m in ('torch', 'flask', 'sqlalchemy', 'training') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=60)
    help_text = subprocess.run([sys.executable, "-m", "edge", "--help"], cwd=ROOT, check=True,
                               capture_output=True, text=True, timeout=60).stdout
    assert "inspect-file" in help_text and "status" in help_text
