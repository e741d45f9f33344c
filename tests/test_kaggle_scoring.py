"""Reading sequences and writing phrases the way Kaggle's evaluator does."""

import numpy as np
import pandas as pd
import pytest

from aslfs_pl.data.landmarks import LandmarkSet
from aslfs_pl.kaggle_scoring import kaggle_sequences


@pytest.mark.parametrize("as_index", [True, False])
def test_evaluation_reader_takes_sequence_id_as_index_or_column(tmp_path, as_index):
    cols = LandmarkSet().selected_columns
    data = np.random.default_rng(0).uniform(0, 1, (5, len(cols))).astype(np.float32)
    df = pd.DataFrame(data, columns=cols)
    df.insert(0, "frame", np.arange(5, dtype=np.int16))
    ids = [9, 9, 4, 9, 4]  # rows of a sequence need not be contiguous
    if as_index:
        df.index = pd.Index(ids, name="sequence_id")  # Kaggle's files
    else:
        df.insert(0, "sequence_id", ids)
    df.to_parquet(tmp_path / "f.parquet")
    got = dict(kaggle_sequences(str(tmp_path / "f.parquet"), cols))
    assert list(got) == [9, 4]  # order of first appearance
    np.testing.assert_array_equal(got[9], data[[0, 1, 3]])
    np.testing.assert_array_equal(got[4], data[[2, 4]])
    assert dict(kaggle_sequences(str(tmp_path / "f.parquet"), cols, [4, 77]))[77].shape == (0, 176)
