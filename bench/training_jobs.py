"""Training jobs against the CLI, and the service's latency while a job trains.

    python -m bench.training_jobs [DATA] [--mode MODE] [--size 128] [--epochs N] [--requests 40]

1. `qc train` + `qc evaluate` on DATA (what an engineer runs by hand), wall time.
2. The same data and options as a job (POST /api/v1/training-jobs with the zip) run by a real
   `qc worker` next to a real `qc serve --no-worker`: wall time from POST to succeeded.
   Overhead = job / CLI - 1 (target <= 10 %), against the two CLI processes and against the
   same commands run in a warm process (the best of RUNS runs each).
3. POST /api/v1/inspections latency (p50/p95) with no job, then while a second job trains.
Defaults to the committed sample_images; prints the figures.
"""

from __future__ import annotations

import argparse
import io
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from datetime import datetime
from pathlib import Path

import requests

from tests.edge.processes import ROOT, ServiceProcess

TIMEOUT_S = 1800
RUNS = 3  # the best of three: the 2-core machine is shared, and a process's first run warms up


def zip_folder(root: Path) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for path in sorted(root.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(root).as_posix())
    return buf.getvalue()


def cli_steps(data: Path, out: Path, options: list[str]) -> list[list[str]]:
    return [["train", str(data), "--out", str(out), "--product", "bench", *options],
            ["evaluate", str(out), str(data), "--out", str(out.parent / "report")]]


def run_cli(service: ServiceProcess, data: Path, out: Path, options: list[str]) -> float:
    """`qc train` then `qc evaluate` as an engineer runs them: two processes."""
    start = time.perf_counter()
    for args in cli_steps(data, out, options):
        subprocess.run([sys.executable, "-m", "qc.cli", *args], cwd=ROOT, env=service.env,
                       check=True, capture_output=True, timeout=TIMEOUT_S)
    return time.perf_counter() - start


def run_cli_in_process(data: Path, out: Path, options: list[str]) -> float:
    """The same two commands in this (warm) process: the CLI's work without start-up."""
    from click.testing import CliRunner

    import training.commands  # noqa: F401  (torch imported before the clock runs)
    from qc.cli import cli

    out.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    for args in cli_steps(data, out, options):
        result = CliRunner().invoke(cli, args)
        if result.exit_code != 0:
            raise RuntimeError(result.output)
    return time.perf_counter() - start


def wait_until_ready(log: Path) -> None:
    deadline = time.monotonic() + 120
    while "waiting for jobs" not in log.read_text(errors="replace"):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)


def run_job(service: ServiceProcess, key: str, data: bytes, form: dict) -> tuple[float, dict]:
    headers = {"Authorization": f"Bearer {key}"}
    start = time.perf_counter()
    reply = requests.post(service.url + "/api/v1/training-jobs", headers=headers, data=form,
                          files={"dataset": ("data.zip", data, "application/zip")}, timeout=120)
    reply.raise_for_status()
    job = reply.json()
    job["post_s"] = time.perf_counter() - start
    while job["state"] in ("queued", "running"):
        time.sleep(0.25)
        job = {"post_s": job["post_s"], **requests.get(
            f"{service.url}/api/v1/training-jobs/{job['id']}", headers=headers, timeout=30).json()}
        if time.perf_counter() - start > TIMEOUT_S:
            raise RuntimeError("the job did not finish")
    if job["state"] != "succeeded":
        raise RuntimeError(f"job {job['state']}: {job.get('error')}\n{job.get('log', '')[-2000:]}")
    return time.perf_counter() - start, job


def inspect_latencies(service: ServiceProcess, key: str, photos: list[Path], n: int,
                      until: threading.Event | None = None) -> list[float]:
    """POST /inspections n times (or until `until` is set), milliseconds each."""
    headers, out, k = {"Authorization": f"Bearer {key}"}, [], 0
    while (until is None and k < n) or (until is not None and not until.is_set()):
        photo = photos[k % len(photos)]
        start = time.perf_counter()
        reply = requests.post(service.url + "/api/v1/inspections", headers=headers,
                              data={"product": "bench"},
                              files={"image": (photo.name, photo.read_bytes())}, timeout=60)
        reply.raise_for_status()
        out.append((time.perf_counter() - start) * 1000)
        k += 1
        time.sleep(0.2)  # a busy line: a part every fraction of a second
    return out


