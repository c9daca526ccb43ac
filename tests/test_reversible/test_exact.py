"""Exact mode: fixed-point pairs that the backward rebuilds bit for bit.

The deep presets run at 8x8 inputs and batch 2 so that the whole file takes
seconds; depth, not size, is what the rebuild has to survive.
"""
import copy

import pytest
import torch

from mmrevode.models import HamiltonianNet, LeapfrogNet, MidpointNet, RevNet
from mmrevode.models.reversible import (LIMIT, QUANTUM, FixedPointRangeError,
                                        RebuildProbe, ReversibleSequence)

DEEPEST = [(HamiltonianNet, '1202'), (MidpointNet, '182'),
           (LeapfrogNet, '182'), (RevNet, '164')]
IDS = [f'{cls.__name__}-{arch}' for cls, arch in DEEPEST]


def build(backbone, arch, seed=0, **kwargs):
    torch.manual_seed(seed)
    model = backbone(arch=arch, **kwargs)
    model.init_weights()
    return model.train()


def probed_step(model, x, weight, autocast=False):
    """One forward and backward; every unit compares every rebuilt pair."""
    probes = []
    for unit in model.units:
        probes.append(RebuildProbe(every_step=True))
        unit.probe_rebuild(probes[-1])
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        out = model(x)[-1]
    (out.float() * weight).sum().backward()
    return [probe.records for probe in probes]


@pytest.mark.parametrize('precision', ['float32', 'float64', 'bfloat16'])
@pytest.mark.parametrize('backbone,arch', DEEPEST, ids=IDS)
def test_every_rebuilt_pair_equals_the_forwards(backbone, arch, precision):
    dtype = torch.float64 if precision == 'float64' else torch.float32
    model = build(backbone, arch, exact=True).to(dtype)
    x = torch.randn(2, 3, 8, 8, dtype=dtype)
    weight = torch.randn(2, model.widths[-1], 2, 2, dtype=dtype)
    records = probed_step(model, x, weight, precision == 'bfloat16')
    for unit, (num_blocks, unit_records) in enumerate(
            zip(model.blocks, records)):
        steps = num_blocks * len(model.units[unit].blocks[0].shift_steps())
        assert [r.step for r in unit_records] == list(range(steps - 1, -1,
                                                            -1))
        unequal = [r for r in unit_records if not r.equal]
        assert not unequal, (f'unit {unit}: {len(unequal)} rebuilt pairs '
                             f'differ, e.g. {unequal[0]}')


def test_a_bfloat16_network_rebuilds_exactly():
    """Weights and inputs in bfloat16 (no autocast): F works in bfloat16,
    the increments are rounded from float32."""
    model = build(HamiltonianNet, dict(blocks=[3, 3], widths=[8, 16]),
                  exact=True).to(torch.bfloat16)
    x = torch.randn(2, 3, 8, 8, dtype=torch.bfloat16)
    records = probed_step(model, x, torch.randn(2, 16, 4, 4))
    assert all(r.equal for unit in records for r in unit) and records[0]
    plain = copy.deepcopy(model).set_mode('plain')
    assert torch.equal(plain(x)[-1], model(x)[-1])


