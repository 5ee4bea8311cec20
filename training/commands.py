"""`qc train`, `qc evaluate` and `qc split`: thin click wrappers over plain functions."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from qc.imaging import RESIZE_POLICIES, parse_size
from training import data as ds
from training.config import TrainConfig

HIGH_FALSE_REJECTS = 0.10  # above this, a line would scrap too many good parts: say so


def _size(ctx, param, value):
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.command()
@click.argument("data", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the ONNX model package.")
@click.option("--mode", type=click.Choice(["supervised", "anomaly"]), default="supervised",
              show_default=True, help="supervised: good and defect photos; anomaly: good only.")
@click.option("--product", help="Product name stored in the model (default: the folder name).")
@click.option("--size", default="224", callback=_size, show_default=True,
              help="Model input size: 320 or WxH such as 224x512.")
@click.option("--resize", type=click.Choice(RESIZE_POLICIES), default="stretch", show_default=True)
@click.option("--epochs", type=int, default=TrainConfig.epochs, show_default=True)
@click.option("--patience", type=int, default=TrainConfig.patience, show_default=True)
@click.option("--max-minutes", type=float, default=TrainConfig.max_minutes, show_default=True,
              help="Time budget: no epoch starts that would end past it (0: none).")
@click.option("--batch-size", type=int, default=TrainConfig.batch_size, show_default=True)
@click.option("--lr", type=float, default=TrainConfig.lr, show_default=True)
@click.option("--val-fraction", type=float, default=TrainConfig.val_fraction, show_default=True)
@click.option("--target-recall", type=float, default=TrainConfig.target_recall, show_default=True,
              help="Threshold: catch this fraction of validation defects.")
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
    metrics = result.info.metrics
    click.echo(f"model: {result.path} (version {result.info.version})")
    click.echo(f"training time: {result.seconds:.1f} s")
    click.echo("validation: " + ", ".join(
        f"{k}={v:.4f}" for k, v in metrics.items() if isinstance(v, float)))
    frr = metrics.get("false_reject_rate")
    if frr is not None and frr > HIGH_FALSE_REJECTS:
        click.echo(
            f"warning: at this threshold {frr:.0%} of validation good images are rejected; "
            "lower --target-recall, add training images"
            + (" or try --mode supervised" if config.mode == "anomaly" else ""), err=True)


def run_training(config: TrainConfig):
    """Dispatch to the mode's fit function (imported lazily: each pulls in its own code)."""
    try:
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
