"""The deployment graph: Kaggle's signature around the network's export form, which matches the
training path at every length, for every decoding route, and covers (reads or leaves out) every
trained weight."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from aslfs_pl import vocab
from aslfs_pl.deploy.graph import KaggleModel
from aslfs_pl.deploy.stages import ExportError
from aslfs_pl.export_ops import fold_norm
from aslfs_pl.model.ctc_head import ctc_greedy
from aslfs_pl.model.decoding import Encoded
from aslfs_pl.model.features import fit_length, resample_indices
from tests.helpers import ENCODERS, nan_frames, tiny_ctc_net, tiny_model, tiny_net


def before_end(tokens: np.ndarray) -> np.ndarray:
    """(L,) bool: the greedy steps up to and including the first end token."""
    return ~(np.cumsum(tokens == vocab.EOS) - (tokens == vocab.EOS) > 0)


def assert_greedy_rows(out: np.ndarray, tokens: np.ndarray, logits: np.ndarray) -> None:
    """The graph's rows decode to PyTorch's greedy phrase, and hold its logits at every step up
    to its end token."""
    assert vocab.decode_kaggle(out.argmax(1)) == vocab.decode(tokens.tolist())
    np.testing.assert_allclose(out[before_end(tokens)], logits[before_end(tokens)], atol=1e-5)


def holds(graph: nn.Module, tensor: torch.Tensor) -> bool:
    """Whether one of the graph's tensors equals ``tensor``."""
    return any(
        b.shape == tensor.shape and torch.allclose(b, tensor)
        for b in (*graph.buffers(), *graph.parameters())
    )


@pytest.mark.parametrize("encoder", ENCODERS)
@pytest.mark.parametrize("t", [0, 1, 2, 17, 16, 66, 200, "5 empty"])
def test_graph_matches_training_path_at_every_length(t, encoder):
    net = tiny_net(**ENCODERS[encoder])
    wrapper = KaggleModel(net)
    # "5 empty": frames but no landmark seen, so cross-attention falls back to frame 0
    x = np.full((5, 12), np.nan, np.float32) if t == "5 empty" else nan_frames(t, seed=t)
    with torch.no_grad():
        out = wrapper(torch.from_numpy(x))["outputs"].numpy()
        tokens, logits = net.generate(torch.from_numpy(fit_length(x, 16))[None])
    assert out.shape == (8, vocab.VOCAB_SIZE)
    assert_greedy_rows(out, tokens[0].numpy(), logits[0].numpy())


def test_graph_reads_all_frames_and_resamples_like_training():
    # 3000 frames: the graph resamples all of them (fit_length)
    net = tiny_net()
    graph = KaggleModel(net)
    x = nan_frames(3000, seed=3)
    x[2000:] += 0.3  # the end of the sequence differs from its start
    with torch.no_grad():
        out = graph(torch.from_numpy(x))["outputs"].numpy()
        tokens, logits = net.generate(torch.from_numpy(fit_length(x, 16))[None])
        assert_greedy_rows(out, tokens[0].numpy(), logits[0].numpy())
        # the frames the resampling picks are read, up to the last ones; the others are not
        start_only = x.copy()
        start_only[2000:] -= 0.3
        assert not np.allclose(graph(torch.from_numpy(start_only))["outputs"].numpy(), out)
        skipped = np.setdiff1d(np.arange(3000), resample_indices(3000, 16))
        assert skipped.size > 2900
        other = x.copy()
        other[skipped] = 0.5
        np.testing.assert_array_equal(graph(torch.from_numpy(other))["outputs"].numpy(), out)


def test_graph_is_a_snapshot_of_the_weights_it_was_built_from():
    net, other = tiny_net(seed=0), tiny_net(seed=1)
    graph = KaggleModel(net)
    x = torch.from_numpy(nan_frames(30))
    with torch.no_grad():
        before = graph(x)["outputs"].numpy()
        net.load_state_dict(other.state_dict())  # later changes to the network: not seen
        np.testing.assert_array_equal(graph(x)["outputs"].numpy(), before)
        np.testing.assert_allclose(
            KaggleModel(net)(x)["outputs"].numpy(), KaggleModel(other)(x)["outputs"].numpy()
        )


class _Extra(nn.Module):  # a layer written without an export form
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return x * self.scale


def test_a_layer_without_export_form_fails_at_export_naming_it():
    net = tiny_net()
    net.encoder.blocks[0].extra = _Extra()  # a new layer the block's twin knows nothing of
    with pytest.raises(
        ExportError, match=r"\[check\] .*encoder\.blocks\.0\.extra\.scale \(_Extra\)"
    ):
        KaggleModel(net)
    for owner in ("decoder", "embedding"):  # a weight added straight onto a covered module
        net = tiny_net()
        getattr(net, owner).gain = nn.Parameter(torch.ones(1))
        with pytest.raises(ExportError, match=rf"\[check\] .*{owner}\.gain \("):
            KaggleModel(net)
    net = tiny_net()
    net.encoder.blocks[0].mlp = _Extra()  # a layer replaced by a class with no export_form
    with pytest.raises(ExportError, match=r"\[check\] layer _Extra has no export_form"):
        KaggleModel(net)


