"""The decoder: causal in the targets, and greedy decoding with its KV cache."""

import torch

from aslfs_pl import vocab
from tests.helpers import landmark_batch, tiny_model


def test_decoder_position_t_cannot_see_later_targets():
    m = tiny_model()
    x = landmark_batch()
    tokens = torch.randint(0, vocab.VOCAB_SIZE, (2, 8))
    changed = tokens.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % vocab.VOCAB_SIZE
    a, b = m(x, tokens), m(x, changed)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_greedy_decode_matches_teacher_forcing_on_its_own_output():
    m = tiny_model()
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
