"""A throwaway MQTT broker for tests: `mosquitto` on a free loopback port with a config in a
temporary folder, stopped and removed at the end.

Use `require_mosquitto()` in fixtures: it skips with the reason when the binary is missing, and
fails instead under CI (CI=true), where a missing service is a broken setup.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

log = logging.getLogger(__name__)

START_TIMEOUT_S = 10


class MosquittoUnavailable(RuntimeError):
    """The mosquitto binary is missing."""


def find_binary() -> str:
    """$QC_MOSQUITTO, the PATH, or Debian's /usr/sbin/mosquitto."""
    for candidate in (os.environ.get("QC_MOSQUITTO"), shutil.which("mosquitto"),
                      "/usr/sbin/mosquitto"):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise MosquittoUnavailable(
        "mosquitto not found ($QC_MOSQUITTO, PATH, /usr/sbin); "
        "install it with `apt-get install mosquitto`"
    )


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MosquittoBroker:
    """One broker in a temporary folder: start(), stop()."""

    def __init__(self) -> None:
        self.binary = find_binary()
        self.host = "127.0.0.1"
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="qc-mqtt-"))
        self.proc: subprocess.Popen | None = None

    def start(self) -> MosquittoBroker:
        """Start and wait until the port accepts connections."""
        conf = self.root / "mosquitto.conf"
        lines = [f"listener {self.port} {self.host}", "allow_anonymous true",
                 "persistence false", "log_dest stdout"]
        if os.geteuid() == 0:
            lines.append("user root")  # mosquitto would otherwise switch to its own user
        conf.write_text("\n".join(lines) + "\n")
        self.log_path = self.root / "log"
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen([self.binary, "-c", str(conf)], stdout=out,
                                         stderr=subprocess.STDOUT, cwd=self.root)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log_path.read_text()[-2000:]}")
            try:
                socket.create_connection((self.host, self.port), timeout=0.5).close()
                log.info("mosquitto on %s:%d", self.host, self.port)
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen within {START_TIMEOUT_S} s")

    def stop(self) -> None:
        """Stop the broker and delete its folder."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)


def require_mosquitto() -> MosquittoBroker:
    """Start a broker, or skip the test (fail under CI=true) when mosquitto is missing."""
    import pytest

    try:
        return MosquittoBroker().start()
    except MosquittoUnavailable as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true and mosquitto is unavailable: {exc}", pytrace=False)
        pytest.skip(f"mosquitto unavailable: {exc}")
    raise AssertionError("unreachable")  # pragma: no cover
