"""Accuracy of the default settings on every real data set: train on each set's train split,
inspect its held-out split exactly as a station would (qc.inference), print a table.

    python -m bench.accuracy [--modes anomaly,supervised,auto] [--sets kolektorsdd,piped]
                             [--out artifacts/accuracy] [--threads 2] [--fresh]

Only defaults: the one thing each run is told about its data is which images show the same
physical part (the set's README), so its own validation split is honest. Per set and mode:
image AUROC and AP, pixel AUROC and AUPRO (masks), recall at 1 % and 5 % false rejects,
false rejects at 95 % recall, recall and false rejects at the model's own threshold, training
time and single-thread latency. Results are cached per (set, mode, code): a rerun after a change
that touches neither training/ nor qc's imaging/inference only re-prints the table.
Markdown (accuracy.md) and JSON (accuracy.json) land in --out.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from sklearn.metrics import roc_curve

from bench.accuracy_sets import FAMILIES, SETS, BenchSet, available
from qc.imaging import read_image
from qc.inference import Inspector
from training.commands import run_training
from training.config import TrainConfig
from training.data import scan
from training.evaluate import evaluate

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
# The code a mode's result depends on: a change elsewhere keeps its cached rows.
COMMON = ("training/backbone.py", "training/calibration.py", "training/commands.py",
          "training/config.py", "training/data.py", "training/evaluate.py", "training/export.py",
          "qc/imaging.py", "qc/inference.py", "qc/modelpack.py")
MODE_CODE = {
    "supervised": ("training/supervised.py", "training/supervised_fit.py", "training/loops.py"),
    "anomaly": ("training/anomaly.py", "training/anomaly_fit.py"),
}
MODE_CODE["auto"] = (*MODE_CODE["supervised"], *MODE_CODE["anomaly"], "training/auto.py")
LATENCY_IMAGES = 20


def code_hash(mode: str) -> str:
    """Hash of the code a mode's result depends on: a changed default invalidates the cache."""
    digest = hashlib.sha256()
    for part in sorted((*COMMON, *MODE_CODE[mode])):
        digest.update(part.encode() + (ROOT / part).read_bytes())
    return digest.hexdigest()[:16]


def split_folders(bset: BenchSet, dest: Path, good_only: bool = False) -> tuple[Path, Path]:
    """Train and test folders in the qc layout, as symlinks into the set (nothing copied).

    good_only: the train folder gets the good images only (a plant without defect photos).
    """
    dataset = scan(bset.root, check=False)
    for s in dataset.samples:
        side = "test" if bset.is_test(s.path.stem) else "train"
        if side == "train" and good_only and s.label == 1:
            continue
        rel = s.path.relative_to(bset.root)
        _link(s.path, dest / side / rel)
        if s.mask_path is not None:
            _link(s.mask_path, dest / side / s.mask_path.relative_to(bset.root))
    for side in ("train", "test"):
        (dest / side / "good").mkdir(parents=True, exist_ok=True)
    return dest / "train", dest / "test"


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.symlink_to(src.resolve())


def operating_points(scores: np.ndarray, labels: np.ndarray) -> dict:
    """Recall at 1 % / 5 % false rejects, false rejects at 95 % recall, and at score 0.5."""
    fpr, tpr, _ = roc_curve(labels, scores)
    good, bad = scores[labels == 0], scores[labels == 1]
    return {
        "recall_at_frr_1": float(tpr[fpr <= 0.01].max()),
        "recall_at_frr_5": float(tpr[fpr <= 0.05].max()),
        "frr_at_recall_95": float(fpr[tpr >= 0.95].min()),
        "recall_at_threshold": float((bad >= 0.5).mean()),
        "frr_at_threshold": float((good >= 0.5).mean()),
    }


def latency_ms(model: Path, images: list[Path]) -> float:
    """Median single-thread latency (decode excluded) of the exported model, in ms."""
    inspector = Inspector(model, threads=1)
    arrays = [read_image(p) for p in images[:LATENCY_IMAGES]]
    inspector.inspect(arrays[0])  # warm-up
    times = []
    for a in arrays:
        t = time.perf_counter()
        inspector.inspect(a)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def run_one(bset: BenchSet, mode: str, work: Path, threads: int | None,
            overrides: dict | None = None) -> dict:
    """Train with defaults on the set's train split, evaluate on its test split.

    Mode "anomaly" is the good-only case: its train folder holds no defect photo at all.
    """
    train_dir, test_dir = split_folders(bset, work / "data", good_only=mode == "anomaly")
    config = TrainConfig(data=train_dir, out=work / "model.onnx", mode=mode,
                         product=bset.name.replace("/", "-"), group_by=bset.group_by,
                         group_size=bset.group_size, threads=threads)
    if overrides:  # tests only: tiny sizes and epochs
        config = replace(config, **overrides)
    start = time.perf_counter()
    result = run_training(config)
    train_s = time.perf_counter() - start
    ev = evaluate(result.path, test_dir, threads=threads)
    scores = np.array([r.score for r in ev.results])
    labels = np.array([r.label for r in ev.results])
    m = ev.metrics
    training = result.info.training or {}
    return {
        "set": bset.name, "family": bset.family, "mode": mode,
        "chosen_mode": result.info.mode, "choice": training.get("auto"),
        "size": list(result.info.input_size),
        "n_train": scan(train_dir, check=False).count(), "n_test": ev.counts,
        "auroc": m["auroc"], "average_precision": m["average_precision"],
        "pixel_auroc": m.get("pixel_auroc"), "aupro": m.get("aupro"),
        **operating_points(scores, labels),
        "expected_recall": result.info.metrics.get("recall"),
        "expected_frr": result.info.metrics.get("false_reject_rate"),
        "train_seconds": round(train_s, 1),
        "latency_ms": round(latency_ms(result.path, [Path(r.path) for r in ev.results]), 1),
    }


