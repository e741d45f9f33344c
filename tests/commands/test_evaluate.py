"""aslfs-evaluate, with the export before it and aslfs-predict after: from a training checkpoint
to scores and a prediction csv, through the scripts users run."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from aslfs_pl import cli
from aslfs_pl.data.synthetic import write_synthetic_dataset
from aslfs_pl.trained import load_checkpoint
from tests.helpers import run_script as script
from tests.helpers import tiny_args
from tests.test_terminal import assert_quiet


@pytest.fixture(scope="module")
def with_supplemental(tmp_path_factory) -> Path:
    """A dataset whose supplemental csv adds sequences (same signers, as the Kaggle data)."""
    out = tmp_path_factory.mktemp("with_supplemental")
    write_synthetic_dataset(out, 100, seed=2, supplemental_sequences=40, sequences_per_file=50)
    return out


@pytest.mark.slow
def test_export_evaluate_predict_scripts_from_a_checkpoint(with_supplemental, tmp_path):
    data = with_supplemental
    settings = ["--trainer.max_epochs", "1", "--data.val_fraction", "0.25"]
    fitted = cli.main(
        tiny_args(data, tmp_path, *settings, "--data.sources", "[train, supplemental]")
    )
    trained_val = sorted(fitted.datamodule.val_set.index.sequence_id.tolist())
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    # the checkpoint rebuilds the training split exactly, supplemental sequences included
    dm = load_checkpoint(ckpt, data_dir=str(data)).datamodule
    assert dm.sources == ("train", "supplemental")
    assert sorted(dm.split(dm.index())[1].sequence_id.tolist()) == trained_val
    supplemental = (data / "supplemental_metadata.csv").read_text().splitlines()[1:]
    supplemental_ids = {int(line.split(",")[2]) for line in supplemental}
    assert supplemental_ids & set(trained_val)
    out = tmp_path / "sub"
    # fp32 so that every prediction must match PyTorch exactly (fp16 weights can flip a
    # near-tie; its parity is checked on logits in tests/deploy/test_parity.py)
    shown = script(
        "scripts/export_tflite.py", "--ckpt", str(ckpt), "--out", str(out), "--fp32", stderr=True
    )
    assert "parity: OK" in shown and "read-out: attention (the checkpoint's model" in shown
    assert_quiet(shown)  # the converter's and the interpreter's native chatter left out
    shown = script(
        "scripts/evaluate.py", "--submission", str(out / "submission.zip"), "--ckpt", str(ckpt),
        "--data_dir", str(data), "--split", "val", stderr=True,
    )  # fmt: skip
    assert_quiet(shown)
    lines = shown.splitlines()
    assert lines[0].startswith(f"{len(trained_val)} sequences (val split")
    assert any(line.strip().startswith("tflite") and "score" in line for line in lines)
    assert any(line.strip().startswith("pytorch") and "score" in line for line in lines)
    same = next(line for line in lines if "identical predictions" in line)
    n_same, n_all = (int(v) for v in same.split(":")[1].split("/"))
    assert n_same == n_all == len(trained_val)
    parquet = next((data / "train_landmarks").glob("*.parquet"))
    csv_out = tmp_path / "pred.csv"
    script(
        "scripts/predict.py", "--submission", str(out), "--parquet", str(parquet),
        "--out", str(csv_out),
    )  # fmt: skip
    rows = csv_out.read_text().splitlines()
    assert rows[0] == "sequence_id,phrase" and len(rows) > 1
    # one row per sequence of the parquet
    in_file = set(pq.read_table(parquet, columns=["sequence_id"]).column(0).to_pylist())
    assert sorted(int(r.split(",")[0]) for r in rows[1:]) == sorted(in_file)
