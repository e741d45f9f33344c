"""TFLite against PyTorch: the parity rule, and each weight type and decoding route checked at
every length."""

from __future__ import annotations

import copy
from dataclasses import replace

import numpy as np
import pytest
import torch

from aslfs_pl import vocab
from aslfs_pl.data.augment.geometry import flip as mirror_points
from aslfs_pl.data.landmarks import LandmarkSet
from aslfs_pl.deploy.convert import convert
from aslfs_pl.deploy.parity import (
    TOLERANCE,
    ParityReport,
    falls_back,
    parity_report,
    random_input,
)
from aslfs_pl.deploy.runtime import TFLiteRunner
from aslfs_pl.model.decoding import DECODINGS, ParityRow
from aslfs_pl.model.features import fit_length
from aslfs_pl.model.seq2seq import Seq2Seq
from tests.helpers import (
    COLUMNS,
    ENCODERS,
    FALLBACK_PHRASE,
    nan_frames,
    tie_tokens,
    tiny_ctc_net,
    tiny_fallback_net,
    tiny_net,
)


def test_parity_rule_allows_near_tie_flips_only_where_the_decoding_allows_them():
    flip = ParityRow(17, same_text=False, max_diff=0.01, diverged_at=3, margin=0.005)
    wide = ParityRow(17, same_text=False, max_diff=0.01, diverged_at=3, margin=0.8)
    equal = ParityRow(1, same_text=True, max_diff=0.01, diverged_at=None, margin=0.0)
    far = ParityRow(2, same_text=True, max_diff=0.6, diverged_at=None, margin=0.0)
    # a token Kaggle drops (pad) picked instead of PyTorch's: text equal, tokens not
    hidden = ParityRow(3, same_text=True, max_diff=0.01, diverged_at=2, margin=0.3)
    assert ParityReport([equal, flip], 0.5, allow_near_ties=True).ok
    assert not ParityReport([equal, flip], 0.05, allow_near_ties=False).ok
    assert not ParityReport([wide], 0.5, allow_near_ties=True).ok
    assert not ParityReport([equal, far], 0.5, allow_near_ties=True).ok
    assert not ParityReport([hidden], 0.5, allow_near_ties=False).ok
    # rounded weights (fp16, int8) may tip a near tie; fp32 may not, except one argmax per frame
    for name in ("attention", "joint", "beam"):
        assert [DECODINGS[name].near_ties(w) for w in ("fp32", "fp16", "int8")] == [0, 1, 1]
    assert all(DECODINGS["ctc"].near_ties(w) for w in ("fp32", "fp16", "int8"))
    summary = ParityReport([flip], 0.5, allow_near_ties=True).summary()
    assert "DIFFERENT from step 3" in summary and "texts equal: 0/1" in summary


@pytest.mark.slow
def test_tflite_parity_at_every_length_fp16(exported):
    net, result = exported
    report = parity_report(net, result.model_path, "fp16", lengths=(0, 1, 2, 17, 16, 66, 1000))
    assert report.ok, report.summary()
    assert report.same_texts == len(report.rows)


@pytest.mark.slow
def test_tflite_text_equals_pytorch_at_every_length_up_to_300(exported):
    # every resampling ratio up to T = 300 (max_frames 16): an index off by one at any length
    # (e.g. from an inexact in-graph frame count) shows up here
    net, result = exported
    report = parity_report(net, result.model_path, "fp16", lengths=tuple(range(301)), seed=1)
    assert report.same_texts == len(report.rows), report.summary()


@pytest.mark.slow
@pytest.mark.parametrize(
    "encoder",
    ["conformer", "squeezeformer-3-rotary", "squeezeformer-post-norm", "conv_transformer"],
)
def test_every_encoder_family_converts_with_parity_at_every_length(tmp_path, encoder):
    # the conformer blocks (macaron, conv module, output norm), the merged frames (strided
    # conv with a symbolic frame count) and their restoration, rotary tables gathered by frame,
    # post-norm blocks (each sub-layer's input scale folded, the norms after the sums), a
    # conv block of stride 2 (the heads read half the rows, their mask and indices)
    net = tiny_net(seed=2, **ENCODERS[encoder])
    result = convert(net, COLUMNS, tmp_path, weights="fp32")
    report = parity_report(net, result.model_path, "fp32", lengths=(0, 1, 2, 5, 16, 17, 66, 300))
    assert report.ok, report.summary()
    assert max(row.max_diff for row in report.rows) < 1e-4


