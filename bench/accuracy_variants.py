"""Candidate anomaly configurations on the benchmark's splits, from cached backbone features.

    python -m bench.accuracy_variants [--sets kolektorsdd,bsdata] [--size auto|224]
                                      [--variants "(2,4)" "(3,4,5)" ...]

How the PatchCore stage default was chosen (docs/benchmarks.md): the frozen EfficientNet-Lite0
runs once per image (reflect-padded as in training/anomaly.py) and its stage outputs are cached
in artifacts/accuracy/features/; each variant then builds its bank from the train split's good
images and scores the test split (image AUROC, max of the blurred map), in seconds. Same splits
and coreset as `qc train`; no position reference, threshold or export (bench.accuracy measures
the whole path for the chosen default).
"""

from __future__ import annotations

import argparse
import ast
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from tqdm import tqdm

from bench.accuracy_sets import FAMILIES, SETS, BenchSet, available
from qc.imaging import Preprocessing, preprocess, read_image
from training.anomaly import PatchCoreConfig, gaussian_kernel, greedy_coreset, smooth
from training.backbone import STAGE_STRIDES, load_pretrained
from training.data import auto_size, scan

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / "artifacts" / "accuracy" / "features"
TAPS = (2, 3, 4, 5)
DEFAULTS = PatchCoreConfig()


@torch.no_grad()
def features(bset: BenchSet, size: tuple[int, int] | None) -> dict:
    """Stage taps of every image of a set (cached on disk), its labels and test flags."""
    dataset = scan(bset.root, check=False)
    good = [s for s in dataset.samples if s.label == 0]
    size = size or auto_size(good)
    path = CACHE / f"{bset.name.replace('/', '_')}_{size[0]}x{size[1]}.pt"
    if path.exists():
        return torch.load(path)
    backbone, prep, pad = load_pretrained(keep_classifier=False), Preprocessing(size), DEFAULTS.pad
    taps = {s: [] for s in TAPS}
    for i in tqdm(range(0, len(dataset.samples), 8), desc=bset.name, unit="batch"):
        x = torch.from_numpy(np.stack([preprocess(read_image(s.path), prep)
                                       for s in dataset.samples[i : i + 8]]))
        _, out = backbone.features(F.pad(x, (pad,) * 4, mode="reflect"), TAPS, head=False)
        for s in TAPS:
            c = pad // STAGE_STRIDES[s]
            taps[s].append(out[s][..., c : out[s].shape[-2] - c, c : out[s].shape[-1] - c].half())
    data = {"size": size, "labels": dataset.labels,
            "test": np.array([bset.is_test(s.path.stem) for s in dataset.samples]),
            "taps": {s: torch.cat(v) for s, v in taps.items()}}
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(data, path)
    return data


def image_auroc(data: dict, stages: tuple[int, ...], k: int = 1) -> float:
    """Bank from the train split's good images (default coreset rules), AUROC on the test split."""
    labels, test = data["labels"], data["test"]
    train = torch.from_numpy(np.flatnonzero(~test & (labels == 0)))
    held = torch.from_numpy(np.flatnonzero(test))

    def embed(idx):
        maps = [data["taps"][s][idx].float() for s in stages]
        if k > 1:
            maps = [F.avg_pool2d(m, k, 1, k // 2, count_include_pad=False) for m in maps]
        grid = maps[0].shape[-2:]
        return torch.cat([maps[0]] + [F.interpolate(m, size=grid, mode="bilinear")
                                      for m in maps[1:]], 1)  # (N, D, h, w)

    emb = embed(train)
    n, d, h, w = emb.shape
    feats = emb.permute(0, 2, 3, 1).reshape(-1, d)
    rows = max(1, min(DEFAULTS.max_bank, max(256, DEFAULTS.search_budget // (h * w)),
                      math.ceil(0.1 * len(feats))))
    center = feats.mean(0)
    bank = feats[greedy_coreset(feats, rows)] - center
    query = embed(held).permute(0, 2, 3, 1).reshape(-1, d) - center
    dist = torch.cat([torch.cdist(q, bank).min(1).values for q in query.split(8192)])
    amap = F.interpolate(dist.reshape(len(held), 1, h, w), size=tuple(data["size"][::-1]),
                         mode="bilinear")
    scores = smooth(amap, gaussian_kernel(DEFAULTS.blur_sigma)).flatten(1).max(1).values
    return float(roc_auc_score(labels[held.numpy()], scores.numpy()))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", help="comma-separated names or families (default: all)")
    parser.add_argument("--size", default="auto", help="auto (aspect ratio) or 224")
    parser.add_argument("--variants", nargs="+",
                        default=["(2,4)", "(3,4)", "(2,3,4)", "(3,4,5)", "(4,5)"],
                        help="stage tuples; append k3 for 3x3 locally aware patches")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    sets = available()
    if args.sets:
        wanted = set(args.sets.split(","))
        sets = [s for s in SETS if s.name in wanted or s.family in wanted]
    size = None if args.size == "auto" else (int(args.size), int(args.size))
    table = {}
    for bset in sets:
        data = features(bset, size)
        row = {}
        for v in args.variants:
            stages, k = (v[:-2], 3) if v.endswith("k3") else (v, 1)
            row[v] = image_auroc(data, tuple(ast.literal_eval(stages)), k)
        table[bset.name] = (bset.family, row)
        print(bset.name, {v: round(a, 3) for v, a in row.items()}, flush=True)
    print("\n| variant | " + " | ".join(f for f in FAMILIES) + " | mean | worst |")
    print("|---|" + "---:|" * (len(FAMILIES) + 2))
    for v in args.variants:
        fam = {f: np.mean([r[v] for fm, r in table.values() if fm == f]) for f in FAMILIES
               if any(fm == f for fm, _ in table.values())}
        vals = list(fam.values())
        print(f"| {v} | " + " | ".join(f"{fam[f]:.3f}" if f in fam else "–" for f in FAMILIES)
              + f" | {np.mean(vals):.3f} | {min(vals):.3f} |")


if __name__ == "__main__":
    main()
