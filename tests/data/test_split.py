"""The validation split: a pure function of the index and the settings."""

from aslfs_pl.data.datamodule import KaggleDataModule
from aslfs_pl.data.kaggle import load_index
from aslfs_pl.data.split import split_index


def test_split_is_a_pure_function_of_index_and_settings(synthetic_dir):
    index = load_index(synthetic_dir)
    a_train, a_val = split_index(index, "participant", 0.25, None, seed=5)
    b_train, b_val = split_index(index, "participant", 0.25, None, seed=5)
    assert a_val.sequence_id.tolist() == b_val.sequence_id.tolist()
    assert len(a_train) + len(a_val) == len(index)
    other = split_index(index, "participant", 0.25, None, seed=6)[1]
    assert other.sequence_id.tolist() != a_val.sequence_id.tolist()  # the seed is an input
    # the data module's split is this function of its own settings
    dm = KaggleDataModule(data_dir=str(synthetic_dir), val_fraction=0.25, seed=5)
    assert dm.split(index)[1].sequence_id.tolist() == a_val.sequence_id.tolist()
    # and a module rebuilt from its recorded hyperparameters splits the same way
    again = KaggleDataModule.from_hparams(dict(dm.hparams))
    assert again.split(again.index())[1].sequence_id.tolist() == a_val.sequence_id.tolist()
