"""The SPMD strategy through the real Trainer: 8 XLA CPU devices in one process, as
``scripts/fit.py --xla_cpu_devices 8`` runs them, against one CPU device on the same data.

Each XLA run is a child process (SPMD and the device count are per process)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from lightning.pytorch import Callback

from aslfs_pl import cli
from aslfs_pl.data.datamodule import KaggleDataModule
from aslfs_pl.spmd import XLACPUAccelerator, check_batch_rows
from aslfs_pl.trained import load_checkpoint
from tests.helpers import ROOT, assert_graphs_per_bucket_shape, run_child, tiny_args


def test_tpu_shortcut_chooses_spmd_and_the_rehearsal_flag_expands():
    args = cli.expand_shortcuts(["--accelerator", "tpu", "--trainer.strategy", "xla"])
    assert args[args.index("--trainer.strategy") + 1] == "spmd"
    assert args.index("spmd") < args.index("xla")  # the user's strategy comes later: wins
    args = cli.expand_shortcuts(
        ["--xla_cpu_devices=8", "--config", "c.yaml", "--config=d.yaml", "--model.dim", "8"]
    )
    assert args == [  # after the configs (it overrides their accelerator), before the rest
        "fit", "--config", "c.yaml", "--config=d.yaml",
        "--trainer.accelerator", cli.XLA_CPU_ACCELERATOR, "--trainer.strategy", "spmd",
        "--trainer.devices", "8", "--trainer.precision", "32-true", "--model.dim", "8",
    ]  # fmt: skip
    with pytest.raises(SystemExit, match="--xla_cpu_devices 0: a device count"):
        cli.expand_shortcuts(["--xla_cpu_devices", "0"])


def test_batches_that_do_not_split_over_the_devices_are_refused(monkeypatch):
    check_batch_rows({"landmarks": torch.zeros(16, 4, 2), "n": torch.tensor(3)}, 8)
    with pytest.raises(ValueError, match=r"batch\['tokens'\] has 12 rows, .* over 8 devices"):
        check_batch_rows({"landmarks": torch.zeros(16, 4), "tokens": torch.zeros(12, 3)}, 8)
    monkeypatch.setenv("CPU_NUM_DEVICES", "8")
    assert XLACPUAccelerator.parse_devices("auto") == 8
    with pytest.raises(ValueError, match="trainer.devices 4: this run has 8 XLA CPU device"):
        XLACPUAccelerator.parse_devices(4)


def test_the_data_module_feeds_batch_size_rows_per_device():
    class Trainer:  # what the data module reads of a trainer under the SPMD strategy
        class strategy:  # noqa: N801
            data_parallel_size = 8

    dm = KaggleDataModule(data_dir="unused", batch_size=3)
    assert dm.rows() == 3
    dm.trainer = Trainer()
    assert dm.rows() == 24


class RecordFit(Callback):
    """Per-step losses, the batches' sharding, the weights after 4 steps and each validation's
    score, as plain values."""

    def __init__(self):
        self.losses, self.specs, self.scores = [], [], []
        self.early: dict[str, list] = {}
        self.param_spec = None

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch["landmarks"].device.type == "xla":
            import torch_xla

            self.specs.append(torch_xla._XLAC._get_xla_sharding_spec(batch["landmarks"]))

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        self.losses.append(outputs["loss"].detach())  # read at the end: no sync in a step
        if trainer.global_step == 4:  # before RAdam's rectification (step 6) amplifies noise
            self.early = {k: v.cpu().tolist() for k, v in module.state_dict().items()}

    def on_validation_epoch_end(self, trainer, module):
        if not trainer.sanity_checking:
            m = trainer.callback_metrics
            self.scores.append((float(m["val/score"]), float(m["val/loss"])))

    def on_train_epoch_end(self, trainer, module):
        if trainer.current_epoch == 0:
            weight = next(module.parameters())
            if weight.device.type == "xla":
                import torch_xla

                self.param_spec = torch_xla._XLAC._get_xla_sharding_spec(weight)

    def result(self) -> dict:
        return {
            "losses": [float(x) for x in self.losses],
            "specs": self.specs,
            "scores": self.scores,
            "early": self.early,
            "param_spec": self.param_spec,
        }


STEPS, EPOCHS = 8, 4
SETTINGS = (
    "--trainer.max_epochs", str(EPOCHS), "--trainer.limit_train_batches", str(STEPS),
    "--trainer.limit_val_batches", "2", "--model.ctc_weight", "0.5", "--model.lookahead_k", "4",
)  # fmt: skip

FIT_CHILD = """
import json, sys
from aslfs_pl import cli
from tests.helpers import CountCompilations
from tests.test_spmd import RecordFit

