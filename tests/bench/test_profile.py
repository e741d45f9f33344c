"""The training step's profile by operator group (``scripts/bench_train.py --profile``)."""

import pytest
import torch
from torch.profiler import profile

from aslfs_pl.bench.profile import breakdown, group_of
from aslfs_pl.model.regularisation import Dropout


@pytest.mark.parametrize(
    ("name", "group"),
    [
        ("aten::mm", "matmul"),
        ("aten::addmm", "matmul"),
        ("aten::_scaled_dot_product_flash_attention_for_cpu_backward", "fused attention"),
        ("aten::_efficient_attention_forward", "fused attention"),
        ("aten::bernoulli_", "dropout masks"),
        ("aten::random_", "dropout masks"),
        ("aten::copy_", "copies"),
        ("aten::cat", "copies"),
        ("aten::_softmax", "softmax"),
        ("aten::native_layer_norm_backward", "norms"),
        ("aten::convolution_backward", "convolutions"),
        ("aten::gelu", "elementwise"),
        ("Optimizer.step#RAdam.step", "python + autograd"),
        ("autograd::engine::evaluate_function: MmBackward0", "python + autograd"),
    ],
)
def test_each_operator_has_its_group(name, group):
    assert group_of(name) == group


def test_the_breakdown_sums_a_profile_by_group_and_prints_the_shares():
    a = torch.randn(256, 256, requires_grad=True)
    layer = Dropout(0.5).train()
    with profile() as prof:
        for _ in range(2):
            layer(a @ a).sum().backward()
    out = breakdown(prof, steps=2, device=torch.device("cpu"))
    assert out.by_group["matmul"] > 0 and out.by_group["dropout masks"] > 0
    assert out.total == pytest.approx(sum(out.by_op.values()))
    assert out.share("matmul") + sum(out.share(g) for g in out.by_group if g != "matmul") == (
        pytest.approx(1.0)
    )
    text = "\n".join(out.lines())
    assert "matmul + fused attention share" in text and "(mm " in text and "2 steps" in text
