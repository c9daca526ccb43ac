"""The memory-efficient backward shared by every reversible scheme.

:class:`ReversibleFunction` runs a whole sequence of shift steps (a unit) as
one autograd node. Its forward keeps no activation but the final pair; its
backward walks the steps from the last, and for each step evaluates
``f = F(b)`` once with grad enabled, uses that same ``f`` both to reconstruct
the step's input ``a = (c - beta * b - gamma * f) / alpha`` and for the
vector-Jacobian product, and so costs one extra ``F`` evaluation per step over
plain autograd (4 against 3 evaluations of ``F`` per training step).
"""
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn
from torch.autograd.function import once_differentiable
from torch.nn.modules.batchnorm import _BatchNorm

from .fixed_point import RangeGuard, value
from .probe import RunProbe
from .shift_step import ShiftStep, shift, unshift


@dataclass(frozen=True)
class ReversibleOptions:
    """How :class:`ReversibleFunction` runs its steps.

    Args:
        preserve_rng_state (bool): Replay the random generators' states in
            the recompute, so that a step drawing random numbers (dropout,
            drop path) is rebuilt with the forward's draws and its gradients
            are those of the forward. Only the states before steps that drew
            random numbers are kept: a deterministic unit keeps none and
            replays nothing (see :class:`_RngRecorder`). Defaults to True.
        fixed_dtype (torch.dtype, optional): Exact mode: the pair is on the
            fixed-point grid of :mod:`.fixed_point` (float64) and ``F``
            works in this dtype; the states are rebuilt bit for bit.
            Defaults to None (floating point).
        probe (RunProbe, optional): Keep the forward's input pair(s) and
            compare the rebuilt ones (:mod:`.probe`). Defaults to None.
    """
    preserve_rng_state: bool = True
    fixed_dtype: Optional[torch.dtype] = None
    probe: Optional[RunProbe] = None


@contextmanager
def frozen_running_stats(*modules: nn.Module):
    """Run batch norms of ``modules`` without updating their running stats.

    A batch norm in training mode normalises with batch statistics whether or
    not it tracks running ones, so switching ``track_running_stats`` off
    reproduces the forward's output exactly while leaving ``running_mean``,
    ``running_var`` and ``num_batches_tracked`` alone. Norms in eval mode
    (``norm_eval=True``) already use their running stats and are untouched.
    Works for ``SyncBatchNorm`` too, whose recompute then issues the same
    collectives on every rank. Arguments that are not modules are ignored.
    """
    norms = {}
    for module in modules:
        if isinstance(module, nn.Module):
            for m in module.modules():
                if isinstance(m, _BatchNorm) and m.training \
                        and m.track_running_stats:
                    norms[id(m)] = m
    for norm in norms.values():
        norm.track_running_stats = False
    try:
        yield
    finally:
        for norm in norms.values():
            norm.track_running_stats = True


def collect_parameters(
        steps: Sequence[ShiftStep]) -> Tuple[List[Tensor], List[List[int]]]:
    """Parameters of all steps, each once, and each step's indices into them.

    Returns:
        tuple: ``(params, index)`` where ``index[k][j]`` is the position in
        ``params`` of the ``j``-th parameter of ``steps[k].fn``.
    """
    params: List[Tensor] = []
    position = {}
    index = []
    for step in steps:
        step_index = []
        for param in _parameters(step.fn):
            if id(param) not in position:
                position[id(param)] = len(params)
                params.append(param)
            step_index.append(position[id(param)])
        index.append(step_index)
    return params, index


#: Positions of the inputs of :meth:`ReversibleFunction.apply`
#: ``(steps, param_index, options, a, b, *params)``: the input pair, and the
#: first of the parameters (everything before it is not a tensor).
INPUT_A, INPUT_B, FIRST_PARAM = 3, 4, 5