args = json.loads(sys.argv[1])
record, counts = RecordFit(), CountCompilations()
run = cli.main(args, trainer_defaults={"callbacks": [record, counts]})
strategy = run.trainer.strategy
print("RESULT " + json.dumps(record.result() | {
    "strategy": type(strategy).__name__, "devices": strategy.data_parallel_size,
    "world_size": run.trainer.world_size,
    "counts": counts.counts, "transfers": counts.transfers, "scalars": counts.scalars,
    "val_graphs": counts.val_graphs, "val_compiles": counts.val_compiles,
    "shapes": sorted(counts.shapes),
}))
"""


@pytest.mark.slow
def test_spmd_fit_on_8_devices_equals_one_device_and_its_checkpoint_runs_on_the_cpu(
    synthetic_dir, tmp_path
):
    """8 devices x 1 row against one CPU device x 8 rows, the same batches (RAdam + Lookahead,
    CTC head on): the same losses at every step, weights after 4 steps, and validation scores;
    no training graph compiled after the first epoch (Lookahead's period divides the epoch, as
    in the single-device test); no host transfer inside a step; the mesh's checkpoint validates
    on the CPU to the same score; validation compiles no graph after the first one (each
    still compiles the runtime's reassembly of the sharded read-outs it copies to the host, the
    same number every time: docs/scaling.md, "Graphs on the mesh")."""
    mesh_dir, cpu_dir = tmp_path / "mesh", tmp_path / "cpu"
    mesh = run_child(
        FIT_CHILD,
        tiny_args(
            synthetic_dir, mesh_dir, *SETTINGS, "--xla_cpu_devices", "8", "--data.batch_size", "1"
        ),  # fmt: skip
        timeout=900,
    )
    assert mesh["strategy"] == "SPMDStrategy" and mesh["devices"] == 8
    assert mesh["world_size"] == 1
    assert all(s.startswith("{devices=[8,1,1]") for s in mesh["specs"]), mesh["specs"][:2]
    assert mesh["param_spec"] in ("{replicated}", "")
    record = RecordFit()
    cli.main(
        tiny_args(synthetic_dir, cpu_dir, *SETTINGS, "--data.batch_size", "8"),
        trainer_defaults={"callbacks": [record]},
    )
    cpu = record.result()
    assert mesh["losses"] == pytest.approx(cpu["losses"], rel=1e-4, abs=1e-5)
    for key, value in cpu["early"].items():
        tol = 1e-3 if "running" in key else 1e-5  # batch norm's statistics: ~1e-4 apart
        torch.testing.assert_close(
            torch.tensor(mesh["early"][key]), torch.tensor(value), rtol=1e-4, atol=tol
        )
    for (score_m, loss_m), (score_c, loss_c) in zip(mesh["scores"], cpu["scores"], strict=True):
        assert score_m == pytest.approx(score_c, abs=1e-6)
        assert loss_m == pytest.approx(loss_c, rel=1e-4)
    counts = mesh["counts"]
    assert len(counts) == STEPS * EPOCHS, counts
    for e in range(1, EPOCHS):  # training: nothing new after the first epoch
        assert counts[e * STEPS] == counts[(e + 1) * STEPS - 1], counts
    # validation (the sanity check, then one each epoch): no graph after the first epoch's
    assert len(mesh["val_graphs"]) == EPOCHS + 1, mesh["val_graphs"]
    assert mesh["val_graphs"][2:] == [0] * (EPOCHS - 1), mesh["val_graphs"]
    assert len(set(mesh["val_compiles"][2:])) == 1, mesh["val_compiles"]
    for seen in (mesh["transfers"], mesh["scalars"]):  # the steps of each epoch but the first
        for e in range(1, EPOCHS):  # (whose step 4 the weights were read at)
            assert seen[e * STEPS] == seen[(e + 1) * STEPS - 1], seen
    # the mesh's checkpoint: plain values, loads on the CPU and validates to the mesh's score
    ckpt = mesh_dir / "checkpoints" / "last.ckpt"
    load_checkpoint(ckpt)
    out = cli.main(["validate", *tiny_args(synthetic_dir, tmp_path / "v", *SETTINGS)[1:],
                    "--ckpt_path", str(ckpt)])  # fmt: skip
    assert float(out.trainer.callback_metrics["val/score"]) == pytest.approx(
        mesh["scores"][-1][0], abs=1e-6
    )


@pytest.mark.slow
def test_spmd_with_length_buckets_compiles_once_per_bucket_shape(synthetic_dir, tmp_path):
    """Two length buckets on 8 devices: every batch of either shape is sharded by rows, the
    training graphs follow the one-device rule (once per kind of step and shape, nothing new
    inside an epoch after the first two, tests/test_cli.py), and validation compiles no graph
    after its first run."""
    steps, epochs = 6, 3
    settings = (
        "--xla_cpu_devices", "8", "--data.batch_size", "1", "--trainer.max_epochs", str(epochs),
        "--trainer.limit_train_batches", str(steps), "--trainer.limit_val_batches", "2",
        "--data.max_frames", "192", "--data.buckets", "[128]", "--model.lookahead_k", "0",
    )  # fmt: skip
    mesh = run_child(FIT_CHILD, tiny_args(synthetic_dir, tmp_path, *settings), timeout=900)
    assert mesh["shapes"] == [128, 192], mesh["shapes"]
    assert all(s.startswith("{devices=[8,1,1]") for s in mesh["specs"]), mesh["specs"]
    assert_graphs_per_bucket_shape(mesh["counts"], steps, epochs, first_epoch_graphs=8)
    assert mesh["val_graphs"][2:] == [0] * (epochs - 1), mesh["val_graphs"]


def fit_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-W", "ignore", "scripts/fit.py", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


@pytest.mark.slow
def test_spmd_settings_are_refused_in_one_line(synthetic_dir, tmp_path):
    """A device count the run has not, and the strategy without an XLA accelerator: refused
    when the Trainer is built or before the first XLA tensor, one line naming the setting."""
    bad_count = fit_script(
        *tiny_args(synthetic_dir, tmp_path, "--xla_cpu_devices", "8", "--trainer.devices", "4")[1:]
    )
    no_xla = fit_script(*tiny_args(synthetic_dir, tmp_path, "--trainer.strategy", "spmd")[1:])
    for proc, message in (
        (bad_count, "trainer.devices 4: this run has 8 XLA CPU device"),
        (no_xla, "trainer.strategy spmd needs an XLA accelerator"),
    ):
        assert proc.returncode == 1, proc.stderr[-2000:]
        assert f"fit failed: ValueError: {message}" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_the_rehearsal_flag_sets_up_the_cpu_devices_or_refuses_another_device(monkeypatch):
    monkeypatch.setenv("PJRT_DEVICE", "TPU")
    monkeypatch.setenv("CPU_NUM_DEVICES", "1")
    with pytest.raises(ValueError, match="--xla_cpu_devices 8 rehearses on the CPU, but PJRT"):
        cli.use_xla_cpu_devices(["--xla_cpu_devices", "8"])
    monkeypatch.delenv("PJRT_DEVICE")
    cli.use_xla_cpu_devices(["fit", "--model.dim", "8"])  # no flag: nothing changes
    assert "PJRT_DEVICE" not in os.environ
    cli.use_xla_cpu_devices(["fit", "--xla_cpu_devices=8"])
    assert os.environ["PJRT_DEVICE"] == "CPU" and os.environ["CPU_NUM_DEVICES"] == "8"


RESUME_CHILD = """
import json, sys
from aslfs_pl import cli
from tests.helpers import StopAfterEpochs

