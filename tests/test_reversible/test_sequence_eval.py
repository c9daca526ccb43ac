"""Eval mode and tracing run a unit under plain autograd.

In training mode with gradients a unit is one ``ReversibleFunction``; in eval
mode, or while ``torch.jit.trace`` / ``torch.onnx.export`` record the
forward, the blocks run as ordinary operations, so tracers see them and
gradients taken in eval mode are those of plain autograd, bit for bit.
"""
import torch

from mmrevode.models.reversible import ReversibleFunction

from test_function import make_pair


def graph_nodes(tensor):
    """Names of the autograd nodes behind ``tensor``."""
    seen, stack, names = set(), [tensor.grad_fn], []
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.append(type(node).__name__)
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    return names


def function_nodes(tensor):
    backward_name = ReversibleFunction.__name__ + 'Backward'
    return [n for n in graph_nodes(tensor) if n == backward_name]


def test_training_mode_uses_the_function_and_eval_mode_does_not():
    reversible, _ = make_pair()
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64, requires_grad=True)
    assert len(function_nodes(reversible(x))) == 1
    reversible.eval()
    assert torch.is_grad_enabled()
    out = reversible(x)
    assert out.requires_grad and function_nodes(out) == []


def test_eval_mode_gradients_equal_plain_autograd_in_float64():
    """A gradient-based tool in eval mode (saliency, class activation maps)
    gets plain autograd's input and parameter gradients exactly."""
    reversible, plain = make_pair()
    reversible.eval()
    plain.eval()
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    weight = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    results = []
    for module in (reversible, plain):
        module.zero_grad(set_to_none=True)
        xr = x.clone().requires_grad_()
        (module(xr) * weight).sum().backward()
        results.append((xr.grad, [p.grad for p in module.parameters()]))
    (gx_r, gp_r), (gx_p, gp_p) = results
    assert torch.equal(gx_r, gx_p)
    for g_r, g_p in zip(gp_r, gp_p):
        assert torch.equal(g_r, g_p)


def test_eval_mode_input_gradient_passes_gradcheck():
    reversible, _ = make_pair(num_blocks=2, channels=4)
    reversible.eval()
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(reversible, (x, ))


def test_trace_in_training_mode_records_the_blocks():
    """A tracer cannot record the Function's Python body; even in training
    mode a traced unit is the plain blocks, with the same output."""
    reversible, plain = make_pair()
    x = torch.randn(2, 8, 6, 6, dtype=torch.float64)
    traced = torch.jit.trace(reversible.eval(), x)
    assert torch.equal(traced(x), plain.eval()(x))
    reversible.train()
    state = {k: v.clone() for k, v in reversible.state_dict().items()}
    traced = torch.jit.trace(reversible, x, check_trace=False)
    reversible.load_state_dict(state)
    out = traced(x)
    reversible.load_state_dict(state)
    assert torch.allclose(out, plain.train()(x), rtol=0, atol=1e-12)
    assert not any('ReversibleFunction' in str(n)
                   for n in traced.inlined_graph.nodes())
