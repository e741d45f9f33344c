"""Networks ensembled in one: every decoding reads the members' mean log-probabilities, in
PyTorch and in the deployment twin."""

from __future__ import annotations

import copy
from dataclasses import replace

import pytest
import torch

from aslfs_pl import vocab
from aslfs_pl.data.augment.geometry import flip as mirror_points
from aslfs_pl.data.landmarks import LandmarkSet
from aslfs_pl.deploy.graph import KaggleModel
from aslfs_pl.model.decoding import DECODINGS
from aslfs_pl.model.ensemble import Ensemble
from aslfs_pl.model.features import fit_length
from aslfs_pl.model.seq2seq import Seq2Seq
from tests.helpers import FALLBACK_PHRASE, nan_frames, tiny_ctc_net, tiny_fallback_net, tiny_net


@pytest.fixture(scope="module")
def pair() -> tuple:
    a, b = tiny_ctc_net(), tiny_ctc_net(seed=1)
    return a, b, Ensemble([a, b]).eval()


def padded(t: int, frames: int, seed: int = 3) -> torch.Tensor:
    return torch.from_numpy(fit_length(nan_frames(t, seed=seed), frames))[None]


def test_an_ensemble_of_a_network_and_its_copy_reads_what_the_network_reads(pair):
    a, _, _ = pair
    twice = Ensemble([a, copy.deepcopy(a)]).eval()
    with torch.no_grad():
        for t in (3, 17):
            x = padded(t, a.config.max_frames, seed=t)
            for name in DECODINGS:
                assert torch.equal(twice.decode(x, name), a.decode(x, name)), (name, t)


def test_each_step_reads_the_mean_of_the_members_log_probabilities(pair):
    a, b, both = pair
    x = padded(17, a.config.max_frames)
    with torch.no_grad():
        tokens, scores = both.generate(x)  # the cached greedy loop
        inputs = torch.cat([torch.full_like(tokens[:, :1], vocab.SOS), tokens[:, :-1]], 1)
        want = torch.stack([torch.log_softmax(net(x, inputs), -1) for net in (a, b)]).mean(
            0
        )  # each member teacher-forced on the ensemble's own phrase
        memory, valid = both.encode(x)
        ctc = both.ctc(memory)
        want_ctc = torch.stack(
            [torch.log_softmax(net.ctc(net.encode(x)[0]), -1) for net in (a, b)]
        ).mean(0)
    ended = (torch.cumsum(tokens == vocab.EOS, 1) - (tokens == vocab.EOS).long()) > 0
    torch.testing.assert_close(scores[~ended], want[~ended], atol=1e-5, rtol=1e-5)
    assert torch.equal(tokens[~ended], want.argmax(-1)[~ended])
    torch.testing.assert_close(ctc, want_ctc, atol=1e-5, rtol=1e-5)
    assert memory.shape[-1] == a.config.dim + b.config.dim
    # the members disagree, and the ensemble reads neither one alone for every input
    texts = {
        name: [vocab.decode(net.decode(padded(t, 16, t), "attention")[0].tolist()) for t in (5, 9)]
        for name, net in (("a", a), ("b", b), ("both", both))
    }
    assert texts["a"] != texts["b"] and texts["both"] not in (texts["a"], texts["b"])


@pytest.mark.parametrize("name", list(DECODINGS))
def test_the_ensembles_deployment_twin_reads_what_pytorch_reads(pair, name):
    _, _, both = pair
    twin = KaggleModel(both, name)  # checks that its forms cover every member's weights
    with torch.no_grad():
        for t in (0, 5, 16, 40):
            raw = nan_frames(t, seed=t)
            x = torch.from_numpy(fit_length(raw, both.config.max_frames))[None]
            want = vocab.decode(both.decode(x, name)[0].tolist())
            got = vocab.decode_kaggle(twin(torch.from_numpy(raw))["outputs"].argmax(1).numpy())
            assert got == want, (name, t)


