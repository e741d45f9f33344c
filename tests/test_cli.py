"""Training through the CLI users run: the shortcuts, every config, fit / validate / test / predict
on the CPU, torch-xla's CPU device and 2-process DDP, resume, every technique switch at once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from lightning.pytorch import Callback
from lightning.pytorch.loggers import CSVLogger
from torch import nn

from aslfs_pl import cli
from aslfs_pl.commands import export_tflite
from aslfs_pl.deploy.parity import parity_report
from aslfs_pl.model.regularisation import DropPath
from aslfs_pl.trained import load_checkpoint
from tests.helpers import (
    ROOT,
    TINY,
    StopAfterEpochs,
    assert_graphs_per_bucket_shape,
    run_child,
    tiny_args,
)


def test_accelerator_shortcut_expands_and_can_be_overridden():
    args = cli.expand_shortcuts(["--accelerator", "tpu", "--trainer.devices", "4"])
    assert args[0] == "fit"
    assert args[1:3] == ["--trainer.accelerator", "tpu"]
    assert args.index("--trainer.precision") < args.index("4")  # user value comes later: wins
    expanded = cli.expand_shortcuts(["validate", "--accelerator=cpu"])
    assert expanded == ["validate", "--trainer.accelerator", "cpu"]


@pytest.mark.slow  # two epochs of training
def test_fit_on_cpu_writes_checkpoints_and_metrics(synthetic_dir, tmp_path):
    run = cli.main(tiny_args(synthetic_dir, tmp_path, "--trainer.max_epochs", "2"))
    metrics = run.trainer.callback_metrics
    for key in ("train/loss", "train/acc", "val/loss", "val/acc", "val/score"):
        assert key in metrics and torch.isfinite(metrics[key]), key
    ckpts = {p.name for p in tmp_path.rglob("*.ckpt")}
    assert "last.ckpt" in ckpts and any(n.startswith("best-") for n in ckpts)
    assert run.model.hparams.num_columns == 176 and run.model.hparams.max_frames == 32
    assert isinstance(run.trainer.loggers[0], CSVLogger)  # always, whatever is installed
    # the learning rate is logged every step, so the warm-up shows in the curves
    rows = (Path(run.trainer.logger.log_dir) / "metrics.csv").read_text().splitlines()
    lr_col = rows[0].split(",").index("lr-RAdam/pg1")
    lrs = [r.split(",")[lr_col] for r in rows[1:] if r.split(",")[lr_col]]
    assert len(lrs) > run.trainer.current_epoch + 1 and len(set(lrs)) > 2


def test_default_loggers_are_csv_plus_tensorboard_when_installed(tmp_path):
    import lightning.pytorch.loggers.tensorboard as tb

    loggers = cli.default_loggers(str(tmp_path))
    assert [type(x).__name__ for x in loggers] == (
        ["CSVLogger", "TensorBoardLogger"] if tb._TENSORBOARD_AVAILABLE else ["CSVLogger"]
    )
    assert len({x.log_dir for x in loggers}) == 1  # one lightning_logs/version_N folder


@pytest.mark.slow
def test_fit_script_reports_bad_data_in_one_line(tmp_path):
    cmd = [
        sys.executable, "-W", "ignore", "scripts/fit.py", "--config", TINY,
        "--data.data_dir", str(tmp_path / "nowhere"), "--trainer.default_root_dir", str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert (
        last.startswith("fit failed: DataError: ") and "nowhere: data directory not found" in last
    )


@pytest.mark.slow
def test_every_config_parses(capsys):
    configs = [[p] for p in sorted((ROOT / "configs").glob("*.yaml"))]
    stacked = [
        ["quickstart.yaml", "beyond_cpu.yaml"],
        ["seed.yaml", "beyond.yaml"],
        ["quickstart.yaml", "conformer_cpu.yaml"],
    ]
    configs += [[ROOT / "configs" / name for name in pair] for pair in stacked]
    for paths in configs:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["fit", *(a for p in paths for a in ("--config", str(p))), "--print_config"])
        assert exit_info.value.code in (0, None), paths
        printed = yaml.safe_load(capsys.readouterr().out)
        assert "model" in printed and "data" in printed and "trainer" in printed, paths
        if paths[-1].name.startswith("beyond"):  # the switches survive the stacking
            assert printed["model"]["decoding"] == "joint" and printed["model"]["dim"] in (96, 256)
            assert printed["trainer"]["callbacks"][0]["class_path"] == "aslfs_pl.callbacks.EMA"
        if paths[-1].name == "beyond.yaml":
            assert printed["data"]["val_sources"] == ["train"]
        if [p.name for p in paths] == ["quickstart.yaml", "conformer_cpu.yaml"]:
            model = printed["model"]
            assert (model["encoder"], model["decoding"], model["beam_width"]) == (
                "conformer",
                "beam",
                8,
            )
            assert model["dim"] == 96 and printed["trainer"]["max_epochs"] == 15


@pytest.mark.slow
def test_resume_continues_exactly(synthetic_dir, tmp_path):
    straight, split = tmp_path / "straight", tmp_path / "split"
    cli.main(tiny_args(synthetic_dir, straight, "--trainer.max_epochs", "3"))
    cli.main(
        tiny_args(synthetic_dir, split, "--trainer.max_epochs", "3"),
        trainer_defaults={"callbacks": [StopAfterEpochs(2)]},
    )
    first = torch.load(split / "checkpoints" / "last.ckpt", weights_only=False)
    assert first["epoch"] == 1
    cli.main(tiny_args(synthetic_dir, split, "--trainer.max_epochs", "3", "--ckpt_path", "last"))
    a = torch.load(straight / "checkpoints/last.ckpt", weights_only=False)
    b = torch.load(split / "checkpoints/last.ckpt", weights_only=False)
    resumed_log = (split / "lightning_logs/version_1/metrics.csv").read_text().splitlines()
    assert {row.split(",")[0] for row in resumed_log[1:]} - {""} == {"2"}  # only epoch 3 ran
    assert a["global_step"] == b["global_step"] and a["epoch"] == b["epoch"] == 2
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], rtol=1e-5, atol=1e-6)
    sa, sb = a["lr_schedulers"][0], b["lr_schedulers"][0]
    assert sa["last_epoch"] == sb["last_epoch"] and sa["_last_lr"] == sb["_last_lr"]
    oa, ob = a["optimizer_states"][0], b["optimizer_states"][0]
    assert oa["steps"] == ob["steps"]
    for x, y in zip(oa["slow"], ob["slow"], strict=True):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


# Every technique of the "beyond the seed" recipes switched on at once (see configs/beyond.yaml).
EVERY_SWITCH = (
    "--model.ctc_weight", "0.5", "--model.decoding", "ctc", "--model.dropout", "0.1",
    "--model.drop_path", "0.1", "--model.dropout_start", "0.5", "--model.awp_start", "0.5",
    "--data.augment.finger_affine_p", "0.5", "--data.augment.mix_p", "0.5",
    "--data.augment.cutmix_p", "0.5", "--data.augment.face_drop_p", "0.5",
    "--data.augment.pose_drop_p", "0.5", "--model.token_noise", "0.2",
    "--model.confidence_weight", "0.1", "--trainer.callbacks+=aslfs_pl.callbacks.EMA",
    "--trainer.callbacks.decay=0.5", "--model.backward_weight", "0.4",
    "--data.augment.affine_p", "0.5", "--data.augment.window_speed_p", "0.5",
    "--data.augment.time_shift_p", "0.5", "--data.augment.temporal_mask_p", "0.5",
    "--data.augment.spatial_mask_p", "0.5", "--model.flip_left_handed", "true",
)  # fmt: skip


# The other encoder family with merged frames, and rotary tables built inside the step (the
# encoder's) or sliced per decoder step (the decoder's).
SQUEEZEFORMER_ROTARY = (
    "--model.encoder", "squeezeformer", "--model.encoder_blocks", "3",
    "--model.encoder_conf", "{kernel: 5}", "--model.rotary", "true", "--model.decoder_rotary", "true",
)  # fmt: skip


XLA_CHILD = """
import json, sys
from aslfs_pl import cli
from tests.helpers import CountCompilations
counter = CountCompilations()
run = cli.main(json.loads(sys.argv[1]), trainer_defaults={"callbacks": [counter]})
print("RESULT", json.dumps({"device": run.trainer.strategy.root_device.type,
                            "counts": counter.counts, "transfers": counter.transfers,
                            "scalars": counter.scalars, "shapes": sorted(counter.shapes),
                            "val_graphs": counter.val_graphs}))
