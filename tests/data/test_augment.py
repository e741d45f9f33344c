"""Each augmentation does what it says on a hand-made sequence."""

from dataclasses import dataclass

import numpy as np
import pytest

from aslfs_pl.data import augment as A
from aslfs_pl.data.augment import geometry, mixing, occlusion, timing
from aslfs_pl.data.landmarks import LandmarkSet


def hand_sequence(t: int = 10, right_hand: bool = False) -> np.ndarray:
    """(T, 2, P): the default landmark set, points on a line, the right hand missing unless asked."""
    s = LandmarkSet()
    pts = np.zeros((t, 2, s.num_points), np.float32)
    pts[:, 0] = np.linspace(0.2, 0.8, s.num_points)
    pts[:, 1] = 0.5 + 0.01 * np.arange(t)[:, None]
    if not right_hand:
        pts[:, :, 21:42] = np.nan
    return pts


def xy(pts: np.ndarray, frame, point) -> np.ndarray:
    """(2,) x, y of one point."""
    return pts[frame, :, point]


def test_flip_mirrors_x_and_swaps_hands():
    s = LandmarkSet()
    pts = hand_sequence()
    out = geometry.flip(pts, s.mirror_permutation())
    assert np.isnan(out[:, :, 0:21]).all()  # the left hand slot now holds the missing right hand
    np.testing.assert_allclose(out[:, 0, 21:42], 1.0 - pts[:, 0, 0:21])
    np.testing.assert_allclose(out[:, 1, 21:42], pts[:, 1, 0:21])
    np.testing.assert_allclose(geometry.flip(out, s.mirror_permutation()), pts, atol=1e-6)


def test_rotate_keeps_distances_and_turns_by_the_angle():
    pts = hand_sequence()
    out = geometry.rotate(pts, 90.0)
    c = geometry.centre(pts)
    v0, v1 = xy(pts, 0, 0) - c, xy(out, 0, 0) - c
    np.testing.assert_allclose(np.linalg.norm(v0), np.linalg.norm(v1), rtol=1e-5)
    np.testing.assert_allclose(v1, [-v0[1], v0[0]], atol=1e-5)
    assert np.isnan(out[:, :, 21:42]).all()


def test_scale_stretches_each_axis():
    pts = hand_sequence()
    out = geometry.scale(pts, 2.0, 0.5)
    c = geometry.centre(pts)
    np.testing.assert_allclose(xy(out, 3, 5) - c, (xy(pts, 3, 5) - c) * [2.0, 0.5], atol=1e-6)


def test_shift_moves_body_and_hand_separately():
    pts = hand_sequence()
    hand = tuple(range(21))
    out = geometry.shift(
        pts, np.array([0.1, -0.1], np.float32), {hand: np.array([0.05, 0.0], np.float32)}
    )
    np.testing.assert_allclose(
        out[:, :, 50] - pts[:, :, 50], np.tile([0.1, -0.1], (10, 1)), atol=1e-6
    )
    np.testing.assert_allclose(
        out[:, :, 3] - pts[:, :, 3], np.tile([0.15, -0.1], (10, 1)), atol=1e-6
    )


def test_resample_time_changes_length():
    pts = hand_sequence(20)
    assert timing.resample_time(pts, 2.0).shape[0] == 10
    assert timing.resample_time(pts, 0.5).shape[0] == 40
    np.testing.assert_array_equal(timing.resample_time(pts, 2.0)[1], pts[2])


def test_drop_frames_keeps_at_least_one():
    pts = hand_sequence(5)
    keep = np.array([True, False, True, False, False])
    assert timing.drop_frames(pts, keep).shape[0] == 2
    assert timing.drop_frames(pts, np.zeros(5, bool)).shape[0] == 1


def test_hide_sets_points_to_nan_in_chosen_frames():
    pts = hand_sequence(4)
    out = occlusion.hide(pts, [1, 2], np.array([False, True, False, True]))
    assert np.isnan(out[[1, 3]][:, :, [1, 2]]).all()
    assert not np.isnan(out[[0, 2]][:, :, [1, 2]]).any()
    assert not np.isnan(out[:, :, 0]).any()


