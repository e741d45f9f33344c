"""The Conformer / Squeezeformer blocks: the post-norm block as the 1st place wrote it."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from aslfs_pl.model.encoders.conformer import ConformerBlock


def test_a_post_norm_block_normalises_each_sum_of_a_scaled_input():
    torch.manual_seed(0)
    block = ConformerBlock(16, 2, 2, 3, 0.0, 0.0, macaron=False, post_norm=True).eval()
    with torch.no_grad():
        for p in block.inputs.parameters():
            p.uniform_(0.5, 1.5)
        for name in ("mlp1", "attn", "conv", "mlp2"):
            norm = getattr(block, f"{name}_norm")
            norm.weight.uniform_(0.5, 1.5)
            norm.bias.uniform_(-0.3, 0.3)
    x = torch.randn(2, 7, 16)
    valid = torch.ones(2, 7, dtype=torch.bool)
    valid[1, 5:] = False
    mask = valid[:, None, None, :]

    def post(x, name, f):  # LayerNorm(x + f(x * scale + bias))
        affine, norm = block.inputs[name], getattr(block, f"{name}_norm")
        h = x * affine.weight + affine.bias
        return F.layer_norm(x + f(h), (16,), norm.weight, norm.bias, norm.eps)

    with torch.no_grad():
        want = post(x, "attn", lambda h: block.attn(h, h, mask, None))
        want = post(want, "mlp1", block.mlp1)
        want = post(want, "conv", lambda h: block.conv(h, valid))
        want = post(want, "mlp2", block.mlp2)
        got = block(x, valid, mask, None)
    torch.testing.assert_close(got, want)
    pre = ConformerBlock(16, 2, 2, 3, 0.0, 0.0, macaron=False)
    assert not any("inputs" in name for name, _ in pre.named_parameters())  # pre-norm: none
