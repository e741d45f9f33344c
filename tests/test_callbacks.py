"""The project's Lightning callbacks: EMA weight averaging, atomic checkpoints, the prediction
writer."""

from __future__ import annotations

import csv
import os
from copy import deepcopy
from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_avg_fn

from aslfs_pl import cli
from aslfs_pl.callbacks import EMA, AtomicModelCheckpoint, PhraseWriter
from tests.helpers import tiny_args


def test_ema_update_is_lightnings_average_without_a_host_sync():
    """The project's EMA update (one foreach lerp) gives AveragedModel's EMA of the parameters
    and floating-point buffers, the first update a copy; integer buffers are copied."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    ema = EMA(decay=0.9)
    ema._average_model = AveragedModel(net, use_buffers=True)
    reference = AveragedModel(net, use_buffers=True, avg_fn=get_ema_avg_fn(0.9))
    for _ in range(3):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        net.train()(torch.randn(8, 4))  # moves batch norm's running statistics
        ema.update(net)
        reference.update_parameters(net)
    got, want = ema._average_model.state_dict(), reference.state_dict()
    assert got.keys() == want.keys()
    for name in want:
        if want[name].is_floating_point():
            torch.testing.assert_close(got[name], want[name], msg=name)
    assert int(got["module.1.num_batches_tracked"]) == 3 == int(net[1].num_batches_tracked)
    assert int(got["n_averaged"]) == 3
    assert not torch.equal(got["module.0.weight"], net[0].weight)  # an average, not a copy
    # resumed from a checkpoint (Lightning's format): the next update averages, it does not copy
    resumed = EMA(decay=0.9)
    resumed._average_model = AveragedModel(nn.Sequential(*(deepcopy(m) for m in net)))
    checkpoint = {
        "state_dict": {k[len("module.") :]: v for k, v in got.items() if k.startswith("module.")},
        "current_model_state": net.state_dict(),
        "averaging_state": {"n_averaged": got["n_averaged"]},
    }
    resumed.on_load_checkpoint(None, net, checkpoint)
    resumed.update(net)
    ema.update(net)
    for a, b in zip(
        resumed._average_model.parameters(), ema._average_model.parameters(), strict=True
    ):
        torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="EMA decay = 1.0"):
        EMA(decay=1.0)
    with pytest.raises(ValueError, match="EMA update_every_n_steps = -1"):
        EMA(update_every_n_steps=-1)


def test_ema_copies_buffers_it_does_not_average():
    """Without ``use_buffers`` every buffer is copied from the model (batch norm's running
    statistics included); the parameters are still averaged."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))
    ema = EMA(decay=0.5, use_buffers=False)
    ema._average_model = AveragedModel(net, use_buffers=True)
    ema.update(net)  # the first update: a copy
    first = net[0].weight.detach().clone()
    with torch.no_grad():
        net[0].weight.add_(1.0)
    net.train()(torch.randn(8, 4))
    ema.update(net)
    average = ema._average_model.module
    torch.testing.assert_close(average[0].weight, first + 0.5)  # halfway: decay 0.5
    assert torch.equal(average[1].running_mean, net[1].running_mean)
    assert torch.equal(average[1].running_var, net[1].running_var)


class _Trainer(SimpleNamespace):
    """The parts of a Trainer the checkpoint callback's save reads."""

    def save_checkpoint(self, path, weights_only=False):
        self.saved.append(path)
        with open(path, "w") as f:
            f.write(f"step {self.global_step}")


def spy_on_renames(monkeypatch) -> list[tuple[str, str]]:
    """Every ``os.replace(src, dst)`` from now on, still carried out."""
    renames = []
    real_replace = os.replace

    def spy(src, dst):
        renames.append((str(src), str(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    return renames


def test_a_checkpoint_is_written_beside_its_path_then_renamed_onto_it(tmp_path, monkeypatch):
    renames = spy_on_renames(monkeypatch)
    barriers = []
    trainer = _Trainer(
        saved=[],
        global_step=7,
        is_global_zero=True,
        loggers=[],
        strategy=SimpleNamespace(barrier=barriers.append),
    )
    callback = AtomicModelCheckpoint(dirpath=tmp_path)
    target = tmp_path / "last.ckpt"
    target.write_text("the previous checkpoint")
    callback._save_checkpoint(trainer, str(target))
    assert trainer.saved == [f"{target}.partial"]  # never the final path itself
    assert renames == [(f"{target}.partial", str(target))]
    assert barriers == ["atomic_checkpoint"]  # every rank waits for rank 0's write
    assert target.read_text() == "step 7" and not list(tmp_path.glob("*.partial"))
    assert callback._last_global_step_saved == 7 and callback._last_checkpoint_saved == str(target)


def test_checkpoints_are_replaced_atomically_in_their_own_folder(
    synthetic_dir, tmp_path, monkeypatch
):
    renames = spy_on_renames(monkeypatch)
    run = cli.main(tiny_args(synthetic_dir, tmp_path, "--trainer.max_epochs", "1"))
    assert all(isinstance(cb, AtomicModelCheckpoint) for cb in run.trainer.checkpoint_callbacks)
    last = os.path.realpath(tmp_path / "checkpoints" / "last.ckpt")
    assert (last + ".partial", last) in renames  # written beside it, then renamed onto it
    assert not list(tmp_path.rglob("*.partial"))
    assert torch.load(last, weights_only=False)["epoch"] == 0


def test_phrase_writer_writes_kaggles_csv_in_the_run_folder_one_file_per_replica(tmp_path):
    predictions = [[(11, "ab"), (12, "c, d")], [(13, "")]]
    trainer = SimpleNamespace(default_root_dir=str(tmp_path / "run"), world_size=1, global_rank=0)
    PhraseWriter().write_on_epoch_end(trainer, None, predictions, None)
    with open(tmp_path / "run" / "predictions.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows == [["sequence_id", "phrase"], ["11", "ab"], ["12", "c, d"], ["13", ""]]
    trainer.world_size, trainer.global_rank = 2, 1
    PhraseWriter("out/phrases.csv").write_on_epoch_end(trainer, None, predictions[1:], None)
    written = (tmp_path / "run" / "out" / "phrases-rank1.csv").read_text()
    assert written.splitlines() == ["sequence_id,phrase", "13,"]
    absolute = tmp_path / "elsewhere.csv"
    trainer.world_size = 1
    PhraseWriter(str(absolute)).write_on_epoch_end(trainer, None, predictions[:1], None)
    assert absolute.read_text().splitlines()[1:] == ["11,ab", '12,"c, d"']