def _augmenter(**probs) -> A.Augmenter:
    s = LandmarkSet()
    zero = {k: 0.0 for k in vars(A.AugmentConfig()) if k.endswith("_p")}
    return A.Augmenter(A.AugmentConfig(**(zero | probs)), s.mirror_permutation(), s.part_slices())


PROBABILITIES = (
    "flip_p rotate_p scale_p shift_p speed_p frame_drop_p finger_drop_p hand_drop_p "
    "face_drop_p pose_drop_p affine_p window_speed_p time_shift_p temporal_mask_p spatial_mask_p"
)


@pytest.mark.parametrize("prob", PROBABILITIES.split())
def test_each_augmentation_changes_the_sequence_only_when_enabled(prob):
    pts = hand_sequence(120, right_hand=True)  # windows of several frames for window_speed
    assert np.array_equal(_augmenter()(pts, (0,)), pts, equal_nan=True)
    out = _augmenter(**{prob: 1.0})(pts, (0,))
    changed = out.shape != pts.shape or not np.array_equal(out, pts, equal_nan=True)
    assert changed, prob


def test_augmenter_never_changes_its_input():
    aug = _augmenter(**{k: 1.0 for k in vars(A.AugmentConfig()) if k.endswith("_p")})
    pts = hand_sequence(30, right_hand=True)
    before = pts.copy()
    for seed in range(5):
        aug(pts, (seed,))
    np.testing.assert_array_equal(pts, before)


def test_augmenter_is_deterministic_under_a_seed():
    aug = _augmenter(**{k: 1.0 for k in vars(A.AugmentConfig()) if k.endswith("_p")})
    pts = hand_sequence(30)
    a = aug(pts, (7,))
    b = aug(pts, (7,))
    c = aug(pts, (8,))
    assert np.array_equal(a, b, equal_nan=True)
    assert a.shape != c.shape or not np.array_equal(a, c, equal_nan=True)


def test_config_rejects_bad_probability():
    with pytest.raises(ValueError, match="flip_p"):
        A.AugmentConfig(flip_p=1.5)


def test_finger_affine_turns_and_scales_each_finger_about_its_base_joint():
    s = LandmarkSet()
    hand = s.part_slices()["left_hand"]
    rng = np.random.default_rng(0)
    pts = rng.uniform(0.3, 0.7, (4, 2, s.num_points)).astype(np.float32)
    degrees = np.array([90.0, 0.0, 0.0, 0.0, -30.0])
    scales = np.array([1.0, 2.0, 1.0, 1.0, 0.5])
    out = geometry.finger_affine(pts, hand, degrees, scales)
    untouched = [hand[0]] + [hand[f[0]] for f in geometry.HAND_FINGERS] + hand[9:17]  # middle, ring
    np.testing.assert_array_equal(out[:, :, untouched], pts[:, :, untouched])
    others = [p for p in range(s.num_points) if p not in hand]
    np.testing.assert_array_equal(out[:, :, others], pts[:, :, others])
    for f, (deg, sc) in enumerate(zip(degrees, scales, strict=True)):
        base, tip = hand[geometry.HAND_FINGERS[f][0]], hand[geometry.HAND_FINGERS[f][-1]]
        before = pts[:, :, tip] - pts[:, :, base]  # (T, 2)
        after = out[:, :, tip] - out[:, :, base]
        np.testing.assert_allclose(
            np.linalg.norm(after, axis=1), sc * np.linalg.norm(before, axis=1), rtol=1e-5
        )
        turn = np.degrees(
            np.arctan2(after[:, 1], after[:, 0]) - np.arctan2(before[:, 1], before[:, 0])
        )
        np.testing.assert_allclose((turn + 180) % 360 - 180, deg, atol=1e-3)
    assert np.array_equal(_augmenter()(pts, rng), pts)
    changed = _augmenter(finger_affine_p=1.0)(pts, (1,))
    assert not np.array_equal(changed, pts)


