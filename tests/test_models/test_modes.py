"""Execution modes: every mode and per-unit (per-block) list of modes gives
plain autograd's outputs, gradients and batch-norm statistics."""
import copy

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

import mmrevode  # noqa: F401
from mmrevode.models import (CifarResNet, HamiltonianNet, LeapfrogNet,
                             MidpointNet, ReversibleSequence, RevNet)

SMALL = dict(blocks=[2, 1, 2], widths=[8, 16, 32])
BACKBONES = [HamiltonianNet, MidpointNet, LeapfrogNet, RevNet]
MODES = [
    'reversible', 'checkpoint', ['reversible', 'plain', 'checkpoint'],
    ['plain', 'reversible', 'reversible'], ['checkpoint', 'plain', 'plain']
]


def train_step(model, x, weights):
    model.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    outs = model(x)
    sum((out * w).sum() for out, w in zip(outs, weights)).backward()
    grads = {n: p.grad for n, p in model.named_parameters()}
    return outs, x.grad, grads


def relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


def tracked_batches(model):
    return {
        name: m.num_batches_tracked.item()
        for name, m in model.named_modules() if isinstance(m, _BatchNorm)
    }


@pytest.mark.parametrize('exact', [False, True], ids=['float', 'exact'])
@pytest.mark.parametrize('backbone', BACKBONES)
@pytest.mark.parametrize('mode', MODES, ids=str)
def test_every_mode_matches_plain_in_float64(backbone, mode, exact):
    torch.manual_seed(0)
    plain = backbone(
        arch=SMALL, out_indices=(0, 2), mode='plain', exact=exact)
    plain.init_weights()
    plain = plain.double().train()
    model = copy.deepcopy(plain).set_mode(mode)
    assert model.mode == mode
    assert model.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(3, 3, 8, 8, dtype=torch.float64)
    weights = [
        torch.randn(3, 8, 8, 8, dtype=torch.float64),
        torch.randn(3, 32, 2, 2, dtype=torch.float64)
    ]
    outs_m, gx_m, grads_m = train_step(model, x, weights)
    outs_p, gx_p, grads_p = train_step(plain, x, weights)
    for out_m, out_p in zip(outs_m, outs_p):
        assert torch.equal(out_m, out_p)
    assert relative_error(gx_m, gx_p) < 1e-10
    assert grads_m.keys() == grads_p.keys()
    for name in grads_p:
        assert relative_error(grads_m[name], grads_p[name]) < 1e-10, name
    # One step, one update of the running statistics, in every mode.
    assert set(tracked_batches(model).values()) == {1}
    buffers_p = dict(plain.named_buffers())
    for name, buffer in model.named_buffers():
        assert torch.equal(buffer, buffers_p[name]), name


@pytest.mark.parametrize(
    'block_modes',
    [['reversible', 'plain', 'reversible', 'reversible'],
     ['checkpoint', 'reversible', 'plain', 'checkpoint']],
    ids=str)
def test_sequence_takes_one_mode_per_block(block_modes):
    torch.manual_seed(0)
    unit = HamiltonianNet(arch=dict(blocks=[4], widths=[8])).units[0]
    unit = unit.double().train()
    mixed = copy.deepcopy(unit)
    mixed.mode = block_modes
    unit.mode = 'plain'
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    weight = torch.randn_like(x)
    grads = []
    for module in (mixed, unit):
        xr = x.clone().requires_grad_()
        (module(xr) * weight).sum().backward()
        grads.append([xr.grad] + [p.grad for p in module.parameters()])
    for grad_m, grad_p in zip(*grads):
        assert relative_error(grad_m, grad_p) < 1e-10
    assert set(tracked_batches(mixed).values()) == {1}
    assert mixed.mode == block_modes


def test_reversible_runs_are_single_functions():
    unit = HamiltonianNet(arch=dict(blocks=[4], widths=[8])).units[0]
    unit.mode = ['reversible', 'reversible', 'plain', 'reversible']
    packed = []

    def pack(tensor):
        packed.append(tensor)
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        unit(torch.randn(2, 8, 4, 4, requires_grad=True))
    one_plain_block = len(packed)
    packed.clear()
    unit.mode = 'reversible'
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        unit(torch.randn(2, 8, 4, 4, requires_grad=True))
    assert len(packed) == 2  # the final pair
    assert one_plain_block > 2 + 2  # two runs' pairs and the plain block


def test_bad_modes_name_the_argument_values_and_units():
    allowed = r"\('reversible', 'plain', 'checkpoint'\)"
    with pytest.raises(ValueError, match=f'HamiltonianNet: mode .*{allowed}'
                       r".*got 'fast'"):
        HamiltonianNet(arch=SMALL, mode='fast')
    with pytest.raises(ValueError, match=r'one of them per unit \(3 units\), '
                       r'got a list of 2'):
        HamiltonianNet(arch=SMALL, mode=['plain', 'plain'])
    with pytest.raises(ValueError, match=r"got 'auto' \(unit 1\)"):
        RevNet(arch=SMALL).set_mode(['plain', 'auto', 'plain'])
    with pytest.raises(TypeError, match='mode must be one of'):
        MidpointNet(arch=SMALL, mode=True)
    with pytest.raises(ValueError, match=r'per block \(2 blocks\)'):
        ReversibleSequence(
            HamiltonianNet(arch=dict(blocks=[2], widths=[8])).units[0].blocks,
            mode=['plain'])


def test_cifar_resnet_modes():
    torch.manual_seed(0)
    plain = CifarResNet(depth=8, mode='plain').double().train()
    checkpointed = CifarResNet(depth=8, mode=['checkpoint', 'plain', 'plain'])
    checkpointed.load_state_dict(plain.state_dict())
    checkpointed = checkpointed.double().train()
    assert checkpointed.layer1[0].with_cp
    assert not checkpointed.layer2[0].with_cp
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
    weights = [torch.randn(2, 64, 2, 2, dtype=torch.float64)]
    _, _, grads_c = train_step(checkpointed, x, weights)
    _, _, grads_p = train_step(plain, x, weights)
    for name in grads_p:
        assert relative_error(grads_c[name], grads_p[name]) < 1e-10, name
    with pytest.raises(ValueError, match=r"\('plain', 'checkpoint'\)"):
        CifarResNet(depth=8, mode='reversible')
