"""The training step and the timing loop every measurement shares."""
import torch
from torch import nn

from mmrevode.analysis.timing import (paired_ratio, paired_step_times,
                                      ratios_to_reference)
from mmrevode.analysis.training import TrainingModel, TrainStep


def recording_runs(log, names, seconds=None):
    seconds = seconds or {}

    def run(name):
        def step():
            log.append(name)
            return seconds.get(name, 1.0), seconds.get(name, 1.0)
        return step

    return {name: run(name) for name in names}


def test_rounds_alternate_order_and_warmup_is_not_recorded():
    log = []
    times, cpu = paired_step_times(
        recording_runs(log, 'ab'), steps=2, warmup=1)
    assert log == ['a', 'b', 'b', 'a', 'a', 'b']
    assert times == cpu == dict(a=[1.0, 1.0], b=[1.0, 1.0])
    assert paired_ratio([2.0, 6.0, 4.0], [1.0, 2.0, 0.0]) == 2.5


def test_each_run_is_paired_with_a_neighbouring_reference_step():
    log = []
    runs = recording_runs(log, ['x', 'y'], dict(x=3.0, y=2.0))
    reference = recording_runs(log, ['ref'], dict(ref=1.0))['ref']
    ratios = ratios_to_reference(runs, reference, steps=2)
    assert log == ['ref', 'x', 'y', 'ref', 'x', 'ref', 'ref', 'y']
    assert ratios == dict(x=dict(wall=[3.0, 3.0], cpu=[3.0, 3.0]),
                          y=dict(wall=[2.0, 2.0], cpu=[2.0, 2.0]))


def test_projection_step_back_propagates_the_given_gradient():
    torch.manual_seed(0)
    module = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
    x, grad = torch.randn(5, 4), torch.randn(5, 3)
    step = TrainStep(TrainingModel(module, 'projection'), x, grad, lr=None,
                     input_grad=True)
    step.run()
    leaf = x.clone().requires_grad_()
    module.zero_grad()
    module(leaf).backward(grad)
    assert torch.equal(step.input_grad, leaf.grad)
    assert torch.equal(step.gradients(),
                       torch.cat([p.grad.flatten() for p in
                                  module.parameters()]))
    assert not x.requires_grad  # the step's input is a fresh copy


def test_loss_scale_is_divided_out_and_lr_none_keeps_the_weights():
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv2d(3, 4, 3))
    model = TrainingModel(tuple_outputs(backbone), 'linear', 10, 4)
    images, labels = torch.randn(2, 3, 6, 6), torch.tensor([1, 2])
    before = [p.detach().clone() for p in model.parameters()]
    plain = TrainStep(model, images, labels, lr=None)
    plain.run()
    reference = plain.gradients()
    scaled = TrainStep(model, images, labels, lr=None, loss_scale=1024.0)
    scaled.run()
    assert torch.allclose(scaled.gradients(), reference, rtol=1e-6)
    assert all(torch.equal(b, p) for b, p in zip(before, model.parameters()))
    TrainStep(model, images, labels, lr=0.1).run()
    assert not all(
        torch.equal(b, p) for b, p in zip(before, model.parameters()))


def tuple_outputs(module):
    """``module`` returning a tuple of outputs, as a backbone does."""

    class Outputs(nn.Module):

        def __init__(self):
            super().__init__()
            self.module = module

        def forward(self, x):
            return (self.module(x), )

    return Outputs()
