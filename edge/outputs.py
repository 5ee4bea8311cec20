"""Signals to the line: each verdict published on MQTT (paho-mqtt) and/or posted to a webhook,
so a PLC, reject gate or stack light can act. Which verdicts go where is configured per output.

MQTT topics (prefix "qc", station names with / + # replaced by _):
  qc/<station>/result   JSON of the result (below), QoS from the config, not retained
  qc/<station>/verdict  "pass" or "fail" as plain text, for PLCs that cannot parse JSON
  qc/<station>/status   "online" / "offline" (retained; "offline" is the last will)
  qc/<station>/trigger  read by a camera source with trigger = "mqtt"
Signals are real-time: while the broker is unreachable they are dropped (and counted), never
replayed late to a gate. Results themselves are safe in the outbox either way.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import re
import threading
import time
from dataclasses import dataclass

import paho.mqtt.client as mqtt
import requests

from edge.config import MqttConfig, WebhookConfig

log = logging.getLogger(__name__)

MESSAGE_FIELDS = (
    "id",
    "station",
    "product",
    "serial",
    "lot",
    "timestamp",
    "verdict",
    "score",
    "defect_type",
    "flags",
    "model_version",
)
WEBHOOK_QUEUE = 100


def wanted(selection: list[str], result: dict) -> bool:
    """True if an output configured for `selection` (pass/fail/flagged) takes this result."""
    return result["verdict"] in selection or ("flagged" in selection and bool(result.get("flags")))


def message(result: dict) -> dict:
    """The payload published for a result."""
    return {k: result.get(k) for k in MESSAGE_FIELDS}


def topic_name(station: str) -> str:
    """A station name made safe for an MQTT topic level."""
    return re.sub(r"[/+#\s]", "_", station) or "_"


@dataclass(frozen=True)
class Topics:
    """The MQTT topics of one station."""

    result: str
    verdict: str
    status: str
    trigger: str

    @classmethod
    def of(cls, prefix: str, station: str) -> Topics:
        base = f"{prefix.rstrip('/')}/{topic_name(station)}" if prefix else topic_name(station)
        return cls(f"{base}/result", f"{base}/verdict", f"{base}/status", f"{base}/trigger")


def make_client(config: MqttConfig, client_id: str) -> mqtt.Client:
    """A paho-mqtt 2.x client with credentials and reconnect delays set (not yet connected)."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
    if config.username:
        client.username_pw_set(config.username, config.password or None)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    return client


class MqttPublisher:
    """Publishes results of one station; connects in the background and reconnects itself."""

    def __init__(self, config: MqttConfig, station: str):
        self.config = config
        self.topics = Topics.of(config.topic_prefix, station)
        self.dropped = 0
        self.client = make_client(config, f"qc-edge-{topic_name(station)}")
        self.client.will_set(self.topics.status, "offline", qos=1, retain=True)
        self.client.on_connect = self._on_connect
        self.client.connect_async(config.host, config.port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT broker %s refused us: %s", self.config.host, reason_code)
            return
        log.info("MQTT connected to %s:%d", self.config.host, self.config.port)
        client.publish(self.topics.status, "online", qos=1, retain=True)

    def wait_connected(self, timeout: float) -> bool:
        """Wait until connected (tests and start-up logs)."""
        deadline = time.monotonic() + timeout
        while not self.client.is_connected() and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.client.is_connected()

    def publish(self, result: dict) -> bool:
        """Publish one result now; False (and counted) when the broker is not connected."""
        if not self.client.is_connected():
            self.dropped += 1
            log.warning("MQTT not connected: signal for %s dropped", result["id"])
            return False
        qos = self.config.qos
        self.client.publish(self.topics.result, json.dumps(message(result)), qos=qos)
        self.client.publish(self.topics.verdict, result["verdict"], qos=qos)
        return True

    def close(self) -> None:
        """Say offline, then disconnect."""
        if self.client.is_connected():
            info = self.client.publish(self.topics.status, "offline", qos=1, retain=True)
            info.wait_for_publish(timeout=2)
        self.client.disconnect()
        self.client.loop_stop()


class WebhookSender:
    """Posts results as JSON from its own thread, so a slow endpoint never stalls inspection."""

    def __init__(self, config: WebhookConfig):
        self.config = config
        self.dropped = 0
        self._queue: queue.Queue[dict | None] = queue.Queue(WEBHOOK_QUEUE)
        self._session = requests.Session()
        self._thread = threading.Thread(target=self._run, name="webhook", daemon=True)
        self._thread.start()

    def publish(self, result: dict) -> bool:
        try:
            self._queue.put_nowait(message(result))
        except queue.Full:
            self.dropped += 1
            log.warning("webhook queue full: signal for %s dropped", result["id"])
            return False
        return True

    def _run(self) -> None:
        while (payload := self._queue.get()) is not None:
            try:
                response = self._session.post(
                    self.config.url, json=payload, timeout=self.config.timeout_s
                )
                if response.status_code >= 400:
                    log.warning("webhook answered HTTP %d", response.status_code)
            except requests.RequestException as exc:
                self.dropped += 1
                log.warning("webhook failed for %s: %s", payload["id"], exc)

    def close(self) -> None:
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=1)
        self._thread.join(timeout=self.config.timeout_s + 1)
        self._session.close()


class Outputs:
    """Fans each result out to the outputs that want its verdict."""

    def __init__(self, sinks: list[tuple[list[str], MqttPublisher | WebhookSender]]):
        self.sinks = sinks

    @classmethod
    def from_config(cls, mqtt_cfg: MqttConfig, webhook: WebhookConfig, station: str) -> Outputs:
        sinks: list = []
        if mqtt_cfg.host and mqtt_cfg.publish:
            sinks.append((mqtt_cfg.publish, MqttPublisher(mqtt_cfg, station)))
        if webhook.url and webhook.on:
            sinks.append((webhook.on, WebhookSender(webhook)))
        return cls(sinks)

    def send(self, result: dict) -> None:
        for selection, sink in self.sinks:
            if wanted(selection, result):
                try:
                    sink.publish(result)
                except Exception:  # a signal problem must not stop inspection
                    log.exception("output %s failed", type(sink).__name__)

    def close(self) -> None:
        for _selection, sink in self.sinks:
            sink.close()
