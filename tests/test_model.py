"""The network: shapes, masking, causality, greedy decoding, backward."""

import pytest
import torch
import torch.nn.functional as F

from aslfs_pl import vocab
from aslfs_pl.model.config import ModelConfig
from aslfs_pl.model.ctc import blank_after_end, ctc_greedy, ctc_log_likelihood, ctc_loss_unrolled
from aslfs_pl.model.decoding import DECODINGS
from aslfs_pl.model.decoding.joint import compact
from aslfs_pl.model.layers import DropPath
from aslfs_pl.model.seq2seq import Seq2Seq

NAN = float("nan")


def tiny(**kw) -> Seq2Seq:
    torch.manual_seed(0)
    cfg = dict(
        num_columns=12, num_axes=2, max_frames=40, max_target_len=8, dim=32, heads=2,
        mlp_ratio=2, conv_blocks=2, conv_kernel=5, encoder_blocks=2, local_layers=2, window=4,
        decoder_blocks=2, dropout=0.0,
    )  # fmt: skip
    return Seq2Seq(ModelConfig(**(cfg | kw))).eval()


def frames(b=2, t=20, c=12, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(b, t, c, generator=g)
    x[:, 3, :4] = NAN  # some unseen landmarks
    x[0, 7] = NAN  # a frame with nothing seen
    return x


def test_shapes():
    m = tiny()
    tokens = torch.randint(0, vocab.VOCAB_SIZE, (2, 8))
    assert m(frames(), tokens).shape == (2, 8, vocab.VOCAB_SIZE)
    out, logits = m.generate(frames())
    assert out.shape == (2, 8) and logits.shape == (2, 8, vocab.VOCAB_SIZE)


def test_seed_config_parameter_count():
    m = Seq2Seq(ModelConfig())
    assert 13_000_000 < m.num_parameters() < 14_500_000


def test_appended_padding_and_nan_frames_do_not_change_logits():
    m = tiny()
    x = frames(t=20)
    tokens = torch.randint(0, vocab.VOCAB_SIZE, (2, 8))
    base = m(x, tokens)
    padded = torch.cat([x, torch.full((2, 15, 12), NAN)], dim=1)
    torch.testing.assert_close(m(padded, tokens), base, atol=1e-5, rtol=1e-4)
    nan_inside = x.clone()
    nan_inside = torch.cat([nan_inside[:, :10], torch.full((2, 5, 12), NAN), nan_inside[:, 10:]], 1)
    with_nan_tail = torch.cat([x, torch.full((2, 3, 12), NAN)], 1)
    torch.testing.assert_close(m(with_nan_tail, tokens), base, atol=1e-5, rtol=1e-4)
    assert not torch.isnan(m(nan_inside, tokens)).any()


def test_decoder_position_t_cannot_see_later_targets():
    m = tiny()
    x = frames()
    tokens = torch.randint(0, vocab.VOCAB_SIZE, (2, 8))
    changed = tokens.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % vocab.VOCAB_SIZE
    a, b = m(x, tokens), m(x, changed)
    torch.testing.assert_close(a[:, :5], b[:, :5])
    assert not torch.allclose(a[:, 5:], b[:, 5:])


def test_local_attention_is_causal_in_frames():
    m = tiny()
    x = frames()
    memory, _ = m.encode(x)
    later = x.clone()
    later[:, 15:] = torch.rand(2, 5, 12)
    memory2, _ = m.encode(later)
    # ECA's channel weights and the global layer see the whole sequence, so only the local
    # stack is strictly causal; check it directly on the embedding + local layers.
    assert not torch.allclose(memory[:, :15], memory2[:, :15])  # global layer does look ahead
    from aslfs_pl.data.features import landmark_features
    from aslfs_pl.model.encoder import local_causal_mask

    feats, valid = landmark_features(x, 2)
    mask = local_causal_mask(valid, 4)
    i = torch.arange(20)
    assert not (mask[0, 0] & (i.unsqueeze(0) > i.unsqueeze(1))).any()  # no key after the query
    assert not (mask[0, 0] & (i.unsqueeze(1) - i.unsqueeze(0) >= 4)).any()  # window
    assert not mask[0, 0, 8, 7]  # the empty frame 7 is never a key for another frame


def test_greedy_decode_matches_teacher_forcing_on_its_own_output():
    m = tiny()
    x = frames()
    out, logits = m.generate(x)
    inputs = torch.cat([torch.full((2, 1), vocab.SOS), out[:, :-1]], 1)
    done = torch.cumsum((out == vocab.EOS).int(), 1) - (out == vocab.EOS).int() > 0
    tf = m(x, inputs)
    # identical until a row finishes (afterwards greedy feeds pad, teacher forcing the same)
    torch.testing.assert_close(tf[~done], logits[~done], atol=1e-5, rtol=1e-4)


def test_rows_after_end_token_are_pad():
    m = tiny()
    with torch.no_grad():
        m.decoder.head.bias.zero_()
        m.decoder.head.bias[vocab.EOS] = 100.0  # force an immediate end
    out, _ = m.generate(frames())
    assert (out[:, 0] == vocab.EOS).all() and (out[:, 1:] == vocab.PAD).all()


def test_empty_sequence_gives_finite_output():
    m = tiny()
    x = torch.full((1, 10, 12), NAN)
    out, logits = m.generate(x)
    assert torch.isfinite(logits).all()


def test_backward_reaches_every_parameter():
    m = tiny().train()
    tokens = torch.randint(0, vocab.VOCAB_SIZE, (2, 8))
    m(frames(), tokens).square().mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(dim=30, heads=4)


@pytest.mark.parametrize(("t", "window"), [(20, 4), (19, 4), (7, 16), (33, 5)])
def test_chunked_local_attention_equals_full_masked_attention(t, window):
    from aslfs_pl.model.encoder import local_attention, local_causal_mask
    from aslfs_pl.model.layers import Attention

    torch.manual_seed(0)
    attn = Attention(32, 4).eval()
    x = torch.randn(2, t, 32)
    valid = torch.rand(2, t) > 0.3
    valid[1, -3:] = False
    reference = attn(x, x, local_causal_mask(valid, window))
    torch.testing.assert_close(local_attention(attn, x, valid, window), reference,
                               atol=1e-5, rtol=1e-4)  # fmt: skip


def _logits(best: list[int], v: int = vocab.VOCAB_SIZE) -> torch.Tensor:
    """(1, T, V) logits whose per-frame argmax is ``best``."""
    out = torch.zeros(1, len(best), v)
    out[0, torch.arange(len(best)), torch.tensor(best)] = 1.0
    return out


def test_ctc_greedy_merges_repeats_drops_blanks_and_stops_at_the_last_valid_frame():
    a, b, blank = vocab.CHAR_TO_INDEX["a"], vocab.CHAR_TO_INDEX["b"], vocab.PAD
    best = [blank, a, a, blank, a, b, b, vocab.EOS, b, a, a]
    valid = torch.tensor([[True] * 9 + [False] * 2])  # frames 9, 10: after the last valid one
    tokens = ctc_greedy(_logits(best), valid)
    assert vocab.decode(tokens[0].tolist()) == "aabb"  # a a | a | b b | (eos is no char) b
    emitted = (tokens[0] != vocab.PAD).nonzero().flatten().tolist()
    assert emitted == [1, 4, 5, 8]
    valid[0, 2] = False  # an invalid frame inside the sequence is still read
    assert vocab.decode(ctc_greedy(_logits(best), valid)[0].tolist()) == "aabb"
    none = torch.zeros_like(valid)
    assert vocab.decode(ctc_greedy(_logits(best), none)[0].tolist()) == ""


def test_decode_routes_and_their_errors():
    net = tiny()
    x = frames()
    assert net.decode(x, "attention").shape == (2, 8)
    with pytest.raises(ValueError, match="ctc_weight > 0"):
        net.decode(x, "ctc")
    ctc = tiny(ctc_head=True)
    assert ctc.decode(x, "ctc").shape == (2, 20)
    with pytest.raises(ValueError, match="decoding 'beam'"):
        ctc.decode(x, "beam")


def test_drop_path_is_identity_in_eval_and_drops_whole_sequences_in_training():
    layer = DropPath(0.5)
    x = torch.ones(2000, 3, 4)
    assert torch.equal(layer.eval()(x), x)
    y = layer.train()(x)
    per_row = y.flatten(1)
    kept = (per_row == 2.0).all(1)
    assert ((per_row == 0).all(1) | kept).all()  # a row is dropped or kept whole
    assert 0.45 < kept.float().mean() < 0.55  # and the expectation is unchanged
    assert abs(y.mean().item() - 1.0) < 0.06
    net = tiny(drop_path=0.2, encoder_blocks=2)
    rates = [b.drop_path.p for b in net.encoder.blocks]
    assert rates == pytest.approx([0.1, 0.2])  # linear in depth
    x = frames()
    net.eval()
    tokens = torch.full((2, 3), vocab.SOS)
    assert torch.equal(net(x, tokens), net(x, tokens))
    with pytest.raises(ValueError, match="drop_path"):
        tiny(drop_path=1.0)


def test_ctc_log_likelihood_equals_torch_ctc_loss():
    torch.manual_seed(0)
    b, f, v, length = 3, 12, vocab.VOCAB_SIZE, 6
    probs = torch.softmax(3 * torch.randn(b, f, v), -1)
    lengths = torch.tensor([12, 9, 5])  # frames after a sequence: blank with probability 1
    inside = torch.arange(f) < lengths[:, None]
    probs = blank_after_end(probs, inside)
    texts = [["ab", "abba"], ["", "zz"], ["a", "abcdeab"]]  # the last: too long for 5 frames
    slots = torch.arange(length, dtype=torch.float32)
    phrases = torch.stack([
        torch.stack([
            compact(torch.tensor(vocab.encode(t), dtype=torch.float32),
                    torch.ones(len(t)), torch.arange(len(t), dtype=torch.float32), slots)
            if t else torch.tensor([float(vocab.EOS)] + [float(vocab.PAD)] * (length - 1))
            for t in row
        ])
        for row in texts
    ])  # fmt: skip
    assert vocab.decode(phrases[2, 1].long().tolist()) == "abcde"  # at most L - 1 characters
    got = ctc_log_likelihood(probs, phrases)
    log_probs = torch.log(probs).transpose(0, 1)  # (F, B, V)
    for i, row in enumerate(texts):
        for k in range(len(row)):
            target = torch.tensor(vocab.encode(vocab.decode(phrases[i, k].long().tolist())))
            want = -F.ctc_loss(
                log_probs[:, i : i + 1], target[None], lengths[i : i + 1],
                torch.tensor([len(target)]), blank=vocab.PAD, reduction="sum",
            )  # fmt: skip
            if torch.isfinite(want):
                assert got[i, k].item() == pytest.approx(want.item(), rel=1e-4, abs=1e-4)
            else:  # impossible: more characters than 5 frames can hold
                assert got[i, k] < -60


def test_joint_decoding_picks_the_phrase_both_heads_score_higher():
    net = tiny(ctc_head=True)
    x = frames(b=4)
    joint = net.decode(x, "joint")
    attention, ctc = net.decode(x, "attention"), net.decode(x, "ctc")
    for row, a, c in zip(joint.tolist(), attention.tolist(), ctc.tolist(), strict=True):
        assert vocab.decode(row) in (vocab.decode(a)[:7], vocab.decode(c)[:7])
    every = net.decode_every(x)  # one pass for validation's per-decoding scores
    assert sorted(every) == sorted(DECODINGS)
    for decoding, rows in every.items():
        assert torch.equal(rows, net.decode(x, decoding)), decoding
    with pytest.raises(ValueError, match="joint decoding needs the CTC head"):
        tiny().decode(x, "joint")


def test_unrolled_ctc_loss_equals_torch_ctc_loss_and_its_gradient():
    torch.manual_seed(1)
    b, t, length = 4, 10, 6
    logits = (2 * torch.randn(b, t, vocab.VOCAB_SIZE)).requires_grad_()
    valid = torch.ones(b, t, dtype=torch.bool)
    valid[1, 7:] = False  # ends early
    valid[2, 3] = False  # an invalid frame inside is still read
    valid[3, 2:] = False  # 2 frames: "aab" cannot fit (a, blank, a, b needs 4)
    target = torch.full((b, length), vocab.PAD)
    for i, text in enumerate(["hello", "ab", "", "aab"]):
        ids = vocab.encode(text) + [vocab.EOS]
        target[i, : len(ids)] = torch.tensor(ids)
    chars = target < vocab.NUM_CHARACTERS
    lengths = (torch.arange(1, t + 1) * valid).amax(1).clamp(min=1)
    want = F.ctc_loss(
        torch.log_softmax(logits, -1).transpose(0, 1), torch.where(chars, target, 0), lengths,
        chars.sum(1), blank=vocab.PAD, reduction="none", zero_infinity=True,
    )  # fmt: skip
    got = ctc_loss_unrolled(logits, valid, target)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert got[3] == 0  # impossible: zero, like zero_infinity
    (grad_want,) = torch.autograd.grad(want.sum(), logits)
    (grad_got,) = torch.autograd.grad(got.sum(), logits)
    torch.testing.assert_close(grad_got, grad_want, rtol=1e-3, atol=1e-4)