class _Draw:
    """A generator whose every ``random()`` is ``value`` (a row's mixing draw)."""

    def __init__(self, value: float):
        self.value = value

    def random(self) -> float:
        return self.value


def _item(sid: int, phrase: str, t: int) -> dict:
    frames = np.arange(t * 4, dtype=np.float32).reshape(t, 4) + 1000 * sid
    return {"frames": frames, "phrase": phrase, "sequence_id": sid}


def test_mix_sequences_appends_the_next_sequence_of_the_batch_where_it_fits():
    skipped = {"frames": None, "phrase": "", "sequence_id": 3}
    items = [_item(1, "ab", 5), _item(2, "cd", 6), skipped, _item(4, "x" * 30, 7)]
    out = mixing.mix_sequences(items, 1.0, lambda item: _Draw(0.0), 24, 32, 0.0)
    assert out is not items  # a new list; the items themselves are not changed
    assert [it["phrase"] for it in items] == ["ab", "cd", "", "x" * 30]
    assert [len(it["frames"]) for it in items if it["frames"] is not None] == [5, 6, 7]
    np.testing.assert_array_equal(
        out[0]["frames"], np.concatenate([items[0]["frames"], items[1]["frames"]])
    )
    assert (out[0]["phrase"], out[0]["sequence_id"]) == ("abcd", 1)  # the row keeps its id
    assert out[1] is items[1]  # the next row is a skipped one: nothing to append
    assert out[2] is skipped
    assert out[3] is items[3]  # 30 + 2 characters do not fit 31 (the last wraps to row 0)
    # each row mixes when its own draw falls under p
    draws = {1: 0.3, 2: 0.7}
    out = mixing.mix_sequences(
        items[:2], 0.5, lambda item: _Draw(draws[item["sequence_id"]]), 24, 32, 0
    )
    assert [it["phrase"] for it in out] == ["abcd", "cd"]
    assert mixing.mix_sequences(items, 0.0, lambda item: _Draw(0.0), 24, 32, 0.0) is items
    single = items[:1]
    assert mixing.mix_sequences(single, 1.0, lambda item: _Draw(0.0), 24, 32, 0.0) is single


def test_mix_fits_needs_room_for_both_phrases_and_enough_frames_per_character():
    a, b = _item(1, "ab", 5), _item(2, "gh", 30)
    assert mixing.mix_fits(a, b, 64, 32, 2.0)  # 35 frames kept whole: 2.5 a character
    assert not mixing.mix_fits(a, b, 64, 4, 0.0)  # 4 characters fill the 4 decoder steps (eos)
    assert mixing.mix_fits(a, b, 64, 5, 0.0)
    # resampled to 24 of 35 frames: "ab" keeps 5 * 24 / 35 = 3.4 frames, 1.7 a character
    assert mixing.mix_fits(a, b, 24, 32, 1.7) and not mixing.mix_fits(a, b, 24, 32, 1.75)
    assert mixing.mix_fits(a, b, 24, 32, 0.0)


@pytest.mark.parametrize("part", ["face", "pose"])
def test_face_and_pose_dropout_hide_that_part_in_every_frame_and_nothing_else(part):
    parts = LandmarkSet().part_slices()
    pts = hand_sequence(12, right_hand=True)
    out = _augmenter(**{f"{part}_drop_p": 1.0})(pts, (0,))
    assert np.isnan(out[:, :, parts[part]]).all()
    others = [p for p in range(pts.shape[2]) if p not in parts[part]]
    np.testing.assert_array_equal(out[:, :, others], pts[:, :, others])
    # a landmark set without that part: nothing to hide, nothing else changes
    no_part = LandmarkSet(**{part: ()})
    aug = A.Augmenter(
        A.AugmentConfig(**{k: 0.0 for k in PROBABILITIES.split()} | {f"{part}_drop_p": 1.0}),
        no_part.mirror_permutation(),
        no_part.part_slices(),
    )
    small = pts[:, :, : no_part.num_points]
    np.testing.assert_array_equal(aug(small, (0,)), small)