def test_every_trained_weight_reaches_the_graph():
    # the coverage check proves a twin was built for each weight; this proves each one is used
    net = tiny_net()
    x = torch.from_numpy(nan_frames(20))
    with torch.no_grad():
        base = KaggleModel(net)(x)["outputs"].numpy()
        torch.manual_seed(0)
        for name, p in net.named_parameters():
            # random, not constant: a constant shift of the last bias before a LayerNorm is
            # removed by the norm itself
            kept = p.clone()
            p.add_(torch.randn_like(p))
            changed = KaggleModel(net)(x)["outputs"].numpy()
            p.copy_(kept)
            assert not np.allclose(changed, base), f"{name} does not change the outputs"


@pytest.mark.parametrize("num_axes", [2, 3])
def test_graph_matches_training_path_with_deeper_nets_and_three_axes(num_axes):
    net = tiny_model(
        3,
        num_columns=6 * num_axes,
        num_axes=num_axes,
        max_frames=16,
        max_target_len=6,
        heads=4,
        stem_conf=dict(blocks=2, kernel=3),
        encoder_conf=dict(local_layers=2, window=3),
    )
    graph = KaggleModel(net)
    rng = np.random.default_rng(num_axes)
    for t in (0, 1, 9, 16, 40):
        x = rng.uniform(0.2, 0.8, (t, 6 * num_axes)).astype(np.float32)
        x[rng.random(t) < 0.3, :num_axes] = np.nan
        with torch.no_grad():
            out = graph(torch.from_numpy(x))["outputs"].numpy()
            tokens, logits = net.generate(torch.from_numpy(fit_length(x, 16))[None])
        tokens = tokens[0].numpy()
        np.testing.assert_allclose(
            out[before_end(tokens)], logits[0].numpy()[before_end(tokens)], atol=1e-5
        )


def test_attention_route_covers_and_leaves_out_the_ctc_head():
    net = tiny_ctc_net()
    graph = KaggleModel(net)  # built: the coverage check accepts the head as left out
    inputs = [torch.from_numpy(nan_frames(t, seed=t)) for t in (0, 5, 20, 40)]
    with torch.no_grad():
        outs = [graph(x)["outputs"].numpy() for x in inputs]
        for x, out in zip(inputs, outs, strict=True):
            tokens, logits = net.generate(torch.from_numpy(fit_length(x.numpy(), 16))[None])
            assert_greedy_rows(out, tokens[0].numpy(), logits[0].numpy())
        # the graph's tensors are those of the same network without a head, name for name
        plain = KaggleModel(tiny_net())
        assert list(graph.parameters()) == []  # folded copies only, no trained module
        ours, theirs = dict(graph.named_buffers()), dict(plain.named_buffers())
        assert ours.keys() == theirs.keys()
        assert all(torch.equal(ours[k], theirs[k]) for k in ours)
        # no tensor holds the head's weights, as trained or folded with the encoder's norm
        folded_w, folded_b = fold_norm(net.ctc, net.encoder.norm)
        head = [net.ctc.weight, net.ctc.weight.t(), net.ctc.bias, folded_w.t(), folded_b]
        assert not any(holds(graph, t) for t in head)
        assert holds(KaggleModel(net, "ctc"), folded_w.t())  # where the head is read: found
        # other head weights: every output row of every input is the same
        torch.manual_seed(1)
        net.ctc.weight.normal_()
        net.ctc.bias.normal_()
        again = KaggleModel(net)
        for x, out in zip(inputs, outs, strict=True):
            np.testing.assert_array_equal(again(x)["outputs"].numpy(), out)


@pytest.mark.parametrize("t", [0, 1, 2, 16, 17, 66, 200])
def test_ctc_route_matches_training_path_and_reads_only_its_head(t):
    net = tiny_ctc_net()
    graph = KaggleModel(net, "ctc")
    x = nan_frames(t, seed=t)
    with torch.no_grad():
        out = graph(torch.from_numpy(x))["outputs"].numpy()
        encoded = Encoded(net, torch.from_numpy(fit_length(x, 16))[None])
        logits = encoded.ctc_logits()
        tokens = ctc_greedy(logits, encoded.valid)[0].numpy()
    assert out.shape == (t + 1, vocab.VOCAB_SIZE)  # one row per frame, plus the appended one
    assert vocab.decode_kaggle(out.argmax(1)) == vocab.decode(tokens)
    emitted = np.flatnonzero(tokens != vocab.PAD)
    np.testing.assert_allclose(out[emitted], logits[0, emitted].numpy(), atol=1e-5)
    with torch.no_grad():  # a graph built after changing the decoder: the same outputs
        net.decoder.head.bias.add_(5.0)
        again = KaggleModel(net, "ctc")(torch.from_numpy(x))["outputs"].numpy()
        np.testing.assert_array_equal(again, out)
    with pytest.raises(ExportError, match=r"\[check\] ctc decoding needs the CTC head"):
        KaggleModel(tiny_net(), "ctc")


