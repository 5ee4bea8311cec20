"""Per-image latency of an exported supervised model: onnxruntime vs the same network in torch
eager, one thread, 224 px (the issue's target: ONNX at least 2x faster). Also times the whole
station path (decode + preprocess + inference) of `qc inspect` on a sample image.

    python -m bench.inference_latency [--size 224] [--runs 100] [--model MODEL.onnx]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from qc.imaging import Preprocessing, preprocess, read_image
from qc.inference import Inspector
from qc.modelpack import ModelInfo
from training.calibration import ScoreScale
from training.export import export_onnx
from training.supervised import SupervisedConfig, SupervisedExport, SupervisedNet

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "sample_images" / "defect" / "crack" / "crack_000.jpg"


def _time(fn, runs: int) -> list[float]:
    for _ in range(5):
        fn()
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def _summary(ms: list[float]) -> str:
    return (f"p50 {statistics.median(ms):7.2f} ms   p90 {np.percentile(ms, 90):7.2f} ms   "
            f"mean {statistics.fmean(ms):7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--model", type=Path, help="an existing model for the station-path timing")
    args = parser.parse_args()
    torch.set_num_threads(1)
    size = (args.size, args.size)
    module = SupervisedExport(SupervisedNet(SupervisedConfig(n_types=4)), ScoreScale(0, .5, 1),
                              seg_map=True).eval()
    info = ModelInfo("bench", "supervised", size, "stretch", 0.5, {"low": 0, "threshold": .5,
                                                                    "high": 1})
    x = torch.from_numpy(preprocess(read_image(SAMPLE), Preprocessing(size)))[None]
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(module, info, Path(tmp) / "bench.onnx", x).path
        inspector = Inspector(path, threads=1)
        with torch.inference_mode():
            eager = _time(lambda: module(x), args.runs)
        onnx_ms = _time(lambda: inspector.run(x.numpy()), args.runs)
        station = _time(lambda: inspector.inspect_file(SAMPLE), args.runs)
    print(f"EfficientNet-Lite0 supervised model, {args.size}x{args.size}, batch 1, 1 thread")
    print(f"torch eager       {_summary(eager)}")
    print(f"onnxruntime       {_summary(onnx_ms)}")
    print(f"speed-up (p50)    {statistics.median(eager) / statistics.median(onnx_ms):.2f}x")
    print(f"station path      {_summary(station)}  (decode {SAMPLE.name}, preprocess, infer, map)")
    if args.model:
        own = Inspector(args.model, threads=1)
        own_ms = _time(lambda: own.inspect_file(SAMPLE), args.runs)
        print(f"{args.model.name:17} {_summary(own_ms)}")


if __name__ == "__main__":
    main()
