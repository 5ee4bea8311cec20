"""Peak memory of the service under hostile photos: N concurrent uploads of worst-case images
that pass the pixel limit (a 16-bit 7071x7071 PNG of ~100 KB, an 8-bit one, a 20000x4 strip).

Starts `qc serve` (gunicorn, one worker) on a fresh SQLite instance with a tiny model, sends each
kind N times at once to POST /api/v1/inspections, and samples the RSS of the service's process
tree every 20 ms. Prints the baseline, the peak and the statuses. Linux (/proc) only.

    python -m bench.hostile_images [--concurrent 4]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import requests

from tests.support.tiny_model import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]


def png(height: int, width: int, dtype: type) -> bytes:
    value = 40000 if dtype is np.uint16 else 200
    ok, buf = cv2.imencode(".png", np.full((height, width, 3), value, dtype))
    assert ok
    return buf.tobytes()


KINDS = {
    "16-bit 7071x7071 PNG": lambda: png(7071, 7071, np.uint16),
    "8-bit 7071x7071 PNG": lambda: png(7071, 7071, np.uint8),
    "8-bit 20000x4 PNG": lambda: png(4, 20000, np.uint8),
}


def _tree_rss_mb(pid: int) -> float:
    """RSS of a process and its children (gunicorn master + worker), MB."""
    total, pids = 0, [pid]
    while pids:
        current = pids.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += next(int(line.split()[1]) for line in status.splitlines()
                      if line.startswith("VmRSS:"))
        pids.extend(int(c) for c in children)
    return total / 1024


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _qc(env: dict, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "qc.cli", *args], env=env, cwd=ROOT,
                          capture_output=True, text=True, check=True)
    return done.stdout


def start_service(root: Path) -> tuple[subprocess.Popen, str, str]:
    """A fresh plant with product 'widget', its tiny model and a station; (process, url, key)."""
    env = {**os.environ, "QC_INSTANCE_PATH": str(root), "QC_SECRET_KEY": "bench",
           "QC_RETENTION_EVERY_HOURS": "0"}
    _qc(env, "products", "create", "--name", "widget")
    _qc(env, "models", "upload", str(make_tiny_model(root / "tiny.onnx")), "--product",
        "widget", "--activate")
    key = _qc(env, "stations", "create", "--name", "s1", "--product", "widget").split()[-1]
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "qc.cli", "serve", "--port", str(port)],
                            env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if requests.get(url + "/api/v1/health", timeout=1).ok:
                return proc, url, key
        except requests.RequestException:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("qc serve did not start")


def attack(proc: subprocess.Popen, url: str, key: str, data: bytes, n: int) -> dict:
    """n concurrent uploads of data; peak RSS while they run and their statuses."""
    statuses: list[int] = []

    def send() -> None:
        reply = requests.post(url + "/api/v1/inspections",
                              headers={"Authorization": f"Bearer {key}"},
                              files={"image": ("x.png", data)}, data={"product": "widget"},
                              timeout=300)
        statuses.append(reply.status_code)

    threads = [threading.Thread(target=send) for _ in range(n)]
    before = peak = _tree_rss_mb(proc.pid)
    start = time.perf_counter()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        peak = max(peak, _tree_rss_mb(proc.pid))
        time.sleep(0.02)
    return {"before": before, "peak": peak, "seconds": time.perf_counter() - start,
            "statuses": sorted(statuses)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrent", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url, key = start_service(Path(tmp))
        try:
            print(f"{args.concurrent} concurrent uploads each; service RSS (master + worker)")
            print(f"{'image':24} {'bytes':>9} {'RSS before':>11} {'peak':>9} {'time':>7}  status")
            for name, make in KINDS.items():
                data = make()
                r = attack(proc, url, key, data, args.concurrent)
                print(f"{name:24} {len(data):>9,} {r['before']:>8.0f} MB {r['peak']:>6.0f} MB "
                      f"{r['seconds']:>6.1f}s  {r['statuses']}")
        finally:
            proc.terminate()
            proc.wait(timeout=30)


if __name__ == "__main__":
    main()
