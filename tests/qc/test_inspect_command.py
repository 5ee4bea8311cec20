"""`qc inspect`: the JSON contract, bad files, folders, heatmaps, and no torch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import cv2
import numpy as np
from click.testing import CliRunner

from qc.cli import cli


def _write(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((40, 50, 3), value, np.uint8))
    return path


def _rows(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.strip()]


def test_json_contract_and_bad_files(tiny_model, tmp_path):
    bright = _write(tmp_path / "bright.png", 230)
    dark = _write(tmp_path / "dark.jpg", 10)
    corrupt = tmp_path / "corrupt.jpg"
    corrupt.write_bytes(b"\xff\xd8\xff\xe0 nope")
    notes = tmp_path / "notes.txt"
    notes.write_text("not an image")
    result = CliRunner().invoke(cli, ["inspect", str(tiny_model), str(bright), str(corrupt),
                                      str(dark), str(notes), "--json", "--threads", "1"])
    assert result.exit_code == 1
    rows = _rows(result.output)
    assert [r["path"] for r in rows] == [str(bright), str(corrupt), str(dark), str(notes)]
    ok = rows[0]
    assert set(ok) == {"path", "score", "raw_score", "verdict", "defect_type", "latency_ms"}
    assert ok["verdict"] == "fail" and 0.5 <= ok["score"] <= 1 and ok["defect_type"]
    assert rows[2]["verdict"] == "pass" and rows[2]["defect_type"] is None
    assert set(rows[1]) == {"path", "error"} and "readable" in rows[1]["error"]
    assert "not an image file type" in rows[3]["error"]


def test_all_good_exits_zero_and_folders_skip_masks(tiny_model, tmp_path):
    root = tmp_path / "data"
    _write(root / "good" / "a.png", 10)
    _write(root / "defect" / "scratch" / "b.png", 240)
    _write(root / "masks" / "scratch" / "b.png", 255)
    result = CliRunner().invoke(cli, ["inspect", str(tiny_model), str(root), "--json"])
    assert result.exit_code == 0, result.output
    paths = [r["path"] for r in _rows(result.output)]
    assert sorted(paths) == sorted([str(root / "good" / "a.png"),
                                    str(root / "defect" / "scratch" / "b.png")])


def test_heatmaps_are_written(tiny_model, tmp_path):
    image = _write(tmp_path / "x.png", 200)
    out = tmp_path / "maps"
    result = CliRunner().invoke(cli, ["inspect", str(tiny_model), str(image), "--json",
                                      "--heatmaps", str(out)])
    assert result.exit_code == 0
    heatmap = _rows(result.output)[0]["heatmap"]
    picture = cv2.imread(heatmap)
    assert picture.shape == (40, 50, 3)


def test_human_readable_output(tiny_model, tmp_path):
    image = _write(tmp_path / "x.png", 10)
    result = CliRunner().invoke(cli, ["inspect", str(tiny_model), str(image)])
    assert result.exit_code == 0 and result.output.startswith("PASS")


def test_inspect_runs_without_torch(tiny_model, tmp_path):
    """A station has no torch: make importing it fail and run the real console command."""
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "torch.py").write_text("raise ImportError('torch is not installed here')\n")
    image = _write(tmp_path / "x.png", 10)
    env = {**os.environ, "PYTHONPATH": f"{blocker}{os.pathsep}{os.getcwd()}"}
    qc = shutil.which("qc") or ""
    cmd = [qc] if qc else [sys.executable, "-m", "qc.cli"]
    done = subprocess.run([*cmd, "inspect", str(tiny_model), str(image), "--json"],
                          env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert _rows(done.stdout)[0]["verdict"] == "pass"


def test_missing_extra_is_explained(monkeypatch, tmp_path):
    """A command whose extra is not installed says which extra to install."""
    import qc.cli as qc_cli

    (tmp_path / "needs_missing.py").write_text("import not_installed_pkg_xyz\ntrain = None\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(qc_cli.COMMANDS, "train", ("needs_missing", "train", "train"))
    result = CliRunner().invoke(cli, ["train", "x"])
    assert result.exit_code != 0
    assert "pip install 'qc[train]'" in result.output
    assert "not_installed_pkg_xyz" in result.output