decoder_positions = pytest.mark.parametrize("rotary", [False, True], ids=["added", "rotary"])


@decoder_positions
@pytest.mark.parametrize("t", [0, 1, 5, 16, 17, 66, 200])
def test_joint_route_matches_training_path(t, rotary):
    # the teacher-forced rows gather each position's rotary tables
    net = tiny_ctc_net(decoder_rotary=rotary)
    x = nan_frames(t, seed=t)
    with torch.no_grad():
        out = KaggleModel(net, "joint")(torch.from_numpy(x))["outputs"].numpy()
        want = net.decode(torch.from_numpy(fit_length(x, 16))[None], "joint")[0].numpy()
    assert out.shape == (8, vocab.VOCAB_SIZE)
    np.testing.assert_array_equal(out.argmax(1), want)


@decoder_positions
def test_teacher_forced_rows_of_the_graph_equal_the_decoders_logits(rotary):
    # what the joint route rescores with: two phrases stacked, each position's own table rows
    net = tiny_ctc_net(decoder_rotary=rotary)
    x = torch.from_numpy(fit_length(nan_frames(17, seed=3), 16))
    graph = net.export_form("joint")
    j = torch.arange(16, dtype=torch.float32)
    embedded, valid = graph.embeddings[0](x, j)
    memory = graph.encoders[0](embedded, valid, j)
    phrases = torch.tensor([[vocab.SOS, 5, 6, 7, 8, 9, 10, 11], [vocab.SOS, 9, 3, 3, 20, 4, 4, 7]])
    with torch.no_grad():
        want = net.decoder(phrases, *net.encode(x[None]))  # (2, L, V)
        got = graph.head.decoder.teacher_forced(
            phrases.reshape(-1).to(torch.int32),
            graph.head.positions,
            graph.head.self_bias,
            graph.head.decoder.cross(memory, valid, j),
        )
    torch.testing.assert_close(got, want.reshape(16, -1), atol=1e-4, rtol=1e-4)


def test_cross_attention_reads_no_phrase_position(monkeypatch):
    # phrase positions and frames share no axis: only self-attention rotates
    net = tiny_net(decoder_rotary=True)
    seen = []
    for block in net.decoder.blocks:
        attend = block.cross_attn.attend

        def record(*args, attend=attend, **kwargs):
            seen.append(args[4] if len(args) > 4 else kwargs.get("rotation"))
            return attend(*args, **kwargs)

        monkeypatch.setattr(block.cross_attn, "attend", record)
    with torch.no_grad():
        net.generate(torch.from_numpy(nan_frames(9, seed=1))[None])
    assert seen and all(r is None for r in seen)


@decoder_positions
@pytest.mark.parametrize("width", [1, 4])
@pytest.mark.parametrize("t", [0, 1, 5, 16, 17, 66, 200])
def test_beam_route_matches_training_path(t, width, rotary):
    net = tiny_ctc_net(decoder_rotary=rotary)
    net.config.beam_width = width
    x = nan_frames(t, seed=t)
    with torch.no_grad():
        out = KaggleModel(net, "beam")(torch.from_numpy(x))["outputs"].numpy()
        want = net.decode(torch.from_numpy(fit_length(x, 16))[None], "beam")[0].numpy()
    assert out.shape == (8, vocab.VOCAB_SIZE)
    np.testing.assert_array_equal(out.argmax(1), want)


def test_graph_folds_trained_batch_norm_statistics():
    net = tiny_net()
    norms = (net.embedding.norm, net.embedding.convs[0].norm)
    with torch.no_grad():  # non-trivial running statistics, as after training
        for bn in norms:
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
    x = torch.from_numpy(nan_frames(40))
    with torch.no_grad():
        out = KaggleModel(net)(x)["outputs"].numpy()
        tokens, logits = net.generate(torch.from_numpy(fit_length(x.numpy(), 16))[None])
        assert_greedy_rows(out, tokens[0].numpy(), logits[0].numpy())
        for bn in norms:  # the statistics are read (they are buffers, not parameters)
            kept = bn.running_mean.clone(), bn.running_var.clone()
            bn.running_mean.add_(0.5)
            assert not np.allclose(KaggleModel(net)(x)["outputs"].numpy(), out)
            bn.running_mean.copy_(kept[0])
            bn.running_var.mul_(3.0)
            assert not np.allclose(KaggleModel(net)(x)["outputs"].numpy(), out)
            bn.running_var.copy_(kept[1])


def test_rows_after_the_end_token_decode_to_nothing():
    net = tiny_net()
    with torch.no_grad():
        net.decoder.head.bias.zero_()
        net.decoder.head.bias[vocab.EOS] = 50.0
    with torch.no_grad():
        out = KaggleModel(net)(torch.from_numpy(nan_frames(10)))
    out = out["outputs"].numpy()
    assert out[0].argmax() == vocab.EOS
    assert (out[1:].argmax(1) == vocab.PAD).all()
    assert vocab.decode_kaggle(out.argmax(1)) == ""