def test_pairs_stay_exact_after_training_steps():
    """Weights moved by training (large steps, so they move far)."""
    model = build(MidpointNet, '62', exact=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    x = torch.randn(4, 3, 8, 8)
    for _ in range(5):
        optimizer.zero_grad()
        model(x)[-1].square().mean().backward()
        optimizer.step()
    records = probed_step(model, x, torch.randn(4, 128, 2, 2))
    assert all(r.equal for unit in records for r in unit)
    # the float pairs of the same weights are not rebuilt exactly
    model.units[0].exact = False
    records = probed_step(model, x, torch.randn(4, 128, 2, 2))
    assert not all(r.equal for r in records[0])



@pytest.fixture(scope='module')
def digits_batches():
    """The first 8x8 training digits (three equal channels, as the digits
    configs read them), normalised as the configs do, in batches of 8."""
    pytest.importorskip('sklearn')
    from mmrevode.datasets import Digits
    dataset = Digits(split='train', image_size=8)
    count = (DIGITS_STEPS + 1) * 8
    images = torch.stack([
        torch.from_numpy(dataset.get_data_info(i)['img'])
        for i in range(count)
    ]).permute(0, 3, 1, 2).float()
    labels = torch.tensor(
        [dataset.get_data_info(i)['gt_label'] for i in range(count)])
    # the mean and standard deviation of configs/_base_/datasets/digits_bs50
    images = (images - 77.8) / 82.5
    return list(zip(images.split(8), labels.split(8)))


DIGITS_STEPS = 6


@pytest.mark.slow
@pytest.mark.parametrize('precision', ['float32', 'float64', 'bfloat16'])
@pytest.mark.parametrize('backbone,arch', DEEPEST, ids=IDS)
def test_pairs_stay_exact_while_training_on_the_digits(
        backbone, arch, precision, digits_batches):
    """Six SGD steps (momentum 0.9, lr 0.1) of the network and a linear
    classifier on the digits, every rebuilt pair of every step of every
    unit compared in each training step and in one more after the last."""
    dtype = torch.float64 if precision == 'float64' else torch.float32
    model = build(backbone, arch, exact=True).to(dtype)
    head = torch.nn.Linear(model.widths[-1], 10).to(dtype)
    initial = [[p.detach().clone() for p in unit.parameters()]
               for unit in model.units]
    optimizer = torch.optim.SGD(
        [*model.parameters(), *head.parameters()], lr=0.1, momentum=0.9)
    for step, (x, labels) in enumerate(digits_batches):
        probes = []
        for unit in model.units:
            probes.append(RebuildProbe(every_step=True))
            unit.probe_rebuild(probes[-1])
        optimizer.zero_grad()
        with torch.autocast(
                'cpu', dtype=torch.bfloat16,
                enabled=precision == 'bfloat16'):
            logits = head(model(x.to(dtype))[-1].mean((2, 3)))
        torch.nn.functional.cross_entropy(logits.float(), labels).backward()
        if step < DIGITS_STEPS:
            optimizer.step()
        for unit, probe in enumerate(probes):
            steps = model.blocks[unit] * len(
                model.units[unit].blocks[0].shift_steps())
            assert len(probe.records) == steps and probe.pending == 0
            unequal = [r for r in probe.records if not r.equal]
            assert not unequal, (
                f'training step {step}, unit {unit}: {len(unequal)} rebuilt '
                f'pairs differ, e.g. {unequal[0]}')
    # the weights moved: every unit's by at least 0.1 % of their norm
    moved = [
        (torch.cat([(p.detach() - p0).flatten()
                    for p, p0 in zip(unit.parameters(), before)]).norm() /
         torch.cat([p0.flatten() for p0 in before]).norm()).item()
        for unit, before in zip(model.units, initial)
    ]
    print(f'{backbone.__name__}-{arch} {precision}: units moved by '
          + ', '.join(f'{m:.1e}' for m in moved) + ' of their norms')
    assert min(moved) >= 1e-3

def relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


def gradients(model, x, weight, mode, autocast=False):
    model = copy.deepcopy(model).set_mode(mode)
    x = x.clone().requires_grad_()
    with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
        out = model(x)[-1]
    (out.float() * weight).sum().backward()
    return [p.grad.double() for p in model.parameters()] + [x.grad.double()]


@pytest.mark.parametrize('backbone,arch', DEEPEST, ids=IDS)
def test_float32_relu_gradients_equal_plain_autograd(backbone, arch):
    model = build(backbone, arch, exact=True)
    x = torch.randn(2, 3, 8, 8)
    weight = torch.randn(2, model.widths[-1], 2, 2)
    reversible = gradients(model, x, weight, 'reversible')
    plain = gradients(model, x, weight, 'plain')
    overall = relative_error(torch.cat([g.flatten() for g in reversible]),
                             torch.cat([g.flatten() for g in plain]))
    worst = max(
        relative_error(r, p) for r, p in zip(reversible, plain)
        if p.norm() > 0)
    print(f'{backbone.__name__}-{arch} exact float32 ReLU: reversible vs '
          f'plain {overall:.1e} overall, {worst:.1e} worst parameter')
    assert overall <= 1e-5 and worst <= 1e-4


@pytest.mark.parametrize('backbone,arch', DEEPEST, ids=IDS)
def test_bfloat16_autocast_gradients_equal_plain_autograd(backbone, arch):
    model = build(backbone, arch, exact=True)
    x = torch.randn(2, 3, 8, 8)
    weight = torch.randn(2, model.widths[-1], 2, 2)
    reversible = torch.cat([
        g.flatten()
        for g in gradients(model, x, weight, 'reversible', autocast=True)
    ])
    plain = torch.cat([
        g.flatten()
        for g in gradients(model, x, weight, 'plain', autocast=True)
    ])
    error = relative_error(reversible, plain)
    print(f'{backbone.__name__}-{arch} exact bfloat16 autocast: reversible '
          f'vs plain {error:.1e}')
    assert error <= 1e-3


@pytest.mark.parametrize('backbone,arch', DEEPEST, ids=IDS)
def test_exact_outputs_are_as_close_to_float64_as_plain_float32(
        backbone, arch):
    model = build(backbone, arch)
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        reference = copy.deepcopy(model).double()(x.double())[-1]
        floating = model(x)[-1].double()
        for unit in model.units:
            unit.exact = True
        exact = model(x)[-1].double()
    floating_error = relative_error(floating, reference)
    exact_error = relative_error(exact, reference)
    print(f'{backbone.__name__}-{arch} outputs against float64: exact '
          f'{exact_error:.1e}, floating point {floating_error:.1e}')
    assert exact_error <= floating_error * 1.1 + 1e-7


@pytest.mark.slow
@pytest.mark.parametrize('backbone,arch', DEEPEST, ids=IDS)
def test_float32_gradients_against_float64(backbone, arch):
    """Exact mode's reversible float32 gradients are as close to float64 as
    plain float32 autograd's (of the floating-point network)."""
    model = build(backbone, arch)
    x = torch.randn(4, 3, 8, 8)
    weight = torch.randn(4, model.widths[-1], 2, 2)

    def flat(grads):
        return torch.cat([g.flatten() for g in grads])

    reference = flat(
        gradients(model.double(), x.double(), weight.double(), 'plain'))
    model.float()
    plain = flat(gradients(model, x, weight, 'plain'))
    for unit in model.units:
        unit.exact = True
    exact = flat(gradients(model, x, weight, 'reversible'))
    plain_error = relative_error(plain, reference)
    exact_error = relative_error(exact, reference)
    print(f'{backbone.__name__}-{arch} gradients against float64: exact '
          f'reversible float32 {exact_error:.1e}, plain float32 '
          f'{plain_error:.1e}')
    assert exact_error <= 2 * plain_error + 1e-6


def test_every_mode_runs_the_same_fixed_point_forward():
    model = build(HamiltonianNet, dict(blocks=[2, 2], widths=[8, 16]),
                  exact=True)
    x = torch.randn(2, 3, 8, 8)
    results = {}
    for mode in ('reversible', 'plain', 'checkpoint'):
        copy_ = copy.deepcopy(model).set_mode(mode)
        results[mode] = (copy_(x)[-1], copy_.state_dict())
    out, state = results['plain']
    for mode in ('reversible', 'checkpoint'):
        assert torch.equal(results[mode][0], out)
        assert results[mode][1].keys() == state.keys()
        assert all(torch.equal(results[mode][1][k], v)
                   for k, v in state.items())
    # the same keys as the floating-point network: checkpoints fit both
    floating = build(HamiltonianNet, dict(blocks=[2, 2], widths=[8, 16]))
    assert floating.state_dict().keys() == state.keys()
    assert not torch.equal(floating(x)[-1], out)


def test_states_are_float64_multiples_of_the_quantum():
    model = build(LeapfrogNet, dict(blocks=[3], widths=[8]), exact=True)
    unit = model.units[0]
    probe = RebuildProbe(every_step=True)
    unit.probe_rebuild(probe)
    x = torch.randn(2, 8, 4, 4, requires_grad=True)
    out = unit(x)
    kept = [t for pair in probe.runs[0].kept.values() for t in pair]
    assert len(kept) == 6 and out.dtype == torch.float32
    for state in kept:
        assert state.dtype == torch.float64
        assert torch.equal(torch.round(state / QUANTUM) * QUANTUM, state)
        assert state.abs().max() < LIMIT
    out.sum().backward()
    assert probe.pending == 0 and all(r.equal for r in probe.records)


@pytest.mark.parametrize('mode', ['reversible', 'plain', 'checkpoint'])
def test_leaving_the_exact_range_is_an_error(mode):
    model = build(HamiltonianNet, dict(blocks=[2], widths=[8]), exact=True,
                  mode=mode, out_norm=False, stem_type='cifar')
    unit = model.units[0]
    x = torch.randn(2, 8, 4, 4, requires_grad=True)
    with pytest.raises(FixedPointRangeError,
                       match=r'reached \|x\| = .*beyond the exact range '
                       r'\+-524288 \(2\^19\).*exact=False'):
        unit(x * LIMIT)
    with pytest.raises(FixedPointRangeError, match='not finite'):
        unit(x * float('nan'))
    with torch.no_grad(), pytest.raises(FixedPointRangeError):
        unit.eval()(x * 2 * LIMIT)


def test_steps_that_cannot_be_exact_are_refused():
    from test_function import ToyBlock
    with pytest.raises(ValueError, match='exact mode needs alpha = \\+-1'):
        ReversibleSequence([ToyBlock(4)], exact=True)
    with pytest.raises(TypeError, match='exact must be True or False'):
        HamiltonianNet(arch='38', exact=1)
