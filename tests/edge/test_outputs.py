"""Line signals: MQTT against a real mosquitto, a webhook against a local HTTP server."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import paho.mqtt.client as mqtt
import pytest

from edge.config import CameraConfig, MqttConfig, WebhookConfig
from edge.outputs import MqttPublisher, Outputs, Topics, WebhookSender, wanted
from edge.sources import CameraSource
from edge.triggers import MqttTrigger, TriggerQueue
from tests.edge.test_sources import FakeCapture


def _result(verdict: str, flags: list[str] | None = None, n: int = 1) -> dict:
    return {"id": f"id-{n}", "station": "S 1", "product": "widget", "verdict": verdict,
            "score": 0.9 if verdict == "fail" else 0.1, "defect_type": None,
            "flags": flags or [], "timestamp": "2026-01-01T00:00:00.000Z", "serial": f"SN{n}"}


class Subscriber:
    """Collects messages of a topic filter."""

    def __init__(self, broker, topic: str):
        self.messages: list[tuple[str, bytes, bool]] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-sub")
        self.client.on_connect = lambda c, *_: c.subscribe(topic, qos=1)
        self.client.on_subscribe = lambda *_: self.ready.set()
        self.client.on_message = lambda _c, _u, m: self.messages.append(
            (m.topic, m.payload, m.retain))
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self.ready.wait(5)

    def wait_for(self, n: int, timeout: float = 5.0) -> list[tuple[str, bytes, bool]]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.01)
        return self.messages

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def test_wanted_per_verdict():
    assert wanted(["fail"], _result("fail")) and not wanted(["fail"], _result("pass"))
    assert wanted(["flagged"], _result("pass", ["blurred"]))
    assert not wanted(["flagged"], _result("pass"))
    assert Topics.of("qc", "line 1/cam+1").result == "qc/line_1_cam_1/result"


def test_mqtt_publishes_selected_verdicts(broker):
    config = MqttConfig(host=broker.host, port=broker.port, publish=["fail", "flagged"])
    sub = Subscriber(broker, "qc/#")
    publisher = MqttPublisher(config, "S 1")
    outputs = Outputs([(config.publish, publisher)])
    try:
        assert publisher.wait_connected(5)
        outputs.send(_result("pass", n=1))  # not selected
        outputs.send(_result("fail", n=2))
        outputs.send(_result("pass", ["blurred"], n=3))  # flagged
        messages = sub.wait_for(5)  # status online + 2 x (result, verdict)
    finally:
        outputs.close()
    by_topic: dict[str, list] = {}
    for topic, payload, _retain in messages:
        by_topic.setdefault(topic, []).append(payload)
    assert by_topic["qc/S_1/status"][0] == b"online"
    results = [json.loads(p) for p in by_topic["qc/S_1/result"]]
    assert [r["serial"] for r in results] == ["SN2", "SN3"]
    assert results[1]["flags"] == ["blurred"] and results[0]["verdict"] == "fail"
    assert by_topic["qc/S_1/verdict"] == [b"fail", b"pass"]
    assert sub.wait_for(6)[-1][:2] == ("qc/S_1/status", b"offline")  # said on close
    sub.close()


def test_mqtt_without_broker_drops_signals():
    publisher = MqttPublisher(MqttConfig(host="127.0.0.1", port=1), "S1")
    try:
        assert publisher.publish(_result("fail")) is False
        assert publisher.dropped == 1
    finally:
        publisher.close()


def test_mqtt_trigger_fires_the_camera(broker):
    config = MqttConfig(host=broker.host, port=broker.port)
    queue = TriggerQueue()
    source = CameraSource(CameraConfig(trigger="mqtt"), queue, capture_factory=FakeCapture)
    source.start()
    trigger = MqttTrigger(queue, config, "S1")
    sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="test-plc")
    sender.connect(broker.host, broker.port)
    sender.loop_start()
    try:
        deadline = time.monotonic() + 5
        frame = None
        while frame is None and time.monotonic() < deadline:  # until the trigger subscribed
            sender.publish("qc/S1/trigger", json.dumps({"serial": "SN42", "lot": "L7"}), qos=1)
            frame = source.next(0.3)
        assert frame is not None and (frame.serial, frame.lot) == ("SN42", "L7")
    finally:
        sender.disconnect()
        sender.loop_stop()
        trigger.close()
        source.close()


@pytest.fixture
def webhook_server():
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()


def test_webhook_posts_selected_verdicts(webhook_server):
    url, received = webhook_server
    config = WebhookConfig(url=url, on=["fail"])
    sender = WebhookSender(config)
    outputs = Outputs([(config.on, sender)])
    outputs.send(_result("pass", n=1))
    outputs.send(_result("fail", n=2))
    outputs.close()  # drains the queue
    assert [r["serial"] for r in received] == ["SN2"]
    assert received[0]["verdict"] == "fail" and "flags" in received[0]


def test_missing_broker_skips_locally_and_fails_under_ci(monkeypatch):
    from tests.support import mosquitto

    def missing() -> str:
        raise mosquitto.MosquittoUnavailable("mosquitto not found")

    monkeypatch.setattr(mosquitto, "find_binary", missing)
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="mosquitto unavailable"):
        mosquitto.require_mosquitto()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        mosquitto.require_mosquitto()
