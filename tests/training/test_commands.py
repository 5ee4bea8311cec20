"""`qc train`, `qc evaluate` and `qc split` through the CLI."""

from __future__ import annotations

import json

from click.testing import CliRunner

from qc.cli import cli
from qc.modelpack import read_info


def test_train_cli_writes_model_and_prints_time(tiny_dataset, tmp_path):
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(cli, [
        "train", str(tiny_dataset), "--out", str(out), "--size", "32x48", "--epochs", "1",
        "--batch-size", "8", "--val-fraction", "0.34", "--product", "Flange A", "--threads", "2",
        "--target-recall", "0.9",
    ])
    assert result.exit_code == 0, result.output
    assert "training time:" in result.output and "validation:" in result.output
    info = read_info(out)
    assert info.product == "Flange A" and info.input_size == (32, 48)
    assert info.metrics["threshold"]["target"] == 0.9


def test_train_cli_explains_missing_images(tmp_path):
    (tmp_path / "good").mkdir()
    auto = CliRunner().invoke(cli, ["train", str(tmp_path), "--out", str(tmp_path / "m.onnx")])
    assert auto.exit_code != 0 and "0 good images" in auto.output and "at least" in auto.output
    result = CliRunner().invoke(cli, ["train", str(tmp_path), "--out", str(tmp_path / "m.onnx"),
                                      "--mode", "supervised"])
    assert result.exit_code != 0
    assert "too few images" in result.output and "need at least" in result.output


def test_train_cli_rejects_bad_size(tiny_dataset, tmp_path):
    result = CliRunner().invoke(cli, ["train", str(tiny_dataset), "--out", "m.onnx",
                                      "--size", "huge"])
    assert result.exit_code == 2 and "width x height" in result.output


def test_evaluate_writes_json_and_html(trained_model, tiny_dataset, tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(cli, ["evaluate", str(trained_model.path), str(tiny_dataset),
                                      "--out", str(out)])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    metrics = summary["metrics"]
    assert metrics["n_images"] == 28 and 0 <= metrics["auroc"] <= 1
    assert "pixel_auroc" in metrics and 0 <= metrics["aupro"] <= 1
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["confusion"] == summary["confusion"]
    assert sum(saved["confusion"].values()) == 28
    assert set(saved["per_type_recall"]) == {"scratch", "stain"}
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 3  # PR, ROC, histogram
    assert html.count("data:image/jpeg;base64,") >= 6  # heatmap gallery
    assert "http://" not in html and "https://" not in html  # self-contained


def test_split_keeps_parts_apart(tiny_dataset, tmp_path):
    out = tmp_path / "split"
    result = CliRunner().invoke(cli, ["split", str(tiny_dataset), str(out), "--test-fraction",
                                      "0.34", "--group-size", "2"])
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert counts["train"]["good"] + counts["test"]["good"] == 16
    train = {p.name for p in (out / "train").rglob("*.jpg")}
    test = {p.name for p in (out / "test").rglob("*.jpg")}
    assert train and test and not train & test
    pairs = {name[-7:-4] for name in test}
    assert all(f"{int(p) ^ 1:03d}" in pairs for p in pairs)  # both images of a part held out
    assert list((out / "test" / "masks").rglob("*.png"))


def test_train_cli_warns_when_many_good_parts_would_be_rejected(monkeypatch, tiny_dataset,
                                                                 tmp_path):
    from qc.modelpack import ModelInfo
    from training import commands
    from training.config import TrainResult

    threshold = {"method": "max_frr", "target": 0.99, "recall": 0.8, "false_reject_rate": 0.1,
                 "n_good": 50, "n_defect": 20, "recall_ci": [0.58, 0.92],
                 "false_reject_rate_ci": [0.04, 0.21]}
    trade = [{"method": "target_recall", "target": 0.99, "threshold": 0.2, "recall": 1.0,
              "false_reject_rate": 0.4}]

    def fake_training(config):
        info = ModelInfo("p", "anomaly", (32, 32), "stretch", 0.5, {},
                         metrics={"auroc": 0.9, "false_reject_rate": 0.1,
                                  "threshold": threshold, "trade_off": trade})
        return TrainResult(config.out, info, 1.0)

    monkeypatch.setattr(commands, "run_training", fake_training)
    result = CliRunner().invoke(cli, ["train", str(tiny_dataset), "--out", str(tmp_path / "m"),
                                      "--mode", "anomaly"])
    assert result.exit_code == 0
    assert ("catches 80.0% (95% interval 58.0%-92.0%) of defects, rejects 10.0% "
            "(95% interval 4.0%-21.0%) of good parts") in result.output
    assert "threshold is capped (--max-frr)" in result.output
    assert "catch 100% of defects -> reject 40.0% of good parts" in result.output
    assert "--mode supervised" in result.output


def test_report_explains_auto_choice_and_capped_threshold(trained_model, tiny_dataset, tmp_path):
    """The HTML report says why auto mode chose the model and what a capped threshold costs."""
    import dataclasses

    from training.evaluate import evaluate
    from training.report import write_report

    ev = evaluate(trained_model.path, tiny_dataset)
    model = dict(ev.model)
    model["training"] = {**model["training"], "auto": {
        "chosen": "supervised", "reason": "supervised ranks validation images better",
        "auroc": {"supervised": 0.99, "anomaly": 0.9}, "n_images": 40, "n_defect": 12}}
    model["metrics"] = {**model["metrics"], "threshold": {
        "method": "max_frr", "target": 0.99, "recall": 0.8, "false_reject_rate": 0.1},
        "trade_off": [{"recall": 1.0, "false_reject_rate": 0.4}]}
    paths = write_report(dataclasses.replace(ev, model=model), tmp_path / "r",
                         trained_model.path)
    html = (tmp_path / "r" / "report.html").read_text()
    assert "supervised ranks validation images better (40 validation images" in html
    assert "capped at\n10.0 % false rejects (recall 80.0 %)" in html
    assert "catch 100 % → reject 40.0 %" in html
    write_report(ev, tmp_path / "p", trained_model.path)  # the model as trained
    capped = ev.model["metrics"]["threshold"]["method"] == "max_frr"
    assert ("Operating point" in (tmp_path / "p" / "report.html").read_text()) == capped
    assert "--mode auto" not in (tmp_path / "p" / "report.html").read_text()
    assert paths["html"].endswith("report.html")