def summarize(rows: list[dict]) -> dict:
    """Per mode: family values (piped's types averaged), their mean and the worst family."""
    out = {}
    for mode in sorted({r["mode"] for r in rows}):
        fam = {}
        present = {r["family"] for r in rows}
        for f in [*FAMILIES, *sorted(present - set(FAMILIES))]:
            sel = [r for r in rows if r["mode"] == mode and r["family"] == f]
            if sel:
                fam[f] = {k: _mean([r[k] for r in sel]) for k in SUMMARY_KEYS}
        if fam:
            out[mode] = {"families": fam,
                         "mean": {k: _mean([v[k] for v in fam.values()]) for k in SUMMARY_KEYS},
                         "worst_auroc": min((v["auroc"], f) for f, v in fam.items())}
    return out


SUMMARY_KEYS = ("auroc", "average_precision", "recall_at_frr_5", "recall_at_threshold",
                "frr_at_threshold", "train_seconds", "latency_ms")


def _mean(values):
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def markdown(rows: list[dict], summary: dict) -> str:
    """The per-set table and the family summary, as Markdown."""
    cols = [("set", "set"), ("mode", "mode"), ("chosen_mode", "chosen"), ("size", "size"),
            ("auroc", "AUROC"), ("average_precision", "AP"), ("pixel_auroc", "px AUROC"),
            ("aupro", "AUPRO"), ("recall_at_frr_1", "R@1%FR"), ("recall_at_frr_5", "R@5%FR"),
            ("frr_at_recall_95", "FR@95%R"), ("recall_at_threshold", "R@thr"),
            ("frr_at_threshold", "FR@thr"), ("train_seconds", "train s"),
            ("latency_ms", "ms/img")]
    lines = ["| " + " | ".join(h for _, h in cols) + " |",
             "|" + "|".join("---" if i < 4 else "---:" for i in range(len(cols))) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(k)) for k, _ in cols) + " |")
    lines += ["", "| mode | family | AUROC | AP | R@5%FR | R@thr | FR@thr | train s | ms/img |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for mode, s in summary.items():
        for f, v in [*s["families"].items(), ("**mean**", s["mean"])]:
            lines.append(f"| {mode} | {f} | " + " | ".join(_fmt(v[k]) for k in SUMMARY_KEYS)
                         + " |")
        lines.append(f"| {mode} | worst AUROC | {_fmt(s['worst_auroc'][0])} "
                     f"({s['worst_auroc'][1]}) | | | | | | |")
    return "\n".join(lines) + "\n"


def _fmt(v) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.0f}"
    if isinstance(v, list):
        return "x".join(map(str, v))
    return str(v)


def run(sets: list[BenchSet], modes: list[str], out: Path, threads: int | None = None,
        fresh: bool = False, overrides: dict | None = None) -> tuple[list[dict], dict]:
    """Run (or take from the cache) every set x mode; write accuracy.json and accuracy.md."""
    out.mkdir(parents=True, exist_ok=True)
    cache_path = out / "cache.json"
    cache = {} if fresh or not cache_path.exists() else json.loads(cache_path.read_text())
    extra = json.dumps(overrides or {}, sort_keys=True)
    hashes = {mode: code_hash(mode) for mode in modes}
    rows = []
    for bset in sets:
        for mode in modes:
            key = f"{bset.name}|{mode}|{hashes[mode]}{extra}"
            if key not in cache:
                log.info("%s, %s mode: training", bset.name, mode)
                with tempfile.TemporaryDirectory() as tmp:
                    cache[key] = run_one(bset, mode, Path(tmp), threads, overrides)
                cache_path.write_text(json.dumps(cache, indent=1))
            rows.append(cache[key])
            r = cache[key]
            print(f"{bset.name:22s} {mode:10s} AUROC {r['auroc']:.3f}  "
                  f"recall {r['recall_at_threshold']:.2f} / false rejects "
                  f"{r['frr_at_threshold']:.2f} at its threshold  ({r['train_seconds']:.0f} s)",
                  flush=True)
    summary = summarize(rows)
    (out / "accuracy.json").write_text(json.dumps({"rows": rows, "summary": summary}, indent=1))
    (out / "accuracy.md").write_text(markdown(rows, summary))
    return rows, summary


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="anomaly,supervised,auto")
    parser.add_argument("--sets", help="comma-separated names or families (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "artifacts" / "accuracy")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fresh", action="store_true", help="ignore cached results")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    sets = available()
    if args.sets:
        wanted = set(args.sets.split(","))
        sets = [s for s in SETS if s.name in wanted or s.family in wanted]
    if not sets:
        raise SystemExit("no data sets found: set QC_DATASETS to the shared datasets folder")
    _, summary = run(sets, args.modes.split(","), args.out, args.threads, args.fresh)
    print((args.out / "accuracy.md").read_text())


if __name__ == "__main__":
    main()