class _Cut(_Draw):
    """Mixing draw ``value``, then the cut fraction ``cut``."""

    def __init__(self, value: float, cut: float):
        super().__init__(value)
        self.draws = [value, cut]

    def random(self) -> float:
        return self.draws.pop(0)


def test_cut_mix_joins_the_head_of_a_row_to_the_tail_of_the_next_at_one_fraction():
    items = [_item(1, "abcd", 10), _item(2, "wxyz", 20), _item(3, "q", 6)]
    out = mixing.cut_mix(items, 0.5, lambda item: _Cut(0.2, 0.25))
    assert out is not items and [it["phrase"] for it in items] == ["abcd", "wxyz", "q"]
    # row 1: 25% of 10 frames (round 2.5 -> 2) and of 4 characters, then row 2 from 25%
    np.testing.assert_array_equal(
        out[0]["frames"], np.concatenate([items[0]["frames"][:2], items[1]["frames"][5:]])
    )
    assert (out[0]["phrase"], out[0]["sequence_id"]) == ("axyz", 1)
    assert out[1] is items[1] and out[2] is items[2]  # next to (or itself) a 1-character row
    # the cut stays inside both sequences: at least one frame and character from each
    out = mixing.cut_mix(items[:2], 1.0, lambda item: _Cut(0.0, 0.999))
    assert out[0]["phrase"] == "abcz" and len(out[0]["frames"]) == 9 + 1
    assert out[1]["phrase"] == "wxyd"
    # no draw under p: unchanged
    assert mixing.cut_mix(items[:2], 0.5, lambda item: _Cut(0.6, 0.5))[0] is items[0]
    assert mixing.cut_mix(items, 0.0, lambda item: _Draw(0.0)) is items


def test_cut_mix_is_never_longer_than_the_longer_phrase():
    for la in range(2, 33):
        for lb in range(2, 33):
            for u in np.linspace(0.0, 0.999, 41):
                a, b = _item(1, "a" * la, 40), _item(2, "b" * lb, 40)
                mixed = mixing.cut_mix([a, b], 1.0, lambda item, u=u: _Cut(0.0, u))[0]["phrase"]
                assert 2 <= len(mixed) <= max(la, lb), (la, lb, u)


def test_each_augmentation_draws_from_its_own_stream():
    # switching one off (or adding one) changes nothing the others draw: with rotation on or
    # off, the flip, the stretch and the dropped frames of every sequence are the same
    pts = hand_sequence(30, right_hand=True)
    kept = dict(flip_p=0.5, scale_p=0.5, frame_drop_p=0.5)
    for seed in range(8):
        a = _augmenter(**kept, rotate_p=0.0)(pts, (seed, 0, 1))
        b = _augmenter(**kept, rotate_p=1.0, rotate_max_deg=0.0)(pts, (seed, 0, 1))
        np.testing.assert_allclose(a, b, atol=1e-6)


