"""The LightningDataModule: which sequences train and which are held out."""

import pytest

from aslfs_pl.data.datamodule import KaggleDataModule
from aslfs_pl.data.kaggle import load_index
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
