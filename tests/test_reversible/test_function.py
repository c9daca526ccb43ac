"""The reversible engine against plain autograd, on toy blocks."""
import copy

import pytest
import torch
from torch import nn

from mmrevode.models.blocks import (HamiltonianBlock, LeapfrogBlock,
                                    MidpointBlock, RevNetBlock)
from mmrevode.models.reversible import (ReversibleBlock, ReversibleFunction,
                                        ReversibleOptions, ReversibleSequence,
                                        ShiftStep, collect_parameters)


class ToyStepFunction(nn.Module):

    def __init__(self, channels, dropout=0.0):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(channels)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        return self.drop(torch.tanh(self.norm(self.conv(x))))


class ToyBlock(ReversibleBlock):
    """Two steps with general coefficients, on channel halves."""

    def __init__(self, channels, coefficients=((2.0, 0.5, 0.3), (-1.0, 2.0,
                                                                 -0.2)),
                 dropout=0.0):
        super().__init__()
        self.coefficients = coefficients
        self.fns = nn.ModuleList(
            ToyStepFunction(channels // 2, dropout) for _ in coefficients)

    def shift_steps(self):
        return [
            ShiftStep(fn, *coef)
            for fn, coef in zip(self.fns, self.coefficients)
        ]

    def split(self, x):
        return tuple(t.contiguous() for t in x.chunk(2, dim=1))

    def merge(self, a, b):
        return torch.cat([a, b], dim=1)


def make_pair(num_blocks=3, channels=8, dtype=torch.float64, **kwargs):
    torch.manual_seed(0)
    reversible = ReversibleSequence(
        [ToyBlock(channels, **kwargs) for _ in range(num_blocks)],
        mode='reversible').to(dtype).train()
    plain = copy.deepcopy(reversible)
    plain.mode = 'plain'
    return reversible, plain


def run_step(module, x, weight):
    module.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_(x.requires_grad)
    out = module(x)
    (out * weight).sum().backward()
    return out, x.grad, {n: p.grad for n, p in module.named_parameters()}


def relative_error(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_matches_plain_autograd_in_float64():
    reversible, plain = make_pair()
    x = torch.randn(4, 8, 6, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(4, 8, 6, 6, dtype=torch.float64)
    out_r, gx_r, gp_r = run_step(reversible, x, weight)
    out_p, gx_p, gp_p = run_step(plain, x, weight)
    assert torch.equal(out_r, out_p)
    assert relative_error(gx_r, gx_p) < 1e-10
    for name in gp_p:
        assert relative_error(gp_r[name], gp_p[name]) < 1e-10, name
    for (name, buf_r), buf_p in zip(reversible.named_buffers(),
                                    plain.buffers()):
        assert torch.equal(buf_r, buf_p), name


def test_uses_one_function_saving_only_the_final_pair():
    reversible, _ = make_pair(num_blocks=4)
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64, requires_grad=True)
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(
            lambda t: packed.append(t) or t, lambda t: t):
        a, b = reversible.blocks[0].split(x)
        steps = [s for blk in reversible.blocks for s in blk.shift_steps()]
        from mmrevode.models.reversible import collect_parameters
        params, index = collect_parameters(steps)
        out = ReversibleFunction.apply(steps, index, False, a, b, *params)
    assert len(packed) == 2
    assert packed[0] is out[0] and packed[1] is out[1]
    assert type(out[0].grad_fn).__name__ == 'ReversibleFunctionBackward'


def test_gradients_accumulate_and_leaf_hooks_fire_once():
    reversible, plain = make_pair()
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    calls = []
    for param in reversible.parameters():
        param.register_post_accumulate_grad_hook(
            lambda p: calls.append(id(p)))
    for _ in range(2):
        reversible(x).sum().backward()
    num_params = len(list(reversible.parameters()))
    assert len(calls) == 2 * num_params
    for _ in range(2):
        plain(x).sum().backward()
    for p_r, p_p in zip(reversible.parameters(), plain.parameters()):
        assert relative_error(p_r.grad, p_p.grad) < 1e-10


def test_frozen_parameters_and_input_without_grad():
    reversible, plain = make_pair()
    for module in (reversible, plain):
        for param in module.blocks[0].parameters():
            param.requires_grad_(False)
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    weight = torch.randn_like(x)
    _, _, grads_r = run_step(reversible, x, weight)
    _, _, grads_p = run_step(plain, x, weight)
    for name, grad in grads_p.items():
        if name.startswith('blocks.0.'):
            assert grad is None and grads_r[name] is None
        else:
            assert relative_error(grads_r[name], grad) < 1e-10


def test_everything_frozen_runs_without_the_function():
    reversible, _ = make_pair()
    reversible.requires_grad_(False)
    out = reversible(torch.randn(2, 8, 6, 6, dtype=torch.float64))
    assert out.grad_fn is None


def test_random_steps_replay_their_rng_state():
    reversible, plain = make_pair(dropout=0.3)  # replaying is the default
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    weight = torch.randn_like(x)
    torch.manual_seed(1)
    out_p, _, grads_p = run_step(plain, x, weight)
    state_after_plain = torch.get_rng_state()
    torch.manual_seed(1)
    out_r, _, grads_r = run_step(reversible, x, weight)
    assert torch.equal(out_r, out_p)
    for name in grads_p:
        assert relative_error(grads_r[name], grads_p[name]) < 1e-10, name
    # The recompute forks the generator: the global stream goes on as if
    # the backward had drawn nothing.
    assert torch.equal(torch.get_rng_state(), state_after_plain)


def with_dropout(block, p=0.5):
    """``block`` with every step function followed by dropout."""
    for name, fn in list(block.named_children()):
        setattr(block, name, nn.Sequential(fn, nn.Dropout(p)))
    return block


SCHEMES = {
    'hamiltonian': lambda index: HamiltonianBlock(8),
    'midpoint': lambda index: MidpointBlock(8, block_index=index),
    'leapfrog': lambda index: LeapfrogBlock(8),
    'revnet': lambda index: RevNetBlock(8, block_index=index),
}


@pytest.mark.parametrize('scheme', sorted(SCHEMES))
def test_dropout_gets_the_gradients_of_plain_autograd_by_default(scheme):
    torch.manual_seed(0)
    reversible = ReversibleSequence(
        [with_dropout(SCHEMES[scheme](i)) for i in range(3)])
    reversible = reversible.double().train()
    plain = copy.deepcopy(reversible)
    plain.mode = 'plain'
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64, requires_grad=True)
    weight = torch.randn_like(x)
    torch.manual_seed(1)
    out_p, grad_x_p, grads_p = run_step(plain, x, weight)
    torch.manual_seed(1)
    out_r, grad_x_r, grads_r = run_step(reversible, x, weight)
    torch.testing.assert_close(out_r, out_p)
    torch.testing.assert_close(grad_x_r, grad_x_p)
    for name in grads_p:
        torch.testing.assert_close(grads_r[name], grads_p[name], msg=name)
    # the draws matter: rebuilt with other draws, the gradients differ
    reversible.preserve_rng_state = False
    torch.manual_seed(1)
    _, grad_x_n, _ = run_step(reversible, x, weight)
    assert not torch.allclose(grad_x_n, grad_x_p)


def saved_by_function(reversible, x, options):
    a, b = reversible.blocks[0].split(x)
    steps = [s for blk in reversible.blocks for s in blk.shift_steps()]
    params, index = collect_parameters(steps)
    packed = []
    with torch.autograd.graph.saved_tensors_hooks(
            lambda t: packed.append(t) or t, lambda t: t):
        ReversibleFunction.apply(steps, index, options, a, b, *params)
    return packed


def test_only_steps_that_draw_keep_a_generator_state():
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64, requires_grad=True)
    # deterministic steps keep nothing but the final pair
    deterministic, _ = make_pair(num_blocks=4)
    assert len(saved_by_function(deterministic, x, ReversibleOptions())) == 2
    # a step with dropout keeps the CPU generator's state before it
    random, _ = make_pair(num_blocks=4, dropout=0.3)
    random.blocks[1].fns[0].drop = nn.Identity()  # draws nothing
    saved = saved_by_function(random, x, ReversibleOptions())
    assert len(saved) == 2 + 7
    assert all(t.dtype == torch.uint8 for t in saved[2:])
    assert len(saved_by_function(random, x, False)) == 2


def test_autocast_recompute_matches_forward():
    reversible, plain = make_pair(dtype=torch.float32)
    x = torch.randn(4, 8, 8, 8)
    weight = torch.randn_like(x)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out_r, _, grads_r = run_step(reversible, x, weight)
        out_p, _, grads_p = run_step(plain, x, weight)
    assert out_r.dtype == x.dtype  # the pair stays in the input dtype
    assert torch.equal(out_r, out_p)
    for name in grads_p:
        assert relative_error(grads_r[name], grads_p[name]) < 2e-2, name


def test_eval_mode_and_no_grad_give_the_same_output():
    reversible, plain = make_pair()
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    reversible.eval()
    plain.eval()
    with torch.no_grad():
        out = reversible(x)
    assert out.grad_fn is None
    assert torch.equal(out, plain(x))


def test_empty_sequence_is_rejected():
    with pytest.raises(ValueError, match='at least one block'):
        ReversibleSequence([])


def test_autocast_keeps_a_low_precision_state_pair_in_float32():
    reversible, plain = make_pair(dtype=torch.float32)
    x = torch.randn(4, 8, 8, 8).bfloat16()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out_r = reversible(x)
        out_p = plain(x)
    assert out_r.dtype == out_p.dtype == torch.float32
    assert torch.equal(out_r, out_p)
