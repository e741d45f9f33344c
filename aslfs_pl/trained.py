"""A network with the data settings it goes with, from a checkpoint or from a config.

Both go through Lightning: a checkpoint through ``Seq2SeqTask.load_from_checkpoint`` (and the
data module's recorded hyperparameters), a config through the training CLI's own parser
(:func:`aslfs_pl.cli.main` with ``run=False``), so stacked ``--config`` files and overrides such
as ``--model.dim 192`` mean in every script what they mean in training.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import torch

from aslfs_pl.data.datamodule import KaggleDataModule
from aslfs_pl.data.landmarks import LandmarkSet
from aslfs_pl.model.seq2seq import Seq2Seq
from aslfs_pl.task import Seq2SeqTask


class LoadError(RuntimeError):
    """A checkpoint or a config could not give a network; the message names the file or the
    setting (``[load]`` or ``[config]``) and the cause."""


@dataclass
class Trained:
    """A network (eval mode, CPU) and the data module it was (or would be) trained with."""

    task: Seq2SeqTask
    datamodule: KaggleDataModule

    @property
    def net(self) -> Seq2Seq:
        return self.task.net

    @property
    def landmarks(self) -> LandmarkSet:
        return self.datamodule.landmarks

    @property
    def decoding(self) -> str:
        """How the task reads phrases out (``model.decoding``): the export's default route."""
        return self.task.hparams.get("decoding", "attention")


def load_checkpoint(path: str | Path, data_dir: str | None = None) -> Trained:
    """The task and data module of a training checkpoint (``data_dir`` overrides the recorded one).

    Raises:
        LoadError: ``[load]`` naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise LoadError(f"[load] {path}: checkpoint not found")
    try:
        data = path.read_bytes()  # read once: the task and the data settings both come from it
        task = Seq2SeqTask.load_from_checkpoint(io.BytesIO(data), map_location="cpu")
        ckpt = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)  # plain values
    except Exception as err:
        raise LoadError(f"[load] {path}: not a loadable aslfs_pl checkpoint ({err})") from err
    if "datamodule_hyper_parameters" not in ckpt:
        raise LoadError(f"[load] {path}: records no data module settings (landmarks, split)")
    hparams = dict(ckpt["datamodule_hyper_parameters"])
    if data_dir is not None:
        hparams["data_dir"] = data_dir
    try:
        datamodule = KaggleDataModule.from_hparams(hparams)
    except (TypeError, ValueError) as err:
        raise LoadError(f"[load] {path}: its data module settings do not load ({err})") from err
    if datamodule.num_columns != task.net.config.num_columns:
        raise LoadError(
            f"[load] {path}: the recorded landmark set has {datamodule.num_columns} columns, "
            f"the model reads {task.net.config.num_columns}"
        )
    task.eval()
    return Trained(task, datamodule)


# What a config is read for here is the model and the data settings; the trainer it would build
# is forced onto the CPU, without logger, so that a TPU or GPU config (configs/tpu.yaml) loads too.
_BUILD_ONLY = [
    "--trainer.accelerator", "cpu", "--trainer.devices", "1", "--trainer.num_nodes", "1",
    "--trainer.precision", "32-true", "--trainer.logger", "false",
]  # fmt: skip


def from_config(args: list[str]) -> Trained:
    """A randomly initialised network from training CLI arguments, e.g.
    ``["--config", "configs/seed.yaml", "--model.dim", "192"]`` (seeded as training seeds it).

    Raises:
        LoadError: ``[config]`` when a setting is rejected (a wrong flag makes the CLI print
            its usage and exit, as fit.py does).
    """
    from aslfs_pl import cli

    try:
        parsed = cli.main(["fit", *args, *_BUILD_ONLY], run=False)
    except (TypeError, ValueError) as err:
        raise LoadError(f"[config] {err}") from err
    return Trained(parsed.model.cpu().eval(), parsed.datamodule)
