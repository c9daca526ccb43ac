"""RevNet on the reversible engine: gradients, presets, construction."""
import copy

import pytest
import torch
from mmpretrain.registry import MODELS
from torch import nn

from mmrevode.models import RevNet, RevNetBlock
from mmrevode.models.blocks import PreActResidual

TINY = dict(blocks=[2, 2], widths=[8, 12])
TINY_BOTTLENECK = dict(blocks=[2, 2], widths=[16, 24],
                       block_type='bottleneck')


def relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


def make_pair(arch, **kwargs):
    torch.manual_seed(0)
    reversible = RevNet(arch, out_indices=(0, 1), mode='reversible',
                        **kwargs)
    reversible.init_weights()
    # Non-trivial norm parameters, so that the check covers them.
    for module in reversible.modules():
        if isinstance(module, nn.BatchNorm2d):
            nn.init.uniform_(module.weight, 0.5, 1.5)
            nn.init.uniform_(module.bias, -0.2, 0.2)
    reversible = reversible.double().train()
    plain = copy.deepcopy(reversible)
    plain.set_mode('plain')
    return reversible, plain


def train_step(model, x, weights):
    model.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    outs = model(x)
    sum((out * w).sum() for out, w in zip(outs, weights)).backward()
    return outs, x.grad, {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize('arch', [TINY, TINY_BOTTLENECK],
                         ids=['basic', 'bottleneck'])
def test_reversible_matches_plain_autograd_in_float64(arch):
    reversible, plain = make_pair(arch)
    torch.manual_seed(1)
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    weights = [
        torch.randn(3, 8 if arch is TINY else 16, 8, 8, dtype=torch.float64),
        torch.randn(3, 12 if arch is TINY else 24, 4, 4, dtype=torch.float64)
    ]
    outs_r, gx_r, gp_r = train_step(reversible, x, weights)
    outs_p, gx_p, gp_p = train_step(plain, x, weights)
    for out_r, out_p in zip(outs_r, outs_p):
        assert torch.equal(out_r, out_p)
    assert relative_error(gx_r, gx_p) < 1e-8
    assert set(gp_r) == set(gp_p)
    for name, grad in gp_p.items():
        assert grad is not None, name
        assert relative_error(gp_r[name], grad) < 1e-8, name
    buffers_p = dict(plain.named_buffers())
    for name, buf in reversible.named_buffers():
        assert torch.equal(buf, buffers_p[name]), name
    # The reversible run really went through the custom function.
    assert _reaches_reversible_function(reversible(x)[-1].grad_fn)
    assert not _reaches_reversible_function(plain(x)[-1].grad_fn)


def _reaches_reversible_function(fn, depth=0):
    if fn is None or depth > 50:
        return False
    if type(fn).__name__ == 'ReversibleFunctionBackward':
        return True
    return any(
        _reaches_reversible_function(f, depth + 1)
        for f, _ in fn.next_functions)


@pytest.mark.parametrize('block_type', ['basic', 'bottleneck'])
def test_block_inverse_reconstructs_its_input(block_type):
    torch.manual_seed(0)
    block = RevNetBlock(16, block_type=block_type).double().eval()
    x1, x2 = block.split(torch.randn(2, 16, 5, 5, dtype=torch.float64))
    y1, y2 = block(x1, x2)
    assert torch.equal(y1, x1 + block.f(x2))
    assert torch.equal(y2, x2 + block.g(y1))
    r1, r2 = block.inverse(y1, y2)
    assert relative_error(r1, x1) < 1e-12
    assert relative_error(r2, x2) < 1e-12
    assert torch.equal(block.merge(x1, x2).chunk(2, 1)[0], x1)


def test_block_steps_are_the_revnet_table_row():
    block = RevNetBlock(8)
    steps = block.shift_steps()
    assert [(s.alpha, s.beta, s.gamma) for s in steps] == [(1.0, 0.0, 1.0),
                                                           (1.0, 0.0, 1.0)]
    assert steps[0].fn is block.f and steps[1].fn is block.g
    assert RevNetBlock(8, h=0.5).shift_steps()[1].gamma == 0.5


def test_residual_functions_layout():
    basic = PreActResidual(8, 'basic')
    convs = [m for m in basic.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0])
            for c in convs] == [(8, 8, 3), (8, 8, 3)]
    assert isinstance(basic.layers[0], nn.BatchNorm2d)  # pre-activation
    bottleneck = PreActResidual(16, 'bottleneck')
    convs = [m for m in bottleneck.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size[0])
            for c in convs] == [(16, 4, 1), (4, 4, 3), (4, 16, 1)]
    assert all(c.bias is None for c in convs)
    plain_start = PreActResidual(8, 'basic', preact=False)
    assert isinstance(plain_start.layers[0], nn.Conv2d)
    assert len(plain_start.layers) == len(basic.layers) - 2
    no_norm = PreActResidual(8, 'basic', norm_cfg=None)
    assert all(m.bias is not None for m in no_norm.modules()
               if isinstance(m, nn.Conv2d))
    with pytest.raises(ValueError, match='block_type'):
        PreActResidual(8, 'wide')
    with pytest.raises(ValueError, match='at least 4'):
        PreActResidual(2, 'bottleneck')


