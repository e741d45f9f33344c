"""Lightning callbacks of the project."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from weakref import proxy

import torch
from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.callbacks import (
    BasePredictionWriter,
    Callback,
    EMAWeightAveraging,
    ModelCheckpoint,
)

from aslfs_pl.kaggle_scoring import write_phrases
from aslfs_pl.metrics import decoding_scores

log = logging.getLogger(__name__)


class AtomicModelCheckpoint(ModelCheckpoint):
    """:class:`ModelCheckpoint` whose local files are replaced atomically in their own folder.

    Lightning writes a checkpoint through an fsspec transaction, which stages the file in the
    system temp folder and then moves it; when that folder is on another filesystem the move is a
    copy followed by a delete, so a kill during the copy leaves a truncated ``last.ckpt``. Here
    the checkpoint is first written (the same way) to ``<name>.partial`` beside its final path,
    then renamed onto it with ``os.replace``, which is atomic within one filesystem: a kill at
    any moment leaves either the previous checkpoint or the new one. Remote paths (``s3://``,
    ``gs://``) keep Lightning's own write. A ``.partial`` file left by a kill is not taken for
    a checkpoint (``--ckpt_path last`` looks for ``*.ckpt``) and is overwritten by the next save.
    """

    def _save_checkpoint(self, trainer, filepath: str) -> None:
        if not _is_local_file_protocol(filepath):
            return super()._save_checkpoint(trainer, filepath)
        partial = f"{filepath}.partial"
        trainer.save_checkpoint(partial, self.save_weights_only)  # rank 0 writes
        trainer.strategy.barrier("atomic_checkpoint")
        if trainer.is_global_zero:
            os.replace(partial, filepath)
        # what ModelCheckpoint._save_checkpoint records after its save
        self._last_global_step_saved = trainer.global_step
        self._last_checkpoint_saved = filepath
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.after_save_checkpoint(proxy(self))


class PhraseWriter(BasePredictionWriter):
    """Writes what ``fit.py predict`` decodes as Kaggle's ``sequence_id,phrase`` csv.

    Args:
        path: the csv; a relative path is taken inside ``trainer.default_root_dir``. With several
            replicas each writes ``<stem>-rank<N>.csv`` (its shard of the sequences).
    """

    def __init__(self, path: str = "predictions.csv"):
        super().__init__(write_interval="epoch")
        self.path = path

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        path = Path(self.path)
        if not path.is_absolute():
            path = Path(trainer.default_root_dir) / path
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}-rank{trainer.global_rank}{path.suffix}")
        path.parent.mkdir(parents=True, exist_ok=True)
        n = write_phrases(path, (row for batch in predictions for row in batch))
        log.info("wrote %d predictions to %s", n, path)


class EMA(EMAWeightAveraging):
    """Lightning's :class:`EMAWeightAveraging` (validation runs on the averaged weights,
    checkpoints hold them with the training weights beside, fit ends with them), fit for
    torch-xla:

    * the update is one ``lerp`` over all tensors, on the device, with no host sync
      (``AveragedModel.update_parameters`` reads its step counter every step:
      ``bool(n_averaged == 0)``, a device-to-host transfer on XLA);
    * it turns off torch-xla's parameter buffer donation (``XLA_ENABLE_PARAM_ALIASING=0``) when
      it is created, before torch-xla compiles anything (torch-xla reads the setting once): the
      average's tensors start as copies of the parameters, which torch-xla makes by sharing their
      device buffers, and the first optimiser step donated those buffers ("buffer ... is
      deleted"). On XLA this costs one more copy of the parameters and optimiser state during a
      step; nothing else reads the variable.

    ``decay`` is the weight of the old average at each update. With ``use_buffers`` the
    floating-point buffers (batch norm's running statistics) are averaged too; other buffers, and
    every buffer without it, are copied from the model (AveragedModel would average batch norm's
    integer step count, or leave the buffers as they were). The average lives on the model's
    device.
    """

    def __init__(
        self,
        decay: float = 0.999,
        update_every_n_steps: int = 1,
        update_starting_at_step: int | None = None,
        update_starting_at_epoch: int | None = None,
        use_buffers: bool = True,
    ):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay = {decay}: the old average's weight, in [0, 1)")
        if update_every_n_steps < 0:
            raise ValueError(f"EMA update_every_n_steps = {update_every_n_steps}: >= 0 (0: none)")
        super().__init__(
            use_buffers=use_buffers,
            decay=decay,
            update_every_n_steps=update_every_n_steps,
            update_starting_at_step=update_starting_at_step,
            update_starting_at_epoch=update_starting_at_epoch,
        )
        self.decay = decay
        self._started = False  # the average holds at least one update
        if os.environ.get("XLA_ENABLE_PARAM_ALIASING") != "0":
            os.environ["XLA_ENABLE_PARAM_ALIASING"] = "0"
            log.info("EMA: XLA_ENABLE_PARAM_ALIASING=0 (torch-xla donates no parameter buffers)")

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if self._average_model is not None:  # Lightning's hooks decide when; this is how
            self._average_model.update_parameters = self.update

    def on_load_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        super().on_load_checkpoint(trainer, pl_module, checkpoint)
        if self._average_model is not None:  # one host read, when resuming
            self._started = int(self._average_model.n_averaged) > 0

    @torch.no_grad()
    def update(self, pl_module) -> None:
        """average <- decay * average + (1 - decay) * current; the first update copies."""
        average = self._average_model
        pairs = list(zip(average.module.parameters(), pl_module.parameters(), strict=True))
        copied = []
        for a, c in zip(average.module.buffers(), pl_module.buffers(), strict=True):
            (pairs if self._use_buffers and a.is_floating_point() else copied).append((a, c))
        avg, cur = [a for a, _ in pairs], [c.detach() for _, c in pairs]
        if self._started:
            torch._foreach_lerp_(avg, cur, 1.0 - self.decay)
        else:
            torch._foreach_copy_(avg, cur)
            self._started = True
        for a, c in copied:
            a.copy_(c)
        average.n_averaged += 1


class RunReport(Callback):
    """What a fit trains on what, and where its results went, in a few lines (the ``aslfs_pl``
    logger; ``scripts/fit.py`` shows them): the network and the device at the start; at the
    end the checkpoints, the logs and the last held-out score of each decoding."""

    def on_fit_start(self, trainer, pl_module) -> None:
        net = pl_module.net
        c = net.config
        log.info(
            "model: %.2fM parameters: %s stem, %s encoder x%d, decoder x%d; read-out %s",
            net.num_parameters() / 1e6,
            c.stem,
            c.encoder,
            c.encoder_blocks,
            c.decoder_blocks,
            pl_module.hparams.decoding,
        )
        log.info(
            "training on %s x%d, precision %s, max_epochs %s",
            type(trainer.accelerator).__name__.removesuffix("Accelerator").lower(),
            trainer.num_devices,
            trainer.precision,
            trainer.max_epochs,
        )

    def on_fit_end(self, trainer, pl_module) -> None:
        if not trainer.is_global_zero:
            return
        for cb in trainer.checkpoint_callbacks:
            path = cb.best_model_path or cb.last_model_path  # no monitor: the latest is "best"
            if path:
                what = f"best by {cb.monitor}" if cb.monitor else "latest"
                log.info("checkpoint (%s): %s", what, path)
        for logger in trainer.loggers:
            log.info("logs: %s", logger.log_dir)
        metrics = trainer.callback_metrics
        scores = decoding_scores(metrics, pl_module.hparams.decoding)
        if scores:
            shown = ", ".join(f"{k} {v:.4f}" for k, v in sorted(scores.items()))
            log.info("held-out scores (epoch %d): %s", trainer.current_epoch - 1, shown)