"""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("switches", "first_epoch_graphs"),
    [
        (tuple("joint" if a == "ctc" else a for a in EVERY_SWITCH), 6),
        (("--data.max_frames", "192", "--data.buckets", "[128]", "--model.lookahead_k", "0"), 8),
        (SQUEEZEFORMER_ROTARY, 4),
    ],
    ids=["every-switch", "two-buckets", "squeezeformer-rotary"],
)
def test_fit_through_xla_cpu_device_stops_compiling(
    synthetic_dir, tmp_path, switches, first_epoch_graphs
):
    """The tiny model with the seed's optimiser as a Squeezeformer with rotary positions in the
    encoder and the decoder (the plain run's graphs, 4 in the first epoch: the family changes
    none of them); the tiny model with every technique switch (EMA: the project's callback,
    :class:`aslfs_pl.callbacks.EMA`; the local/global encoder); and with two length buckets (without
    Lookahead, whose sync steps would multiply the graphs of each shape: a sync step with a shape
    not yet synced with compiles one more graph, whenever that first happens)."""
    pytest.importorskip("torch_xla")
    steps, epochs = 8, 4
    args = tiny_args(
        synthetic_dir, tmp_path, "--data.data_dir", str(synthetic_dir),
        "--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", str(epochs),
        "--trainer.limit_train_batches", str(steps), "--trainer.limit_val_batches", "2",
        "--model.lookahead_k", "4", *switches,
        "--trainer.accelerator", '{"class_path": "tests.helpers.CPUXLAAccelerator"}',
    )  # fmt: skip
    result = run_child(XLA_CHILD, args, timeout=900, PJRT_DEVICE="CPU")
    assert result["device"] == "xla"
    counts = result["counts"]
    assert len(counts) == epochs * steps
    report = ",".join(map(str, counts))
    if "--data.buckets" in switches:
        assert result["shapes"] == [128, 192], result["shapes"]
        assert_graphs_per_bucket_shape(counts, steps, epochs, first_epoch_graphs)
    else:
        # Training graphs settle within the first epoch (RAdam's rectification switches on after a
        # few steps; Lookahead syncs every k steps: k divides the epoch here so each epoch repeats the
        # same sequence of graphs), validation graphs within two validation runs. After that nothing
        # new is compiled: the last epoch (and the validation before it) adds none.
        assert counts[-1] == counts[-steps - 1], report
        # After the first training step (which also holds the sanity check's validation graphs), the
        # first epoch compiles one graph each at: step 2 (the optimiser's state exists now), step 4
        # (Lookahead's first sync), step 6 (RAdam's rectification switches on), step 8 (a sync with
        # rectification). EMA adds two: its first update (a copy) runs in step 2's graph, its first
        # lerp in step 3's; later updates ride in the step graphs that exist anyway. The other
        # switches add their own graphs once, after the first epoch (late dropout and AWP turn on
        # in the third).
        assert counts[steps - 1] - counts[0] <= first_epoch_graphs, report
    # Validation (the sanity check, then one an epoch) compiles nothing after its first run.
    assert result["val_graphs"][2:] == [0] * (epochs - 1), result["val_graphs"]
    # No device-to-host transfer and no .item() inside a training step: every transfer happens
    # between epochs (validation, epoch-end logging).
    for k in range(1, len(counts)):
        if k % steps:
            assert result["transfers"][k] == result["transfers"][k - 1], result["transfers"]
            assert result["scalars"][k] == result["scalars"][k - 1], result["scalars"]


@pytest.mark.slow
def test_two_process_ddp_shards_disjointly_and_reduces_the_score(synthetic_dir, tmp_path):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    cmd = [
        sys.executable, str(ROOT / "scripts" / "fit.py"), "--config", TINY,
        "--data.data_dir", str(synthetic_dir), "--trainer.default_root_dir", str(tmp_path),
        "--trainer.strategy", "ddp", "--trainer.devices", "2", "--trainer.max_epochs", "1",
        "--trainer.callbacks+=tests.helpers.RecordSequences",
        f"--trainer.callbacks.out_dir={tmp_path}",
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert all(r["world_size"] == 2 for r in ranks)
    a, b = (set(r["train_ids"]) for r in ranks)
    assert a and b and not a & b
    assert len(ranks[0]["train_ids"]) == len(ranks[1]["train_ids"])
    errors = sum(r["val_local"][-1][0] for r in ranks)
    total = sum(r["val_local"][-1][1] for r in ranks)
    assert ranks[0]["val_local"][-1][1] > 0 and ranks[1]["val_local"][-1][1] > 0
    for r in ranks:
        assert r["val_score"] == pytest.approx(1 - errors / total, abs=1e-6)


def test_test_and_predict_subcommands_score_and_write_the_held_out_split(synthetic_dir, tmp_path):
    common = ["--data.val_fraction", "0.25"]
    cli.main(tiny_args(synthetic_dir, tmp_path, "--trainer.max_epochs", "1", *common))
    ckpt = str(tmp_path / "checkpoints" / "last.ckpt")

    def run(subcommand: str):
        args = tiny_args(synthetic_dir, tmp_path, *common, "--ckpt_path", ckpt)
        return cli.main([subcommand, *args[1:]])

    tested = run("test")
    metrics = tested.trainer.callback_metrics
    for key in ("test/loss", "test/acc", "test/score"):
        assert key in metrics and torch.isfinite(metrics[key]), key
    held_out = tested.datamodule.test_set.index
    # test scores the held-out split: the same numbers as validating that checkpoint
    validated = run("validate").trainer.callback_metrics
    assert float(validated["val/score"]) == pytest.approx(float(metrics["test/score"]))
    assert float(validated["val/acc"]) == pytest.approx(float(metrics["test/acc"]))
    run("predict")
    rows = (tmp_path / "predictions.csv").read_text().splitlines()
    assert rows[0] == "sequence_id,phrase"
    assert sorted(int(r.split(",")[0]) for r in rows[1:]) == sorted(held_out.sequence_id.tolist())


def test_model_flags_of_the_command_line_win_over_the_checkpoints_settings(synthetic_dir, tmp_path):
    """Lightning puts a checkpoint's hyperparameters over the command line; the project's CLI
    lets ``--model.*`` flags win, so a checkpoint is validated with another beam width."""
    trained = ("--model.ctc_weight", "0.5", "--model.beam_width", "3")
    cli.main(tiny_args(synthetic_dir, tmp_path, "--trainer.max_epochs", "1", *trained,
                       "--trainer.limit_train_batches", "2"))  # fmt: skip
    ckpt = str(tmp_path / "checkpoints" / "last.ckpt")

    def validate(*flags: str) -> int:
        args = tiny_args(synthetic_dir, tmp_path, "--ckpt_path", ckpt, *flags)
        task = cli.main(["validate", *args[1:]]).model
        assert task.hparams.beam_width == task.net.config.beam_width
        return task.net.config.beam_width

    assert validate() == 3  # the checkpoint's, over the config's default (4)
    assert validate("--model.beam_width", "1") == 1
    assert validate("--model.beam_width=2", "--model.label_smoothing", "0.2") == 2
    # a setting of the network itself (no weight changes shape with it) is refused
    with pytest.raises(ValueError, match=r"--model.decoder_rotary True: the checkpoint .* with "):
        validate("--model.decoder_rotary", "true")
    assert cli.model_flags(["--model.beam_width=2", "--model.optimizer.lr", "1", "--x"]) == [
        "beam_width",
        "optimizer",
    ]


class RecordDropout(Callback):
    """The dropout / drop path rates in force in each training epoch, and the backward passes."""

    def __init__(self):
        self.rates: dict[int, set[float]] = {}
        self.backwards: dict[int, int] = {}

    def on_after_backward(self, trainer, pl_module):
        self.backwards[trainer.current_epoch] = self.backwards.get(trainer.current_epoch, 0) + 1

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        rates = {m.p for m in pl_module.net.modules() if isinstance(m, nn.Dropout | DropPath)}
        self.rates.setdefault(trainer.current_epoch, set()).update(rates)


@pytest.mark.slow
def test_every_technique_switch_trains_validates_with_ema_and_exports_its_decoding(
    synthetic_dir, tmp_path
):
    record = RecordDropout()
    run = cli.main(
        tiny_args(synthetic_dir, tmp_path, "--trainer.max_epochs", "2", *EVERY_SWITCH),
        trainer_defaults={"callbacks": [record]},
    )
    metrics = run.trainer.callback_metrics
    assert float(metrics["val/score"]) == float(metrics["val/score_ctc"])  # decoding: ctc
    assert {"val/score_attention", "val/score_joint"} <= set(metrics)  # every decoding scored
    assert record.rates[0] == {0.0}  # late dropout: off in the first half
    assert record.rates[1] == {0.1}  # dropout 0.1; drop path 0.1 in the only encoder block
    steps = run.trainer.num_training_batches
    assert record.backwards == {0: steps, 1: 2 * steps}  # AWP from the second half: 2 passes
    # EMA: the checkpoint's weights are the average; training's own weights are kept beside
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=False)
    current, averaged = saved["current_model_state"], saved["state_dict"]
    name = "net.encoder.blocks.0.mlp.fc1.weight"
    assert not torch.equal(current[name], averaged[name])
    trained = load_checkpoint(ckpt)
    assert torch.equal(trained.task.state_dict()[name], averaged[name])
    assert trained.decoding == "ctc"
    # the export's route defaults to the checkpoint's decoding, and matches PyTorch
    out = tmp_path / "sub"
    export_tflite.main(["--ckpt", str(ckpt), "--out", str(out)])
    report = parity_report(trained.net, out / "model.tflite", "fp16", decoding="ctc")
    assert report.ok and report.same_texts == len(report.rows), report.summary()