def test_only_the_first_f_of_a_unit_starts_without_preactivation():
    model = RevNet(dict(blocks=[2, 2], widths=[8, 16]))
    for unit in model.units:
        assert not unit.blocks[0].f.preact
        assert unit.blocks[0].g.preact
        assert unit.blocks[1].f.preact and unit.blocks[1].g.preact
    model = RevNet(TINY, block_cfg=dict(f_preact=True))
    assert all(b.f.preact for u in model.units for b in u.blocks)


@pytest.mark.parametrize('f_preact, bound', [(None, 1e-5), (True, None)])
def test_float32_gradients_after_zero_padded_transitions(f_preact, bound):
    """A unit's input has zero-padded channels. Fed straight into a batch
    norm (zero variance), the reconstruction's round-off would be amplified
    by 1 / sqrt(eps) and land on the ReLU's kink: hence no pre-activation in
    the first F of a unit by default."""
    torch.manual_seed(0)
    reversible = RevNet(
        dict(blocks=[3, 3], widths=[8, 16]),
        block_cfg=dict(f_preact=f_preact))
    reversible.init_weights()
    plain = copy.deepcopy(reversible)
    plain.set_mode('plain')
    x = torch.randn(8, 3, 8, 8)
    weight = torch.randn(8, 16, 4, 4)
    grads = []
    for model in (reversible, plain):
        (model(x)[-1] * weight).sum().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    error = relative_error(*grads)
    if bound is not None:
        assert error < bound
    else:
        assert error > 1e-3  # the failure the default avoids


def num_params(module):
    return sum(p.numel() for p in module.parameters())


# Backbone parameters (stem, units, final norm; no classifier head), and the
# number of convolutions + 1 (the classifier) = RevNet's depth.
PRESETS = {
    '38': (480368, 38, 'basic', 112),
    '110': (1750848, 110, 'basic', 128),
    '164': (1673088, 164, 'bottleneck', 512),
}


@pytest.mark.parametrize('arch', sorted(PRESETS))
def test_presets(arch):
    params, depth, block_type, width = PRESETS[arch]
    model = RevNet(arch)
    assert num_params(model) == params
    convs = sum(isinstance(m, nn.Conv2d) for m in model.modules())
    assert convs + 1 == depth
    assert model.block_type == block_type
    assert all(b.block_type == block_type for u in model.units
               for b in u.blocks)
    assert model.widths[-1] == width
    assert model.pad_groups == 2
    assert RevNet(int(arch)).arch == model.arch


def test_arch_dict_block_type_and_block_cfg_override():
    model = RevNet(dict(blocks=[1, 1], widths=[16, 32]))
    assert model.block_type == 'basic'
    model = RevNet(TINY_BOTTLENECK)
    assert model.block_type == 'bottleneck'
    model = RevNet('164', block_cfg=dict(block_type='basic'))
    assert model.block_type == 'basic'
    assert isinstance(model.units[0].blocks[0].g.layers[2], nn.Conv2d)
    assert model.units[0].blocks[0].g.layers[2].kernel_size == (3, 3)
    with pytest.raises(ValueError, match='block_type'):
        RevNet(dict(blocks=[1], widths=[8], block_type='wide'))
    with pytest.raises(ValueError, match='divisible by 2'):
        RevNet(dict(blocks=[1, 1], widths=[8, 13]))
    with pytest.raises(ValueError, match='unknown arch'):
        RevNet('56')


def test_forward_shapes_and_transitions_keep_the_halves_apart():
    model = RevNet(TINY, out_indices=(0, 1), out_norm=False).eval()
    x = torch.randn(2, 3, 8, 8)
    outs = model(x)
    assert [tuple(o.shape) for o in outs] == [(2, 8, 8, 8), (2, 12, 4, 4)]
    padded = model.transitions[0](outs[0])
    # Each half of 4 channels is padded to 6: zeros at 4-5 and 10-11.
    assert torch.count_nonzero(padded[:, 4:6]) == 0
    assert torch.count_nonzero(padded[:, 10:12]) == 0


def test_registry_frozen_stages_and_norm_eval():
    model = MODELS.build(
        dict(type='RevNet', arch=TINY, frozen_stages=1, norm_eval=True))
    assert isinstance(model, RevNet)
    model.train()
    assert not any(p.requires_grad for p in model.stem.parameters())
    assert not any(p.requires_grad for p in model.units[0].parameters())
    assert all(p.requires_grad for p in model.units[1].parameters())
    assert not any(m.training for m in model.modules()
                   if isinstance(m, nn.BatchNorm2d))
    model(torch.randn(2, 3, 8, 8))[-1].sum().backward()
    assert model.units[1].blocks[0].g.layers[2].weight.grad is not None


def test_state_dict_is_the_same_in_both_modes():
    keys_r = set(RevNet(TINY, mode='reversible').state_dict())
    keys_p = set(RevNet(TINY, mode='plain').state_dict())
    assert keys_r == keys_p
