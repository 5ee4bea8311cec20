"""Wall time of supervised training (`qc train --mode supervised`) on a dataset folder.

    python -m bench.train_time [DATA] [--size auto] [--epochs 40] [--group-size N]

Defaults to the committed sample_images; pass ../shared/datasets/kolektorsdd (or its train split
from `qc split`) for the real-photo figure. Prints images, folds, views, seconds and the
out-of-fold metrics.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from qc.imaging import parse_size
from training.config import TrainConfig
from training.supervised_fit import fit_supervised

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="?", type=Path, default=ROOT / "sample_images")
    parser.add_argument("--size", default="auto")
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--group-size", type=int)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out or Path(tmp) / "bench.onnx"
        size = None if args.size == "auto" else parse_size(args.size)
        config = TrainConfig(data=args.data, out=out, size=size, epochs=args.epochs,
                             group_size=args.group_size)
        result = fit_supervised(config)
    t = result.info.training
    m = result.info.metrics
    w, h = result.info.input_size
    print(f"data {args.data}: {t['n_train']} images, {t['folds']} folds, {t['views']} views, "
          f"{w}x{h}")
    print(f"training wall time {result.seconds:.1f} s ({result.seconds / 60:.1f} min), "
          f"threads {t['environment']['threads']}")
    print(f"out-of-fold AUROC {m['auroc']:.4f}, AP {m['average_precision']:.4f}, "
          f"recall {m['recall']:.3f}, false-reject rate {m['false_reject_rate']:.3f}")


if __name__ == "__main__":
    main()
