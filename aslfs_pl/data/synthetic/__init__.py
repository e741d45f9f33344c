"""Synthetic fingerspelling data written in Kaggle's exact file layout.

The real competition data cannot be downloaded here, so tests, smoke runs and small training
experiments use this generator. It writes ``character_to_prediction_index.json``, ``train.csv``
(and optionally ``supplemental_metadata.csv``) plus ``train_landmarks/<file_id>.parquet`` files with
the 1,629 float32 landmark columns in Kaggle's order, so every reader written for the real data
reads it unchanged.

The data carries learnable signal while keeping the awkward parts of the real recordings:

* every one of the 59 characters is a distinct 21-point hand shape built from a small hand
  kinematic model (finger curls, thumb pose, palm orientation); the shape alphabet comes from a
  fixed random generator, so all datasets share it whatever their ``seed`` (:mod:`.hands`);
* a phrase is signed by holding each character's shape for a random number of frames (the speed
  varies per participant, per sequence and per character) with eased transitions between shapes,
  a small bounce between repeated letters (:mod:`.timing`), a sideways drift of the hand and a
  slow wobble (:mod:`.render`);
* per-sequence rotation / scale / shift of the whole body (:mod:`.camera`), per-frame jitter;
* ~25 % left-handed participants (:mod:`.participants`; mirrored shape in the ``left_hand``
  columns), a non-dominant hand that is NaN in most frames, 5-30 % of frames with the dominant
  hand missing (often in runs);
* a face mesh (with a plausible, mouthing lip contour, :mod:`.face`) and a pose skeleton whose
  wrist follows the signing hand (:mod:`.pose`), present in every frame;
* phone numbers, street addresses, URLs and names as phrases (1..31 characters, mean ~18;
  :mod:`.phrases`);
* deterministic edge cases: a 1-frame sequence, a ~800-frame sequence and a few > 384 frames
  (:mod:`.writer`).

That plain data is easy to read. ``difficulty`` (:mod:`aslfs_pl.data.synthetic.difficulty`, and
:mod:`aslfs_pl.data.synthetic.signers` for the signer styles) adds, factor by factor, what makes
the real recordings hard: signer styles, look-alike letters, co-articulation,
skipped and double letters, tracking losses, handedness swaps, noise, camera range, wrong labels.

Everything is deterministic under ``seed``: the same arguments write the same files.
"""

from aslfs_pl.data.synthetic.hands import SHAPE_SEED, character_templates, normalize_hand
from aslfs_pl.data.synthetic.participants import Participant, make_participants
from aslfs_pl.data.synthetic.phrases import MAX_PHRASE_LEN, random_phrase
from aslfs_pl.data.synthetic.render import NUM_LANDMARKS, SyntheticSequence, synthesize_sequence
from aslfs_pl.data.synthetic.writer import write_synthetic_dataset

__all__ = [
    "MAX_PHRASE_LEN",
    "NUM_LANDMARKS",
    "SHAPE_SEED",
    "Participant",
    "SyntheticSequence",
    "character_templates",
    "make_participants",
    "normalize_hand",
    "random_phrase",
    "synthesize_sequence",
    "write_synthetic_dataset",
]
