import pytest
import torch

from stereo_depth_ros.models.unet import UNet, UNetConfig, build_unet


@pytest.mark.parametrize(
    ("config", "size"),
    [
        (UNetConfig(), (120, 160)),
        (UNetConfig(image_mode="rgb", use_confidence=True, levels=3, base_channels=8), (37, 53)),
        (UNetConfig(use_valid=False, batch_norm=False, dropout=0.0), (64, 64)),
    ],
)
def test_output_is_one_logit_per_input_pixel(config, size):
    torch.manual_seed(0)
    net = UNet(config).eval()
    x = torch.randn(2, config.in_channels, *size)
    y = net(x)
    assert y.shape == (2, 1, *size)
    assert torch.isfinite(y).all()


def test_in_channels_follow_the_input_description():
    assert UNetConfig(image_mode="gray", use_valid=False, use_relative=False).in_channels == 2
    assert UNetConfig(image_mode="rgb", use_valid=True, use_confidence=True).in_channels == 7


def test_wrong_channel_count_is_a_clear_error():
    net = UNet(UNetConfig())
    with pytest.raises(ValueError, match="expects"):
        net(torch.zeros(1, 5, 32, 32))


def test_builder_round_trips_the_config_dict():
    cfg = UNetConfig(image_mode="rgb", base_channels=8, levels=3)
    net = build_unet(cfg.to_dict())
    assert net.config == cfg
    with pytest.raises(ValueError, match="unknown"):
        build_unet({"bogus": 1})
    with pytest.raises(ValueError, match="image_mode"):
        UNetConfig(image_mode="depth")


def test_skip_connections_carry_full_resolution_detail():
    # A one-pixel change in the input must change the output at that pixel's neighbourhood
    # (an encoder-only network with 3 poolings would smear it over 8x8 blocks).
    torch.manual_seed(0)
    net = UNet(UNetConfig(dropout=0.0, batch_norm=False)).eval()
    x = torch.zeros(1, net.config.in_channels, 32, 32)
    base = net(x)
    x[0, 0, 16, 16] = 5.0
    diff = (net(x) - base).abs()[0, 0]
    assert diff[16, 16] > 0
    assert diff[15:18, 15:18].sum() > diff[:4, :4].sum()
