"""The composed network: shapes, what padding changes (nothing), empty input, backward."""

import pytest
import torch

from aslfs_pl import vocab
from tests.helpers import ENCODERS, TINY_MODEL, landmark_batch, tiny_model

every_encoder = pytest.mark.parametrize("encoder", ENCODERS)

NAN = float("nan")


@every_encoder
def test_shapes(encoder):
    m = tiny_model(**ENCODERS[encoder])
    tokens = torch.randint(0, vocab.VOCAB_SIZE, (2, 8))
    assert m(landmark_batch(), tokens).shape == (2, 8, vocab.VOCAB_SIZE)
    out, logits = m.generate(landmark_batch())
    assert out.shape == (2, 8) and logits.shape == (2, 8, vocab.VOCAB_SIZE)


@every_encoder
def test_appended_padding_and_nan_frames_do_not_change_logits(encoder):
    m = tiny_model(**ENCODERS[encoder])
    x = landmark_batch(t=20)
    tokens = torch.randint(0, vocab.VOCAB_SIZE, (2, 8))
    base = m(x, tokens)
    padded = torch.cat([x, torch.full((2, 15, 12), NAN)], dim=1)
    torch.testing.assert_close(m(padded, tokens), base, atol=1e-5, rtol=1e-4)
    nan_inside = x.clone()
    nan_inside = torch.cat([nan_inside[:, :10], torch.full((2, 5, 12), NAN), nan_inside[:, 10:]], 1)
    with_nan_tail = torch.cat([x, torch.full((2, 3, 12), NAN)], 1)
    torch.testing.assert_close(m(with_nan_tail, tokens), base, atol=1e-5, rtol=1e-4)
    assert not torch.isnan(m(nan_inside, tokens)).any()


@every_encoder
def test_empty_sequence_gives_finite_output(encoder):
    m = tiny_model(**ENCODERS[encoder])
    x = torch.full((1, 10, 12), NAN)
    out, logits = m.generate(x)
    assert torch.isfinite(logits).all()


@every_encoder
def test_backward_reaches_every_parameter(encoder):
    m = tiny_model(**ENCODERS[encoder]).train()
    tokens = torch.randint(0, vocab.VOCAB_SIZE, (2, 8))
    m(landmark_batch(), tokens).square().mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, missing


@pytest.mark.parametrize("encoder", ["local_global", "conformer"])
def test_the_training_forward_traces_without_a_graph_break(encoder):
    """``torch.compile`` sees one graph: dropout on (torch's own inside a compiled graph, the
    cheap CPU mask's in-place draw outside), masks, the fused attention, the CTC head."""
    import torch._dynamo

    conf = {"kernel": 3} if encoder == "conformer" else TINY_MODEL["encoder_conf"]
    net = tiny_model(encoder=encoder, encoder_conf=conf, dropout=0.1, ctc_head=True).train()
    explained = torch._dynamo.explain(net.forward_train)(landmark_batch(), torch.ones(2, 5).long())
    assert (explained.graph_count, explained.graph_break_count) == (1, 0), explained.break_reasons
