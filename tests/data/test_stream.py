"""The stream of one replica: sharding over replicas and workers, determinism, the targets,
resampling, and sequence mixing wired into its batches."""

import numpy as np
import pytest
import torch

from aslfs_pl import vocab
from aslfs_pl.data.augment import AugmentConfig
from aslfs_pl.data.kaggle import load_index, read_landmark_file
from aslfs_pl.data.landmarks import LandmarkSet
from aslfs_pl.data.stream import LandmarkStream
from aslfs_pl.model.features import fit_length, resample_indices
from tests.helpers import random_frames, write_mini_dataset


def _stream(index, train=True, **kw) -> LandmarkStream:
    defaults = dict(
        landmarks=LandmarkSet(), batch_size=4, max_frames=24, max_target_len=32, train=train,
        shuffle_buffer=8, seed=3,
    )  # fmt: skip
    return LandmarkStream(index, **(defaults | kw))


def _ids(batches) -> list[int]:
    return [i for b in batches for i in b["sequence_id"].tolist() if i >= 0]


@pytest.mark.parametrize("train", [True, False])
def test_shards_are_disjoint_and_equal_across_replicas_and_workers(synthetic_dir, train):
    index = load_index(synthetic_dir)
    s = _stream(index, train=train, num_workers=2)
    s.set_distributed(0, 3)
    shards = [s.shard(k) for k in range(s.num_shards)]
    assert len({len(sh) for sh in shards}) == 1
    real = [r for sh in shards for r in sh if r is not None]
    assert len(real) == len(set(real))
    n = len(index)
    assert len(real) == (n - n % 6 if train else n)


def test_every_replica_yields_len_batches_with_two_workers(synthetic_dir):
    index = load_index(synthetic_dir)
    seen, lengths = [], []
    for rank in range(2):
        s = _stream(index, num_workers=2)
        s.set_distributed(rank, 2)
        loader = torch.utils.data.DataLoader(s, batch_size=None, num_workers=2)
        batches = list(loader)
        lengths.append((len(loader), len(batches)))
        seen.append(set(_ids(batches)))
        assert all(b["landmarks"].shape == (4, 24, 176) for b in batches)
        assert all(b["tokens"].shape == (4, 33) for b in batches)
    assert lengths[0] == lengths[1] and lengths[0][0] == lengths[0][1]
    assert not seen[0] & seen[1]


def test_order_is_deterministic_and_reshuffled_every_epoch(synthetic_dir):
    index = load_index(synthetic_dir)
    a, b = _stream(index), _stream(index)
    first = list(a)
    again = list(b)
    assert _ids(first) == _ids(again)
    for x, y in zip(first, again, strict=True):
        assert torch.equal(x["landmarks"].nan_to_num(-9), y["landmarks"].nan_to_num(-9))
    b.set_epoch(1)
    assert _ids(list(b)) != _ids(first)


def test_evaluation_covers_every_sequence_once_without_augmentation(synthetic_dir):
    index = load_index(synthetic_dir)
    s = _stream(index, train=False)
    batches = list(s)
    assert len(batches) == len(s) == int(np.ceil(len(index) / 4))
    assert sorted(_ids(batches)) == sorted(index.sequence_id.tolist())
    assert _ids(list(s)) == _ids(batches)
    # each row holds its sequence's frames as stored, only resampled or padded to the batch
    columns = LandmarkSet().selected_columns
    row_of = {sid: r for r, sid in enumerate(index.sequence_id.tolist())}
    for batch in batches:
        for sid, x, n in zip(
            *(batch[k] for k in ("sequence_id", "landmarks", "num_frames")), strict=True
        ):
            if sid < 0:
                continue
            r = row_of[int(sid)]
            raw = read_landmark_file(index.path[r], columns).frames(int(sid))
            assert int(n) == len(raw)
            np.testing.assert_array_equal(x.numpy(), fit_length(raw, x.shape[0]))


def test_targets_hold_sos_phrase_eos_pad(synthetic_dir):
    index = load_index(synthetic_dir)
    batch = next(iter(_stream(index, train=False, batch_size=1)))
    phrase = index.phrase[0]
    tokens = batch["tokens"][0].tolist()
    assert tokens[0] == vocab.SOS
    assert vocab.decode(tokens[1:]) == phrase
    assert tokens[len(phrase) + 1] == vocab.EOS and set(tokens[len(phrase) + 2 :]) <= {vocab.PAD}


def test_long_sequences_are_resampled_to_max_frames(synthetic_dir):
    index = load_index(synthetic_dir)
    batches = list(_stream(index, train=False, batch_size=8))
    frames = torch.cat([b["num_frames"] for b in batches])
    assert frames.max() > 24  # the synthetic set holds long sequences
    for b in batches:
        long = b["num_frames"] > 24
        # a resampled row has real data in its last frame; a short one is NaN-padded
        last = ~torch.isnan(b["landmarks"][:, -1]).all(-1)
        assert bool((last | ~long).all())


