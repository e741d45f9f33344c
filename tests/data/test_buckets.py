"""Length bucketing: batches of similar lengths padded to a few fixed frame counts, with the
stream's guarantees (pure order, equal batch counts per replica, every held-out sequence once)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aslfs_pl.data.batching import bucket_lengths, bucket_of
from aslfs_pl.data.datamodule import KaggleDataModule
from aslfs_pl.data.kaggle import load_index
from aslfs_pl.data.landmarks import LandmarkSet
from aslfs_pl.data.stream import LandmarkStream
from tests.helpers import random_frames, write_mini_dataset

MAX_FRAMES = 64
BUCKETS = (16, 32, 48, 64)


@pytest.fixture(scope="module")
def spread(tmp_path_factory):
    """60 sequences of 3..90 frames (some longer than MAX_FRAMES) in 3 files."""
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 91, 60)
    files = {
        f"f{k}": [(100 + i, i % 6, "abc", random_frames(rng, int(lengths[i]))) for i in part]
        for k, part in enumerate(np.array_split(np.arange(60), 3))
    }
    return load_index(write_mini_dataset(tmp_path_factory.mktemp("spread"), files))


def _stream(index, buckets=BUCKETS, train=True, **kw) -> LandmarkStream:
    settings = dict(
        landmarks=LandmarkSet(), batch_size=4, max_frames=MAX_FRAMES, max_target_len=8,
        train=train, shuffle_buffer=8, seed=3, buckets=buckets,
    )  # fmt: skip
    return LandmarkStream(index, **(settings | kw))


def test_bucket_settings_are_checked():
    assert bucket_lengths(384) == (*range(32, 384, 32), 384)
    assert bucket_lengths(384, []) == (384,)  # one fixed length: the old behaviour
    assert bucket_lengths(384, [128, 256]) == (128, 256, 384)
    assert bucket_lengths(384, [128, 384]) == (128, 384)
    assert bucket_lengths(100, None, width=32) == (32, 64, 96, 100)
    for bad in ([256, 128], [0, 128], [128, 500], [128, 128]):
        with pytest.raises(ValueError, match=r"data.buckets = \[.*\]: .*1..max_frames \(384\)"):
            bucket_lengths(384, bad)
    with pytest.raises(ValueError, match="data.buckets"):
        KaggleDataModule(data_dir="nowhere", max_frames=128, buckets=[64, 256])
    assert [bucket_of(n, BUCKETS) for n in (0, 1, 16, 17, 48, 64, 65, 900)] == [
        0, 0, 0, 1, 2, 3, 3, 3,
    ]  # fmt: skip


def test_batches_are_padded_to_the_bucket_of_their_longest_sequence(spread):
    batches = list(_stream(spread))
    frames_real = frames_fed = 0
    for b in batches:
        f = b["landmarks"].shape[1]
        longest = int(b["num_frames"].clamp(max=MAX_FRAMES).max())
        assert f == BUCKETS[bucket_of(longest, BUCKETS)]  # the smallest bucket holding it
        frames_real += int(b["num_frames"].clamp(max=MAX_FRAMES).sum())
        frames_fed += b["landmarks"].shape[0] * f
        for row, n in zip(b["landmarks"], b["num_frames"].tolist(), strict=True):
            kept = min(n, MAX_FRAMES)  # longer sequences resampled to the largest bucket
            assert (~torch.isnan(row[:kept])).any(1).all() and torch.isnan(row[kept:]).all()
    assert {b["landmarks"].shape[1] for b in batches} == set(BUCKETS)
    fixed = list(_stream(spread, buckets=None))
    assert {b["landmarks"].shape[1] for b in fixed} == {MAX_FRAMES}
    fixed_real = sum(int(b["num_frames"].clamp(max=MAX_FRAMES).sum()) for b in fixed)
    fixed_fraction = fixed_real / (len(fixed) * 4 * MAX_FRAMES)
    assert frames_real / frames_fed > fixed_fraction + 0.15  # far less padding


def test_bucketed_training_keeps_the_order_pure_and_the_batch_counts_equal(spread):
    counts, seen = [], []
    for rank in range(2):
        s = _stream(spread, num_workers=2)
        s.set_distributed(rank, 2)
        loader = torch.utils.data.DataLoader(s, batch_size=None, num_workers=2)
        batches = list(loader)
        counts.append((len(s), len(batches)))
        seen.append([i for b in batches for i in b["sequence_id"].tolist()])
    assert counts[0] == counts[1] and counts[0][0] == counts[0][1]  # every replica: len() batches
    assert not set(seen[0]) & set(seen[1]) and len(set(seen[0])) == len(seen[0])
    again = _stream(spread)
    first = [(b["sequence_id"].tolist(), b["landmarks"].shape) for b in again]
    assert first == [(b["sequence_id"].tolist(), b["landmarks"].shape) for b in _stream(spread)]
    again.set_epoch(1)
    assert [ids for ids, _ in first] != [b["sequence_id"].tolist() for b in again]


def test_bucketed_evaluation_scores_every_sequence_exactly_once(spread):
    ids, counts = [], set()
    for rank in range(3):
        s = _stream(spread, train=False)
        s.set_distributed(rank, 3)
        batches = list(s)
        counts.add((len(s), len(batches)))
        ids += [i for b in batches for i in b["sequence_id"].tolist() if i >= 0]
    assert len(counts) == 1 and len(counts.pop()) == 2  # the same count on every replica
    assert sorted(ids) == sorted(spread.sequence_id.tolist())
