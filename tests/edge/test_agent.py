"""The agent loop in-process: folder source -> guard -> inspect -> outbox -> outputs, crash
re-reads, guard action, model hot swap, camera trigger answered with the verdict."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from contextlib import contextmanager

from edge.agent import Agent, build_result, image_policy, result_id
from edge.sources import CameraSource, Frame
from edge.triggers import HttpTrigger, TriggerQueue
from qc.inference import Verdict
from tests.edge.conftest import write_image
from tests.edge.test_sources import FakeCapture
from tests.support.tiny_model import make_tiny_model


@contextmanager
def running(agent: Agent):
    """Run the agent in a thread for the duration of the block."""
    thread = threading.Thread(target=agent.run, daemon=True)
    thread.start()
    try:
        yield agent
    finally:
        agent.stop()
        thread.join(timeout=10)
        assert not thread.is_alive()


def _wait(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _rows(agent_dir) -> list[dict]:
    import sqlite3

    db = sqlite3.connect(agent_dir / "outbox.sqlite3")
    rows = db.execute("SELECT payload, image_state FROM results ORDER BY created_at").fetchall()
    db.close()
    return [dict(json.loads(p), image_state=s) for p, s in rows]


def test_folder_images_become_results(make_config, tmp_path):
    config = make_config()
    inbox = tmp_path / "in"
    write_image(inbox / "dark1.png", 40)
    write_image(inbox / "bright1.png", 200)
    (inbox / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    agent = Agent(config)
    with running(agent):
        _wait(lambda: len(list((inbox / "done").glob("*"))) == 2
              and len(list((inbox / "failed").glob("*"))) == 1)
    rows = {r["serial"]: r for r in _rows(config.data_dir)}
    assert set(rows) == {"dark1", "bright1"}
    assert rows["dark1"]["verdict"] == "pass" and rows["bright1"]["verdict"] == "fail"
    assert rows["bright1"]["defect_type"] in ("scratch", "stain")
    assert rows["dark1"]["image_state"] == "none"  # keep_images = "fail"
    assert rows["bright1"]["image_state"] == "pending"  # waits for a service to upload to
    assert rows["bright1"]["model_version"] == "tiny-1" and rows["bright1"]["timestamp"][-1] == "Z"
    assert len(list((config.data_dir / "images").glob("*/*.png"))) == 1


def test_file_seen_again_after_a_crash_is_not_recorded_twice(make_config, tmp_path):
    config = make_config()
    path = write_image(tmp_path / "in" / "p1.png", 40)
    agent = Agent(config)
    agent.start()
    try:
        frame = agent.source.next(2.0)
        result, rgb = agent.inspect(frame)
        agent.record(result, frame, rgb)  # committed ... and then the process died
        agent.source._busy.clear()
        agent.source._seen.clear()
        again = agent.source.next(2.0)  # the restarted agent finds the file still there
        assert again.key == frame.key
        assert agent.handle(again) is None
        assert agent.outbox.counts()["pending"] == 1
        assert not path.exists() and (tmp_path / "in" / "done" / "p1.png").exists()
    finally:
        agent.close()


def test_guard_action_fail_rejects_unusable_frames(make_config, tmp_path):
    config = make_config(guard={"action": "fail"}, retention={"keep_images": "all"})
    write_image(tmp_path / "in" / "black.png", 3)  # underexposed: the model would say pass
    agent = Agent(config)
    with running(agent):
        _wait(lambda: (tmp_path / "in" / "done" / "black.png").exists())
    (row,) = _rows(config.data_dir)
    assert row["verdict"] == "fail" and row["defect_type"] == "image_quality"
    assert "underexposed" in row["flags"] and row["score"] < 0.5


def test_new_model_is_picked_up_without_restart(make_config, tmp_path, fake_service):
    v1 = make_tiny_model(tmp_path / "v1.onnx", version="v1")
    v2 = make_tiny_model(tmp_path / "v2.onnx", version="v2")
    fake_service.set_model(v1.read_bytes(), "v1")
    config = make_config(fake_service.url, model={"poll_s": 0.1})
    agent = Agent(config)
    with running(agent):
        write_image(tmp_path / "in" / "a.png", 40)
        _wait(lambda: "a" in fake_service_serials(fake_service))
        fake_service.set_model(v2.read_bytes(), "v2")
        _wait(lambda: agent.models.version == "v2")
        write_image(tmp_path / "in" / "b.png", 40)
        _wait(lambda: "b" in fake_service_serials(fake_service))
    versions = {r["serial"]: r["model_version"] for r in fake_service.results.values()}
    assert versions == {"a": "v1", "b": "v2"}


def fake_service_serials(fake) -> set[str]:
    return {r["serial"] for r in fake.results.values()}


def test_http_trigger_answers_with_the_recorded_verdict(make_config, tmp_path):
    config = make_config(source={"kind": "camera", "camera": {"http_port": 0}})
    queue = TriggerQueue()
    http = HttpTrigger(queue, config.source.camera)
    camera = CameraSource(config.source.camera, queue, capture_factory=FakeCapture)
    agent = Agent(config, source=camera)
    try:
        with running(agent):
            request = urllib.request.Request(
                f"http://127.0.0.1:{http.port}/trigger", data=b'{"serial": "SN5"}',
                method="POST")
            with urllib.request.urlopen(request, timeout=10) as response:
                reply = json.load(response)
    finally:
        http.close()
    assert reply["serial"] == "SN5" and reply["verdict"] == "pass"
    assert [r["id"] for r in _rows(config.data_dir)] == [reply["id"]]


def test_pure_helpers(make_config):
    config = make_config()
    frame = Frame(name="x.png", key="x.png:10:1", serial="S", captured_at=1767225600.25)
    assert result_id("S1", frame.key) == result_id("S1", frame.key)
    assert result_id("S1", frame.key) != result_id("S2", frame.key)
    assert result_id("S1", None) != result_id("S1", None)
    verdict = Verdict(0.7, 0.7, "fail", "scratch", 3.2)
    result = build_result(config, frame, verdict, ["blurred"], "v1")
    assert result["verdict"] == "fail" and result["flags"] == ["blurred"]
    assert result["timestamp"] == "2026-01-01T00:00:00.250Z"  # when the file was written
    assert image_policy(config, "fail") == (True, True)
    assert image_policy(config, "pass") == (False, False)
