"""Bad input: each case gets a clear error naming the file, or a logged skip with a count."""

import logging

import numpy as np
import pytest

from aslfs_pl import cli
from aslfs_pl.data.datamodule import KaggleDataModule
from aslfs_pl.data.kaggle import DataError, load_index, read_landmark_file
from aslfs_pl.data.landmarks import LandmarkSet
from tests.helpers import random_frames, tiny_args, write_mini_dataset


def _dm(root, **kw) -> KaggleDataModule:
    defaults = dict(
        data_dir=str(root), max_frames=16, batch_size=2, num_workers=0, val_fraction=0.0,
        shuffle_buffer=1,
    )  # fmt: skip
    return KaggleDataModule(**(defaults | kw))


def _all_batches(dm: KaggleDataModule) -> list[dict]:
    dm.setup("fit")
    return list(dm.train_dataloader())


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def _good(rng, n=4, start=1):
    return [(start + i, 7, "abc", random_frames(rng, 10)) for i in range(n)]


def test_reads_only_selected_columns_and_groups_by_sequence(tmp_path, rng):
    frames = random_frames(rng, 5)
    write_mini_dataset(tmp_path, {"101": [(11, 1, "ab", frames), (3, 1, "c", frames[:2])]})
    f = read_landmark_file(tmp_path / "train_landmarks/101.parquet", LandmarkSet().selected_columns)
    np.testing.assert_array_equal(f.frames(11), frames)
    assert f.frames(3).shape == (2, 176)
    assert f.frames(999) is None


def test_empty_csv_is_an_error_naming_it(tmp_path):
    (tmp_path / "train.csv").write_text("path,file_id,sequence_id,participant_id,phrase\n")
    with pytest.raises(DataError, match=r"train\.csv: no sequences"):
        load_index(tmp_path)


def test_missing_csv_and_missing_columns(tmp_path):
    with pytest.raises(DataError, match="train.csv: index csv not found"):
        load_index(tmp_path)
    (tmp_path / "train.csv").write_text("path,sequence_id\nx.parquet,1\n")
    with pytest.raises(DataError, match="missing columns"):
        load_index(tmp_path)


def test_missing_parquet_is_an_error_naming_it(tmp_path, rng):
    write_mini_dataset(tmp_path, {"101": _good(rng)})
    (tmp_path / "train_landmarks/101.parquet").unlink()
    with pytest.raises(DataError, match=r"101\.parquet: landmark parquet listed in the index"):
        _dm(tmp_path).setup("fit")


def test_corrupt_parquet_is_an_error_naming_it(tmp_path, rng):
    write_mini_dataset(tmp_path, {"101": _good(rng)})
    (tmp_path / "train_landmarks/101.parquet").write_bytes(b"not a parquet file at all")
    with pytest.raises(DataError, match=r"101\.parquet: not a readable parquet"):
        _dm(tmp_path).setup("fit")


def test_missing_landmark_columns_are_named(tmp_path, rng):
    cols = LandmarkSet().selected_columns
    write_mini_dataset(
        tmp_path, {"101": [(1, 1, "a", random_frames(rng, 3, len(cols) - 1))]}, columns=cols[1:]
    )
    with pytest.raises(DataError, match=r"101\.parquet: missing columns \['x_left_hand_0'\]"):
        _dm(tmp_path).setup("fit")


def test_file_damaged_after_setup_becomes_empty_rows_not_a_crash(tmp_path, rng, caplog):
    write_mini_dataset(tmp_path, {"101": _good(rng), "102": _good(rng, start=10)})
    dm = _dm(tmp_path)
    dm.setup("fit")
    (tmp_path / "train_landmarks/101.parquet").write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        batches = list(dm.train_dataloader())
    assert len(batches) == 4
    empty = sum(int((b["num_frames"] == 0).sum()) for b in batches)
    assert empty == 4
    assert "101.parquet" in caplog.text and "4 sequences used as empty rows" in caplog.text


def test_sequence_absent_from_parquet_is_counted_and_skipped(tmp_path, rng, caplog):
    write_mini_dataset(tmp_path, {"101": _good(rng)})
    csv = tmp_path / "train.csv"
    csv.write_text(csv.read_text() + "train_landmarks/101.parquet,101,12345,7,abc\n")
    with caplog.at_level(logging.WARNING):
        batches = _all_batches(_dm(tmp_path, batch_size=5))
    assert len(batches) == 1
    b = batches[0]
    row = b["sequence_id"].tolist().index(12345)
    assert b["num_frames"][row] == 0 and (b["tokens"][row] == 59).all()
    assert np.isnan(b["landmarks"][row].numpy()).all()
    assert (
        "1 sequences used as empty rows" in caplog.text and "absent from its parquet" in caplog.text
    )


def test_bad_phrases_are_skipped_with_a_logged_count(tmp_path, rng, caplog):
    seqs = _good(rng) + [
        (50, 7, "Capital", random_frames(rng, 5)),
        (51, 7, "x" * 40, random_frames(rng, 5)),
    ]
    write_mini_dataset(tmp_path, {"101": seqs})
    with caplog.at_level(logging.WARNING):
        dm = _dm(tmp_path)
        dm.setup("fit")
    assert len(dm.train_set.index) == 4
    assert "skipping 1 of 6 sequences with a character outside" in caplog.text
    assert "skipping 1 of 6 sequences with a phrase longer than 31" in caplog.text


