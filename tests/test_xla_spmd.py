"""Several XLA replicas on the CPU: the training step, data parallel through torch-xla's SPMD.

``xmp.spawn`` cannot run two replicas on torch-xla's CPU device (README, "Scaling out"): each
device thread compiles its own copy of the step, torch-xla lowers ``all_reduce`` without a
channel id, and XLA's CPU runtime then keys the collective by the compiled module's id, so the
threads wait in different rendezvous. SPMD compiles one graph for every device, and that is how
the step is checked here: one process, a mesh over 4 CPU devices, the batch sharded along its
rows, the model replicated.
"""

from __future__ import annotations

import pytest

from tests.helpers import TINY, run_child

SPMD_CHILD = """
import json, sys
import numpy as np
import torch
import torch_xla
import torch_xla.core.xla_model as xm
import torch_xla.debug.metrics as met
import torch_xla.distributed.spmd as xs
import torch_xla.runtime as xr

from aslfs_pl import cli

args, steps = json.loads(sys.argv[1]), 4
xr.use_spmd()
devices = xr.global_runtime_device_count()
mesh = xs.Mesh(np.arange(devices), (devices, 1), ("data", "model"))


def build():
    built = cli.main(args, run=False)
    built.datamodule.setup("fit")
    batches = []
    for batch in built.datamodule.train_dataloader():
        batches.append({k: batch[k] for k in ("landmarks", "tokens")})
        if len(batches) == steps:
            return built.model, batches


def train(device):
    torch.manual_seed(0)
    task, batches = build()
    task = task.to(device)
    # SGD: a weight's gap is its gradient's gap. (Adam turns the rounding noise of a zero
    # gradient, e.g. a conv bias before batch norm, into a full +-lr step.)
    opt = torch.optim.SGD(task.parameters(), lr=0.05, momentum=0.9)
    losses, compiled, specs = [], [], []
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        if device.type == "xla":
            for v in batch.values():  # rows over the mesh's "data" axis, the rest replicated
                xs.mark_sharding(v, mesh, ("data",) + (None,) * (v.dim() - 1))
            specs.append(torch_xla._XLAC._get_xla_sharding_spec(batch["landmarks"]))
        opt.zero_grad()
        loss = task._loss(batch)[0]
        loss.backward()
        opt.step()
        if device.type == "xla":
            xm.mark_step()
            data = met.metric_data("CompileTime")
            compiled.append(0 if data is None else int(data[0]))
        losses.append(float(loss.detach().cpu()))
    weights = {k: v.detach().cpu() for k, v in task.state_dict().items()}
    return losses, weights, compiled, specs, list(task.named_parameters())


spmd_losses, spmd_weights, compiled, specs, _ = train(torch_xla.device())
cpu_losses, cpu_weights, _, _, built_names = train(torch.device("cpu"))
gaps = {k: (spmd_weights[k].float() - w.float()).abs().max().item() for k, w in cpu_weights.items()}
params = {k for k, _ in built_names}
worst = max(g for k, g in gaps.items() if k in params)
worst_stat = max(g for k, g in gaps.items() if k not in params)
print("largest gaps", sorted(gaps.items(), key=lambda kv: -kv[1])[:5])
print("RESULT", json.dumps({"devices": devices, "spmd": spmd_losses, "cpu": cpu_losses,
                            "worst": worst, "worst_stat": worst_stat, "compiled": compiled,
                            "specs": specs}))
"""


@pytest.mark.slow
def test_training_step_data_parallel_over_four_xla_cpu_devices_equals_one_device(
    synthetic_dir, tmp_path
):
    """SPMD over 4 devices = the unsharded step: the same losses and weights after 4 SGD steps
    (batch norm's statistics are reduced over the whole batch by the partitioner), the batch is
    really split 4 ways, and the graph stops compiling once the optimiser's momentum exists."""
    pytest.importorskip("torch_xla")
    args = [
        "fit", "--config", TINY, "--data.data_dir", str(synthetic_dir),
        "--trainer.default_root_dir", str(tmp_path), "--model.ctc_weight", "0.5",
        "--data.batch_size", "8", "--trainer.accelerator", "cpu",
    ]  # fmt: skip
    result = run_child(SPMD_CHILD, args, timeout=600, PJRT_DEVICE="CPU", CPU_NUM_DEVICES="4")
    assert result["devices"] == 4
    assert all(spec.startswith("{devices=[4,1,1]") for spec in result["specs"]), result["specs"]
    assert result["spmd"] == pytest.approx(result["cpu"], rel=1e-4, abs=1e-5)
    assert result["spmd"][0] != result["spmd"][-1]  # it trained
    assert result["worst"] < 1e-5, result["stdout"]  # every parameter
    # Batch norm's running statistics: the means agree like the parameters; the running
    # variances differ by ~1e-4 (observed: 1.3e-4 with 4 x 2 rows x 32 frames per batch). Not
    # verified why; one shard's element count in the unbiased correction n / (n - 1) would give
    # about this much, and it vanishes with TPU-sized shards (it does not touch the loss or the
    # gradients: training normalises with the batch's own statistics).
    assert result["worst_stat"] < 1e-3, result["stdout"]
    compiled = result["compiled"]
    assert compiled[1] == compiled[-1], compiled  # steps 3 and 4: the same graph as step 2