@pytest.mark.slow
def test_the_gru_ctc_head_converts_with_parity(tmp_path):
    # the 2nd place's head: the GRU unrolled over max_frames steps in the file
    base = tiny_net(seed=3)
    net = Seq2Seq(replace(base.config, ctc_head=True, ctc_gru=True)).eval()
    net.load_state_dict(base.state_dict(), strict=False)
    result = convert(net, COLUMNS, tmp_path, weights="fp32", decoding="ctc")
    report = parity_report(
        net, result.model_path, "fp32", lengths=(0, 1, 5, 16, 17, 300), decoding="ctc"
    )
    assert report.ok and report.same_texts == len(report.rows), report.summary()


@pytest.mark.slow
def test_the_left_hander_flip_converts_with_parity(tmp_path):
    # both hands, 3 points each, x and y: the 12 columns tiny_net reads
    hands = LandmarkSet(left_hand=(0, 4, 8), right_hand=(0, 4, 8), face=(), pose=())
    base = tiny_net(seed=4)
    config = replace(base.config, hand_columns=hands.hand_columns(), flip_left_handed=True)
    net = Seq2Seq(config).eval()
    net.load_state_dict(base.state_dict())
    result = convert(net, hands.selected_columns, tmp_path, weights="fp32")
    runner, rng, rows = TFLiteRunner(result.model_path), np.random.default_rng(0), []
    parts = hands.part_slices()
    for t, seen in ((20, "left_hand"), (20, "right_hand"), (300, "left_hand"), (5, "right_hand")):
        x = rng.uniform(0.2, 0.8, (t, 12)).astype(np.float32)
        other = parts["right_hand" if seen == "left_hand" else "left_hand"]
        x[np.ix_(rng.random(t) < 0.6, other + [p + 6 for p in other])] = np.nan
        padded = torch.from_numpy(fit_length(x, net.config.max_frames))[None]
        out = runner.outputs(x)
        with torch.no_grad():
            rows.append(DECODINGS["attention"].parity_row(net, t, out, padded))
        if seen == "left_hand":  # the file reads a left-hander as its mirror image
            pts = mirror_points(x.reshape(t, 2, 6), hands.mirror_permutation()).reshape(t, 12)
            np.testing.assert_allclose(runner.outputs(pts), out, atol=1e-5)
    report = ParityReport(rows, TOLERANCE["fp32"], allow_near_ties=False)
    assert report.ok and report.same_texts == len(rows), report.summary()


@pytest.mark.slow
def test_tflite_parity_fp32_is_tight(tmp_path):
    net = tiny_net(seed=1)
    result = convert(net, COLUMNS, tmp_path, weights="fp32")
    report = parity_report(net, result.model_path, "fp32", lengths=(0, 1, 17, 16, 66, 1000))
    assert report.ok, report.summary()
    assert max(row.max_diff for row in report.rows) < 1e-4


@pytest.mark.slow
def test_tflite_parity_int8_flips_only_near_ties(tmp_path):
    net = tiny_net()
    result = convert(net, COLUMNS, tmp_path, weights="int8")
    assert result.weights == "int8"
    lengths = (*range(0, 120, 3), 1000)
    report = parity_report(net, result.model_path, "int8", lengths=lengths)
    assert report.ok, report.summary()
    # measured: logits within ~0.02 of PyTorch, about 1 text in 60 flips at a near tie
    assert max(row.max_diff for row in report.rows) < 0.1, report.summary()
    assert report.same_texts >= 0.8 * len(lengths), report.summary()
    # the check fails when the file computes something else (one logit moved by 1.0)
    shifted = copy.deepcopy(net)
    with torch.no_grad():
        shifted.decoder.head.bias[5] += 1.0
    assert not parity_report(shifted, result.model_path, "int8", lengths=lengths).ok


