"""Lightning callbacks of the project."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from weakref import proxy

from lightning.fabric.utilities.cloud_io import _is_local_file_protocol
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint

from aslfs_pl.evaluate import write_phrases

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
