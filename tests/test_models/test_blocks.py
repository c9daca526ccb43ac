import pytest
import torch

from mmpretrain.models.backbones.resnet import BasicBlock
from torch import nn

from mmrevode.models.blocks import (AntisymmetricConvLayer, HamiltonianBlock,
                                    LeapfrogBlock, MidpointBlock, RevNetBlock,
                                    SymmetricConvLayer, right_hand_side)

BLOCKS = [
    (HamiltonianBlock, dict(h=0.1)),
    (MidpointBlock, dict(h=0.1, block_index=0)),
    (MidpointBlock, dict(h=0.1, block_index=3)),
    (LeapfrogBlock, dict(h=0.1)),
]


def make_pair_input(block_cls, channels, dtype):
    shape = (4, channels // 2 if block_cls is HamiltonianBlock else channels,
             8, 8)
    return torch.randn(*shape, dtype=dtype), torch.randn(*shape, dtype=dtype)


@pytest.mark.parametrize('block_cls,kwargs', BLOCKS)
def test_inverse_recovers_the_input_in_float64(block_cls, kwargs):
    torch.manual_seed(0)
    block = block_cls(16, **kwargs).double().train()
    a, b = make_pair_input(block_cls, 16, torch.float64)
    with torch.no_grad():
        a_rec, b_rec = block.inverse(*block(a, b))
    assert ((a_rec - a).norm() / a.norm()).item() < 1e-10
    assert ((b_rec - b).norm() / b.norm()).item() < 1e-10


@pytest.mark.parametrize('block_cls,kwargs', BLOCKS)
def test_inverse_error_in_float32_is_round_off(block_cls, kwargs):
    torch.manual_seed(0)
    block = block_cls(16, **kwargs).train()
    a, b = make_pair_input(block_cls, 16, torch.float32)
    with torch.no_grad():
        a_rec, b_rec = block.inverse(*block(a, b))
    error = max(((a_rec - a).norm() / a.norm()).item(),
                ((b_rec - b).norm() / b.norm()).item())
    print(f'{block_cls.__name__} {kwargs}: float32 reconstruction error '
          f'{error:.1e}')
    assert error < 1e-5


def test_hamiltonian_block_equations():
    torch.manual_seed(0)
    block = HamiltonianBlock(8, h=0.3).double().eval()
    y, z = torch.randn(2, 2, 4, 5, 5, dtype=torch.float64)
    with torch.no_grad():
        y1, z1 = block(y, z)
        expected_y1 = y + 0.3 * block.f1(z)
        expected_z1 = z - 0.3 * block.f2(expected_y1)
    torch.testing.assert_close(y1, expected_y1)
    torch.testing.assert_close(z1, expected_z1)


def test_midpoint_first_block_is_forward_euler():
    first = MidpointBlock(4, h=0.2, block_index=0)
    later = MidpointBlock(4, h=0.2, block_index=1)
    assert first.shift_steps()[0].gamma == pytest.approx(0.2)
    assert later.shift_steps()[0].gamma == pytest.approx(0.4)
    x = torch.randn(2, 4, 5, 5)
    a, b = first.split(x)
    assert a is x and b is x


def test_leapfrog_starts():
    x = torch.randn(2, 4, 5, 5)
    rest = LeapfrogBlock(4, start='rest')
    zero = LeapfrogBlock(4, start='zero')
    assert rest.split(x)[0] is x
    assert torch.equal(zero.split(x)[0], torch.zeros_like(x))
    step = rest.shift_steps()[0]
    assert (step.alpha, step.beta) == (-1.0, 2.0)
    assert step.gamma == pytest.approx(-rest.h**2)
    with pytest.raises(ValueError, match="'rest', 'zero'"):
        LeapfrogBlock(4, start='still')