def summary(ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=20) if len(ms) > 1 else ms * 19
    return f"p50 {statistics.median(ms):.0f} ms, p95 {q[18]:.0f} ms ({len(ms)} requests)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=ROOT / "sample_images")
    parser.add_argument("--mode", help="a `qc train --mode` choice (default: its default)")
    parser.add_argument("--size", default="128")
    parser.add_argument("--epochs", type=int, help="supervised: at most this many epochs")
    parser.add_argument("--requests", type=int, default=40)
    args = parser.parse_args()
    chosen = {"mode": args.mode, "size": args.size, "epochs": args.epochs}
    chosen = {k: str(v) for k, v in chosen.items() if v is not None}
    options = [a for k, v in chosen.items() for a in (f"--{k}", v)]
    form = {"product": "bench", **chosen}
    photos = sorted(args.data.rglob("*.jpg"))[:20] or sorted(args.data.rglob("*.png"))[:20]
    with tempfile.TemporaryDirectory() as tmp:
        service = ServiceProcess(Path(tmp) / "service")
        service.qc("products", "create", "--name", "bench")
        service.qc("users", "create", "--username", "eng", "--role", "engineer",
                   "--password", "bench-password")
        key = service.qc("users", "key", "--username", "eng").strip().splitlines()[-1]
        cli_model = Path(tmp) / "cli" / "bench.onnx"
        cli_model.parent.mkdir()
        cli_s = run_cli(service, args.data, cli_model, options)
        service.qc("models", "upload", str(cli_model), "--product", "bench", "--activate")
        service.start()
        worker_log = Path(tmp) / "worker.log"
        with worker_log.open("wb") as log:
            worker = subprocess.Popen([sys.executable, "-m", "qc.cli", "worker"], cwd=ROOT,
                                      env=service.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            data = zip_folder(args.data)
            wait_until_ready(worker_log)  # torch imported, polling: then the clock runs
            warm, jobs = [], []
            for k in range(RUNS):  # alternated, so a change of load on the machine hits both
                warm.append(run_cli_in_process(args.data, Path(tmp) / f"warm{k}" / "m.onnx",
                                               options))
                jobs.append(run_job(service, key, data, form))
            warm_s = min(warm)
            job_s, job = min(jobs, key=lambda run: run[0])
            idle = inspect_latencies(service, key, photos, args.requests)
            stop, busy = threading.Event(), []
            load = threading.Thread(target=lambda: busy.extend(
                inspect_latencies(service, key, photos, 0, until=stop)))
            load.start()
            try:
                run_job(service, key, data, form)
            finally:
                stop.set()
                load.join()
        finally:
            worker.terminate()
            worker.wait(30)
            service.kill()
    print(f"data {args.data}, options {' '.join(options)}")
    print(f"CLI (qc train + qc evaluate, two processes): {cli_s:.1f} s; the same commands in "
          f"a warm process (no start-up): {warm_s:.1f} s")
    created, started, finished = (datetime.fromisoformat(job[k]) for k in (
        "created_at", "started_at", "finished_at"))
    worker_s, wait_s = (finished - started).total_seconds(), (started - created).total_seconds()
    print(f"job (POST to succeeded, report included): {job_s:.1f} s, "
          f"overhead {100 * (job_s / warm_s - 1):+.1f} % over the warm CLI (target <= 10 %), "
          f"{100 * (job_s / cli_s - 1):+.1f} % over the two processes; model "
          f"{job['model_version']}")
    print(f"  of which: POST (upload, zip check) {job['post_s']:.1f} s, in the queue "
          f"{wait_s:.1f} s, in the worker {worker_s:.1f} s, the rest (polling, clocks) "
          f"{job_s - job['post_s'] - wait_s - worker_s:.1f} s")
    print(f"POST /inspections without a job: {summary(idle)}")
    print(f"POST /inspections while a job trains: {summary(busy)}")


if __name__ == "__main__":
    main()
