"""The mood chart: 48 slots on x, -100…100 on y, a gap wherever a slot is null."""

from __future__ import annotations

import io

import numpy as np

from watchme_pipeline.slots import SLOTS

WIDTH_IN, HEIGHT_IN, DPI = 12, 4, 100  # 1200 x 400 px
CHART_VERSION = "chart-2"  # part of mood_chart's code version: raise it when the drawing changes


def render_chart(scores: list[int | None], title: str, changes: list[dict] | None = None,
                 note: str | None = None) -> tuple[bytes, np.ndarray]:
    """PNG bytes, and where each slot's point is in the image: (column, row) pixels from the
    drawn axes' own transform (row NaN where the slot has no score: a gap). ``note`` is
    written across the middle (a day without recordings says so, not a blank frame)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    y = np.array([np.nan if s is None else float(s) for s in scores], dtype=float)
    x = np.arange(len(SLOTS))
    fig, ax = plt.subplots(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    try:
        ax.axhline(0, color="#888", lw=0.8)
        ax.fill_between(x, y, 0, where=~np.isnan(y) & (y >= 0), color="#f4a261", alpha=0.5,
                        interpolate=True, label="positive")
        ax.fill_between(x, y, 0, where=~np.isnan(y) & (y < 0), color="#457b9d", alpha=0.5,
                        interpolate=True, label="negative")
        # NaN breaks the line: a gap, never a zero.
        (line,) = ax.plot(x, y, color="#1d3557", lw=1.5, marker="o", ms=3)
        for change in changes or []:
            i = SLOTS.index(change["time"].replace(":", "-"))
            if not np.isnan(y[i]):
                ax.annotate(change["event"], (i, y[i]), textcoords="offset points",
                            xytext=(0, 8), ha="center", fontsize=7, color="#e63946")
                ax.plot([i], [y[i]], marker="*", color="#e63946", ms=9)
        if note:
            ax.text(0.5, 0.5, note, transform=ax.transAxes, ha="center", va="center",
                    fontsize=22, color="#666")
        ax.set_xlim(-0.5, len(SLOTS) - 0.5)
        ax.set_ylim(-100, 100)
        ax.set_xticks(x[::4], [SLOTS[i].replace("-", ":") for i in range(0, len(SLOTS), 4)])
        ax.set_ylabel("mood")
        ax.set_title(title)
        ax.grid(alpha=0.2)
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        height = fig.get_size_inches()[1] * fig.dpi
        display = ax.transData.transform(np.c_[x, np.nan_to_num(y)])
        pixels = np.c_[display[:, 0], np.where(np.isnan(y), np.nan, height - display[:, 1])]
    finally:
        plt.close(fig)
    return buf.getvalue(), pixels