straight, split, test_root = json.loads(sys.argv[1])
cli.main(straight)
cli.main(split, trainer_defaults={"callbacks": [StopAfterEpochs(2)]})
cli.main([*split, "--ckpt_path", "last"])
tested = cli.main(["test", *test_root[1:]])
cli.main(["predict", *test_root[1:]])
print("RESULT " + json.dumps({"test_score": float(tested.trainer.callback_metrics["test/score"])}))
"""


@pytest.mark.slow
def test_spmd_resume_equals_uninterrupted_and_the_cpu_reads_its_checkpoint(synthetic_dir, tmp_path):
    """On 8 devices with EMA: saved after 2 of 3 epochs, stopped, resumed with ``--ckpt_path
    last`` equals the uninterrupted run; test and predict run on the mesh and give what the CPU
    gives from the same checkpoint."""
    mesh = ("--xla_cpu_devices", "8", "--data.batch_size", "1")
    settings = (
        "--trainer.max_epochs", "3", "--trainer.limit_train_batches", "3",
        "--trainer.limit_val_batches", "2", "--trainer.callbacks+=aslfs_pl.callbacks.EMA",
        "--trainer.callbacks.decay=0.5", "--data.test_split", "val",
    )  # fmt: skip
    straight, split = tmp_path / "straight", tmp_path / "split"
    ckpt = straight / "checkpoints" / "last.ckpt"
    args = [
        tiny_args(synthetic_dir, straight, *settings, *mesh),
        tiny_args(synthetic_dir, split, *settings, *mesh),
        tiny_args(synthetic_dir, straight, *settings, *mesh, "--ckpt_path", str(ckpt)),
    ]
    result = run_child(RESUME_CHILD, args, timeout=1500)
    a = torch.load(ckpt, weights_only=False)
    b = torch.load(split / "checkpoints" / "last.ckpt", weights_only=False)
    assert a["global_step"] == b["global_step"] and a["epoch"] == b["epoch"] == 2
    for k in a["state_dict"]:
        torch.testing.assert_close(a["state_dict"][k], b["state_dict"][k], rtol=1e-5, atol=1e-6)
    for x, y in zip(
        a["optimizer_states"][0]["slow"], b["optimizer_states"][0]["slow"], strict=True
    ):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)
    assert any("EMA" in key for key in a["callbacks"]), a["callbacks"].keys()
    # the CPU, from the mesh's checkpoint: the same test score and the same predictions
    cpu = cli.main(["test", *tiny_args(synthetic_dir, tmp_path / "cpu", *settings)[1:],
                    "--ckpt_path", str(ckpt)])  # fmt: skip
    assert float(cpu.trainer.callback_metrics["test/score"]) == pytest.approx(
        result["test_score"], abs=1e-6
    )
    cli.main(["predict", *tiny_args(synthetic_dir, tmp_path / "cpu", *settings)[1:],
              "--ckpt_path", str(ckpt)])  # fmt: skip
    mesh_rows = (straight / "predictions.csv").read_text().splitlines()
    assert mesh_rows == (tmp_path / "cpu" / "predictions.csv").read_text().splitlines()
    assert len(mesh_rows) > 2
    # the checkpoint holds plain CPU values (the CPU reads it to the same scores and phrases):
    # the export reads it as it reads any checkpoint (tests/commands/test_export_tflite.py)
    assert all(v.device.type == "cpu" for v in a["state_dict"].values())
