"""The LightningDataModule: which sequences train and which are held out."""

import pytest

from aslfs_pl.data.datamodule import KaggleDataModule
from aslfs_pl.data.kaggle import DataError, load_index
from aslfs_pl.data.synthetic import write_synthetic_dataset


@pytest.mark.parametrize("val_by", ["participant", "file"])
def test_validation_holds_out_whole_groups(synthetic_dir, val_by):
    dm = KaggleDataModule(
        data_dir=str(synthetic_dir),
        val_by=val_by,
        val_fraction=0.25,
        batch_size=4,
        num_workers=0,
        max_frames=24,
    )
    dm.setup("fit")
    tr, va = dm.train_set.index, dm.val_set.index
    assert len(va) > 0 and len(tr) > 0
    key = "participant_id" if val_by == "participant" else "path"
    assert not set(getattr(tr, key).tolist()) & set(getattr(va, key).tolist())
    assert len(tr) + len(va) == len(load_index(synthetic_dir))


def test_supplemental_trains_while_validation_keeps_the_train_sources_held_out_signers(tmp_path):
    write_synthetic_dataset(tmp_path, 60, seed=1, supplemental_sequences=40, sequences_per_file=20)
    alone = KaggleDataModule(data_dir=str(tmp_path), val_fraction=0.3)
    both = KaggleDataModule(
        data_dir=str(tmp_path),
        sources=("train", "supplemental"),
        val_sources=("train",),
        val_fraction=0.3,
    )
    train_a, val_a = alone.split(alone.index())
    train_b, val_b = both.split(both.index())
    assert sorted(val_b.sequence_id) == sorted(val_a.sequence_id)  # the same sequences scored
    assert set(train_b.source) == {"train", "supplemental"} and len(train_b) > len(train_a)
    assert not set(train_b.participant_id) & set(val_b.participant_id)  # still by signer
    with pytest.raises(ValueError, match="val_sources"):
        KaggleDataModule(data_dir=str(tmp_path), val_sources=("supplemental",))


def test_each_stage_reads_only_its_own_splits(synthetic_dir):
    # a batch no training shard can fill: fit refuses, validation (which reads no training
    # batch) streams the held-out split
    dm = KaggleDataModule(
        data_dir=str(synthetic_dir), batch_size=500, num_workers=0, max_frames=24, val_fraction=0.3
    )
    dm.setup("validate")
    assert dm.train_set is None and len(dm.val_set.index) > 0
    assert next(iter(dm.val_dataloader()))["landmarks"].shape[0] == 500  # padded with empty rows
    with pytest.raises(DataError, match="do not fill one batch of 500"):
        dm.setup("fit")


def test_a_failed_subcommand_is_named_in_its_one_line(tmp_path, capsys):
    from aslfs_pl import cli
    from tests.helpers import TINY

    args = ["--config", TINY, "--data.data_dir", str(tmp_path / "nowhere")]
    for sub in ("validate", "fit"):
        with pytest.raises(SystemExit, match=f"^{sub} failed: DataError: .*nowhere"):
            cli.run(
                [
                    sub,
                    *args,
                    "--trainer.default_root_dir",
                    str(tmp_path),
                    "--trainer.logger",
                    "false",
                ]
            )