@pytest.mark.parametrize('block_cls,functions', [
    (HamiltonianBlock, {'f1', 'f2'}),
    (MidpointBlock, {'f'}),
    (LeapfrogBlock, {'f'}),
    (RevNetBlock, {'f', 'g'}),
])
def test_blocks_share_the_constructor_of_their_base(block_cls, functions):
    block = block_cls(8)
    assert block.h == block_cls.default_h
    assert {key.split('.')[0] for key in block.state_dict()} == functions
    # channels, h, norm_cfg and act_cfg may be given by position.
    plain = block_cls(8, 0.5, None, dict(type='Tanh'))
    assert plain.h == 0.5
    modules = list(plain.modules())
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in modules)
    assert any(isinstance(m, torch.nn.Tanh) for m in modules)


def test_hamiltonian_block_needs_even_channels():
    with pytest.raises(ValueError, match='channels=7 is odd'):
        HamiltonianBlock(7)


def test_symmetric_layer_uses_the_adjoint_of_its_convolution():
    torch.manual_seed(0)
    layer = SymmetricConvLayer(
        3, norm_cfg=None, act_cfg=dict(type='ReLU')).double()
    # With the identity in place of the activation, <F x, y> = <K x, K y>.
    layer.act = torch.nn.Identity()
    layer.conv.bias.data.zero_()
    x, y = torch.randn(2, 2, 3, 6, 6, dtype=torch.float64)
    lhs = (layer(x) * y).sum()
    rhs = (layer.conv(x) * layer.conv(y)).sum()
    torch.testing.assert_close(lhs, rhs)
    assert sum(p.numel() for p in layer.parameters()) == 3 * 3 * 9 + 3


def test_antisymmetric_layer_operator_is_antisymmetric():
    torch.manual_seed(0)
    layer = AntisymmetricConvLayer(4, norm_cfg=None).double()
    layer.act = torch.nn.Identity()
    layer.conv.bias.data.zero_()
    x, y = torch.randn(2, 2, 4, 6, 6, dtype=torch.float64)
    # <A x, y> = -<x, A y> and <A x, x> = 0 for A = K - K^T.
    torch.testing.assert_close((layer(x) * y).sum(), -(x * layer(y)).sum())
    assert abs((layer(x) * x).sum().item()) < 1e-10


def test_each_block_states_its_right_hand_side():
    torch.manual_seed(0)
    a, b = torch.randn(2, 1, 4, 3, 3, dtype=torch.float64)
    leapfrog = LeapfrogBlock(4, h=0.5).double().eval()
    rhs, (y, v) = right_hand_side(leapfrog, (a, b))
    assert torch.equal(y, b) and torch.allclose(v, (b - a) / 0.5)
    dy, dv = rhs((y, v))
    assert torch.equal(dy, v) and torch.equal(dv, -leapfrog.f(y))
    midpoint = MidpointBlock(4).double().eval()
    rhs, point = right_hand_side(midpoint, (a, b))
    assert len(point) == 1 and torch.equal(point[0], b)
    assert torch.equal(rhs(point)[0], midpoint.f(b))
    revnet = RevNetBlock(8).double().eval()
    rhs, point = right_hand_side(revnet, (a, b))
    assert all(map(torch.equal, rhs(point), (revnet.f(b), revnet.g(a))))
    residual = BasicBlock(4, 4).double().eval()
    rhs, point = right_hand_side(residual, (a, ))
    expected = residual.norm2(residual.conv2(residual.relu(
        residual.norm1(residual.conv1(a)))))
    assert torch.equal(rhs(point)[0], expected)
    with pytest.raises(TypeError, match='No right-hand side is known for '
                       'Conv2d'):
        right_hand_side(nn.Conv2d(4, 4, 3), (a, ))


@pytest.mark.parametrize('block_cls, kwargs, layers', [
    (HamiltonianBlock, {}, 4), (MidpointBlock, {}, 2), (LeapfrogBlock, {}, 2),
    (RevNetBlock, {}, 4), (RevNetBlock, dict(block_type='bottleneck'), 6)
])
def test_each_block_states_its_layers(block_cls, kwargs, layers):
    block = block_cls(16, **kwargs)
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    # K and K^T of one convolution count twice, as in the paper
    uses = 2 if isinstance(block, (HamiltonianBlock, MidpointBlock,
                                   LeapfrogBlock)) else 1
    assert block.num_layers == layers == uses * len(convs)
