"""CTC prefix scores: the probabilities of a prefix's extensions and of the prefix itself."""

from __future__ import annotations

import pytest
import torch

from aslfs_pl import vocab
from aslfs_pl.model import ctc_prefix as P
from aslfs_pl.model.ctc_head import ctc_log_likelihood


def frame_probs(b: int = 2, f: int = 12) -> torch.Tensor:
    torch.manual_seed(0)
    logits = torch.randn(b, f, vocab.VOCAB_SIZE) * 2
    logits[..., vocab.PAD] += 2
    logits[..., [vocab.SOS, vocab.EOS]] = -50.0  # CTC never emits them
    probs = torch.softmax(logits, -1)
    if b > 1:  # the second sequence ends after 9 frames
        blank = torch.nn.functional.one_hot(torch.tensor(vocab.PAD), vocab.VOCAB_SIZE)
        probs[1, 9:] = blank.float()
    return probs


@pytest.mark.parametrize("phrase", [[5, 5, 7, 3], [9], [4, 8, 4, 8]])
def test_the_extensions_and_the_end_share_the_prefix_probability_and_the_end_is_the_whole(phrase):
    # every labelling that starts with g is g itself or continues with some character
    probs = frame_probs()
    logp = P.log_probs(probs)
    classes = torch.arange(vocab.VOCAB_SIZE, dtype=torch.float32)
    triangle = P.triangles(torch.arange(probs.shape[1], dtype=torch.float32))
    prefix = P.start(logp, triangle[0])
    for step, c in enumerate([*phrase, None]):
        psi = P.scores(prefix, logp, classes)
        split = P.logaddexp(P.logsumexp(psi[:, : vocab.NUM_CHARACTERS], 1), psi[:, vocab.EOS])
        torch.testing.assert_close(split, prefix.score, atol=1e-3, rtol=1e-4)
        g = torch.full((2, 1, 8), float(vocab.PAD))
        g[:, 0, :step] = torch.tensor(phrase[:step], dtype=torch.float32)
        g[:, 0, step] = vocab.EOS
        whole = ctc_log_likelihood(probs, g)[:, 0]  # the forward algorithm
        torch.testing.assert_close(psi[:, vocab.EOS], whole, atol=1e-3, rtol=1e-4)
        assert (psi[:, [vocab.PAD, vocab.SOS]] <= P.NEG).all()
        if c is None:
            break
        prefix = P.extend(prefix, logp, torch.full((2,), float(c)), psi, classes, triangle)
    assert torch.equal(prefix.last, torch.full((2,), float(phrase[-1])))


def test_a_prefix_longer_than_the_frames_allow_is_impossible():
    probs = frame_probs(b=1, f=3)
    logp = P.log_probs(probs)
    classes = torch.arange(vocab.VOCAB_SIZE, dtype=torch.float32)
    triangle = P.triangles(torch.arange(3, dtype=torch.float32))
    prefix = P.start(logp, triangle[0])
    for c in (4, 4):  # a repeat needs a blank between: 3 frames
        prefix = P.extend(
            prefix, logp, torch.tensor([float(c)]), P.scores(prefix, logp, classes), classes,
            triangle,
        )  # fmt: skip
    assert prefix.score[0] > -60  # "4 _ 4" fits
    psi = P.scores(prefix, logp, classes)
    assert psi[0, 4] < -60  # a third 4 would need 5 frames
    assert psi[0, 5] > -60 or psi[0, 5] < -60  # a number either way (no NaN)
    assert torch.isfinite(psi).all()
