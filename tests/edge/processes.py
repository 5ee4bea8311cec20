"""Real processes for end-to-end tests and benches: the qc service (`qc serve` on a temporary
SQLite database, set up through the `qc` CLI) and the station agent (`python -m edge run`).
Every wait is bounded, so a broken build fails instead of hanging.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 30.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServiceProcess:
    """The plant service in a temporary folder; the same database survives restarts."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "QC_DATABASE_URL": f"sqlite:///{self.root / 'qc.sqlite3'}",
            "QC_DATA_DIR": str(self.root / "data"),
            "QC_INSTANCE_PATH": str(self.root / "instance"),
            "QC_SECRET_KEY": "edge-e2e-secret",
        }
        self.proc: subprocess.Popen | None = None
        self.starts = 0
        self.serve_args = ["--no-worker"]  # no training worker unless a test asks for one

    def qc(self, *args: str) -> str:
        """Run a `qc` CLI command against this service's database; returns its stdout."""
        proc = subprocess.run([sys.executable, "-m", "qc.cli", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"qc {' '.join(args)} failed: {proc.stderr[-2000:]}")
        return proc.stdout

    def setup(self, station: str, product: str, model: Path) -> str:
        """Create the station, product and active model; returns the station's API key."""
        self.qc("products", "create", "--name", product)
        key = self.qc("stations", "create", "--name", station, "--product", product)
        key = key.strip().splitlines()[-1]
        self.qc("models", "upload", str(model), "--product", product, "--activate")
        return key

    def start(self) -> ServiceProcess:
        self.starts += 1
        log = open(self.root / f"serve-{self.starts}.log", "wb")  # noqa: SIM115 - child owns it
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "qc.cli", "serve", "--host", "127.0.0.1",
             "--port", str(self.port), *self.serve_args],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"qc serve exited: {self.log_tail()}")
            try:
                if requests.get(self.url + "/api/v1/health", timeout=1).ok:
                    return self
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"qc serve did not answer within {START_TIMEOUT_S} s")

    def log_tail(self) -> str:
        path = self.root / f"serve-{self.starts}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the service vanishes mid-request."""
        _kill(self.proc)
        self.proc = None

    def inspections(self, key: str) -> list[dict]:
        """Every inspection the station's key can see (paged)."""
        items, offset = [], 0
        while offset is not None:
            reply = requests.get(
                self.url + "/api/v1/inspections", params={"limit": 500, "offset": offset},
                headers={"Authorization": f"Bearer {key}"}, timeout=10,
            )
            reply.raise_for_status()
            body = reply.json()
            items.extend(body["items"])
            offset = body["next_offset"]
        return items


class AgentProcess:
    """`python -m edge run --config FILE` as a child process."""

    def __init__(self, config: Path, log_dir: Path):
        self.config, self.log_dir = Path(config), Path(log_dir)
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> AgentProcess:
        self.starts += 1
        log = open(self.log_dir / f"agent-{self.starts}.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge", "run", "--config", str(self.config)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def log_tail(self) -> str:
        path = self.log_dir / f"agent-{self.starts}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def kill9(self) -> None:
        _kill(self.proc)
        self.proc = None

    def stop(self, timeout: float = 15.0) -> int:
        """SIGTERM and wait for a clean exit; returns the exit code."""
        if self.proc is None:
            return 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            _kill(self.proc)
            self.proc = None


def _kill(proc: subprocess.Popen | None) -> None:
    if proc is not None and proc.poll() is None:
        proc.kill()
        proc.wait(timeout=10)
