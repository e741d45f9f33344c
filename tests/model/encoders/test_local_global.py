"""The encoder: local attention is causal within its window, and its chunked form is exact."""

import pytest
import torch

from aslfs_pl.model.encoders.local_global import local_attention, local_causal_mask
from aslfs_pl.model.features import landmark_features
from aslfs_pl.model.layers import Attention
from tests.helpers import landmark_batch, tiny_model


def test_local_attention_is_causal_in_frames():
    m = tiny_model()
    x = landmark_batch()
    memory, _ = m.encode(x)
    later = x.clone()
    later[:, 15:] = torch.rand(2, 5, 12)
    memory2, _ = m.encode(later)
    # ECA's channel weights and the global layer see the whole sequence, so only the local
    # stack is strictly causal; check it directly on the embedding + local layers.
    assert not torch.allclose(memory[:, :15], memory2[:, :15])  # global layer does look ahead
    feats, valid = landmark_features(x, 2)
    mask = local_causal_mask(valid, 4)
    i = torch.arange(20)
    assert not (mask[0, 0] & (i.unsqueeze(0) > i.unsqueeze(1))).any()  # no key after the query
    assert not (mask[0, 0] & (i.unsqueeze(1) - i.unsqueeze(0) >= 4)).any()  # window
    assert not mask[0, 0, 8, 7]  # the empty frame 7 is never a key for another frame
    # the layer itself: frames before 15 read nothing of frames 15 on, nor of frames a window
    # or more before them
    torch.manual_seed(0)
    attn = Attention(32, 2).eval()
    h = torch.randn(2, 20, 32)
    changed = h.clone()
    changed[:, 15:] = torch.randn(2, 5, 32)
    changed[:, :5] = torch.randn(2, 5, 32)
    with torch.no_grad():
        a, b = local_attention(attn, h, valid, 4), local_attention(attn, changed, valid, 4)
    torch.testing.assert_close(a[:, 8:15], b[:, 8:15])  # frames 8..14 see 5..14 at most
    assert not torch.allclose(a[:, 15:], b[:, 15:]) and not torch.allclose(a[:, :8], b[:, :8])


@pytest.mark.parametrize(("t", "window"), [(20, 4), (19, 4), (7, 16), (33, 5)])
def test_chunked_local_attention_equals_full_masked_attention(t, window):
    torch.manual_seed(0)
    attn = Attention(32, 4).eval()
    x = torch.randn(2, t, 32)
    valid = torch.rand(2, t) > 0.3
    valid[1, -3:] = False
    reference = attn(x, x, local_causal_mask(valid, window))
    torch.testing.assert_close(
        local_attention(attn, x, valid, window), reference, atol=1e-5, rtol=1e-4
    )
