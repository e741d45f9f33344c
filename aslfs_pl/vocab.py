"""The 59 Kaggle characters plus the model's own pad / start / end tokens.

Indices 0..58 are exactly ``character_to_prediction_index.json``; the evaluator maps every index
>= 59 to nothing, so pad (59), sos (60) and eos (61) vanish from a decoded submission.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

CHARACTERS: str = " !#$%&'()*+,-./0123456789:;=?@[_abcdefghijklmnopqrstuvwxyz~"
CHAR_TO_INDEX: dict[str, int] = {c: i for i, c in enumerate(CHARACTERS)}
NUM_CHARACTERS: int = len(CHARACTERS)  # 59
PAD: int = NUM_CHARACTERS  # 59
SOS: int = NUM_CHARACTERS + 1  # 60
EOS: int = NUM_CHARACTERS + 2  # 61
VOCAB_SIZE: int = NUM_CHARACTERS + 3  # 62

assert NUM_CHARACTERS == 59, NUM_CHARACTERS


class UnknownCharacterError(ValueError):
    """A phrase holds a character outside the 59-character Kaggle map."""


def encode(phrase: str) -> list[int]:
    """Character indices of ``phrase`` (no special tokens).

    Raises:
        UnknownCharacterError: naming the first character outside the map.
    """
    try:
        return [CHAR_TO_INDEX[c] for c in phrase]
    except KeyError as err:
        raise UnknownCharacterError(
            f"character {err.args[0]!r} of phrase {phrase!r} is not in the Kaggle character map"
        ) from None


def decode(indices: Iterable[int]) -> str:
    """Text of a prediction: stops at the first eos, drops pad/sos and out-of-range indices."""
    out = []
    for i in indices:
        i = int(i)
        if i == EOS:
            break
        if 0 <= i < NUM_CHARACTERS:
            out.append(CHARACTERS[i])
    return "".join(out)


def decode_kaggle(indices: Sequence[int], char_map: dict[str, int] | None = None) -> str:
    """Decode exactly as Kaggle's evaluator does: every row maps through the map, others vanish."""
    rev = {v: k for k, v in (char_map or CHAR_TO_INDEX).items()}
    return "".join(rev.get(int(i), "") for i in indices)
