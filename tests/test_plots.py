from pathlib import Path

import numpy as np

from aslfs_pl.data.kaggle import load_index, read_landmark_file
from aslfs_pl.data.landmarks import LandmarkSet
from aslfs_pl.plots import epoch_metrics, plot_sequence, plot_training_curves

CSV = """epoch,lr-RAdam/pg1,step,train/acc,train/loss_epoch,train/loss_step,val/acc,val/loss,val/score
,0.001,0,,,,,,
0,,9,,,3.5,,,
0,,9,,,,0.2,3.0,0.1
0,,9,0.15,3.6,,,,
1,,19,,,,0.4,2.0,0.5
1,,19,0.35,2.5,,,,
"""


def test_epoch_metrics_reads_lightning_csv(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(CSV)
    m = epoch_metrics(path)
    assert m["val/score"] == {0: 0.1, 1: 0.5}
    assert m["train/loss"] == {0: 3.6, 1: 2.5}
    assert "train/loss_step" not in m


def test_training_curves_png(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(CSV)
    out = plot_training_curves(path, tmp_path / "curves.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_sequence_png_with_missing_hands(synthetic_dir: Path, tmp_path):
    index = load_index(synthetic_dir)
    cols = LandmarkSet().selected_columns
    frames = read_landmark_file(index.path[0], cols).frames(int(index.sequence_id[0]))
    frames = frames.copy()
    frames[: len(frames) // 2, :21] = np.nan
    out = plot_sequence(frames, cols, index.phrase[0], tmp_path / "seq.png")
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 10_000
