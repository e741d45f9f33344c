"""The network's settings: the seed design's size, and the settings refused by name."""

import pytest

from aslfs_pl.model.config import ModelConfig
from aslfs_pl.model.seq2seq import Seq2Seq


def test_seed_config_parameter_count():
    m = Seq2Seq(ModelConfig())
    assert 13_000_000 < m.num_parameters() < 14_500_000


def test_config_validation():
    with pytest.raises(ValueError, match="divisible"):
        ModelConfig(dim=30, heads=4)
    refused = [
        ({"num_columns": 175}, "model.num_columns 175 is not a multiple of num_axes 2"),
        ({"dim": 33, "heads": 3}, "model.dim 33 must be even"),
        ({"window": 0}, "model.window 0 must be >= 1"),
        ({"dropout": 1.0}, r"model.dropout 1.0 must lie in \[0, 1\)"),
        ({"drop_path": -0.1}, r"model.drop_path -0.1 must lie in \[0, 1\)"),
        ({"encoder": "lstm"}, "model.encoder 'lstm': one of seed, conformer, squeezeformer"),
        ({"block_kernel": 4}, "model.block_kernel 4 must be odd"),
        ({"time_reduction": 0}, "model.time_reduction 0 must be >= 1"),
        (
            {"encoder": "squeezeformer", "encoder_blocks": 2},
            "model.time_reduction 2 needs model.encoder_blocks >= 3",
        ),
        ({"rotary": True, "dim": 36, "heads": 4}, "model.rotary needs an even head width"),
        (
            {"decoder_rotary": True, "dim": 36, "heads": 4},
            "model.decoder_rotary needs an even head width",
        ),
        ({"beam_width": 0}, "model.beam_width 0 must be >= 1"),
        ({"beam_width": 100}, "model.beam_width 100 is more than the 62 classes"),
    ]
    for settings, complaint in refused:
        with pytest.raises(ValueError, match=complaint):
            ModelConfig(**settings)


def test_settings_of_other_families_are_accepted_where_they_do_nothing():
    # a conformer ignores the seed encoder's window; a two-block conformer needs no reduction
    ModelConfig(encoder="conformer", encoder_blocks=2, window=1)
    ModelConfig(encoder="squeezeformer", encoder_blocks=2, time_reduction=1)
