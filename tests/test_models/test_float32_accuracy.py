"""float32 gradients of the deepest presets, reversible against plain.

Two sources separate the reversible float32 gradient from the plain one:
the round-off of rebuilding each state (drift through hundreds of steps),
and ReLU's kink: a state rebuilt to within 1e-7 can put a pre-activation
that sat within 1e-7 of zero on the other side, which flips that element's
derivative. A deep preset has tens of millions of pre-activations, so about
one flip per step is expected, and one flip moves the gradient by about
1e-4 to 1e-3 relative. The plain float32 gradient suffers the same against
the exact one. The first test measures the drift alone (a smooth activation
has no kink); the second checks that with ReLU the reversible gradient is
as accurate as the plain one against a float64 reference, up to the kink
flips: which elements flip depends on the float32 kernels of the machine,
so the bound admits one flip (1e-3) beyond the plain error.
"""
import copy

import pytest
import torch

from mmrevode.models import HamiltonianNet, LeapfrogNet, MidpointNet

DEEPEST = [(HamiltonianNet, '218'), (MidpointNet, '182'), (LeapfrogNet, '182')]


def gradient(model, x, weight, reversible):
    model = copy.deepcopy(model)
    model.set_mode('reversible' if reversible else 'plain')
    (model(x)[-1] * weight).sum().backward()
    return torch.cat([p.grad.flatten() for p in model.parameters()]).double()


def relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


def make(backbone, arch, **kwargs):
    torch.manual_seed(1)
    model = backbone(arch=arch, **kwargs)
    model.init_weights()
    model.train()
    x = torch.randn(16, 3, 32, 32)
    weight = torch.randn(16, model.widths[-1], 8, 8)
    return model, x, weight


@pytest.mark.slow
@pytest.mark.parametrize('backbone,arch', DEEPEST)
def test_reconstruction_drift_of_the_deepest_presets(backbone, arch):
    model, x, weight = make(backbone, arch, act_cfg=dict(type='SiLU'))
    error = relative_error(
        gradient(model, x, weight, True), gradient(model, x, weight, False))
    print(f'{backbone.__name__}-{arch} h={model.h} (SiLU): reversible vs '
          f'plain float32 gradient {error:.1e}')
    assert error < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize('backbone,arch', DEEPEST)
def test_relu_gradients_are_as_accurate_as_plain(backbone, arch):
    model, x, weight = make(backbone, arch)
    exact = gradient(model.double(), x.double(), weight.double(), False)
    model.float()
    reversible = relative_error(gradient(model, x, weight, True), exact)
    plain = relative_error(gradient(model, x, weight, False), exact)
    print(f'{backbone.__name__}-{arch} h={model.h}: float32 gradient error '
          f'against float64, reversible {reversible:.1e}, plain {plain:.1e}')
    assert reversible < max(2 * plain, 1e-3)
