"""The report's charts as PNG images (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import io
import logging
from datetime import datetime

import matplotlib

matplotlib.use("Agg")
import matplotlib.dates as mdates  # noqa: E402  (after choosing the backend)
import matplotlib.pyplot as plt  # noqa: E402

log = logging.getLogger(__name__)

SIZE = (7.2, 2.6)  # inches: about the text width of A4 and Letter
DPI = 120  # enough for print at this size; more pixels only take longer to draw
RED, BLUE, GREY = "#c62828", "#1565c0", "#757575"


def _png(fig: plt.Figure) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def p_chart(points: list[dict]) -> bytes:
    """Daily defect rate with the centre line and 3-sigma limits; out-of-control days red."""
    fig, ax = plt.subplots(figsize=SIZE)
    days = [datetime.fromisoformat(p["bucket"]) for p in points]
    pct = lambda key: [p[key] * 100 for p in points]  # noqa: E731
    ax.plot(days, pct("p"), color=BLUE, lw=1.2, marker="o", ms=2.5, label="defect rate")
    ax.step(days, pct("ucl"), color=GREY, lw=0.8, ls="--", where="mid", label="limits (3σ)")
    ax.step(days, pct("lcl"), color=GREY, lw=0.8, ls="--", where="mid")
    if points:
        ax.axhline(points[0]["center"] * 100, color="black", lw=0.8, label="centre p̄")
    out = [(d, p["p"] * 100) for d, p in zip(days, points) if p["out_of_control"]]
    if out:
        ax.scatter(*zip(*out), color=RED, marker="^", s=30, zorder=3, label="out of control")
    ax.set_ylabel("% failed")
    ax.legend(fontsize=7, loc="lower left", bbox_to_anchor=(0, 1), ncol=4, frameon=False)
    ax.grid(alpha=0.3)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=10, interval_multiples=True)
    locator.intervald[mdates.HOURLY] = [24]  # days are the subgroups: no hour ticks
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    return _png(fig)


def pareto(rows: list[dict]) -> bytes:
    """Failed units per defect type (bars) and the cumulative share (line)."""
    fig, ax = plt.subplots(figsize=SIZE)
    names = [r["defect_type"] for r in rows]
    ax.bar(names, [r["count"] for r in rows], color=BLUE)
    ax.set_ylabel("failed units")
    share = ax.twinx()
    share.plot(names, [r["cumulative_share"] * 100 for r in rows], color=RED, marker="o")
    share.set_ylim(0, 105)
    share.set_ylabel("cumulative %")
    ax.grid(alpha=0.3, axis="y")
    return _png(fig)
