"""The decodings: each read-out (attention, ctc, joint, beam) and its parity rule; the registry, where
every decoding is one object with its read-out, export form and parity rule, and a new one is one
class."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from aslfs_pl import vocab
from aslfs_pl.commands import export_tflite
from aslfs_pl.deploy.graph import KaggleModel
from aslfs_pl.deploy.parity import ParityReport
from aslfs_pl.export_ops import ExportForm
from aslfs_pl.model import decoding
from aslfs_pl.model.ctc_head import blank_after_end, ctc_log_likelihood, frames_inside
from aslfs_pl.model.decoding import DECODINGS, Decoding, Encoded, ParityRow, joint_step
from aslfs_pl.model.decoding.attention import compare_steps
from aslfs_pl.model.decoding.base import NUDGES, nudged_margin
from aslfs_pl.model.decoding.beam import first_best
from aslfs_pl.model.decoding.ctc import compare_frames
from aslfs_pl.model.decoding.joint import compact
from aslfs_pl.model.seq2seq import Seq2Seq
from aslfs_pl.task import Seq2SeqTask
from tests.helpers import ONE_BLOCK, landmark_batch, tie_tokens, tiny_model


def tiny(ctc: bool = True, **overrides) -> Seq2Seq:
    return tiny_model(**(ONE_BLOCK | overrides), ctc_head=ctc)


def frames(b: int = 3, t: int = 16) -> Tensor:
    torch.manual_seed(1)
    x = torch.rand(b, t, 12)
    x[1, 9:] = float("nan")  # a shorter sequence
    return x


def test_the_registry_lists_attention_ctc_joint_beam_and_joint_step_with_all_their_parts():
    assert list(DECODINGS) == ["attention", "ctc", "joint", "beam", "joint_step"]
    assert [d.needs_ctc for d in DECODINGS.values()] == [False, True, True, False, True]
    for name, method in DECODINGS.items():
        assert method.name == name and method.summary
        # each part is the decoding's own, not the base class's placeholder
        for part in ("read", "export_head", "parity_row"):
            assert getattr(type(method), part) is not getattr(Decoding, part), (name, part)
    assert decoding.get("joint") is DECODINGS["joint"]
    with pytest.raises(ValueError, match="decoding 'prefix': choose one of attention, ctc, joint"):
        decoding.get("prefix")
    assert decoding.usable(tiny(ctc=False)) == ["attention", "beam"]
    assert decoding.usable(tiny()) == ["attention", "ctc", "joint", "beam", "joint_step"]


def test_decodings_share_one_encoder_pass_and_one_greedy_loop(monkeypatch):
    net, x = tiny(), frames()
    calls = {"encode": 0, "greedy": 0}
    for owner, name in ((net, "encode"), (net.decoder, "greedy")):
        original = getattr(owner, name)

        def counted(*args, _original=original, _name=name, **kwargs):
            calls[_name] += 1
            return _original(*args, **kwargs)

        monkeypatch.setattr(owner, name, counted)
    with torch.no_grad():
        every = net.decode_every(x)
    assert calls == {"encode": 1, "greedy": 1}
    for name, rows in every.items():
        with torch.no_grad():
            assert torch.equal(rows, net.decode(x, name)), name


def test_the_export_head_is_the_decodings_own(monkeypatch):
    net = tiny()
    built = []
    for name, method in DECODINGS.items():
        original = method.export_head

        def spy(n, _original=original, _name=name):
            built.append(_name)
            return _original(n)

        monkeypatch.setattr(method, "export_head", spy)
        KaggleModel(net, name)
    assert built == list(DECODINGS)


class Silent(Decoding):
    """A decoding written as a contributor would write one: reads nothing, says nothing."""

    name = "silent"
    summary = "an empty phrase (a test's decoding)"

    def read(self, encoded: Encoded) -> Tensor:
        return torch.full((encoded.memory.shape[0], 1), vocab.PAD)

    def export_head(self, net: nn.Module) -> ExportForm:
        return SilentExport(net)

    def parity_row(self, net: nn.Module, frames: int, out: np.ndarray, padded: Tensor) -> ParityRow:
        reference = self.read(Encoded(net, padded))[0].numpy()
        same = vocab.decode_kaggle(out.argmax(1)) == vocab.decode(reference)
        return ParityRow(frames, same, 0.0, None if same else 0, 0.0)


class SilentExport(ExportForm):
    def __init__(self, net: nn.Module):
        super().__init__()
        self.covers(net.encoder.norm, *net.decoder.modules())  # folded away: reads neither
        if net.ctc is not None:
            self.covers(net.ctc)
        pad = torch.zeros(1, net.config.vocab_size)
        pad[0, vocab.PAD] = 1.0
        self.put("pad", pad)

    def forward(self, memory: Tensor, valid: Tensor, j: Tensor) -> Tensor:
        return self.pad + 0.0 * memory[:1, :1]  # (1, V), reads the frames so it is traced


def test_a_new_decoding_is_one_class(monkeypatch, capsys):
    monkeypatch.setitem(DECODINGS, "silent", Silent())
    net = tiny(ctc=False)
    x = frames()
    assert net.decode(x, "silent").tolist() == [[vocab.PAD]] * 3  # PyTorch read-out
    assert "silent" in net.decode_every(x)  # validation scores it too
    graph = KaggleModel(net, "silent").eval()  # its export form, checked to cover every weight
    with torch.no_grad():
        out = graph(x[0])["outputs"].numpy()
    assert out.shape == (1, vocab.VOCAB_SIZE) and vocab.decode_kaggle(out.argmax(1)) == ""
    row = Silent().parity_row(net, 16, out, x[:1])  # its parity rule
    assert ParityReport([row], 1e-4).ok
    task = Seq2SeqTask(
        num_columns=12,
        dim=32,
        heads=2,
        stem_conf={"blocks": 1},
        encoder_blocks=1,
        decoder_blocks=1,
        decoding="silent",
        ctc_weight=0.5,  # with the CTC head, validation scores every decoding
    )
    assert list(task.val_scores) == ["attention", "ctc", "joint", "beam", "joint_step", "silent"]
    for name, complaint in (("silent", "give --ckpt"), ("nonsense", "invalid choice")):
        with pytest.raises(SystemExit):  # the export command offers it, and only registered ones
            export_tflite.main(["--out", "x", "--decoding", name])
        assert complaint in capsys.readouterr().err


def test_decodings_that_need_the_ctc_head_refuse_a_network_without_one():
    net, x = tiny(ctc=False), frames()
    for name in ("ctc", "joint", "joint_step"):
        with pytest.raises(ValueError, match=f"{name} decoding needs the CTC head"):
            net.decode(x, name)
        with pytest.raises(ValueError, match=f"{name} decoding needs the CTC head"):
            net.export_form(name)


def test_decode_routes_and_their_errors():
    net = tiny_model()
    x = landmark_batch()
    assert net.decode(x, "attention").shape == (2, 8)
    with pytest.raises(ValueError, match="ctc_weight > 0"):
        net.decode(x, "ctc")
    ctc = tiny_model(ctc_head=True)
    assert ctc.decode(x, "ctc").shape == (2, 20)
    with pytest.raises(ValueError, match="decoding 'prefix'"):
        ctc.decode(x, "prefix")


def test_joint_decoding_picks_the_phrase_both_heads_score_higher():
    net = tiny_model(ctc_head=True)
    x = landmark_batch(b=4)
    joint = net.decode(x, "joint")
    attention, ctc = net.decode(x, "attention"), net.decode(x, "ctc")
    for row, a, c in zip(joint.tolist(), attention.tolist(), ctc.tolist(), strict=True):
        assert vocab.decode(row) in (vocab.decode(a)[:7], vocab.decode(c)[:7])
    every = net.decode_every(x)  # one pass for validation's per-decoding scores
    assert sorted(every) == sorted(DECODINGS)
    for name, rows in every.items():
        assert torch.equal(rows, net.decode(x, name)), name
    with pytest.raises(ValueError, match="joint decoding needs the CTC head"):
        tiny_model().decode(x, "joint")


def reference_beam(
    net: Seq2Seq, x: Tensor, width: int, length_penalty: float = 0.0
) -> tuple[Tensor, Tensor]:
    """Beam search written plainly: no cache, every prefix run through the teacher-forced
    decoder at every step, hypotheses kept as Python lists; each token of an open hypothesis
    adds ``length_penalty``."""
    memory, valid = net.encode(x)
    out_tokens, out_scores = [], []
    for b in range(x.shape[0]):
        beams = [([], 0.0, False)] + [([], float("-inf"), False)] * (width - 1)
        for _ in range(net.config.max_target_len):
            inputs = torch.tensor([[vocab.SOS, *tokens] for tokens, _, _ in beams])
            n = len(beams)
            logits = net.decoder(
                inputs, memory[b : b + 1].expand(n, -1, -1), valid[b : b + 1].expand(n, -1)
            )
            logp = torch.log_softmax(logits[:, -1].float(), -1)
            candidates = []
            for (tokens, score, ended), row in zip(beams, logp, strict=True):
                for token in range(row.shape[0]):
                    if ended:
                        step = 0.0 if token == vocab.PAD else float("-inf")
                    else:
                        step = float(row[token]) + length_penalty
                    candidates.append((score + step, tokens + [token], ended or token == vocab.EOS))
            candidates.sort(key=lambda c: -c[0])
            beams = [(tokens, score, ended) for score, tokens, ended in candidates[:width]]
        out_tokens.append([tokens for tokens, _, _ in beams])
        out_scores.append([score for _, score, _ in beams])
    return torch.tensor(out_tokens), torch.tensor(out_scores)


@pytest.mark.parametrize("rotary", [False, True], ids=["positions", "rotary"])
@pytest.mark.parametrize("width", [1, 3, 6])
def test_beam_search_equals_a_plain_search_without_cache(width, rotary):
    # the cached keys of rotary positions are rotated once, at their own step
    net, x = tiny(decoder_rotary=rotary), frames()
    with torch.no_grad():
        tokens, scores = net.decoder.beam(*net.encode(x), width)
        want_tokens, want_scores = reference_beam(net, x, width)
        torch.testing.assert_close(scores, want_scores.float(), rtol=1e-4, atol=1e-4)
        assert torch.equal(tokens, want_tokens)
        if width == 1:  # the greedy loop's tokens
            assert torch.equal(tokens[:, 0], net.decoder.greedy(*net.encode(x))[0])
        else:  # the search finds phrases the greedy loop does not
            assert (tokens[:, 1:] != tokens[:, :1]).any()


def test_the_beam_keeps_the_earlier_hypothesis_and_the_lower_token_of_equal_scores():
    # the file's top-k (TFLite's TOPK_V2) orders equal values by index; torch.topk does not
    net, x = tie_tokens(tiny()), frames()
    with torch.no_grad():
        tokens, scores = net.decoder.beam(*net.encode(x), 4)
        want_tokens, _ = reference_beam(net, x, 4)  # Python's stable sort over (parent, token)
    assert (scores[:, 1:] == scores[:, :-1]).any()  # exact ties were met
    assert torch.equal(tokens, want_tokens)


@pytest.mark.parametrize("penalty", [-5.0, 5.0])
def test_the_beam_length_penalty_is_added_per_emitted_token(penalty):
    net, x = tiny(), frames()
    with torch.no_grad():
        net.decoder.head.bias[vocab.EOS] += 0.5  # the end token competes with the characters
        tokens, scores = net.decoder.beam(*net.encode(x), 3, length_penalty=penalty)
        want_tokens, want_scores = reference_beam(net, x, 3, length_penalty=penalty)
        plain, _ = net.decoder.beam(*net.encode(x), 3)
    torch.testing.assert_close(scores, want_scores.float(), rtol=1e-4, atol=1e-4)
    assert torch.equal(tokens, want_tokens)
    best = [len(vocab.decode(row[0].tolist())) for row in tokens]
    best_plain = [len(vocab.decode(row[0].tolist())) for row in plain]
    # a bonus per token (> 0) keeps the longer phrase first, a cost the shorter
    assert sum(best) > sum(best_plain) if penalty > 0 else sum(best) <= sum(best_plain)


def test_beam_decoding_picks_the_hypothesis_with_the_best_joint_score():
    net, x = tiny(), frames(b=4)
    net.config.beam_width = 5
    with torch.no_grad():
        encoded = Encoded(net, x)
        chosen = encoded.tokens("beam")
        tokens, score = net.decoder.beam(encoded.memory, encoded.valid, 5)
        probs = blank_after_end(
            torch.softmax(encoded.ctc_logits(), -1), frames_inside(encoded.valid)
        )
    slots = torch.arange(tokens.shape[-1], dtype=torch.float32)
    picked = []
    for b in range(x.shape[0]):
        totals = []
        for h in range(5):
            row = tokens[b, h]
            ended = torch.cumsum(row == vocab.EOS, 0) > 0
            phrase = compact(
                row.float(), ((row < vocab.NUM_CHARACTERS) & ~ended).float(), slots, slots
            )
            total = score[b, h] + ctc_log_likelihood(probs[b : b + 1], phrase[None, None])[0, 0]
            totals.append((float(total), -h, phrase))
        picked.append(max(totals, key=lambda t: t[:2])[2])
    assert torch.equal(chosen, torch.stack(picked).long())
    assert len({vocab.decode(r.tolist()) for r in chosen}) > 1  # the phrases depend on the input


def test_without_the_ctc_head_the_beam_reads_its_best_hypothesis_in_pytorch_and_the_twin():
    net, x = tiny(ctc=False), frames(b=3)
    net.config.beam_width, net.config.beam_length_penalty = 4, 0.5
    with torch.no_grad():
        tokens, _ = net.decoder.beam(*net.encode(x), 4, length_penalty=0.5)
        chosen = net.decode(x, "beam")
        twin = KaggleModel(net, "beam")
        for b in range(3):
            raw = x[b][~torch.isnan(x[b]).all(-1)]  # the frames as Kaggle gives them
            rows = twin(raw)["outputs"]
            assert vocab.decode_kaggle(rows.argmax(1).numpy()) == vocab.decode(chosen[b].tolist())
    assert torch.equal(chosen, tokens[:, 0])


def test_joint_step_is_the_attention_greedy_loop_at_weight_0_and_follows_a_sure_ctc_head_at_1(
    monkeypatch,
):
    net, x = tiny(), frames()
    with torch.no_grad():
        mixed = net.decode(x, "joint_step")  # at the default weight: the CTC head steers
        assert not torch.equal(mixed, net.decode(x, "attention"))
        monkeypatch.setattr(joint_step, "PREFIX_CTC_WEIGHT", 0.0)
        assert torch.equal(net.decode(x, "joint_step"), net.decode(x, "attention"))
        net.ctc.weight.mul_(200.0)  # each frame's class all but certain
        net.ctc.bias.mul_(200.0)
        monkeypatch.setattr(joint_step, "PREFIX_CTC_WEIGHT", 1.0)
        got = [vocab.decode(r.tolist()) for r in net.decode(x, "joint_step")]
        want = [vocab.decode(r.tolist())[:8] for r in net.decode(x, "ctc")]  # 8 steps
    assert got == want and any(want)


def test_first_best_picks_the_first_of_equal_scores():
    scores = torch.tensor([[1.0, 3.0, 3.0, 2.0], [5.0, 5.0, 5.0, 5.0], [0.0, -1.0, -2.0, -3.0]])
    expected = torch.tensor([[0.0, 1, 0, 0], [1, 0, 0, 0], [1, 0, 0, 0]])
    assert torch.equal(first_best(scores), expected)


def _onehot(tokens: list[int]) -> np.ndarray:
    out = np.zeros((len(tokens), vocab.VOCAB_SIZE), np.float32)
    out[np.arange(len(tokens)), tokens] = 5.0
    return out


@pytest.mark.parametrize(
    "picked, diverged_at, compared_rows",
    [
        ([5, 6, vocab.EOS, vocab.PAD, vocab.PAD], None, 3),  # same; rows after the end ignored
        ([5, vocab.EOS, vocab.PAD, vocab.PAD, vocab.PAD], 1, 2),  # TFLite ends early
        ([5, 6, 7, 8, vocab.EOS], 2, 3),  # TFLite ends late
        ([9, 6, vocab.EOS, vocab.PAD, vocab.PAD], 0, 1),  # first token differs
    ],
)
def test_attention_parity_stops_at_the_first_different_token(picked, diverged_at, compared_rows):
    ref_tokens = np.array([5, 6, vocab.EOS, vocab.PAD, vocab.PAD])
    ref_logits = _onehot(ref_tokens.tolist())
    steps = np.arange(5)
    # where TFLite picks another token, it was PyTorch's runner-up (4.9 vs 5.0) ...
    ref_logits[steps, picked] = np.maximum(ref_logits[steps, picked], 4.9)
    out = ref_logits.copy()
    out[steps, picked] = 5.05  # ... which TFLite's slightly different logits put first
    out[compared_rows:] += 3.0  # rows that must not be compared: a large difference
    row = compare_steps(7, out, ref_tokens, ref_logits)
    assert row.diverged_at == diverged_at
    assert row.same_text == (diverged_at is None)
    assert row.max_diff == pytest.approx(0.05 if diverged_at is None else 0.15, abs=1e-5)
    assert row.margin == pytest.approx(0.0 if diverged_at is None else 0.1, abs=1e-5)


def test_ctc_parity_compares_frame_by_frame_and_never_excuses_a_character_past_the_end():
    a, b, c = (vocab.CHAR_TO_INDEX[ch] for ch in "abc")
    ref_tokens = np.array([a, vocab.PAD, b, vocab.PAD, vocab.PAD, vocab.PAD])  # 6 padded frames
    ref_logits = _onehot(ref_tokens.tolist())
    ref_logits[:, c] = 4.9  # every frame's runner-up, 0.1 behind
    # the graph's rows for a 4-frame input: T + 1 rows, logits where a character is emitted
    out = np.zeros((5, vocab.VOCAB_SIZE), np.float32)
    out[:, vocab.PAD] = 1e4
    out[0], out[2] = ref_logits[0] + 0.01, ref_logits[2] + 0.02
    row = compare_frames(4, out, ref_tokens, ref_logits)
    assert (row.same_text, row.diverged_at) == (True, None)
    assert row.max_diff == pytest.approx(0.02, abs=1e-6)  # compared where both emit
    flipped = out.copy()
    flipped[2, c] = 5.05  # TFLite's frame 2 prefers PyTorch's runner-up
    row = compare_frames(4, flipped, ref_tokens, ref_logits)
    assert (row.same_text, row.diverged_at) == (False, 2)
    assert row.margin == pytest.approx(0.1, abs=1e-6)  # frames 1 and 2 decide the emission
    assert row.max_diff == pytest.approx(0.01, abs=1e-6)  # frames before it only
    assert ParityReport([row], 0.5, allow_near_ties=True).ok
    assert not ParityReport([row], 0.05, allow_near_ties=True).ok
    late = out.copy()
    late[4] = 0.0
    late[4, c] = 1.0  # a character in the appended row, after the input's last frame
    row = compare_frames(4, late, ref_tokens, ref_logits)
    assert (row.same_text, row.diverged_at, row.margin) == (False, 4, float("inf"))
    assert not ParityReport([row], 0.5, allow_near_ties=True).ok
    assert DECODINGS["ctc"].near_ties("fp32") and not DECODINGS["attention"].near_ties("fp32")


def test_a_phrase_route_excuses_only_a_phrase_a_near_tie_away():
    # the joint and beam files hold one-hot phrases: a different phrase is excused when the
    # network itself reads it with its weights nudged by a little noise (a near tie tipped by
    # rounding), never an unrelated one
    net = tiny()
    for seed in range(20):  # an input where a nudge of 1e-2 tips the joint phrase
        torch.manual_seed(seed)
        x = torch.rand(1, 16, 12)
        nudged = copy.deepcopy(net)
        noise = torch.Generator().manual_seed(0)
        with torch.no_grad():
            for p in nudged.parameters():
                p.mul_(1.0 + NUDGES[-1] * torch.randn(p.shape, generator=noise))
            tipped = nudged.decode(x, "joint")[0]
            if not torch.equal(tipped, net.decode(x, "joint")[0]):
                break
    else:
        pytest.fail("no input where the nudge changes the phrase")
    with torch.no_grad():
        margin = nudged_margin(Encoded(net, x), x, "joint", vocab.decode(tipped.tolist()))
        assert 0.0 < margin < 0.05
        assert nudged_margin(Encoded(net, x), x, "joint", "zq zq zq") == float("inf")
        rows = np.eye(vocab.VOCAB_SIZE, dtype=np.float32)[tipped.numpy()] * 1e4
        row = DECODINGS["joint"].parity_row(net, 16, rows, x)
    assert not row.same_text and row.margin == margin
    assert ParityReport([row], 0.05, allow_near_ties=True).ok
    assert not ParityReport([row], 0.05, allow_near_ties=False).ok
    assert not ParityReport([row], margin / 2, allow_near_ties=True).ok
