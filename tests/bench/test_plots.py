"""PNG plots: the training curves read Lightning's CSV log (every decoding's score included), and
a landmark sequence strip shows where a hand is missing."""

from pathlib import Path

import numpy as np
import pytest

from aslfs_pl.bench import plots
from aslfs_pl.bench.plots import epoch_metrics, plot_sequence, plot_training_curves, training_curves
from aslfs_pl.data.kaggle import load_index, read_landmark_file
from aslfs_pl.data.landmarks import LandmarkSet

# Lightning's CSVLogger rows: per-step values, then the epoch's validation and training rows.
CSV = """epoch,lr-RAdam/pg1,step,train/acc,train/loss_epoch,train/loss_step,val/acc,val/loss,val/score
,0.001,0,,,,,,
0,,9,,,3.5,,,
0,,9,,,,0.2,3.0,0.1
0,,9,0.15,3.6,,,,
1,,19,,,,0.4,2.0,0.5
1,,19,0.35,2.5,,,,
"""

# A run with the CTC head: validation scores every decoding beside val/score.
SCORES = """epoch,step,train/acc,train/loss_epoch,val/acc,val/loss,val/score,val/score_attention,val/score_ctc,val/score_joint
0,9,,,0.2,3.0,0.1,0.1,0.05,0.12
0,9,0.15,3.6,,,,,,
1,19,,,0.4,2.0,0.5,0.5,0.3,0.55
1,19,0.35,2.5,,,,,,
2,29,,,0.5,1.5,0.6,0.6,0.45,0.65
2,29,0.45,1.9,,,,,,
"""  # noqa: E501


def test_epoch_metrics_reads_lightning_csv(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(CSV)
    m = epoch_metrics(path)
    assert m["val/score"] == {0: 0.1, 1: 0.5}
    assert m["train/loss"] == {0: 3.6, 1: 2.5}
    assert "train/loss_step" not in m


def curves(fig) -> dict[str, dict[str, tuple[list[float], list[float]]]]:
    """panel title -> line label -> (x, y)."""
    return {
        ax.get_title(): {
            line.get_label(): (list(line.get_xdata()), list(line.get_ydata()))
            for line in ax.get_lines()
        }
        for ax in fig.axes
    }


def test_training_curves_plot_loss_accuracy_and_every_decodings_score(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(SCORES)
    fig = training_curves(path)
    shown = curves(fig)
    assert list(shown) == ["loss", "masked accuracy", "score (1 - CER)"]
    epochs = [0, 1, 2]
    assert shown["loss"] == {
        "train/loss": (epochs, [3.6, 2.5, 1.9]),
        "val/loss": (epochs, [3.0, 2.0, 1.5]),
    }
    assert shown["masked accuracy"] == {
        "train/acc": (epochs, [0.15, 0.35, 0.45]),
        "val/acc": (epochs, [0.2, 0.4, 0.5]),
    }
    assert shown["score (1 - CER)"] == {
        "val/score": (epochs, [0.1, 0.5, 0.6]),
        "val/score_attention": (epochs, [0.1, 0.5, 0.6]),
        "val/score_ctc": (epochs, [0.05, 0.3, 0.45]),
        "val/score_joint": (epochs, [0.12, 0.55, 0.65]),
    }
    for ax in fig.axes:  # every panel: per epoch, with a legend naming its lines
        assert ax.get_xlabel() == "epoch"
        assert [t.get_text() for t in ax.get_legend().get_texts()] == list(shown[ax.get_title()])
    plots.plt.close(fig)


def test_training_curves_without_decoding_scores_and_as_a_png(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text(CSV)  # no CTC head: val/score alone; the lr column is not plotted
    fig = training_curves(path)
    shown = curves(fig)
    assert shown["score (1 - CER)"] == {"val/score": ([0, 1], [0.1, 0.5])}
    assert shown["loss"]["train/loss"] == ([0, 1], [3.6, 2.5])
    assert not any(label.startswith("lr") for lines in shown.values() for label in lines)
    plots.plt.close(fig)
    out = plot_training_curves(path, tmp_path / "sub" / "curves.png")
    assert out == tmp_path / "sub" / "curves.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000


def test_sequence_png_with_missing_hands(synthetic_dir: Path, tmp_path, monkeypatch):
    drawn = []
    save = plots._save

    def keep(fig, out_png, dpi):
        drawn.append(fig)
        return save(fig, out_png, dpi)

    monkeypatch.setattr(plots, "_save", keep)
    index = load_index(synthetic_dir)
    cols = LandmarkSet().selected_columns
    frames = read_landmark_file(index.path[0], cols).frames(int(index.sequence_id[0]))
    frames = frames.copy()
    half = len(frames) // 2
    left = [j for j, c in enumerate(cols) if "_left_hand_" in c]  # x and y of its 21 points
    assert len(left) == 42
    frames[:half, left] = np.nan  # the left hand: unseen in the first half
    out = plot_sequence(frames, cols, index.phrase[0], tmp_path / "seq.png")
    assert out.read_bytes()[:4] == b"\x89PNG" and out.stat().st_size > 10_000
    (fig,) = drawn
    *skeletons, wrists = fig.axes
    shown = np.unique(np.linspace(0, len(frames) - 1, 8).astype(int))
    assert [ax.get_title() for ax in skeletons] == [f"frame {f}" for f in shown]
    for ax, f in zip(skeletons, shown, strict=True):
        notes = [t.get_text() for t in ax.texts]
        assert ("L hand: NaN" in notes) == (f < half), f  # said where the hand is missing
    assert repr(index.phrase[0]) in fig.get_suptitle()
    lines = {line.get_label(): line.get_ydata() for line in wrists.get_lines()}
    assert set(lines) == {f"{s} wrist {a}" for s in ("left", "right") for a in "xy"}
    left_x = np.asarray(lines["left wrist x"], float)
    assert np.isnan(left_x[:half]).all()  # a gap where the hand was not seen
    np.testing.assert_array_equal(left_x[half:], frames[half:, cols.index("x_left_hand_0")])
    assert plots.plt.fignum_exists(fig.number) is False  # closed after saving


@pytest.mark.parametrize("t", [0, 1])
def test_sequence_png_of_an_empty_or_one_frame_sequence(tmp_path, t):
    cols = LandmarkSet().selected_columns
    frames = np.full((t, len(cols)), np.nan, np.float32)
    out = plot_sequence(frames, cols, "", tmp_path / "seq.png")
    assert out.read_bytes()[:4] == b"\x89PNG"