class ReversibleFunction(torch.autograd.Function):
    """Run shift steps storing only the final pair; rebuild on backward.

    Called as ``ReversibleFunction.apply(steps, param_index, options, a, b,
    *params)`` with ``params, param_index = collect_parameters(steps)`` and
    ``options`` a :class:`ReversibleOptions` (or a bool, its
    ``preserve_rng_state``). Passing the parameters as inputs lets autograd
    deliver their gradients through the usual leaf accumulation, so DDP hooks,
    gradient accumulation and frozen parameters behave as with any module.

    Returns the final pair. Only that pair (and, with ``preserve_rng_state``,
    the generator states before each step that drew random numbers) is saved
    for backward, whatever the number of steps.
    """

    @staticmethod
    def forward(ctx, steps: Sequence[ShiftStep], param_index: List[List[int]],
                options: Union[ReversibleOptions, bool], a: Tensor, b: Tensor,
                *params: Tensor) -> Tuple[Tensor, Tensor]:
        if not isinstance(options, ReversibleOptions):
            options = ReversibleOptions(preserve_rng_state=bool(options))
        ctx.steps = steps
        ctx.param_index = param_index
        ctx.options = options
        ctx.autocast = _autocast_state(a.device.type)
        fixed, probe = options.fixed_dtype, options.probe
        guard = RangeGuard() if fixed is not None else None
        rng = _RngRecorder(a.device) if options.preserve_rng_state else None
        inputs = (a, b)
        for k, step in enumerate(steps):
            if probe is not None and probe.wants(k):
                probe.keep(k, a, b)
            f = step.fn(b if fixed is None else value(b, fixed, guard))
            if rng is not None:
                rng.after_step(k)
            # ``a`` is dead after this step: reuse its memory unless it is
            # one of the caller's tensors.
            owned = not any(a is x for x in inputs)
            a, b = b, shift(step, a, b, f, inplace=owned, fixed_dtype=fixed)
        if any(a is x for x in inputs):  # one-step unit: do not alias input
            a = a.clone()
        if guard is not None:
            guard.watch(b)
            guard.check()
        ctx.random_steps = rng.random_steps if rng is not None else []
        ctx.save_for_backward(a, b, *(rng.states if rng is not None else []))
        return a, b

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_b: Tensor,
                 grad_c: Tensor) -> Tuple[Optional[Tensor], ...]:
        # The norms' running statistics are frozen once for the whole walk
        # back, not around each step's recompute.
        with frozen_running_stats(*(step.fn for step in ctx.steps)):
            return _walk_back(ctx, grad_b, grad_c)


def _walk_back(ctx, grad_b: Tensor,
               grad_c: Tensor) -> Tuple[Optional[Tensor], ...]:
    """The backward of :class:`ReversibleFunction`: :func:`_step_back`
    through each step, from the last, starting from the final pair and its
    gradients; returns the gradients of ``apply``'s inputs."""
    steps: Sequence[ShiftStep] = ctx.steps
    b, c, *rng_states = ctx.saved_tensors
    rng_per_step = len(rng_states) // max(len(ctx.random_steps), 1)
    step_rng = {
        k: rng_states[n * rng_per_step:(n + 1) * rng_per_step]
        for n, k in enumerate(ctx.random_steps)
    }
    needs_input_grad = ctx.needs_input_grad
    fixed = ctx.options.fixed_dtype
    if fixed is not None and not ctx.autocast['enabled']:
        # The pair is float64; its gradients are taken in F's dtype
        # (autograd casts those returned for the float64 inputs). Under
        # autocast they stay float64, as in plain autograd: each step
        # rounds them to F's low precision, which would turn float32
        # round-off into differences of that precision's size.
        grad_b, grad_c = grad_b.to(fixed), grad_c.to(fixed)
    param_grads: List[Optional[Tensor]] = [None] * (
        len(needs_input_grad) - FIRST_PARAM)
    # The saved pair may still be held by the caller, so it is never
    # written; the tensors reconstructed below are, in place.
    b_owned = c_owned = False

    for k in range(len(steps) - 1, -1, -1):
        # The output pair of step k is (b, c); its input pair is (a, b).
        a, grad_a, grad_b = _step_back(ctx, k, b, c, grad_b, grad_c,
                                       c_owned, step_rng.get(k, []),
                                       param_grads)
        grad_b, grad_c = grad_a, grad_b
        if k > 0:
            b, c = a, b
            b_owned, c_owned = True, b_owned

    return (None, ) * INPUT_A + (
        grad_b if needs_input_grad[INPUT_A] else None,
        grad_c if needs_input_grad[INPUT_B] else None, *param_grads)


