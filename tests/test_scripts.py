"""The benchmark and plotting scripts run end to end on tiny inputs (numbers are not checked)."""

import json
import os
import subprocess
import sys

import pytest

from aslfs_pl import cli
from tests.helpers import ROOT, tiny_args
from tests.helpers import run_script as run


def test_bench_data_prints_both_rates_and_the_ratio(synthetic_dir):
    out = run("scripts/bench_data.py", "--data_dir", str(synthetic_dir), "--max_sequences", "60",
              "--max_frames", "64", "--batch_size", "8", "--repeats", "1")  # fmt: skip
    assert "streaming" in out and "naive" in out and "ratio:" in out


@pytest.mark.slow
@pytest.mark.parametrize("data", ["random", "real"])
def test_bench_train_times_the_trainer_step_and_reports_mfu(synthetic_dir, data):
    out = run("scripts/bench_train.py", "--config", "configs/tiny.yaml", "--data", data,
              "--steps", "3", "--warmup", "1", "--profile", "2",
              "--data.data_dir", str(synthetic_dir))  # fmt: skip
    assert "run: device cpu" in out and "sequences/s" in out and "MFU" in out and "GFLOP" in out
    assert "profile (CPU self time, 2 steps)" in out and "matmul + fused attention share" in out
    assert "the optimiser's update" in out
    assert "real-frame fraction" in out and "at each sequence's own length" in out
    assert ("workers per replica" in out) == (data == "real")


@pytest.mark.slow
def test_bench_train_measures_the_mesh_against_one_device_of_another_checkout(tmp_path):
    """The rehearsal's throughput: SPMD over 2 XLA CPU devices against one, each run in its own
    process (the runtime's device count is fixed per process), the same rows a step; the
    baseline runs another checkout's script and code (``--baseline_tree``: here a tree that
    marks its use and runs this checkout's)."""
    tree = tmp_path / "checkout"
    (tree / "scripts").mkdir(parents=True)
    (tree / "aslfs_pl").symlink_to(ROOT / "aslfs_pl")
    (tree / "scripts" / "bench_train.py").write_text(
        f"import pathlib, runpy, sys\npathlib.Path({str(tmp_path / 'used')!r}).touch()\n"
        f"sys.argv[0] = {str(ROOT / 'scripts' / 'bench_train.py')!r}\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    out = run("scripts/bench_train.py", "--config", "configs/tiny.yaml", "--data", "random",
              "--steps", "2", "--warmup", "1", "--xla_cpu_devices", "2", "--baseline_tree",
              str(tree), "--data.batch_size", "2",
              "--against", "--xla_cpu_devices 1 --data.batch_size 4")  # fmt: skip
    assert (tmp_path / "used").exists()
    assert "baseline: sequences/s in 1 processes" in out and "run: sequences/s in 1" in out
    assert "run: device xla:0 x 1 (SPMD over 2 devices)" in out and "batch 2 a device" in out
    assert "baseline: device xla:0 x 1, precision" in out and "batch 4," in out
    assert "run / baseline: sequences/s x" in out


def test_fallback_phrase_finds_a_phrase_and_shows_a_checkpoints_hopeless_outputs(
    synthetic_dir, tmp_path
):
    cli.main(tiny_args(synthetic_dir, tmp_path, "--trainer.max_epochs", "1"))
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    out = run("scripts/fallback_phrase.py", "--data_dir", str(synthetic_dir), "--refs", "40",
              "--ckpt", str(ckpt))  # fmt: skip
    found = out.split("found ")[1].split(": score")[0]
    assert "the empty phrase '': score 0.0000" in out and "the 1st place's" in out
    assert out.count(f"with fallback_frames 3: {found}") == 4  # every hopeless input