class Jitter(A.SequenceAugmentation):
    """An augmentation written inside a test: Gaussian noise on every coordinate."""

    @dataclass
    class Settings:
        jitter_p: float = 0.0
        """How often."""
        jitter_std: float = 0.01
        """Noise, image units."""

    name, probability, order = "jitter", "jitter_p", 15

    def apply(self, pts: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return pts + rng.normal(0.0, self.config.jitter_std, pts.shape).astype(np.float32)


def test_a_new_augmentation_is_one_class(monkeypatch):
    monkeypatch.setitem(A.AUGMENTATIONS, Jitter.name, Jitter)
    config = A.compose_config(list(A.AUGMENTATIONS.values()))  # as the package does
    s = LandmarkSet()
    zero = {k: 0.0 for k in vars(config()) if k.endswith("_p")}
    with pytest.raises(ValueError, match="augment.jitter_p = 2.0"):
        config(jitter_p=2.0)
    pts = hand_sequence(30, right_hand=True)

    def augmenter(**probs) -> A.Augmenter:
        return A.Augmenter(config(**zero | probs), s.mirror_permutation(), s.part_slices())

    out = augmenter(jitter_p=1.0, jitter_std=0.5)(pts, (0, 0, 1))
    assert out.shape == pts.shape and not np.allclose(out, pts, equal_nan=True)
    # the others draw what they drew without it
    base = augmenter(flip_p=0.5, frame_drop_p=0.5)(pts, (3, 0, 1))
    with_jitter = augmenter(flip_p=0.5, frame_drop_p=0.5, jitter_p=1.0, jitter_std=0.0)
    np.testing.assert_array_equal(with_jitter(pts, (3, 0, 1)), base)


def _one(name: str, **settings) -> A.SequenceAugmentation:
    s = LandmarkSet()
    config = A.AugmentConfig(**settings)
    return A.AUGMENTATIONS[name](config, A.Parts.of(s.mirror_permutation(), s.part_slices()))


def test_time_shift_puts_unseen_frames_first_or_cuts_the_first_frames():
    pts, shift = hand_sequence(30, right_hand=True), _one("time_shift", time_shift_max=10)
    lengths = set()
    for seed in range(40):
        out = shift.apply(pts, np.random.default_rng(seed))
        moved = len(out) - len(pts)
        lengths.add(moved)
        if moved > 0:  # unseen frames first, then the sequence unchanged
            assert np.isnan(out[:moved]).all() and np.array_equal(out[moved:], pts)
        else:
            assert np.array_equal(out, pts[-moved:])
    assert min(lengths) < 0 < max(lengths) and max(map(abs, lengths)) <= 10
    short = hand_sequence(3)
    for seed in range(20):  # never fewer than 2 frames
        assert len(shift.apply(short, np.random.default_rng(seed))) >= 2


def test_temporal_masks_hide_runs_of_whole_frames_covering_the_drawn_fraction():
    pts = hand_sequence(100, right_hand=True)
    mask = _one("temporal_mask", temporal_mask_size=(0.2, 0.4), temporal_mask_counts=(1, 2, 4))
    for seed in range(20):
        out = mask.apply(pts, np.random.default_rng(seed))
        hidden = np.isnan(out).all(axis=(1, 2))
        assert out.shape == pts.shape and np.array_equal(out[~hidden], pts[~hidden])
        runs = np.flatnonzero(np.diff(np.r_[0, hidden.astype(int)]) == 1).size
        assert 1 <= runs <= 4
        assert 4 <= hidden.sum() <= 40  # overlapping masks cover less than their sum


def test_the_affine_map_scales_areas_by_the_square_of_its_scale_and_keeps_the_centre():
    pts = hand_sequence(8, right_hand=True)
    pts[:, 1] += 0.3 * np.linspace(0, 1, pts.shape[2]) ** 2  # points off one line
    affine = _one("affine", affine_scale=(1.25, 1.25), affine_shift=0.0)
    a, b, c = 0, 30, 60  # three points of frame 0

    def area(q):
        (x1, y1), (x2, y2), (x3, y3) = (xy(q, 0, i) for i in (a, b, c))
        return abs((x2 - x1) * (y3 - y1) - (x3 - x1) * (y2 - y1))

    for seed in range(5):
        out = affine.apply(pts, np.random.default_rng(seed))
        assert area(out) == pytest.approx(1.25**2 * area(pts), rel=1e-4)  # rotation, shear: 1
        np.testing.assert_allclose(geometry.centre(out), geometry.centre(pts), atol=1e-5)


def test_window_speed_resamples_each_window_by_its_own_factor():
    pts = hand_sequence(200, right_hand=True)
    same = _one("window_speed", window_speed_range=(1.0, 1.0))
    assert np.array_equal(same.apply(pts, np.random.default_rng(0)), pts)
    varied = _one("window_speed", window_speed_range=(0.5, 2.0), window_speed_windows=(4, 4))
    out = varied.apply(pts, np.random.default_rng(1))
    assert len(out) != len(pts) and 100 <= len(out) <= 400
    tiny = hand_sequence(3)  # more windows than frames: one a frame
    assert len(varied.apply(tiny, np.random.default_rng(2))) >= 3


def test_finger_drop_over_windows_of_both_hands_as_the_1st_place_coded_it():
    pts = hand_sequence(100, right_hand=True)
    drop = _one(
        "finger_drop",
        finger_drop_max=12,
        finger_drop_both_hands=True,
        finger_drop_windows=2,
        finger_drop_window=(0.25, 0.5),
    )
    parts = LandmarkSet().part_slices()
    fingertips = {h[i] for h in (parts["left_hand"], parts["right_hand"]) for i in range(1, 21)}
    hands_hit = set()
    for seed in range(20):
        out = drop.apply(pts, np.random.default_rng(seed))
        hidden = np.isnan(out).any(1) & ~np.isnan(pts).any(1)  # (T, P) newly hidden
        assert set(np.flatnonzero(hidden.any(0))) <= fingertips  # finger points only
        frames = hidden.any(1)
        assert 25 <= frames.sum() <= 100  # two windows of 25-50 frames, maybe overlapping
        hands_hit |= {int(p >= 21) for p in np.flatnonzero(hidden.any(0))}
    assert hands_hit == {0, 1}  # both hands


def test_the_default_finger_drop_draws_as_before():
    # one hand, 1-2 fingers, one window of a random start and length
    pts = hand_sequence(40, right_hand=True)
    drop = _one("finger_drop")
    rng = np.random.default_rng(3)
    out = drop.apply(pts, np.random.default_rng(3))
    hand = LandmarkSet().part_slices()[["left_hand", "right_hand"][rng.integers(2)]]
    n = rng.integers(1, 3)
    fingers = rng.choice(5, size=n, replace=False)
    start = rng.integers(40)
    window = np.zeros(40, bool)
    window[start : start + rng.integers(1, 41)] = True
    points = [hand[i] for f in fingers for i in geometry.HAND_FINGERS[f]]
    np.testing.assert_array_equal(out, occlusion.hide(pts, points, window))


def test_the_spatial_mask_hides_every_point_inside_one_square_and_no_other():
    rng = np.random.default_rng(0)
    pts = rng.random((12, 2, LandmarkSet().num_points)).astype(np.float32)  # over the image
    pts[3, :, 5] = np.nan  # unseen stays unseen
    mask = _one("spatial_mask", spatial_mask_size=(0.2, 0.4))
    hid_some = 0
    for seed in range(30):
        out = mask.apply(pts, np.random.default_rng(seed))
        hidden = np.isnan(out).all(1) & ~np.isnan(pts).any(1)  # (T, P) hidden by the mask
        assert np.isnan(out[3, :, 5]).all() and out.shape == pts.shape
        assert np.array_equal(
            out.transpose(0, 2, 1)[~hidden & ~np.isnan(pts).any(1)],
            pts.transpose(0, 2, 1)[~hidden & ~np.isnan(pts).any(1)],
        )
        if not hidden.any():
            continue
        hid_some += 1
        xy = pts.transpose(0, 2, 1)  # (T, P, 2)
        low, high = xy[hidden].min(0), xy[hidden].max(0)
        assert (high - low <= 0.4).all()  # inside a square of side <= 0.4
        seen = ~hidden & ~np.isnan(pts).any(1)
        inside_box = ((xy > low) & (xy < high)).all(-1)
        assert not (inside_box & seen).any()  # a visible point never lies among the hidden
    assert hid_some > 15
    one_axis = pts[:, :1]  # x only: nothing to read as y
    assert np.array_equal(
        _one("spatial_mask", spatial_mask_p=1.0)(one_axis, rng), one_axis, equal_nan=True
    )
