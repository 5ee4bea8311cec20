"""Exactly once, with real processes: the service and the agent over loopback; the service is
killed mid-stream, the agent is killed with SIGKILL while offline with a backlog and again while
sending it; both restart; every result arrives once.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from tests.edge.conftest import toml_text, write_image
from tests.edge.processes import AgentProcess, ServiceProcess
from tests.support.tiny_model import make_tiny_model

N_PER_WAVE = 20
TIMEOUT_S = 40.0


def _wait(predicate, what: str, procs: tuple = (), timeout: float = TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            logs = "\n".join(p.log_tail() for p in procs)
            pytest.fail(f"timed out waiting for {what}\n{logs}")
        time.sleep(0.05)


def _drop(inbox: Path, wave: int) -> list[str]:
    """N images; even ones dark (pass), odd ones bright (fail)."""
    names = []
    for i in range(N_PER_WAVE):
        name = f"w{wave}-{i:02d}"
        write_image(inbox / f"{name}.png", 200 if i % 2 else 50, seed=wave * 100 + i)
        names.append(name)
    return names


def _outbox(data_dir: Path) -> dict[str, str]:
    db = sqlite3.connect(data_dir / "outbox.sqlite3")
    rows = dict(db.execute("SELECT id, state FROM results").fetchall())
    db.close()
    return rows


def _done(inbox: Path) -> int:
    return len(list((inbox / "done").glob("*.png")))


def test_every_result_arrives_exactly_once(tmp_path):
    service = ServiceProcess(tmp_path / "service")
    key = service.setup("S1", "widget", make_tiny_model(tmp_path / "tiny.onnx"))
    inbox, data_dir = tmp_path / "in", tmp_path / "edge"
    settings = {
        "station": {"name": "S1", "product": "widget"},
        "service": {"url": service.url, "api_key": key, "timeout_s": 2.0},
        "paths": {"data_dir": str(data_dir)},
        "model": {"poll_s": 1.0},
        "source": {"kind": "folder",
                   "folder": {"path": str(inbox), "poll_s": 0.05, "serial_from_name": True}},
        "sync": {"batch_size": 7, "interval_s": 0.1, "backoff_base_s": 0.1, "backoff_max_s": 0.5},
    }
    config = tmp_path / "station.toml"
    config.write_text(toml_text(settings))
    agent = AgentProcess(config, tmp_path)
    procs = (service, agent)
    expected: list[str] = []
    try:
        service.start()
        agent.start()
        expected += _drop(inbox, 1)
        _wait(lambda: len(service.inspections(key)) >= 5, "first results at the service", procs)
        service.kill()  # mid-stream: the agent keeps inspecting into its outbox
        expected += _drop(inbox, 2)
        _wait(lambda: _done(inbox) >= N_PER_WAVE + 5, "inspection while offline", procs)
        agent.kill9()  # with a backlog, perhaps mid-batch
        backlog = sum(state != "sent" for state in _outbox(data_dir).values())
        expected += _drop(inbox, 3)  # arrive while both are down
        service.start()
        agent.start()
        before = len(service.inspections(key))
        _wait(lambda: len(service.inspections(key)) > before, "the backlog draining", procs)
        agent.kill9()  # again, now while it is sending
        in_flight = sum(state == "sending" for state in _outbox(data_dir).values())
        agent.start()
        total = 3 * N_PER_WAVE
        _wait(lambda: _done(inbox) == total, "every file handled", procs)
        _wait(lambda: len(service.inspections(key)) >= total, "every result sent", procs)
        time.sleep(0.5)  # a duplicate, if any, would arrive now
        items = service.inspections(key)
        _wait(lambda: all(s == "sent" for s in _outbox(data_dir).values()), "outbox drained",
              procs)
        _wait(lambda: _fail_images(service, key) == total // 2, "images of failed parts", procs)
        assert agent.stop() == 0
    finally:
        agent.kill9()
        service.kill()
    serials = [i["serial"] for i in items]
    assert len(items) == total and sorted(serials) == sorted(expected)  # each exactly once
    assert {i["id"] for i in items} == set(_outbox(data_dir))
    assert backlog > 0  # the kill really happened with results not yet at the service
    for item in items:
        bright = int(item["serial"].split("-")[1]) % 2 == 1
        assert item["verdict"] == ("fail" if bright else "pass")
        assert item["station"] == "S1" and item["model_version"] == "tiny-1"
    print(json.dumps({"results": total, "backlog_at_kill": backlog, "in_flight_at_kill": in_flight,
                      "service_starts": service.starts, "agent_starts": agent.starts}))


def _fail_images(service: ServiceProcess, key: str) -> int:
    return sum(1 for i in service.inspections(key) if i["image_url"] and i["verdict"] == "fail")