@pytest.mark.slow
def test_ctc_route_tflite_equals_pytorch_up_to_near_ties_at_every_length_up_to_300(tmp_path):
    net = tiny_ctc_net()
    result = convert(net, COLUMNS, tmp_path, decoding="ctc")
    report = parity_report(
        net, result.model_path, "fp16", lengths=tuple(range(301)), decoding="ctc"
    )
    # an untrained head ties two classes within fp16 rounding at a few frames: those may flip
    assert report.ok and report.same_texts >= 290, report.summary()
    flips = [r for r in report.rows if r.diverged_at is not None]
    assert all(r.margin < 0.005 for r in flips), report.summary()
    assert sum(r.max_diff > 0 for r in report.rows) > 250  # logits were compared, not skipped


@pytest.mark.slow
def test_joint_route_tflite_equals_pytorch_at_every_length_up_to_150(tmp_path):
    # a rotary decoder: its teacher-forced rows gather each position's rotary tables (the added
    # positions are the same gather from another table; attention route: the encoder families)
    net = tiny_ctc_net(decoder_rotary=True)
    result = convert(net, COLUMNS, tmp_path, decoding="joint")
    report = parity_report(
        net, result.model_path, "fp16", lengths=tuple(range(151)), decoding="joint"
    )
    assert report.ok and report.same_texts == len(report.rows), report.summary()
    runner = TFLiteRunner(result.model_path)
    texts = {
        vocab.decode_kaggle(runner.outputs(nan_frames(t, t)).argmax(1)) for t in range(0, 151, 10)
    }
    assert len(texts) > 5  # the phrases depend on the input


@pytest.mark.slow
@pytest.mark.parametrize("rotary", [False, True], ids=["added", "rotary"])
def test_beam_route_tflite_equals_pytorch_at_every_length_up_to_60(tmp_path, rotary):
    # rotary: without the CTC head (the beam's best wins), the length penalty in the file
    net = tiny_net(decoder_rotary=True) if rotary else tiny_ctc_net()
    net.config.beam_width = 4
    if rotary:
        net.config.beam_length_penalty = 0.3
    else:  # exact ties at every step: both keep the earlier hypothesis and the lower token
        tie_tokens(net)
    result = convert(net, COLUMNS, tmp_path, decoding="beam")
    report = parity_report(
        net, result.model_path, "fp16", lengths=(*range(61), 1000), decoding="beam"
    )
    assert report.ok and report.same_texts == len(report.rows), report.summary()
    texts = {
        vocab.decode_kaggle(TFLiteRunner(result.model_path).outputs(nan_frames(t, t)).argmax(1))
        for t in range(0, 61, 6)
    }
    assert len(texts) > 3  # the phrases depend on the input


@pytest.mark.slow
def test_fallback_tflite_equals_pytorch_at_every_length_up_to_60(tmp_path):
    """Both rules in the TFLite file (fp16): 0 and 1 frames by count, and a confidence
    threshold in the widest gap between the middle confidences of the parity inputs, so that
    about half of them fall back and none sits on the threshold."""
    lengths = tuple(range(61))
    rng = np.random.default_rng(0)  # parity_report's inputs, drawn again
    probe = tiny_fallback_net(frames=2)
    torch.manual_seed(0)
    with torch.no_grad():
        probe.confidence.proj.weight.normal_(0.0, 2.0)
        padded = [
            torch.from_numpy(fit_length(random_input(t, len(COLUMNS), rng), 16))[None]
            for t in lengths
        ]
        c = np.sort([torch.sigmoid(probe.confidence(*probe.encode(x))).item() for x in padded])
    middle = c[15:46]
    gap = int(np.argmax(np.diff(middle)))
    net = Seq2Seq(replace(probe.config, fallback_confidence=float(middle[gap : gap + 2].mean())))
    net.eval().load_state_dict(probe.state_dict())
    result = convert(net, COLUMNS, tmp_path)
    report = parity_report(net, result.model_path, "fp16", lengths=lengths)
    assert report.ok and report.same_texts == len(report.rows), report.summary()
    with torch.no_grad():
        fell = [falls_back(net, "attention", x) for x in padded]
    assert fell[0] and fell[1] and 15 <= sum(fell) <= 46
    out = TFLiteRunner(result.model_path).outputs(np.full((3, 12), np.nan, np.float32))
    assert vocab.decode_kaggle(out.argmax(1)) == FALLBACK_PHRASE
