"""Write an evaluation as JSON and as one self-contained HTML page (plots and images embedded)."""

from __future__ import annotations

import base64
import io
import json
import logging
from pathlib import Path

import cv2
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from jinja2 import Environment  # noqa: E402

from qc.heatmap import encode_jpeg, overlay  # noqa: E402
from qc.imaging import read_image  # noqa: E402
from qc.inference import DECISION, Inspector  # noqa: E402
from training.evaluate import Evaluation, gallery  # noqa: E402

log = logging.getLogger(__name__)

THUMB_WIDTH = 260

TEMPLATE = Path(__file__).with_name("templates") / "report.html"


def write_report(evaluation: Evaluation, out_dir: str | Path, model_path: str | Path) -> dict:
    """Write evaluation.json and report.html into out_dir; returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "evaluation.json"
    json_path.write_text(json.dumps(evaluation.to_dict(), indent=2, default=_jsonable))
    html = Environment(autoescape=True).from_string(TEMPLATE.read_text()).render(
        e=evaluation, m=_Attr(evaluation.model), fmt=_fmt, thumb=THUMB_WIDTH,
        plots=_plots(evaluation), galleries=_galleries(evaluation, model_path),
        wrong=evaluation.misclassified(),
        stored=json.dumps(evaluation.model.get("metrics", {}), indent=2),
    )
    html_path = out_dir / "report.html"
    html_path.write_text(html)
    return {"json": str(json_path), "html": str(html_path)}


class _Attr(dict):
    __getattr__ = dict.get


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else ("—" if v is None else str(v))


def _jsonable(o):
    return o.item() if isinstance(o, np.generic) else str(o)


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _plots(e: Evaluation) -> list[tuple[str, str]]:
    plots = []
    if e.curves:
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot(e.curves["pr"]["recall"], e.curves["pr"]["precision"], lw=2)
        ax.set(xlabel="recall", ylabel="precision", title="Precision-recall", xlim=(0, 1.02),
               ylim=(0, 1.02))
        plots.append(("PR curve", _png(fig)))
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot(e.curves["roc"]["fpr"], e.curves["roc"]["tpr"], lw=2)
        ax.plot([0, 1], [0, 1], ls=":", c="grey")
        ax.set(xlabel="false-reject rate", ylabel="recall", title="ROC")
        plots.append(("ROC curve", _png(fig)))
    fig, ax = plt.subplots(figsize=(4.5, 4))
    bins = np.linspace(0, 1, 41)
    for label, name, colour in ((0, "good", "tab:green"), (1, "defect", "tab:red")):
        ax.hist([r.score for r in e.results if r.label == label], bins, alpha=0.6, label=name,
                color=colour)
    ax.axvline(DECISION, c="k", ls="--", label="decision")
    ax.set(xlabel="score", ylabel="images", title="Score distribution")
    ax.legend()
    plots.append(("score histogram", _png(fig)))
    return plots


def _galleries(e: Evaluation, model_path) -> list[tuple[str, list[dict]]]:
    inspector = Inspector(model_path)
    chosen = gallery(e)
    out = []
    for title, key in (("Worst misses (defects with the lowest scores)", "misses"),
                       ("False alarms (good images with the highest scores)", "false_alarms")):
        items = []
        for r in chosen[key]:
            image = read_image(r.path)
            verdict = inspector.inspect(image)
            vis = overlay(image, verdict.anomaly_map)
            scale = THUMB_WIDTH / vis.shape[1]
            if scale < 1:
                vis = cv2.resize(vis, (THUMB_WIDTH, round(vis.shape[0] * scale)),
                                 interpolation=cv2.INTER_AREA)
            items.append({"r": r, "img": base64.b64encode(encode_jpeg(vis, 85)).decode()})
        out.append((title, items))
    return out
