"""Anomaly mode (PatchCore) figures: training time, exported latency, bank size vs AUROC.

1. Training time of `fit_anomaly` from 200 good images (KolektorSDD's first 200 if present,
   else generated flanges), 2 torch threads, including calibration and ONNX export.
2. Per-image latency of the exported graph, onnxruntime, 1 thread, at 224 px and at --size.
3. On KolektorSDD, a part split: parts are NNN // 8 (consecutive numbers are one physical part);
   the bank learns the good images of even parts, the test is every image of odd parts
   (good and cracked). Image AUROC, pixel AUROC and 1-thread latency per memory-bank size,
   with the position reference (config.position_norm) learnt once from the training parts.

    python -m bench.anomaly [--data DIR] [--size 224x512] [--banks 2048,4096,8192] [--skip-train]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from sklearn.metrics import roc_auc_score

from qc.imaging import Preprocessing, parse_size, preprocess, read_image, read_mask, resize
from training.anomaly import PatchCore, PatchCoreConfig, greedy_coreset
from training.anomaly_fit import fit_anomaly, flatten, position_reference
from training.backbone import load_pretrained
from training.config import TrainConfig, base_info
from training.data import group_keys, scan
from training.export import export_onnx
from training.synth import generate_dataset

KOLEKTOR = Path(os.environ.get("QC_KOLEKTOR", "/work/shared/datasets/kolektorsdd"))
PART_SIZE = 8  # KolektorSDD: about 8 consecutive images show one physical part


def training_time(data: Path | None, size, resize_policy: str, n_good: int = 200) -> float:
    """Seconds for fit_anomaly on n_good good images (links into a temporary folder)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        if data is not None and (data / "good").is_dir():
            (root / "good").mkdir(parents=True)
            for p in sorted((data / "good").iterdir())[:n_good]:
                (root / "good" / p.name).symlink_to(p.resolve())
        else:
            generate_dataset(root, n_good=n_good, n_per_type=0, size=256, types=())
        config = TrainConfig(data=root, out=Path(tmp) / "m.onnx", mode="anomaly", size=size,
                             resize=resize_policy, threads=2, group_size=PART_SIZE)
        start = time.perf_counter()
        result = fit_anomaly(config)
        seconds = time.perf_counter() - start
        t = result.info.training
        print(f"training: {n_good} good images ({t['n_train_good']} in the bank's source, "
              f"{t['n_val_good']} held out), {t['n_patches']} patches -> bank {t['bank_size']}: "
              f"{seconds:.1f} s on 2 threads (includes calibration and ONNX export)")
        return seconds


def latency_ms(size, bank: int | None, runs: int = 30,
               config: PatchCoreConfig | None = None) -> tuple[float, int]:
    """(median ms per image, bank rows) of the exported graph, onnxruntime, 1 thread, batch 1.

    bank None: the size training would choose (max_bank within the search budget).
    """
    model = PatchCore(load_pretrained(keep_classifier=False), config or PatchCoreConfig(), size)
    bank = bank or model.bank_size(10**9, 1.0)
    model.set_bank(torch.randn(bank, model.feature_dim))  # cost does not depend on the values
    w, h = size
    info = base_info(TrainConfig(data=Path("."), out=Path("."), mode="anomaly", size=size),
                     "sha256:0", threshold=0.0, score_scale={"low": 0, "threshold": 0, "high": 1})
    x = torch.rand(1, 3, h, w) * 255  # (1, 3, H, W)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, info, Path(tmp) / "m.onnx", x).path
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        feed = {"image": x.numpy()}
        for _ in range(3):
            session.run(None, feed)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            session.run(None, feed)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), bank


def part_split(data: Path):
    """(train good samples of even parts, test samples of odd parts)."""
    samples = scan(data).samples
    parts = [int(k) for k in group_keys(samples, group_size=PART_SIZE)]
    train = [s for s, p in zip(samples, parts) if p % 2 == 0 and s.label == 0]
    test = [s for s, p in zip(samples, parts) if p % 2 == 1]
    return train, test


@torch.no_grad()
def embed_all(model: PatchCore, samples, prep: Preprocessing, batch: int = 8) -> torch.Tensor:
    """Patch features (N, D, h, w) of samples."""
    out = []
    for i in range(0, len(samples), batch):
        x = np.stack([preprocess(read_image(s.path), prep) for s in samples[i : i + batch]])
        out.append(model.embed(torch.from_numpy(x)))  # (B, D, h, w)
    return torch.cat(out)