def test_members_that_do_not_read_the_same_frames_or_phrases_are_refused():
    a = tiny_ctc_net()
    with pytest.raises(ValueError, match="member 2: model.max_frames 24, member 1 16"):
        Ensemble([a, tiny_ctc_net(max_frames=24)])
    with pytest.raises(ValueError, match="member 2: model.beam_width 6"):
        Ensemble([a, tiny_ctc_net(beam_width=6)])
    with pytest.raises(ValueError, match="a CTC head in some members only"):
        Ensemble([tiny_ctc_net(), tiny_net(seed=1)])
    with pytest.raises(TypeError, match="train its members"):
        Ensemble([a]).forward_train(padded(3, 16), torch.zeros(1, 2, dtype=torch.long))


def test_members_flip_a_left_hander_once_in_pytorch_and_in_the_twin():
    hands = LandmarkSet(left_hand=(0, 4, 8), right_hand=(0, 4, 8), face=(), pose=())
    flip = dict(hand_columns=hands.hand_columns(), flip_left_handed=True)
    both = Ensemble([tiny_ctc_net(**flip), tiny_ctc_net(seed=1, **flip)]).eval()
    twin = KaggleModel(both, "attention")  # one flip covers every member's
    raw = nan_frames(12, seed=4)
    raw[:, [3, 4, 5, 9, 10, 11]] = float("nan")  # the right hand unseen: a left-hander
    x = torch.from_numpy(fit_length(raw, 16))[None]
    with torch.no_grad():
        want = vocab.decode(both.decode(x, "attention")[0].tolist())
        out = twin(torch.from_numpy(raw))["outputs"]
        got = vocab.decode_kaggle(out.argmax(1).numpy())
        points = mirror_points(raw.reshape(12, 2, 6), hands.mirror_permutation()).reshape(12, 12)
        mirrored = twin(torch.from_numpy(points))["outputs"]  # a right-hander: read as it is
    assert got == want
    torch.testing.assert_close(out, mirrored)  # the left-hander was read as its mirror image
    other = LandmarkSet(left_hand=(0, 4), right_hand=(0, 4), face=(), pose=(11, 12))  # 12 columns
    with pytest.raises(ValueError, match="member 2: another landmark set to flip"):
        Ensemble(
            [tiny_ctc_net(**flip), tiny_ctc_net(**flip | {"hand_columns": other.hand_columns()})]
        )
    with pytest.raises(ValueError, match="member 2: model.flip_left_handed False"):
        Ensemble([tiny_ctc_net(**flip), tiny_ctc_net()])


def test_the_ensembles_confidence_is_the_mean_of_its_members_and_the_file_falls_back_alike():
    torch.manual_seed(0)
    a, b = tiny_fallback_net(), tiny_fallback_net()  # two new confidence heads
    inputs = [padded(t, 16, seed=t) for t in range(3, 40, 3)]
    with torch.no_grad():
        both = Ensemble([a, b]).eval()
        probs = []
        for x in inputs:
            memory, valid = both.encode(x)
            got = torch.sigmoid(both.confidence(memory, valid))
            want = torch.stack([torch.sigmoid(n.confidence(*n.encode(x))) for n in (a, b)]).mean(0)
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
            probs.append(float(got))
    middle = sorted(probs)[len(probs) // 2 - 1 : len(probs) // 2 + 1]
    threshold = sum(middle) / 2  # about half of the inputs fall back, none on the threshold
    rule = {"fallback_confidence": threshold}
    a, b = (Seq2Seq(replace(n.config, **rule)).eval() for n in (a, b))
    torch.manual_seed(0)
    first, second = tiny_fallback_net(), tiny_fallback_net()
    a.load_state_dict(first.state_dict())
    b.load_state_dict(second.state_dict())
    both = Ensemble([a, b]).eval()
    twin = KaggleModel(both, "attention")
    fell = 0
    with torch.no_grad():
        for t in range(3, 40, 3):
            raw = nan_frames(t, seed=t)
            x = torch.from_numpy(fit_length(raw, 16))[None]
            want = vocab.decode(both.decode(x, "attention")[0].tolist())
            got = vocab.decode_kaggle(twin(torch.from_numpy(raw))["outputs"].argmax(1).numpy())
            assert got == want, t
            fell += want == FALLBACK_PHRASE
    assert 0 < fell < len(range(3, 40, 3))