def _step_back(ctx, k: int, b: Tensor, c: Tensor, grad_b: Tensor,
               grad_c: Tensor, c_owned: bool, rng_states: Sequence[Tensor],
               param_grads: List[Optional[Tensor]]
               ) -> Tuple[Optional[Tensor], Tensor, Tensor]:
    """Walk back through step ``k`` of a :class:`ReversibleFunction`.

    Evaluates ``f = F(b)`` once, with grad enabled (and the step's
    generator states, if it drew random numbers), rebuilds the step's input
    ``a`` from it and takes the vector-Jacobian product of the same ``f``.

    Args:
        ctx: The function's context (steps, options, ``needs_input_grad``).
        k (int): The step.
        b, c (Tensor): The step's output pair.
        grad_b, grad_c (Tensor): Their gradients.
        c_owned (bool): ``c`` is the engine's own tensor, which the rebuilt
            ``a`` may overwrite.
        rng_states (Sequence[Tensor]): The generator states before the step
            in the forward, or none.
        param_grads (list): The parameters' gradients, accumulated in
            place.

    Returns:
        tuple: ``(a, grad_a, grad_b)``: the step's input ``a`` (None for the
        first step, whose input the caller holds, unless a probe compares
        it) and the gradients of the input pair ``(a, b)``.
    """
    step = ctx.steps[k]
    needs_input_grad = ctx.needs_input_grad
    fixed, probe = ctx.options.fixed_dtype, ctx.options.probe
    params = [(i, p)
              for i, p in zip(ctx.param_index[k], _parameters(step.fn))
              if needs_input_grad[FIRST_PARAM + i]]
    needs_b = k > 0 or needs_input_grad[INPUT_B]
    with torch.enable_grad(), _autocast(ctx.autocast), \
            _restored_rng(rng_states, b.device):
        b_in = b if fixed is None else value(b, fixed)
        b_leaf = b_in.detach().requires_grad_(needs_b)
        f = step.fn(b_leaf)
    a = None
    if k > 0 or (probe is not None and probe.wants(0)):
        a = unshift(step, b, c, f.detach(), inplace=c_owned,
                    fixed_dtype=fixed)
        if probe is not None and probe.wants(k):
            probe.compare(k, a, b)

    # The VJP is linear in its vector: take it of grad_c itself and scale
    # the results by gamma while accumulating them, instead of writing
    # gamma * grad_c into a fresh tensor first. Under autocast, keep the
    # low-precision backward on the same scale as plain autograd's
    # (gamma * grad_c, cast to f's dtype).
    if not ctx.autocast['enabled'] and grad_c.dtype == f.dtype:
        grad_f, scale = grad_c, step.gamma
    else:
        grad_f, scale = (grad_c * step.gamma).to(f.dtype), 1.0
    wrt = ([b_leaf] if needs_b else []) + [p for _, p in params]
    if wrt and f.requires_grad:
        grads = list(torch.autograd.grad(f, wrt, grad_f, allow_unused=True))
    else:
        grads = [None] * len(wrt)
    vjp_b = grads.pop(0) if needs_b else None
    for (i, _), grad in zip(params, grads):
        if grad is not None:
            # Out of place: ``grad`` may alias ``grad_f``.
            grad = grad * scale if scale != 1 else grad
            param_grads[i] = grad if param_grads[i] is None else \
                param_grads[i] + grad

    # d/da = alpha * grad_c;  d/db = grad_b + beta * grad_c + vjp.
    grad_a = grad_c if step.alpha == 1 else grad_c * step.alpha
    if vjp_b is not None:
        vjp_b = vjp_b.to(grad_b.dtype)
        # One pass: grad_b + scale * vjp_b, written over vjp_b unless that
        # may alias grad_c (F = identity) or be a broadcast view.
        out = vjp_b if vjp_b.is_contiguous() and not _shares_memory(
            vjp_b, grad_c) else None
        grad_b = torch.add(grad_b, vjp_b, alpha=scale, out=out)
    elif step.beta != 0:
        grad_b = grad_b.clone()
    if step.beta != 0:
        grad_b.add_(grad_c, alpha=step.beta)
    return a, grad_a, grad_b


