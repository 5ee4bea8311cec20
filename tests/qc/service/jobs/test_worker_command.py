"""`qc worker` says which extra to install where torch is missing, and `qc serve` starts a
worker unless told not to."""

from __future__ import annotations

import sys

from click.testing import CliRunner

from qc.cli import cli
from qc.service.jobs import child


def test_worker_without_torch_names_the_extra(monkeypatch):
    for name in list(sys.modules):
        if name == "torch" or name.startswith(("torch.", "training", "qc.service.jobs.worker")):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch fails, as without the extra
    result = CliRunner().invoke(cli, ["worker"])
    assert result.exit_code != 0
    assert "pip install 'qc[service,train]'" in result.output and "torch" in result.output


def test_local_worker_is_skipped_without_torch(app, monkeypatch, caplog):
    monkeypatch.setattr(child.importlib.util, "find_spec", lambda name: None)
    assert child.start_local_worker(app) is None
    assert "qc[train]" in caplog.text


def test_serve_starts_a_worker_unless_no_worker(app, monkeypatch):
    started = []
    monkeypatch.setattr(child, "start_local_worker", lambda a: started.append(a))
    from qc.service import server

    monkeypatch.setattr(server, "serve", lambda make_app, host, port, threads=8: None)
    runner = CliRunner()
    assert runner.invoke(cli, ["serve", "--no-worker"], obj={"app": app}).exit_code == 0
    assert started == []
    assert runner.invoke(cli, ["serve"], obj={"app": app}).exit_code == 0
    assert started == [app]