def test_plot_scripts_write_pngs(synthetic_dir, tmp_path):
    sid = (synthetic_dir / "train.csv").read_text().splitlines()[1].split(",")[2]
    out = run("scripts/plot_sequence.py", "--data_dir", str(synthetic_dir), "--sequence_id", sid,
              "--out", str(tmp_path / "s.png"))  # fmt: skip
    png = (tmp_path / "s.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000, out
    for version in (0, 1):  # --run plots the newest log of a run folder, beside its csv
        logs = tmp_path / "run" / "lightning_logs" / f"version_{version}"
        logs.mkdir(parents=True)
        (logs / "metrics.csv").write_text("epoch,step,val/score\n0,9,0.1\n1,19,0.5\n")
        os.utime(logs / "metrics.csv", (1e9 + version, 1e9 + version))
    out = run("scripts/plot_curves.py", "--run", str(tmp_path / "run"))
    assert out.strip() == f"training curves: {logs / 'curves.png'}"
    assert (logs / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (logs.parent / "version_0" / "curves.png").exists()


@pytest.mark.slow
def test_bench_export_times_a_weight_type_against_a_baseline_file(tmp_path):
    # one weight type (int8's conversion and parity: tests/deploy/test_parity.py), timed against
    # its own file as the baseline
    out = run("scripts/bench_export.py", "--config", "configs/tiny.yaml", "--sequences", "3",
              "--weights", "fp16", "--out", str(tmp_path), "--rounds", "1",
              "--baseline", str(tmp_path / "fp16" / "model.tflite"))  # fmt: skip
    assert "[fp16] TFLite" in out and "[fp16] conversion" in out
    assert "lower" in out  # seconds per stage
    assert "[baseline " in out
    assert "floor" in out and "without KV cache" in out


@pytest.mark.slow
def test_quality_benchmarks_train_score_and_resume(synthetic_dir, tmp_path):
    tiny = ["--", "--config", "configs/tiny.yaml", "--trainer.max_epochs", "1"]
    args = ["scripts/bench_recipes.py", "--data", str(synthetic_dir), "--out", str(tmp_path),
            "--seeds", "1", "--recipes", "joint decoding", "finger affine", "--epochs", "1",
            "--", "--config", "configs/tiny.yaml"]  # fmt: skip
    out = run(*args)
    assert "| joint decoding seed 1 |" in out and "| finger affine seed 1 |" in out
    results = json.loads((tmp_path / "results.json").read_text())
    # the decoding row trains nothing of its own: it reads the baseline run's joint score
    assert set(results) == {"baseline seed 1", "joint decoding seed 1", "finger affine seed 1"}
    assert all(r["epochs"] == 1 and -1.0 <= r["final"] <= 1.0 for r in results.values())
    base, joint = results["baseline seed 1"], results["joint decoding seed 1"]
    assert joint["final"] == base["scores"]["val/score_joint"]["final"]
    assert base["final"] == base["scores"]["val/score"]["final"]
    assert not (tmp_path / "runs" / "joint_decoding-1").exists()
    saved = next((tmp_path / "runs" / "baseline-1").rglob("config.yaml")).read_text()
    assert "seed_everything: 1\n" in saved  # the seed wins over the tiny config's 0
    gain = joint["final"] - base["final"]  # the summary: mean over seeds, gain over the baseline
    assert (
        f"| joint decoding | 1 | {joint['final']:.3f} | {joint['final']:.3f} | {gain:+.3f} |" in out
    )
    head, tiny_config = args[:-3], args[-3:]  # before any training: a bad or another budget
    for epochs, error in (("0", "--epochs 0"), ("2", "trained 1 epochs, --epochs 2 gives it 2")):
        cmd = [sys.executable, *head, "--epochs", epochs, *tiny_config]
        bad = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
        assert bad.returncode == 2 and error in bad.stderr, bad.stderr
    (tmp_path / "runs" / "baseline-1").rename(tmp_path / "moved")  # a rerun resumes: no refit
    assert "| baseline seed 1 |" in run(*args) and not (tmp_path / "runs" / "baseline-1").exists()
    out = run("scripts/bench_difficulty.py", "--out", str(tmp_path / "d"), "--variants", "hard",
              "--num-sequences", "40", "--participants", "4", *tiny)  # fmt: skip
    assert "| hard seed 42 |" in out
    data = tmp_path / "d" / "data" / "hard"
    assert (data / "train.csv").exists() and (data / "train_landmarks").is_dir()
    config = (tmp_path / "d" / "runs" / "hard-42" / "lightning_logs").rglob("config.yaml")
    saved = next(config).read_text()
    assert str(data) in saved and "seed_everything: 42\n" in saved  # its own data, the seed


@pytest.mark.slow
def test_time_to_quality_compares_two_checkouts_epoch_by_epoch(synthetic_dir, tmp_path):
    # this checkout against itself: one epoch each, both recorded by the standalone epoch clock
    args = ["scripts/bench_time_to_quality.py", "--data", str(synthetic_dir), "--out",
            str(tmp_path), "--baseline_repo", str(ROOT), "--seeds", "1", "--epochs", "1",
            "--target", "-1", "--", "--data.buckets", "[]"]  # fmt: skip
    out = run(*args)
    curves = json.loads((tmp_path / "curves.json").read_text())
    assert set(curves) == {"baseline-1", "this-1"}
    for rows in curves.values():
        assert [r["epoch"] for r in rows] == [0] and rows[0]["seconds"] > 0
        assert -1.0 <= rows[0]["val/score"] <= 1.0 and "val/score_joint" in rows[0]
    saved = next((tmp_path / "this-1").rglob("config.yaml")).read_text()
    assert "buckets: []" in saved and "seed_everything: 1" in saved  # the extra arguments
    assert "minutes to reach -1.000" in out and "this / baseline time to quality" in out
    again = run(*args)  # finished runs are read back, not trained again
    assert json.loads((tmp_path / "curves.json").read_text()) == curves and "this seed 1" in again
    bad = subprocess.run(
        [sys.executable, *args[:5], "--baseline_repo", str(tmp_path)], cwd=ROOT,
        capture_output=True, text=True,
    )  # fmt: skip
    assert bad.returncode == 1 and "no scripts/fit.py there" in bad.stderr
