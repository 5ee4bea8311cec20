"""Camera triggers: something on the line says "a part is in place, take the picture".

http: POST http://<http_host>:<http_port>/trigger (optional JSON {"serial", "lot"}) answers with
the verdict once it is in the outbox; key: one line on stdin (a barcode scanner typing a serial
and Enter works); mqtt: a message on qc/<station>/trigger (JSON {"serial", "lot"}, plain serial
text, or empty); interval: free-running, every interval_s.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from edge.config import CameraConfig, MqttConfig
from edge.outputs import Topics, make_client, topic_name

log = logging.getLogger(__name__)

QUEUE_SIZE = 16  # triggers waiting for inspection; more means the line outruns the station


@dataclass
class Trigger:
    """One request for a picture; whoever fired it may wait for the outcome."""

    serial: str | None = None
    lot: str | None = None
    at: float = field(default_factory=time.monotonic)
    result: dict | None = None
    error: str | None = None
    _done: threading.Event = field(default_factory=threading.Event, repr=False)

    def finish(self, result: dict | None, error: str | None = None) -> None:
        """Called by the agent with the recorded result, or with an error."""
        self.result, self.error = result, error
        self._done.set()

    def wait(self, timeout: float) -> bool:
        return self._done.wait(timeout)


class TriggerQueue:
    """Where trigger threads put triggers and the camera source takes them."""

    def __init__(self, size: int = QUEUE_SIZE):
        self._queue: queue.Queue[Trigger] = queue.Queue(size)

    def fire(self, serial: str | None = None, lot: str | None = None) -> Trigger:
        trigger = Trigger(serial=serial or None, lot=lot or None)
        try:
            self._queue.put_nowait(trigger)
        except queue.Full:
            log.warning("trigger dropped: %d triggers already waiting", self._queue.maxsize)
            trigger.finish(None, "station busy: too many triggers waiting")
        return trigger

    def get(self, timeout: float) -> Trigger | None:
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None


def _fields(payload: bytes) -> tuple[str | None, str | None]:
    """(serial, lot) from a JSON object, plain text serial, or nothing."""
    text = payload.decode("utf-8", "replace").strip()
    if not text:
        return None, None
    try:
        body = json.loads(text)
    except json.JSONDecodeError:
        return text[:128], None
    if isinstance(body, dict):
        serial, lot = body.get("serial"), body.get("lot")
        return (str(serial) if serial else None), (str(lot) if lot else None)
    return str(body)[:128], None


class HttpTrigger:
    """A local HTTP endpoint: POST /trigger, GET /health."""

    def __init__(self, triggers: TriggerQueue, config: CameraConfig):
        handler = _handler(triggers, config.reply_timeout_s)
        self.server = ThreadingHTTPServer((config.http_host, config.http_port), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(
            target=self.server.serve_forever, name="http-trigger", daemon=True
        )
        self._thread.start()
        log.info("HTTP trigger on http://%s:%d/trigger", config.http_host, self.port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _handler(triggers: TriggerQueue, reply_timeout: float) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server naming
            if self.path == "/health":
                self._send(200, {"status": "ok"})
            else:
                self._send(404, {"error": "use POST /trigger"})

        def do_POST(self) -> None:  # noqa: N802
            if self.path != "/trigger":
                self._send(404, {"error": "use POST /trigger"})
                return
            length = min(int(self.headers.get("Content-Length") or 0), 4096)
            serial, lot = _fields(self.rfile.read(length))
            trigger = triggers.fire(serial, lot)
            if not trigger.wait(reply_timeout):
                self._send(504, {"error": f"no verdict within {reply_timeout} s"})
            elif trigger.error:
                self._send(503, {"error": trigger.error})
            else:
                self._send(200, trigger.result)

        def _send(self, status: int, body: dict | None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, fmt: str, *args: object) -> None:
            log.debug("http trigger: " + fmt, *args)

    return Handler


class KeyTrigger:
    """One trigger per line typed on stdin; the line, if any, is the serial."""

    def __init__(self, triggers: TriggerQueue, stream=None):
        self._stream = stream or sys.stdin
        self._thread = threading.Thread(
            target=self._run, args=(triggers,), name="key-trigger", daemon=True
        )
        self._thread.start()
        log.info("press Enter (or scan a serial) to take a picture")

    def _run(self, triggers: TriggerQueue) -> None:
        for line in self._stream:
            triggers.fire(line.strip()[:128] or None)

    def close(self) -> None:
        """stdin cannot be interrupted; the daemon thread ends with the process."""


class MqttTrigger:
    """Subscribes to qc/<station>/trigger."""

    def __init__(self, triggers: TriggerQueue, config: MqttConfig, station: str):
        self.topic = Topics.of(config.topic_prefix, station).trigger
        self.client = make_client(config, f"qc-edge-{topic_name(station)}-trigger")
        self.client.on_connect = self._on_connect
        self.client.on_message = lambda _c, _u, msg: triggers.fire(*_fields(msg.payload))
        self.client.connect_async(config.host, config.port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.error("MQTT trigger: broker refused us: %s", reason_code)
            return
        client.subscribe(self.topic, qos=1)
        log.info("MQTT trigger on %s", self.topic)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


class IntervalTrigger:
    """Free-running: a trigger every interval_s."""

    def __init__(self, triggers: TriggerQueue, interval_s: float):
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, args=(triggers, interval_s), name="interval-trigger", daemon=True
        )
        self._thread.start()

    def _run(self, triggers: TriggerQueue, interval_s: float) -> None:
        while not self._stop.wait(interval_s):
            triggers.fire()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
