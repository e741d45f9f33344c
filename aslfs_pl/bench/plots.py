"""PNG plots: training curves from Lightning's CSV log, and a landmark sequence strip."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HAND_EDGES = [
    (0, 1), (1, 2), (2, 3), (3, 4), (0, 5), (5, 6), (6, 7), (7, 8), (5, 9), (9, 10), (10, 11),
    (11, 12), (9, 13), (13, 14), (14, 15), (15, 16), (13, 17), (0, 17), (17, 18), (18, 19),
    (19, 20),
]  # fmt: skip


def _save(fig, out_png: str | Path, dpi: int) -> Path:
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(out, dpi=dpi)
    plt.close(fig)
    return out


def epoch_metrics(metrics_csv: str | Path) -> dict[str, dict[int, float]]:
    """metric name -> {epoch: value} for the per-epoch values of a Lightning CSVLogger file."""
    out: dict[str, dict[int, float]] = defaultdict(dict)
    with open(metrics_csv, newline="") as f:
        for row in csv.DictReader(f):
            if not row.get("epoch"):
                continue
            epoch = int(float(row["epoch"]))
            for key, value in row.items():
                if key in ("epoch", "step") or not value or key.endswith("_step"):
                    continue
                out[key.removesuffix("_epoch")][epoch] = float(value)
    return out


def training_curves(metrics_csv: str | Path) -> plt.Figure:
    """Loss, masked accuracy and competition score per epoch, one panel each; the score panel
    shows ``val/score`` and every decoding's ``val/score_<decoding>`` the run logged (all of
    them when the CTC head is on)."""
    m = epoch_metrics(metrics_csv)
    scores = sorted(k for k in m if k == "val/score" or k.startswith("val/score_"))
    panels = [
        ("loss", ["train/loss", "val/loss"]),
        ("masked accuracy", ["train/acc", "val/acc"]),
        ("score (1 - CER)", scores),
    ]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, (title, keys) in zip(axes, panels, strict=True):
        for key in keys:
            if m.get(key):
                epochs = sorted(m[key])
                ax.plot(epochs, [m[key][e] for e in epochs], marker="o", label=key)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    fig.suptitle(f"training curves: {metrics_csv}", fontsize=9)
    return fig


def plot_training_curves(metrics_csv: str | Path, out_png: str | Path) -> Path:
    """:func:`training_curves` as a PNG."""
    return _save(training_curves(metrics_csv), out_png, dpi=100)


def plot_sequence(
    frames: np.ndarray, columns: list[str], title: str, out_png: str | Path, panels: int = 8
) -> Path:
    """Draw a landmark sequence: ``panels`` evenly spaced frames, then x/y of each wrist over time.

    Args:
        frames: (T, C) raw values in the order of ``columns`` (Kaggle names, e.g. x_face_61).
        columns: column names.
        title: figure title (the phrase).
        out_png: output path.
        panels: frames drawn as skeletons.
    """
    t = len(frames)
    pos = {name: j for j, name in enumerate(columns)}

    def column(name: str) -> np.ndarray:  # (T,), NaN when the column is not drawn
        return frames[:, pos[name]] if name in pos else np.full(t, np.nan)

    def part(name: str, idx) -> np.ndarray:  # (T, len(idx), 2)
        return np.stack([np.stack([column(f"{a}_{name}_{i}") for i in idx], 1) for a in "xy"], -1)

    left, right = part("left_hand", range(21)), part("right_hand", range(21))
    face_ids = sorted({int(c.split("_")[-1]) for c in columns if c.startswith("x_face_")})
    pose_ids = sorted({int(c.split("_")[-1]) for c in columns if c.startswith("x_pose_")})
    face, pose = part("face", face_ids), part("pose", pose_ids)

    fig = plt.figure(figsize=(2.2 * panels, 6.5))
    grid = fig.add_gridspec(2, panels, height_ratios=[1.4, 1])
    shown = np.unique(np.linspace(0, max(t - 1, 0), panels).astype(int)) if t else []
    for k, f in enumerate(shown):
        ax = fig.add_subplot(grid[0, k])
        for pts, color in ((face, "0.6"), (pose, "tab:green")):
            ax.scatter(pts[f, :, 0], pts[f, :, 1], s=3, c=color)
        for pts, color, name in ((left, "tab:blue", "L"), (right, "tab:red", "R")):
            if np.isnan(pts[f]).all():
                ax.text(
                    0.02,
                    0.95 if name == "L" else 0.88,
                    f"{name} hand: NaN",
                    transform=ax.transAxes,
                    fontsize=7,
                    color=color,
                )
                continue
            for a, b in HAND_EDGES:
                ax.plot(pts[f, [a, b], 0], pts[f, [a, b], 1], c=color, lw=1)
        ax.set_title(f"frame {f}", fontsize=8)
        ax.invert_yaxis()
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_aspect("equal", adjustable="datalim")
    ax = fig.add_subplot(grid[1, :])
    for pts, color, name in ((left, "tab:blue", "left"), (right, "tab:red", "right")):
        ax.plot(pts[:, 0, 0], c=color, label=f"{name} wrist x")
        ax.plot(pts[:, 0, 1], c=color, ls="--", label=f"{name} wrist y")
    ax.set_xlabel("frame (gaps: hand not seen)")
    ax.legend(fontsize=7, ncol=4)
    ax.grid(alpha=0.3)
    fig.suptitle(f"{title!r}  ({t} frames)")
    return _save(fig, out_png, dpi=90)
