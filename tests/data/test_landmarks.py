"""The landmark subset: Kaggle's column names and order, and the mirror permutation."""

from aslfs_pl.data.landmarks import LandmarkSet, all_columns


def test_selected_columns_follow_kaggle_order():
    s = LandmarkSet()
    cols = s.selected_columns
    assert len(cols) == s.num_columns == 176
    assert cols[0] == "x_left_hand_0" and cols[88] == "y_left_hand_0"
    assert set(cols) <= set(all_columns())
    assert len(all_columns()) == 1629
    assert all_columns()[468] == "x_left_hand_0" and all_columns()[543] == "y_face_0"


def test_mirror_permutation_swaps_hands_and_lips():
    s = LandmarkSet()
    perm = s.mirror_permutation()
    assert perm[0] == 21 and perm[21] == 0  # left wrist <-> right wrist
    pts = list(s.points)
    assert pts[perm[pts.index(("face", 61))]] == ("face", 291)
    assert pts[perm[pts.index(("pose", 11))]] == ("pose", 12)
    assert all(perm[perm[i]] == i for i in range(len(perm)))
