"""`qc train`, `qc evaluate` and `qc split`: thin click wrappers over plain functions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from qc.imaging import RESIZE_POLICIES, parse_size
from training import data as ds
from training.auto import MODES
from training.config import TrainConfig

HIGH_FALSE_REJECTS = 0.10  # above this, a line would scrap too many good parts: say so


def _size(ctx, param, value):
    if value == "auto":
        return None
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the ONNX model package.")
@click.option("--mode", type=click.Choice(MODES), default=TrainConfig.mode, show_default=True,
              help="supervised: good and defect photos; anomaly: learns from good photos; "
                   "auto: anomaly with good photos only, else the better of both on validation.")
@click.option("--product", help="Product name stored in the model (default: the folder name).")
@click.option("--size", default="auto", callback=_size, show_default=True,
              help="Model input size: 320 or WxH such as 224x512; auto follows the images' "
                   "aspect ratio (short side 224 px).")
@click.option("--resize", type=click.Choice(RESIZE_POLICIES), default="stretch", show_default=True)
@click.option("--epochs", type=int, default=TrainConfig.epochs, show_default=True)
@click.option("--max-minutes", type=float, default=TrainConfig.max_minutes, show_default=True,
              help="Time budget: supervised augmented views are cut to fit it (0: none).")
@click.option("--folds", type=int, default=TrainConfig.folds, show_default=True,
              help="Supervised: cross-validation folds whose out-of-fold scores set the "
                   "threshold.")
@click.option("--views", type=int, default=TrainConfig.views, show_default=True,
              help="Supervised: the plain image + augmented views per image.")
@click.option("--batch-size", type=int, default=TrainConfig.batch_size, show_default=True)
@click.option("--lr", type=float, default=TrainConfig.lr, show_default=True)
@click.option("--val-fraction", type=float, default=TrainConfig.val_fraction, show_default=True,
              help="Anomaly: share of good images held out (by part) for the threshold.")
@click.option("--target-recall", type=float, default=TrainConfig.target_recall, show_default=True,
              help="Threshold: catch this fraction of validation defects...")
@click.option("--max-frr", type=float, default=TrainConfig.max_frr, show_default=True,
              help="...unless that rejects more than this fraction of good images.")
@click.option("--target-frr", type=float, default=TrainConfig.target_frr, show_default=True,
              help="Threshold with good images only: expected false-reject rate.")
@click.option("--group-by", help="Regex on file names: images of one part stay on one side.")
@click.option("--group-size", type=int, help="Or: consecutive numbers // N form one part.")
@click.option("--coreset-ratio", type=float, default=TrainConfig.coreset_ratio, show_default=True,
              help="Anomaly mode: fraction of patch features kept in the memory bank.")
@click.option("--position-norm", type=click.Choice(["auto", "on", "off"]),
              default=TrainConfig.position_norm, show_default=True,
              help="Anomaly mode: divide distances by what good parts reach at each place; "
                   "auto keeps it if it raises the validation AUROC (needs defect images).")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--threads", type=int, help="CPU threads for torch.")
@click.option("--strict", is_flag=True, help="Stop at the first unreadable image.")
def train(data: Path, out: Path, **options) -> None:
    """Train a defect-detection model on the images in DATA and export it to ONNX."""
    config = TrainConfig(data=data, out=out, **options)
    result = run_training(config)
    info = result.info
    click.echo(f"model: {result.path} (version {info.version})")
    click.echo(f"mode: {info.mode}" + (f" (auto: {info.training['auto']['reason']})"
                                       if "auto" in (info.training or {}) else ""))
    click.echo(f"input size: {info.input_size[0]}x{info.input_size[1]}")
    click.echo(f"training time: {result.seconds:.1f} s")
    for line in operating_point_lines(info.metrics):
        click.echo(line, err=line.startswith("warning"))


def operating_point_lines(metrics: dict) -> list[str]:
    """What the chosen threshold means on the line, and the trade-off when it hurts."""
    lines = ["validation: " + ", ".join(
        f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float))]
    t = metrics.get("threshold") or {}
    if t.get("recall") is not None:
        lines.append(f"expected on the line: catches {_pct(t, 'recall')} of defects, rejects "
                     f"{_pct(t, 'false_reject_rate')} of good parts "
                     f"({t['n_defect']} defect and {t['n_good']} good validation images)")
    frr = metrics.get("false_reject_rate")
    if t.get("method") == "max_frr" or (frr is not None and frr > HIGH_FALSE_REJECTS):
        lines.append(f"warning: catching {t.get('target', 0):.0%} of defects would reject too "
                     "many good parts; the threshold is capped (--max-frr). Trade-off:")
        lines += [f"  catch {r['recall']:.0%} of defects -> reject {r['false_reject_rate']:.1%}"
                  f" of good parts" for r in metrics.get("trade_off", [])]
        lines.append("  more photos of defects (and --mode supervised) usually move this curve")
    return lines


def _pct(t: dict, key: str) -> str:
    ci = t.get(f"{key}_ci")
    return f"{t[key]:.1%}" + (f" (95% interval {ci[0]:.1%}-{ci[1]:.1%})" if ci else "")


def run_training(config: TrainConfig):
    """Dispatch to the mode's fit function (imported lazily: each pulls in its own code)."""
    try:
        if config.mode == "auto":
            from training.auto import fit_auto

            return fit_auto(config)
        if config.mode == "anomaly":
            from training.anomaly_fit import fit_anomaly

            return fit_anomaly(config)
        from training.supervised_fit import fit_supervised

        return fit_supervised(config)
    except ds.DatasetError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command()
@click.argument("model", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for evaluation.json and report.html (default: next to the model).")
@click.option("--threads", type=int, help="onnxruntime intra-op threads.")
@click.option("--strict", is_flag=True, help="Fail on unreadable images.")
def evaluate(model: Path, data: Path, out_dir: Path | None, threads: int | None,
             strict: bool) -> None:
    """Evaluate MODEL on the labelled images in DATA; write a JSON file and an HTML report."""
    from training.evaluate import evaluate as run_evaluation
    from training.report import write_report

    start = time.perf_counter()
    try:
        evaluation = run_evaluation(model, data, threads=threads, strict=strict)
    except ds.DatasetError as exc:
        raise click.ClickException(str(exc)) from exc
    out_dir = out_dir or model.with_name(f"{model.stem}-evaluation")
    paths = write_report(evaluation, out_dir, model)
    click.echo(json.dumps({"metrics": evaluation.metrics, "confusion": evaluation.confusion,
                           "per_type_recall": evaluation.per_type_recall, **paths,
                           "seconds": round(time.perf_counter() - start, 1)}, indent=2))


@click.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--test-fraction", type=float, default=0.3, show_default=True)
@click.option("--group-by", help="Regex on file names: images of one part stay together.")
@click.option("--group-size", type=int, help="Or: consecutive numbers // N form one part.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--copy", is_flag=True, help="Copy files instead of symlinking them.")
def split(data: Path, out: Path, test_fraction: float, group_by: str | None,
          group_size: int | None, seed: int, copy: bool) -> None:
    """Hold out a test set: write OUT/train and OUT/test, split by part and stratified."""
    try:
        dataset = ds.scan(data, check=False)
        groups = ds.group_keys(dataset.samples, group_by, group_size)
        counts = ds.write_split(dataset, out, test_fraction, seed, groups, copy=copy)
    except (ds.DatasetError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(json.dumps(counts, indent=2))
