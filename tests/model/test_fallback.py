"""The confidence fallback: which sequences are hopeless, what they read as in PyTorch and in the
deployment graph, and the settings it refuses."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from aslfs_pl import vocab
from aslfs_pl.deploy.graph import KaggleModel
from aslfs_pl.model import fallback
from aslfs_pl.model.config import ModelConfig
from aslfs_pl.model.features import fit_length
from aslfs_pl.model.seq2seq import Seq2Seq
from aslfs_pl.task import Seq2SeqTask
from tests.helpers import FALLBACK_PHRASE, TINY_TASK, nan_frames, tiny_fallback_net, tiny_net

PHRASE = FALLBACK_PHRASE
with_fallback = tiny_fallback_net


def padded(x: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(fit_length(x, 16))[None]


def texts(net: Seq2Seq, xs: list[np.ndarray], decoding: str = "attention") -> list[str]:
    with torch.no_grad():
        return [vocab.decode(net.decode(padded(x), decoding)[0].tolist()) for x in xs]


def test_hopeless_inputs_read_as_the_fallback_phrase_and_the_others_as_before():
    """An all-NaN video, an empty one and a 1-frame one: today's model writes its guess; with
    ``fallback_frames 2`` they read as the fallback phrase, longer ones as before."""
    plain = tiny_net()
    hopeless = [np.full((30, 12), np.nan, np.float32), nan_frames(0), nan_frames(1, seed=1)[:1]]
    hopeless[2][0] = 0.5  # one frame, every landmark seen
    readable = [nan_frames(t, seed=t) for t in (2, 9, 40)]
    guesses = texts(plain, hopeless)
    assert all(g != PHRASE for g in guesses)  # the untrained model's guesses, not the phrase
    net = with_fallback(frames=2)
    assert texts(net, hopeless) == [PHRASE] * 3
    assert texts(net, readable) == texts(plain, readable)


def set_confidence(net: Seq2Seq, probability: float) -> None:
    """Make the confidence head say ``probability`` for every sequence."""
    with torch.no_grad():
        net.confidence.proj.weight.zero_()
        net.confidence.proj.bias.fill_(math.log(probability / (1 - probability)))


def test_low_confidence_reads_as_the_fallback_phrase():
    xs = [nan_frames(t, seed=t) for t in (3, 20)]
    net = with_fallback(confidence=0.5)
    set_confidence(net, 0.3)
    assert texts(net, xs) == [PHRASE, PHRASE]
    set_confidence(net, 0.7)
    assert texts(net, xs) == texts(tiny_net(), xs)


def test_every_phrase_decoding_takes_the_fallback_and_the_ctc_route_does_not():
    net = with_fallback(confidence=0.5, ctc=True)
    set_confidence(net, 0.1)
    with torch.no_grad():
        every = net.decode_every(padded(nan_frames(12, seed=2)))
    for name in ("attention", "joint", "beam"):
        assert vocab.decode(every[name][0].tolist()) == PHRASE, name
    plain_ctc = replace(net.config, fallback_confidence=0.0)
    reference = Seq2Seq(plain_ctc).eval()
    reference.load_state_dict(net.state_dict())
    with torch.no_grad():
        want = reference.decode(padded(nan_frames(12, seed=2)), "ctc")
    assert torch.equal(every["ctc"], want)


def confidences(net: Seq2Seq, xs: list[np.ndarray]) -> list[float]:
    with torch.no_grad():
        return [float(torch.sigmoid(net.confidence(*net.encode(padded(x)))).item()) for x in xs]


@pytest.mark.parametrize("rule", ["frames", "confidence"])
@pytest.mark.parametrize("route", ["attention", "joint", "beam"])
def test_graph_falls_back_exactly_where_pytorch_does(route, rule):
    """Each rule in the deployment graph, every route with phrase rows: the frame count (0, 1
    and 2 frames are hopeless at ``fallback_frames 3``), and the confidence (its threshold
    between the inputs' confidences, so two of five readable inputs fall back)."""
    xs = [nan_frames(t, seed=t) for t in (0, 1, 2, 3, 5, 17, 40, 66)]
    xs[1][:], xs[2][:] = 0.5, 0.5  # 1 and 2 frames, every landmark seen
    probe = with_fallback(ctc=True)
    torch.manual_seed(0)
    with torch.no_grad():
        probe.confidence.proj.weight.normal_(0.0, 2.0)
    c = sorted(confidences(probe, xs[3:]))
    if rule == "frames":
        config = replace(probe.config, fallback_frames=3)
    else:
        config = replace(probe.config, fallback_confidence=(c[1] + c[2]) / 2)
    net = Seq2Seq(config).eval()
    net.load_state_dict(probe.state_dict())
    graph = KaggleModel(net, route)
    got = []
    for x in xs:
        with torch.no_grad():
            out = graph(torch.from_numpy(x))["outputs"].numpy()
        got.append(vocab.decode_kaggle(out.argmax(1)))
    assert got == [texts(net, [x], route)[0] for x in xs]
    if rule == "frames":
        assert got[:3] == [PHRASE] * 3 and PHRASE not in got[3:]
    else:
        assert got[3:].count(PHRASE) == 2


def test_a_trained_confidence_head_the_route_does_not_read_is_covered():
    net = with_fallback(frames=0, ctc=True)  # head trained, no fallback rule reads it
    assert net.fallback is None
    x = torch.from_numpy(nan_frames(9, seed=4))
    for route in ("attention", "ctc", "joint", "beam"):
        KaggleModel(net, route)(x)  # builds: every trained weight accounted for
    KaggleModel(with_fallback(frames=2, ctc=True), "ctc")(x)  # the ctc route: no fallback


def test_fallback_settings_are_refused_by_name():
    base = dict(num_columns=12, max_target_len=8)
    with pytest.raises(ValueError, match="model.fallback_phrase: character '£'"):
        ModelConfig(**base, fallback_phrase="a£")
    with pytest.raises(
        ValueError, match="model.fallback_phrase has 8 characters: at most max_target_len - 1 = 7"
    ):
        ModelConfig(**base, fallback_phrase="abcdefgh")
    with pytest.raises(ValueError, match="model.fallback_frames -1"):
        ModelConfig(**base, fallback_frames=-1)
    with pytest.raises(ValueError, match="model.fallback_confidence 1.0"):
        ModelConfig(**base, confidence_head=True, fallback_confidence=1.0)
    with pytest.raises(ValueError, match="model.fallback_confidence needs the confidence head"):
        ModelConfig(**base, fallback_confidence=0.2)
    with pytest.raises(ValueError, match="model.confidence_head is set by model.confidence_weight"):
        Seq2SeqTask(**TINY_TASK, confidence_head=True)
    with pytest.raises(ValueError, match="model.confidence_weight = -1"):
        Seq2SeqTask(**TINY_TASK, confidence_weight=-1)
    with pytest.raises(ValueError, match="model.decoding = 'ctc': its rows are frames"):
        Seq2SeqTask(**TINY_TASK, ctc_weight=0.5, decoding="ctc", fallback_frames=2)


def test_the_confidence_head_learns_each_rows_token_accuracy():
    """Its loss is ``confidence_weight`` x the binary cross-entropy against each row's
    teacher-forced token accuracy; its gradient reaches the head and nothing flows back into the
    accuracy."""
    torch.manual_seed(0)
    task = Seq2SeqTask(**TINY_TASK, confidence_weight=0.5)
    plain = Seq2SeqTask(**TINY_TASK)
    plain.net.load_state_dict(task.net.state_dict(), strict=False)
    tokens = torch.full((4, 9), vocab.PAD)
    for i, phrase in enumerate(["abc", "de", "fghijk", "l"]):
        ids = [vocab.SOS, *vocab.encode(phrase), vocab.EOS]
        tokens[i, : len(ids)] = torch.tensor(ids)
    batch = {"tokens": tokens, "landmarks": torch.rand(4, 20, task.config.num_columns)}
    task.eval(), plain.eval()
    loss, correct, weight = task._loss(batch)
    base = plain._loss(batch)[0]
    accuracy = (correct * weight).sum(1) / weight.sum(1)
    out = task.net.forward_train(batch["landmarks"], tokens[:, :-1])
    bce = torch.nn.functional.binary_cross_entropy_with_logits(out.confidence, accuracy)
    torch.testing.assert_close(loss, base + 0.5 * bce)
    loss.backward()
    assert task.net.confidence.proj.weight.grad.abs().sum() > 0


@pytest.mark.parametrize(("threshold", "falls_back"), [(0.45, True), (0.35, False)])
def test_graph_confidence_of_an_empty_video_is_the_heads_bias(threshold, falls_back):
    """No valid frame: PyTorch's mean of the encoded frames is 0, so the confidence is the
    head's bias alone, and the graph (which folds the encoder norm's shift into the head) must
    say the same."""
    net = with_fallback(confidence=threshold)
    torch.manual_seed(1)
    with torch.no_grad():
        net.confidence.proj.weight.normal_(0.0, 2.0)
        net.confidence.proj.bias.fill_(math.log(0.4 / 0.6))
    x = np.full((6, 12), np.nan, np.float32)
    with torch.no_grad():
        out = KaggleModel(net)(torch.from_numpy(x))["outputs"].numpy()
    assert texts(net, [x]) == [vocab.decode_kaggle(out.argmax(1))]
    assert (texts(net, [x])[0] == PHRASE) == falls_back


def plain_levenshtein(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[:], i
        for j, cb in enumerate(b, 1):
            row[j] = min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (ca != cb))
    return row[-1]


def test_edit_distances_equal_a_plain_levenshtein():
    rng = np.random.default_rng(0)
    refs = ["".join(rng.choice(list("ab c-1"), rng.integers(0, 13))) for _ in range(200)]
    for candidate in ("", "a", "abc", "b-1 c a", "c" * 18):
        got = fallback.edit_distances(candidate, refs)
        assert got.tolist() == [plain_levenshtein(candidate, r) for r in refs], candidate


def test_constant_phrase_finds_the_best_constant_and_scores_it_like_kaggle():
    refs = ["abcd"] * 5 + ["abxd", "wxyz"]
    phrase, score = fallback.constant_phrase(refs, starts=2)
    assert phrase == "abcd"
    total = sum(map(len, refs))
    assert score == pytest.approx(1 - (0 + 1 + 4) / total)
    # no phrase in common: the edits still beat the empty phrase (score 0)
    phrase, score = fallback.constant_phrase(["aaaa", "bbbb", "aabb"], starts=3)
    assert score > 0 and score == pytest.approx(
        fallback.constant_score(phrase, ["aaaa", "bbbb", "aabb"])
    )
