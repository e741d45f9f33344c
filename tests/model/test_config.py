"""The network's settings: the seed design's size, and the settings refused by name."""

import pytest

from aslfs_pl.model.config import ModelConfig, legacy_hint, upgrade_settings
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
        ({"encoder_conf": {"window": 0}}, "model.encoder_conf.window 0 must be >= 1"),
        ({"dropout": 1.0}, r"model.dropout 1.0 must lie in \[0, 1\)"),
        ({"drop_path": -0.1}, r"model.drop_path -0.1 must lie in \[0, 1\)"),
        (
            {"encoder": "lstm"},
            "model.encoder .lstm.: one of conformer, conv_transformer, local_glo",
        ),
        ({"stem": "mlp"}, "model.stem 'mlp': one of conv_eca"),
        (
            {"encoder": "conformer", "encoder_conf": {"kernel": 4}},
            "model.encoder_conf.kernel 4 must be odd",
        ),
        (
            {"encoder": "squeezeformer", "encoder_conf": {"time_reduction": 0}},
            "model.encoder_conf.time_reduction 0 must be >= 1",
        ),
        (
            {"encoder": "squeezeformer", "encoder_blocks": 2},
            "model.encoder_conf.time_reduction 2 needs model.encoder_blocks >= 3",
        ),
        (
            {"encoder": "conformer", "encoder_conf": {"window": 1}},
            r"model.encoder_conf.window: not a setting of the conformer encoder family \(its "
            r"settings: kernel, post_norm; over a config that names another, give "
            r"model.encoder_conf whole",
        ),
        ({"stem_conf": {"expand": 0}}, "model.stem_conf.expand 0 must be >= 1"),
        ({"rotary": True, "dim": 36, "heads": 4}, "model.rotary needs an even head width"),
        (
            {"decoder_rotary": True, "dim": 36, "heads": 4},
            "model.decoder_rotary needs an even head width",
        ),
        ({"beam_width": 0}, "model.beam_width 0 must be >= 1"),
        ({"decoder_mlp": -1}, "model.decoder_mlp -1 must be >= 0"),
        ({"beam_width": 100}, "model.beam_width 100 is more than the 62 classes"),
    ]
    for settings, complaint in refused:
        with pytest.raises(ValueError, match=complaint):
            ModelConfig(**settings)


def test_the_decoder_mlp_width_is_its_own_setting():
    net = Seq2Seq(ModelConfig(dim=32, heads=2, mlp_ratio=2, decoder_blocks=1, decoder_mlp=52))
    assert net.decoder.blocks[0].mlp.fc1.out_features == 52
    assert net.encoder.blocks[0].mlp.fc1.out_features == 64  # the encoder keeps mlp_ratio


def test_a_family_reads_its_own_settings_over_its_defaults():
    config = ModelConfig(encoder="squeezeformer", encoder_conf={"kernel": 7})
    assert (config.encoder_settings.kernel, config.encoder_settings.time_reduction) == (7, 2)
    assert ModelConfig().stem_settings.kernel == 17
    # the seed's family under its older name
    assert ModelConfig(encoder="seed").encoder_settings == ModelConfig().encoder_settings


def test_older_flat_settings_move_to_the_part_that_has_them():
    old = {"encoder": "conformer", "block_kernel": 15, "window": 16, "time_reduction": 2}
    old |= {"conv_blocks": 2, "conv_kernel": 11, "conv_expand": 2, "local_layers": 3}
    new = upgrade_settings(old)
    assert new == {
        "encoder": "conformer",
        "encoder_conf": {"kernel": 15},  # window, time_reduction, local_layers did nothing
        "stem_conf": {"blocks": 2, "kernel": 11, "expand": 2},
    }
    assert upgrade_settings({"encoder": "seed", "window": 8})["encoder_conf"] == {"window": 8}
    assert upgrade_settings({"dim": 32}) == {"dim": 32}  # today's pass through
    assert legacy_hint("block_kernel") == (
        "model.block_kernel is a part's own setting now: write model.encoder_conf.kernel "
        "(model.encoder conformer or squeezeformer)"
    )
    assert legacy_hint("dim") is None