def _shares_memory(x: Tensor, y: Tensor) -> bool:
    return x.untyped_storage().data_ptr() == y.untyped_storage().data_ptr()


def _parameters(fn) -> List[Tensor]:
    return list(fn.parameters()) if isinstance(fn, nn.Module) else []


def _autocast_state(device_type: str) -> dict:
    """The autocast settings in force, to replay them in the recompute."""
    if not torch.amp.is_autocast_available(device_type):
        return dict(device_type=device_type, enabled=False)
    return dict(
        device_type=device_type,
        enabled=torch.is_autocast_enabled(device_type),
        dtype=torch.get_autocast_dtype(device_type),
        cache_enabled=torch.is_autocast_cache_enabled())


def _autocast(state: dict):
    if not state['enabled']:
        return nullcontext()
    return torch.autocast(**state)


def _get_rng_states(device: torch.device) -> List[Tensor]:
    states = [torch.get_rng_state()]
    if device.type == 'cuda':
        states.append(torch.cuda.get_rng_state(device))
    return states


class _RngRecorder:
    """The generator states before each step that draws random numbers.

    A step drew random numbers if the generators' states after it differ
    from those before it; only then are the states before it kept (and
    replayed by the recompute). A deterministic unit keeps no state and its
    backward forks no generator, so replaying is on by default: the cost is
    reading the states once per step (see docs/engine.md).

    Args:
        device (torch.device): The device of the pair; with CUDA its
            generator's state is kept along with the CPU one.

    Attributes:
        random_steps (list[int]): The steps that drew random numbers.
        states (list[Tensor]): Their states before them, the same number
            per step, in the order of ``random_steps``.
    """

    def __init__(self, device: torch.device):
        self.device = device
        self.before = _get_rng_states(device)
        self.before_bytes = _as_bytes(self.before)
        self.random_steps: List[int] = []
        self.states: List[Tensor] = []

    def after_step(self, step: int):
        """Note whether ``step``, just run, drew random numbers."""
        after = _get_rng_states(self.device)
        # compared as bytes: twice as fast as torch.equal on these small
        # CPU tensors
        after_bytes = _as_bytes(after)
        if after_bytes != self.before_bytes:
            self.random_steps.append(step)
            self.states.extend(self.before)
        self.before, self.before_bytes = after, after_bytes


def _as_bytes(states: Sequence[Tensor]) -> Tuple[bytes, ...]:
    """Generator states (CPU ``uint8`` tensors) as bytes."""
    return tuple(state.numpy().tobytes() for state in states)


@contextmanager
def _restored_rng(states: Sequence[Tensor], device: torch.device):
    """Replay the generator states of the forward without touching the
    global ones, as ``torch.utils.checkpoint`` does."""
    if not states:
        yield
        return
    devices = [device] if device.type == 'cuda' else []
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(states[0])
        if devices:
            torch.cuda.set_rng_state(states[1], device)
        yield