def truth_masks(samples, prep: Preprocessing) -> np.ndarray:
    """Defect masks (N, H, W) bool at the model input (zeros for good images)."""
    masks = []
    for s in samples:
        hw = read_image(s.path).shape[:2]
        m = read_mask(s.mask_path, hw) if s.mask_path else np.zeros(hw, bool)
        masks.append(resize(m.astype(np.uint8) * 255, prep, pad=0) > 127)
    return np.stack(masks)


@torch.no_grad()
def bank_table(data: Path, size, resize_policy: str, banks: list[int], runs: int,
               config: PatchCoreConfig) -> None:
    """Print bank size vs image/pixel AUROC vs 1-thread latency on the part split."""
    prep = Preprocessing(size, resize_policy)
    train, test = part_split(data)
    labels = np.array([s.label for s in test])
    print(f"part split (NNN // {PART_SIZE}): bank from {len(train)} good images of even parts; "
          f"test {len(test)} images of odd parts ({labels.sum()} cracked)")
    model = PatchCore(load_pretrained(keep_classifier=False), config, size)
    start = time.perf_counter()
    emb = embed_all(model, train, prep)  # (N, D, h, w)
    feats = flatten(emb)  # (P, D)
    extract_s = time.perf_counter() - start
    test_emb, masks = embed_all(model, test, prep), truth_masks(test, prep)
    if config.position_norm != "off":
        groups = group_keys(train, group_size=PART_SIZE)
        ref, folds = position_reference(model, emb, groups, TrainConfig(data=data, out=data))
        model.set_position_reference(ref)
        print(f"position reference from {folds} leave-parts-out folds")
    print(f"{len(feats)} training patches ({extract_s:.0f} s to extract on "
          f"{torch.get_num_threads()} threads), layers {config.stages}, size {size[0]}x{size[1]}")
    print("| bank | % of patches | coreset s | image AUROC | pixel AUROC | ms/image (1 thread) |")
    print("|---:|---:|---:|---:|---:|---:|")
    for k in banks:
        start = time.perf_counter()
        model.set_bank(feats[greedy_coreset(feats, k)])
        coreset_s = time.perf_counter() - start
        scores, maps = [], []
        for i in range(0, len(test_emb), 8):
            raw, amap = model.score_embedding(test_emb[i : i + 8])  # (B,), (B, H, W)
            scores.append(raw.numpy())
            maps.append(amap[:, ::2, ::2].numpy())  # every other pixel: a quarter of the memory
        image = roc_auc_score(labels, np.concatenate(scores))
        pixel = roc_auc_score(masks[:, ::2, ::2].ravel(), np.concatenate(maps).ravel())
        ms, _ = latency_ms(size, k, runs, config)
        print(f"| {k} | {100 * k / len(feats):.1f} | {coreset_s:.1f} | {image:.4f} | "
              f"{pixel:.4f} | {ms:.1f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=KOLEKTOR)
    parser.add_argument("--size", default="224x512", help="W x H for the KolektorSDD table")
    parser.add_argument("--resize", default="stretch")
    parser.add_argument("--banks", default="1024,2048,4096,8192,16384")
    parser.add_argument("--stages", default=None, help="backbone stages, e.g. 2,4")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--position-norm", choices=("on", "off"), default="on",
                        help="bank table: with or without the position reference")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-table", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    size, data = parse_size(args.size), args.data if args.data.is_dir() else None
    config = PatchCoreConfig()
    config.position_norm = args.position_norm
    if args.stages:
        config.stages = tuple(int(s) for s in args.stages.split(","))
    if not args.skip_train:
        training_time(data, size, args.resize)
    for s in dict.fromkeys([(224, 224), size]):
        ms, bank = latency_ms(s, None, args.runs, config)
        print(f"latency {s[0]}x{s[1]}, bank {bank} (default cap): {ms:.1f} ms/image (1 thread)")
    if args.skip_table:
        return
    if data is None:
        print(f"KolektorSDD not found at {args.data} (--data): no bank table")
        return
    banks = [int(b) for b in args.banks.split(",")]
    bank_table(data, size, args.resize, banks, args.runs, config)


if __name__ == "__main__":
    main()

