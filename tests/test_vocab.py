import pytest

from aslfs_pl import vocab


def test_character_map_is_kaggles():
    assert vocab.NUM_CHARACTERS == 59
    assert vocab.CHAR_TO_INDEX[" "] == 0
    assert vocab.CHAR_TO_INDEX["0"] == 15
    assert vocab.CHAR_TO_INDEX["a"] == 32
    assert vocab.CHAR_TO_INDEX["~"] == 58
    assert (vocab.PAD, vocab.SOS, vocab.EOS, vocab.VOCAB_SIZE) == (59, 60, 61, 62)


def test_encode_decode_round_trip():
    phrase = "https://a-b.com/x?y=1, #2"
    ids = vocab.encode(phrase)
    assert vocab.decode([*ids, vocab.EOS, 5, 6]) == phrase
    assert vocab.decode([vocab.SOS, *ids, vocab.PAD]) == phrase


def test_kaggle_decode_drops_indices_at_or_above_59():
    ids = [*vocab.encode("ab"), vocab.PAD, vocab.EOS, vocab.SOS, 99, *vocab.encode("c")]
    assert vocab.decode_kaggle(ids) == "abc"


def test_unknown_character_is_named():
    with pytest.raises(vocab.UnknownCharacterError, match="'A'"):
        vocab.encode("hello A")
