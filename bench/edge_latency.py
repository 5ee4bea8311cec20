"""Station figures on one CPU core: latency from an image file to its verdict committed in the
outbox (read, decode, guard, preprocess, inference, durable write) for a 1280x1024 JPEG, p50/p99
and per stage; sustained items/s through the whole agent loop (folder source, moves included);
time to drain a 10,000-result backlog into a real `qc serve` over loopback.

    python -m bench.edge_latency [--model MODEL.onnx] [--runs 200] [--items 300]
                                 [--backlog 10000] [--batch 200] [--core 0] [--skip-drain]

Without --model it exports the default supervised model (EfficientNet-Lite0, 224x224; needs
the train extra for torch). Target: p50 <= 25 ms on one core.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse  # noqa: E402 - the thread limits above must come first
import statistics  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from pathlib import Path  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_images" / "defect" / "crack" / "crack_000.jpg"


def pin(core: int) -> None:
    """Run this process (and the threads it starts later) on one core."""
    os.sched_setaffinity(0, {core})
    cv2.setNumThreads(1)


def default_model(out: Path) -> Path:
    """Export the default supervised model (weights do not change its speed)."""
    import torch

    from qc.imaging import Preprocessing, preprocess, read_image
    from qc.modelpack import ModelInfo
    from training.calibration import ScoreScale
    from training.export import export_onnx
    from training.supervised import SupervisedConfig, SupervisedExport, SupervisedNet

    torch.set_num_threads(1)
    module = SupervisedExport(
        SupervisedNet(SupervisedConfig(n_types=4)), ScoreScale(0, 0.5, 1), seg_map=True
    ).eval()
    info = ModelInfo("bench", "supervised", (224, 224), "stretch", 0.5,
                     {"low": 0, "threshold": 0.5, "high": 1}, version="bench-supervised")
    x = torch.from_numpy(preprocess(read_image(SAMPLE), Preprocessing((224, 224))))[None]
    return export_onnx(module, info, out, x).path


def bench_jpeg(out: Path) -> Path:
    """A 1280x1024 JPEG (quality 90) made from a sample image."""
    image = cv2.resize(cv2.imread(str(SAMPLE)), (1280, 1024), interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(out), image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    return out


def make_agent(data_dir: Path, model: Path, product: str, source=None):
    from edge.agent import Agent
    from edge.config import from_dict

    settings = {
        "station": {"name": "bench", "product": product},
        "paths": {"data_dir": str(data_dir)},
        "model": {"path": str(model), "threads": 1},
        "source": {"kind": "none"},
    }
    if source is not None:
        settings["source"] = {"kind": "folder", "folder": source}
    agent = Agent(from_dict(settings))
    agent.models.load()
    return agent


class OneFile:
    """A source that hands out the same file under fresh names (no dedupe)."""

    def __init__(self, path: Path):
        self.path, self.n = path, 0

    def finish(self, frame, ok: bool) -> None:
        pass

    def close(self) -> None:
        pass


def summary(ms: list[float]) -> str:
    return (f"p50 {statistics.median(ms):6.2f} ms  p99 {np.percentile(ms, 99):6.2f} ms  "
            f"mean {statistics.fmean(ms):6.2f} ms")


def _clock() -> tuple[float, float]:
    """(wall, this thread's CPU) seconds: CPU time is what a dedicated core would spend."""
    return time.perf_counter(), time.thread_time()


def _lap(stages: dict, name: str, a: tuple[float, float], b: tuple[float, float]) -> None:
    stages.setdefault(name, ([], []))
    stages[name][0].append((b[0] - a[0]) * 1000)
    stages[name][1].append((b[1] - a[1]) * 1000)


def _end_to_end(agent, jpeg: Path, runs: int, stages: dict) -> None:
    """Agent.handle() on a file read from disk, warm-up excluded."""
    from edge.sources import Frame

    for i in range(runs + 10):
        t0 = _clock()
        data = jpeg.read_bytes()
        frame = Frame(name=f"{i}.jpg", data=data, key=f"{i}.jpg:{len(data)}:{i}")
        assert agent.handle(frame) is not None
        if i >= 10:
            _lap(stages, "total", t0, _clock())


def _by_stage(agent, jpeg: Path, runs: int, stages: dict) -> None:
    """The same path, stage by stage."""
    from edge import guard
    from qc.imaging import quality_stats, read_image

    inspector = agent.models.inspector
    for _ in range(runs):
        t0 = _clock()
        data = jpeg.read_bytes()
        t1 = _clock()
        rgb = read_image(data)
        t2 = _clock()
        guard.check(quality_stats(rgb), agent.config.guard, inspector.info.image_stats)
        t3 = _clock()
        verdict = inspector.inspect(rgb, with_map=False)
        t4 = _clock()
        agent.outbox.add({"id": str(uuid.uuid4()), "verdict": verdict.verdict, "n": 1})
        t5 = _clock()
        for name, a, b in (("read", t0, t1), ("decode", t1, t2), ("guard", t2, t3),
                           ("infer", t3, t4), ("write", t4, t5)):
            _lap(stages, name, a, b)


def latency(model: Path, jpeg: Path, product: str, runs: int, tmp: Path) -> None:
    """File -> verdict in the outbox: wall and CPU time, per item and per stage."""
    agent = make_agent(tmp / "lat", model, product)
    agent.source = OneFile(jpeg)
    stages: dict[str, tuple[list[float], list[float]]] = {}
    _by_stage(agent, jpeg, runs, stages)
    _end_to_end(agent, jpeg, runs, stages)
    agent.close()
    print(f"latency, file -> verdict in outbox ({runs} runs, {jpeg.stat().st_size // 1024} KB "
          "JPEG 1280x1024; write = durable SQLite commit):")
    for name, (wall, cpu) in stages.items():
        print(f"  {name:6} wall {summary(wall)}   cpu p50 {statistics.median(cpu):6.2f} ms")


def sustained(model: Path, jpeg: Path, product: str, items: int, tmp: Path) -> None:
    """The whole agent loop on a folder pre-filled with `items` files."""
    inbox = tmp / "inbox"
    inbox.mkdir()
    data = jpeg.read_bytes()
    for i in range(items):
        (inbox / f"p{i:05d}.jpg").write_bytes(data)
    agent = make_agent(tmp / "sus", model, product,
                       source={"path": str(inbox), "poll_s": 0.05, "settle_polls": 1})
    thread = threading.Thread(target=agent.run, daemon=True)
    start = time.perf_counter()
    thread.start()
    done = inbox / "done"
    while not done.exists() or len(os.listdir(done)) < items:
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    agent.stop()
    thread.join(timeout=30)
    print(f"sustained: {items} files through the agent loop in {seconds:.2f} s = "
          f"{items / seconds:.1f} items/s (includes start-up and folder polling)")


def drain(model: Path, product: str, backlog: int, batch: int, tmp: Path) -> None:
    """Time for the uploader to empty a backlog into a real service over loopback."""
    from edge.client import ServiceClient
    from edge.config import RetentionConfig, ServiceConfig, SyncConfig
    from edge.outbox import Outbox
    from edge.sync import Syncer
    from tests.edge.processes import ServiceProcess

    service = ServiceProcess(tmp / "service")
    key = service.setup("bench", product, model)
    service.start()
    try:
        box = Outbox(tmp / "drain", synchronous="OFF")  # filling fast is not what is timed
        now = time.time()
        for i in range(backlog):
            box.add({"id": str(uuid.uuid4()), "product": product, "station": "bench",
                     "lot": "L1", "serial": f"SN{i:06d}",
                     "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - i)),
                     "score": 0.2, "raw_score": 0.2, "verdict": "pass", "defect_type": None,
                     "model_version": "bench-supervised", "latency_ms": 12.5, "flags": []})
        box.close()
        box = Outbox(tmp / "drain")
        client = ServiceClient(ServiceConfig(url=service.url, api_key=key, timeout_s=60))
        syncer = Syncer(box, client, SyncConfig(batch_size=batch), RetentionConfig())
        start = time.perf_counter()
        sent = 0
        while (n := syncer.sync_once()) > 0:
            sent += n
        seconds = time.perf_counter() - start
        assert sent == backlog and len(service.inspections(key)) == backlog
        print(f"drain: {backlog} results in batches of {batch} to qc serve (SQLite) in "
              f"{seconds:.1f} s = {backlog / seconds:.0f} results/s")
    finally:
        service.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--backlog", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--core", type=int, default=0)
    parser.add_argument("--skip-drain", action="store_true")
    args = parser.parse_args()
    pin(args.core)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = args.model or default_model(tmp / "bench.onnx")
        from qc.modelpack import read_info

        product = read_info(model).product
        jpeg = bench_jpeg(tmp / "bench.jpg")
        print(f"model {model.name} ({product}), 1 core (cpu {args.core}), onnxruntime 1 thread")
        latency(model, jpeg, product, args.runs, tmp)
        sustained(model, jpeg, product, args.items, tmp)
        if not args.skip_drain:
            drain(model, product, args.backlog, args.batch, tmp)


if __name__ == "__main__":
    main()