def test_sequence_mixing_concatenates_frames_and_phrases_of_neighbours(tmp_path):
    """With every other augmentation off, a mixed row is sequence i's frames then sequence
    i + 1's, and its phrase is the two phrases; a mix longer than max_frames is resampled to it,
    and rows whose phrases would not fit stay as they are."""
    rng = np.random.default_rng(0)
    lengths = [5, 6, 7, 30]  # 7 + 30 and 30 + 5 frames are longer than max_frames 24
    phrases = ["ab", "cd", "ef", "gh"]
    seqs = [(100 + i, 1, phrases[i], random_frames(rng, t)) for i, t in enumerate(lengths)]
    root = write_mini_dataset(tmp_path, {"f": seqs})
    off = {k: 0.0 for k in vars(AugmentConfig()) if k.endswith("_p")}
    stream = _stream(
        load_index(root),
        batch_size=4,
        shuffle_buffer=1,
        augment=AugmentConfig(**off | {"mix_p": 1.0}),
    )
    items = [{"frames": s[3], "phrase": s[2], "sequence_id": s[0]} for s in seqs]
    mixed = stream._mixed(items)
    for i in range(4):
        j = (i + 1) % 4
        np.testing.assert_array_equal(
            mixed[i]["frames"], np.concatenate([items[i]["frames"], items[j]["frames"]])
        )
        assert mixed[i]["phrase"] == items[i]["phrase"] + items[j]["phrase"]
        assert mixed[i]["sequence_id"] == items[i]["sequence_id"]
    batch = stream._collate(items)
    assert vocab.decode(batch["tokens"][0, 1:].tolist()) == "abcd"
    assert vocab.decode(batch["tokens"][3, 1:].tolist()) == "ghab"
    assert batch["num_frames"].tolist() == [11, 13, 37, 35]
    # the 37 frames of row 2 are resampled to 24, from both sequences in order
    np.testing.assert_array_equal(batch["landmarks"][2].numpy(), fit_length(mixed[2]["frames"], 24))
    last = resample_indices(37, 24)[-1] - 7
    np.testing.assert_array_equal(batch["landmarks"][2, 0].numpy(), items[2]["frames"][0])
    np.testing.assert_array_equal(batch["landmarks"][2, -1].numpy(), items[3]["frames"][last])
    long_phrase = [dict(it, phrase="x" * 20) for it in items]  # 40 characters > 31: no mixing
    assert all(a is b for a, b in zip(stream._mixed(long_phrase), long_phrase, strict=True))
    plain = _stream(load_index(root), augment=AugmentConfig(**off))
    assert plain._mixed(items) is items
    # resampled mixes keep min_frames_per_char: 30 + 5 frames -> 24 leaves row 0 ("ab", 5
    # frames) 3.4 frames, i.e. 1.7 a character; 7 + 30 -> 24 leaves "ef" 4.5, 2.3 a character
    strict = _stream(
        load_index(root),
        batch_size=4,
        shuffle_buffer=1,
        min_frames_per_char=2.0,
        augment=AugmentConfig(**off | {"mix_p": 1.0}),
    )
    mixed = strict._mixed(items)
    assert [m is it for m, it in zip(mixed, items, strict=True)] == [False, False, False, True]


def test_cutmix_in_the_stream_gives_rows_made_of_two_neighbours(tmp_path):
    """With CutMix alone, every row of a training batch is the head of its own sequence and the
    tail of the next one, frames and phrase cut at the fraction its own draws give."""
    rng = np.random.default_rng(0)
    phrases = ["abcd", "efgh", "ijklmn", "op"]
    seqs = [(100 + i, 1, phrases[i], random_frames(rng, 8 + i)) for i in range(4)]
    root = write_mini_dataset(tmp_path, {"f": seqs})
    off = {k: 0.0 for k in vars(AugmentConfig()) if k.endswith("_p")}
    stream = _stream(
        load_index(root),
        batch_size=4,
        shuffle_buffer=1,
        augment=AugmentConfig(**off | {"cutmix_p": 1.0}),
    )
    items = [{"frames": s[3], "phrase": s[2], "sequence_id": s[0]} for s in seqs]
    mixed = stream._mixed(items)
    for i, row in enumerate(mixed):
        own, nxt = items[i], items[(i + 1) % 4]
        draws = stream.augmenter.batch[0].rng(stream._key(own))  # CutMix's own stream
        draws.random()  # the mixing draw (under p = 1)
        u = draws.random()
        for key in ("phrase", "frames"):
            a, b = own[key], nxt[key]
            ca, cb = (int(np.clip(round(len(x) * u), 1, len(x) - 1)) for x in (a, b))
            if key == "phrase":
                assert row[key] == a[:ca] + b[cb:]
            else:
                np.testing.assert_array_equal(row[key], np.concatenate([a[:ca], b[cb:]]))
    batch = stream._collate(items)
    assert [vocab.decode(r[1:].tolist()) for r in batch["tokens"]] == [m["phrase"] for m in mixed]
