"""Networks: shapes over leading dims, exact conv output sizes, log-variance floor."""

from __future__ import annotations

import math

import pytest
import torch

from pyromim.nn import MLP, ConvDecoder, ConvEncoder, GaussianHead


@pytest.mark.parametrize("norm", ["none", "layer", "batch"])
def test_mlp_shapes_over_leading_dims(norm):
    net = MLP((2, 3), (4, 5), hidden=[7, 8], activation="relu", norm=norm)
    assert net(torch.randn(3, 6, 2, 3)).shape == (3, 6, 4, 5)


def test_mlp_leading_dims_do_not_mix_data():
    net = MLP((3,), (2,), hidden=[5])
    x = torch.randn(4, 6, 3)
    torch.testing.assert_close(net(x)[2, 1], net(x[2, 1:2])[0])


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 8, 8), (2, 7, 9)])
def test_conv_encoder_decoder_reproduce_any_image_size(shape):
    enc, dec = ConvEncoder(shape, 16), ConvDecoder(5, (4,) + shape[1:])
    assert enc(torch.randn(2, 3, *shape)).shape == (2, 3, 16)
    assert dec(torch.randn(2, 3, 5)).shape == (2, 3, 4) + shape[1:]


def test_gaussian_head_floor_and_gradient():
    head = GaussianHead(3, 2, min_scale=math.exp(-3.0))
    with torch.no_grad():
        head.linear.bias.copy_(torch.tensor([0.0, 0.0, -10.0, 1.0]))
        head.linear.weight.zero_()
    loc, scale = head(torch.zeros(4, 3))
    # sigma = exp(raw) + min_scale: the reference code's floored scale
    torch.testing.assert_close(scale[:, 0], torch.full((4,), math.exp(-10.0) + math.exp(-3.0)))
    torch.testing.assert_close(scale[:, 1], torch.full((4,), math.e + math.exp(-3.0)))
    assert (2 * scale.log() > -6.0).all()
    (loc.sum() + scale.sum()).backward()
    assert head.linear.bias.grad[:2].abs().sum() > 0
    # below the floor the gradient is exp(raw), not cut off as by a clamp
    torch.testing.assert_close(head.linear.bias.grad[2], torch.tensor(4 * math.exp(-10.0)))


def test_unknown_activation_is_named():
    with pytest.raises(ValueError, match="unknown activation 'tanhh'"):
        MLP((2,), (2,), hidden=[3], activation="tanhh")


@pytest.mark.parametrize("activation", ["tanh", "relu", "elu", "silu", "gelu"])
@pytest.mark.parametrize("activate_output", [False, True])
def test_mlp_without_gradients_gives_the_same_values_and_leaves_its_input(activation, activate_output):
    # without gradients the activations run in place (less memory); values are the same bit for bit
    torch.manual_seed(0)
    net = MLP((3,), (2,), hidden=(16, 8), activation=activation, activate_output=activate_output)
    x = torch.randn(4, 5, 3)
    kept = x.clone()
    expected = net(x).detach()
    with torch.no_grad():
        assert torch.equal(net(x), expected)
    with torch.inference_mode():
        assert torch.equal(net(x), expected)
    assert torch.equal(x, kept)