def test_all_nan_hands_and_zero_frames_are_skipped_in_training(tmp_path, rng, caplog):
    no_hands = random_frames(rng, 8)
    pts = no_hands.reshape(8, 2, 88)
    pts[:, :, :42] = np.nan
    write_mini_dataset(tmp_path, {"101": [*_good(rng, 3), (60, 7, "ab", no_hands)]})
    with caplog.at_level(logging.WARNING):
        batches = _all_batches(_dm(tmp_path))
    assert sum(int((b["num_frames"] == 0).sum()) for b in batches) == 1
    assert "no hand visible" in caplog.text


def test_phrase_with_comma_survives_csv(tmp_path, rng):
    write_mini_dataset(tmp_path, {"101": [(1, 1, "12 main st, apt 4", random_frames(rng, 5))]})
    assert load_index(tmp_path).phrase.tolist() == ["12 main st, apt 4"]


def test_too_few_sequences_for_one_batch_is_a_clear_error(tmp_path, rng):
    write_mini_dataset(tmp_path, {"101": _good(rng, 1)})
    with pytest.raises(DataError, match="do not fill one batch of 2"):
        _dm(tmp_path).setup("fit")


def test_parquet_written_by_pandas_with_nulls_reads_as_nan(tmp_path):
    import pandas as pd

    cols = LandmarkSet().selected_columns
    data = np.random.default_rng(0).uniform(0, 1, (3, len(cols))).astype(np.float32)
    data[1, :21] = np.nan  # pandas stores these as parquet nulls
    df = pd.DataFrame(data, columns=cols)
    df.insert(0, "frame", np.arange(3, dtype=np.int16))
    df.index = pd.Index([7, 7, 7], name="sequence_id")
    df.to_parquet(tmp_path / "f.parquet")
    frames = read_landmark_file(tmp_path / "f.parquet", cols).frames(7)
    assert frames.shape == (3, len(cols))
    assert np.isnan(frames[1, :21]).all() and not np.isnan(frames[0]).any()


def test_too_few_sequences_per_replica_is_caught_at_setup(tmp_path, rng):
    from types import SimpleNamespace

    write_mini_dataset(tmp_path, {"101": _good(rng, 8)})
    dm = _dm(tmp_path, batch_size=2)
    dm.trainer = SimpleNamespace(current_epoch=0, global_rank=0, world_size=8)
    with pytest.raises(DataError, match="over 8 replica"):
        dm.setup("fit")


def test_duplicate_sequence_ids_keep_the_first_row_and_are_logged(tmp_path, rng, caplog):
    write_mini_dataset(tmp_path, {"1": _good(rng, 3)})
    csv = tmp_path / "train.csv"
    lines = csv.read_text().splitlines()
    # sequence 2 listed again with another phrase, sequence 3 twice with the same one
    again = [lines[2].replace(",abc", ",zzz"), lines[3]]
    csv.write_text("\n".join([*lines, *again]) + "\n")
    with caplog.at_level(logging.WARNING):
        index = load_index(tmp_path)
    assert sorted(index.sequence_id.tolist()) == [1, 2, 3]
    assert dict(zip(index.sequence_id.tolist(), index.phrase.tolist(), strict=True))[2] == "abc"
    assert "dropping 2 index rows whose sequence_id is listed earlier" in caplog.text
    assert "[2, 3]" in caplog.text


def test_values_that_are_not_positions_are_read_as_missing_and_counted(tmp_path, rng, caplog):
    frames = random_frames(rng, 4)
    frames[1, 0], frames[2, 5], frames[3, 9] = np.inf, 1e30, -np.inf
    write_mini_dataset(tmp_path, {"5": [(1, 1, "ab", frames)]})
    with caplog.at_level(logging.WARNING):
        f = read_landmark_file(
            tmp_path / "train_landmarks/5.parquet", LandmarkSet().selected_columns
        )
    got = f.frames(1)
    assert np.isnan(got[1, 0]) and np.isnan(got[2, 5]) and np.isnan(got[3, 9])
    assert np.isfinite(np.delete(got.ravel(), [1 * 176 + 0, 2 * 176 + 5, 3 * 176 + 9])).all()
    assert "5.parquet: 3 values not finite or beyond +-100 read as missing" in caplog.text


def test_skipped_sequences_are_logged_and_counted_in_a_real_fit(tmp_path, rng, caplog):
    # Lightning stops after len() batches: the count must not wait for the stream's end
    no_hands = random_frames(rng, 8)
    no_hands.reshape(8, 2, 88)[:, :, :42] = np.nan
    write_mini_dataset(tmp_path / "data", {"101": [*_good(rng, 6), (60, 7, "ab", no_hands)]})
    csv = tmp_path / "data" / "train.csv"  # and a sequence the csv lists but the parquet lacks
    csv.write_text(csv.read_text() + "train_landmarks/101.parquet,101,61,7,ab\n")
    epochs = ["--trainer.max_epochs", "2", "--data.val_fraction", "0"]
    batches = ["--data.batch_size", "2", "--data.shuffle_buffer", "1"]
    with caplog.at_level(logging.WARNING):
        run = cli.main(tiny_args(tmp_path / "data", tmp_path / "run", *epochs, *batches))
    assert run.trainer.callback_metrics["train/skipped"] == 2  # counted in every epoch
    assert caplog.text.count("sequences used as empty rows") == 1  # said once a run
    assert "2 sequences used as empty rows" in caplog.text
    assert "no hand visible" in caplog.text and "absent from its parquet" in caplog.text
