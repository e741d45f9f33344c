"""The decoder: causal in the targets, and greedy decoding with its KV cache, with added or
rotary positions."""

import pytest
import torch

from aslfs_pl import vocab
from tests.helpers import landmark_batch, tiny_model

positions = pytest.mark.parametrize("rotary", [False, True], ids=["added", "rotary"])


@positions
def test_decoder_position_t_cannot_see_later_targets(rotary):
    m = tiny_model(decoder_rotary=rotary)
    x = landmark_batch()
    tokens = torch.randint(0, vocab.VOCAB_SIZE, (2, 8))
    changed = tokens.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % vocab.VOCAB_SIZE
    a, b = m(x, tokens), m(x, changed)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


@positions
def test_greedy_decode_matches_teacher_forcing_on_its_own_output(rotary):
    m = tiny_model(decoder_rotary=rotary)
    x = landmark_batch()
    out, logits = m.generate(x)
    inputs = torch.cat([torch.full((2, 1), vocab.SOS), out[:, :-1]], 1)
    done = torch.cumsum((out == vocab.EOS).int(), 1) - (out == vocab.EOS).int() > 0
    tf = m(x, inputs)
    # identical until a row finishes (afterwards greedy feeds pad, teacher forcing the same)
    torch.testing.assert_close(tf[~done], logits[~done], atol=1e-5, rtol=1e-4)


def test_rows_after_end_token_are_pad():
    m = tiny_model()
    with torch.no_grad():
        m.decoder.head.bias.zero_()
        m.decoder.head.bias[vocab.EOS] = 100.0  # force an immediate end
    out, _ = m.generate(landmark_batch())
    assert (out[:, 0] == vocab.EOS).all() and (out[:, 1:] == vocab.PAD).all()


def test_rotary_decoder_reads_positions_by_rotation_only():
    # no position is added to the token embeddings, yet the logits depend on the order
    m = tiny_model(decoder_rotary=True)
    assert "rotary_cos" in dict(m.decoder.named_buffers())
    with torch.no_grad():
        m.decoder.positions.fill_(1e3)  # unread: a rotary decoder adds no positions
    x = landmark_batch()
    tokens = torch.tensor([[vocab.SOS, 5, 6, 7], [vocab.SOS, 5, 6, 7]])
    same = tiny_model(decoder_rotary=True)
    torch.testing.assert_close(m(x, tokens), same(x, tokens))
    swapped = tokens[:, [0, 2, 1, 3]]
    assert not torch.allclose(m(x, tokens)[:, 3], m(x, swapped)[:, 3])
