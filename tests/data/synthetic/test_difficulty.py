"""The hard synthetic benchmark: each difficulty factor does what it claims, and only that."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from aslfs_pl.data.synthetic import (
    character_templates,
    make_participants,
    normalize_hand,
    random_phrase,
    signers,
    synthesize_sequence,
    write_synthetic_dataset,
)
from aslfs_pl.data.synthetic import difficulty as hard
from aslfs_pl.data.synthetic.difficulty import Difficulty
from aslfs_pl.vocab import CHAR_TO_INDEX

ROOT = Path(__file__).resolve().parents[3]
LEFT, RIGHT = slice(468, 489), slice(522, 543)


def _only(factor: str) -> Difficulty:
    return Difficulty(**{factor: True})


def _render(factor: str | None, n: int = 16, styled: bool = False):
    """n sequences of right-handed signers with one factor on (None: plain)."""
    style_rng = np.random.default_rng(5) if styled else None
    people = make_participants(np.random.default_rng(4), 4, 0.0, style_rng)
    d = _only(factor) if factor else Difficulty()
    phrases = [random_phrase(np.random.default_rng(100 + i)) for i in range(n)]
    return [
        synthesize_sequence(p, people[i % 4], np.random.default_rng(i), difficulty=d, key=(i,))
        for i, p in enumerate(phrases)
    ]


def test_presets_and_unknown_factors():
    assert Difficulty.preset("plain") == Difficulty()
    assert not Difficulty.preset("plain").any
    on = Difficulty.preset("hard", without=["tracking"])
    assert on.describe() != "hard" and not on.tracking and on.signers
    assert Difficulty.preset("hard").describe() == "hard"
    with pytest.raises(ValueError, match="unknown difficulty factor.*trackin"):
        Difficulty.preset("hard", without=["trackin"])
    with pytest.raises(ValueError, match="'plain' or 'hard'"):
        Difficulty.preset("medium")


def test_lookalike_families_are_close_and_other_letters_unchanged():
    plain = normalize_hand(character_templates())
    close = normalize_hand(hard.letter_shapes(Difficulty(lookalikes=True), character_templates()))
    a, s = CHAR_TO_INDEX["a"], CHAR_TO_INDEX["s"]
    d_plain = np.sqrt(((plain[a] - plain[s]) ** 2).sum(-1).mean())
    d_close = np.sqrt(((close[a] - close[s]) ** 2).sum(-1).mean())
    assert d_close < 0.3 * d_plain
    np.testing.assert_array_equal(close[CHAR_TO_INDEX["b"]], plain[CHAR_TO_INDEX["b"]])


def test_signers_have_their_own_rate_and_letter_forms():
    people = make_participants(np.random.default_rng(4), 6, 0.0, np.random.default_rng(5))
    rates = [p.style.frames_per_letter for p in people]
    assert min(rates) >= signers.FRAMES_PER_LETTER[0] and max(rates) <= signers.FRAMES_PER_LETTER[1]
    assert np.std([p.hand_size for p in people]) > 0.05
    assert not np.allclose(people[0].style.letter_forms, people[1].style.letter_forms)
    d = Difficulty(signers=True)
    fast, slow = (
        min(people, key=lambda p: p.style.frames_per_letter),
        max(people, key=lambda p: p.style.frames_per_letter),
    )
    phrase = "1234 olive street"

    def held(p):
        seqs = [
            synthesize_sequence(phrase, p, np.random.default_rng(i), difficulty=d) for i in range(4)
        ]
        return np.mean([(s.char_at_frame >= 0).sum() / len(phrase) for s in seqs])

    assert held(slow) > 1.8 * held(fast)


def test_coarticulation_makes_transitions_a_large_share():
    def transition_share(seqs):
        return np.mean([(s.char_at_frame < 0).mean() for s in seqs])

    assert transition_share(_render("coarticulation")) > transition_share(_render(None)) + 0.1


def test_skipped_letters_have_no_frames_and_are_never_first_last_or_doubled():
    idx = np.array([CHAR_TO_INDEX[c] for c in "abccdefghijklmnop"])
    rng = np.random.default_rng(0)
    skips = np.stack([hard.skipped_letters(rng, idx, 0.5) for _ in range(200)])
    assert skips.any() and not skips[:, [0, -1]].any()
    assert not skips[:, 2:4].any()  # the double "cc"
    assert not (skips[:, 1:] & skips[:, :-1]).any()
    seqs = _render("skips", n=24)
    shown = [np.isin(np.arange(len(s.phrase)), s.char_at_frame) for s in seqs]
    assert any(not m.all() for m in shown)


def test_hold_only_doubles_keep_the_shape_between_the_two_holds():
    people = make_participants(np.random.default_rng(4), 1, 0.0)
    rng_draws = [
        synthesize_sequence(
            "oo",
            people[0],
            np.random.default_rng(i),
            difficulty=Difficulty(doubles=True),
            key=(i,),
            noise_scale=0.0,
        )
        for i in range(12)
    ]
    still = 0
    for s in rng_draws:
        hand = s.landmarks[:, RIGHT, :2].astype(np.float64)
        first, second = np.flatnonzero(s.char_at_frame == 0), np.flatnonzero(s.char_at_frame == 1)
        gap = hand[first[-1] + 1 : second[0]]
        shape = normalize_hand(gap) - normalize_hand(hand[first[-1]])[None]
        ok = np.isfinite(shape).all(axis=(1, 2))
        still += bool(ok.any()) and np.abs(shape[ok]).max() < 0.1
    assert 0 < still < 12  # some doubles by a hold only, others with a bounce


def test_tracking_losses_and_hand_swaps():
    def lost(seqs):
        return np.mean([np.isnan(s.landmarks[:, RIGHT, 0]).all(1).mean() for s in seqs])

    assert lost(_render("tracking")) > lost(_render(None)) + 0.1
    swapped = 0
    for s in _render("hand_swaps", n=24):
        lm = s.landmarks
        left_seen = np.isfinite(lm[:, LEFT, 0]).all(1)
        # A swapped frame shows the signing hand's shape near the signing arm's wrist.
        wrist = lm[:, 489 + 16, :2]
        near = np.linalg.norm(lm[:, LEFT.start, :2] - wrist, axis=-1) < 0.03
        swapped += int((left_seen & near).sum())
        assert not (left_seen & near & np.isfinite(lm[:, RIGHT, 0]).all(1)).any()
    assert swapped > 0


def test_noise_and_camera_widen_their_ranges():
    def z_spread(seqs):  # frame-to-frame change of the fingertips' depth
        return np.nanmean([np.nanstd(np.diff(s.landmarks[:, RIGHT, 2], axis=0)) for s in seqs])

    assert z_spread(_render("noise")) > 3 * z_spread(_render(None))

    def tilt(seqs):  # in-plane angle of the shoulder line
        angles = []
        for s in seqs:
            sh = s.landmarks[0, 489 + 11, :2] - s.landmarks[0, 489 + 12, :2]
            angles.append(np.degrees(np.arctan2(sh[1], sh[0])))
        return np.abs(angles).max()

    assert tilt(_render("camera", n=24)) > 16.0 >= tilt(_render(None, n=24)) - 1.0


def test_mislabel_kinds_and_share():
    rng = np.random.default_rng(0)
    pairs = [hard.mislabel(rng, "olive street", "other phrase", "abc") for _ in range(4000)]
    wrong = [(s, lab) for s, lab in pairs if s != lab]
    assert 0.025 < len(wrong) / len(pairs) < 0.055
    kinds = {
        "typo": sum(s == "olive street" for s, _ in wrong),
        "other": sum(s == "other phrase" for s, _ in wrong),
        "stopped": sum("olive street".startswith(s) and s != "olive street" for s, _ in wrong),
    }
    assert all(v > 10 for v in kinds.values()), kinds


def test_one_factor_off_leaves_the_other_factors_draws_unchanged(tmp_path):
    """hard vs hard-without-tracking: same phrases and labels, and identical landmarks on every
    frame where both show the signing hand."""
    a = write_synthetic_dataset(
        tmp_path / "a", 10, seed=1, sequences_per_file=10, difficulty="hard", edge_cases=False
    )
    b = write_synthetic_dataset(
        tmp_path / "b",
        10,
        seed=1,
        sequences_per_file=10,
        edge_cases=False,
        difficulty=Difficulty.preset("hard", without=["tracking"]),
    )
    assert a["train"]["num_frames"] == b["train"]["num_frames"]
    rows_a, rows_b = (
        list(csv.DictReader((tmp_path / k / "train.csv").read_text().splitlines())) for k in "ab"
    )
    assert [r["phrase"] for r in rows_a] == [r["phrase"] for r in rows_b]
    ta = pq.read_table(tmp_path / "a" / rows_a[0]["path"]).to_pandas()
    tb = pq.read_table(tmp_path / "b" / rows_b[0]["path"]).to_pandas()
    both = ta.notna().all(axis=1) & tb.notna().all(axis=1)
    assert 0 < both.sum() < len(ta) and (ta.notna().sum().sum() < tb.notna().sum().sum())
    np.testing.assert_array_equal(ta[both].to_numpy(), tb[both].to_numpy())


def test_script_writes_hard_data_and_names_a_bad_factor(tmp_path):
    out = tmp_path / "hard"
    cmd = [sys.executable, str(ROOT / "scripts" / "make_synthetic.py"), "--out", str(out),
           "--num-sequences", "4", "--difficulty", "hard", "--participants", "3"]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert "difficulty hard" in res.stdout and "3 participants" in res.stdout
    bad = subprocess.run(cmd + ["--without", "noize"], capture_output=True, text=True)
    assert bad.returncode == 2 and "noize" in bad.stderr and "factors:" in bad.stderr
