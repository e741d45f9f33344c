"""CTC maths: greedy read-out, the forward algorithm's likelihood, the unrolled loss."""

import pytest
import torch
import torch.nn.functional as F

from aslfs_pl import vocab
from aslfs_pl.model.ctc_head import (
    GRUCTCHead,
    blank_after_end,
    ctc_greedy,
    ctc_log_likelihood,
    ctc_loss_unrolled,
)
from aslfs_pl.model.decoding.joint import compact


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


def _phrase(text: str, slots: torch.Tensor) -> torch.Tensor:
    """``text`` in the decoder's layout (:func:`compact`: characters, eos, pad) as float."""
    if not text:
        return torch.tensor([float(vocab.EOS)] + [float(vocab.PAD)] * (len(slots) - 1))
    tokens = torch.tensor(vocab.encode(text), dtype=torch.float32)
    index = torch.arange(len(text), dtype=torch.float32)
    return compact(tokens, torch.ones(len(text)), index, slots)


def test_ctc_log_likelihood_equals_torch_ctc_loss():
    torch.manual_seed(0)
    b, f, v, length = 3, 12, vocab.VOCAB_SIZE, 6
    probs = torch.softmax(3 * torch.randn(b, f, v), -1)
    lengths = torch.tensor([12, 9, 5])  # frames after a sequence: blank with probability 1
    inside = torch.arange(f) < lengths[:, None]
    probs = blank_after_end(probs, inside)
    texts = [["ab", "abba"], ["", "zz"], ["a", "abcdeab"]]  # the last: too long for 5 frames
    slots = torch.arange(length, dtype=torch.float32)
    phrases = torch.stack([torch.stack([_phrase(t, slots) for t in row]) for row in texts])
    assert vocab.decode(phrases[2, 1].long().tolist()) == "abcde"  # at most L - 1 characters
    got = ctc_log_likelihood(probs, phrases)
    log_probs = torch.log(probs).transpose(0, 1)  # (F, B, V)
    for i, row in enumerate(texts):
        for k in range(len(row)):
            target = torch.tensor(vocab.encode(vocab.decode(phrases[i, k].long().tolist())))
            want = -F.ctc_loss(
                log_probs[:, i : i + 1],
                target[None],
                lengths[i : i + 1],
                torch.tensor([len(target)]),
                blank=vocab.PAD,
                reduction="sum",
            )
            if torch.isfinite(want):
                assert got[i, k].item() == pytest.approx(want.item(), rel=1e-4, abs=1e-4)
            else:  # impossible: more characters than 5 frames can hold
                assert got[i, k] < -60


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
        torch.log_softmax(logits, -1).transpose(0, 1),
        torch.where(chars, target, 0),
        lengths,
        chars.sum(1),
        blank=vocab.PAD,
        reduction="none",
        zero_infinity=True,
    )
    got = ctc_loss_unrolled(logits, valid, target)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    assert got[3] == 0  # impossible: zero, like zero_infinity
    (grad_want,) = torch.autograd.grad(want.sum(), logits)
    (grad_got,) = torch.autograd.grad(got.sum(), logits)
    torch.testing.assert_close(grad_got, grad_want, rtol=1e-3, atol=1e-4)


def test_the_gru_head_reads_each_frame_after_the_earlier_ones_only_and_its_twin_agrees():
    torch.manual_seed(0)
    head = GRUCTCHead(8, vocab.VOCAB_SIZE).eval()
    norm = torch.nn.LayerNorm(8)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.3, 0.3)
        memory = torch.randn(1, 11, 8)
        logits = head(norm(memory))
        later = memory.clone()
        later[:, 7:] = torch.randn(1, 4, 8)  # other frames after frame 6
        assert torch.equal(head(norm(later))[:, :7], logits[:, :7])
        twin = head.export_form(norm, frames=16)  # unrolled over 16 steps
        normalised = F.layer_norm(memory[0], (8,))  # the twin reads them without the affine
        got = twin(normalised)
        torch.testing.assert_close(got, logits[0], atol=1e-5, rtol=1e-5)
        long = F.layer_norm(torch.randn(20, 8), (8,))  # rows past max_frames: invalid frames
        assert twin(long).shape == (20, vocab.VOCAB_SIZE)
    assert {id(p) for p in head.parameters()} <= twin.covered_tensors()
