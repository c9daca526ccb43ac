"""Exact arithmetic for the state pair: a fixed-point grid held in float64.

In exact mode a unit's pair is held as float64 numbers that are integer
multiples of a power-of-two quantum ``q`` (:data:`QUANTUM`), and every shift
step adds ``q * trunc(gamma * F(b) / q)`` instead of ``gamma * F(b)``:

.. math::

    c = \\alpha a + \\beta b + q \\, \\mathrm{trunc}(\\gamma F(b) / q).

While the values stay below :data:`LIMIT` (``2^19``; ``2^19 / q = 2^51``),
every sum of such multiples is exact in float64's 53-bit mantissa, so with
``alpha = +-1`` and an integer ``beta`` the step is inverted bit for bit,
``a = (c - beta * b - q * trunc(gamma * F(b) / q)) / alpha``, whenever
``F(b)`` is recomputed bit for bit. ``F`` sees the pair rounded to the
unit's working dtype (float32, or the input's dtype), exactly as in the
forward. The rounding of the increment is the identity in the backward
(straight-through); the gradients stay in the working dtype.

Why float64 rather than int64 (measured on one CPU thread, 64 x 16 x 32 x
32): the float64 grid needs one conversion for ``F``'s input (float64 to
float32, 0.45 ms) where int64 needs a conversion and a scaling (0.85 ms), and
adds a float32 increment directly where int64 needs another conversion.
Leaving the exact range cannot wrap around in float64: a state that grows
past :data:`LIMIT`, or is not finite, raises :class:`FixedPointRangeError`.
The quantum ``2^-32`` (2.3e-10) is far finer than float32's resolution at
the states' scale, and truncation moves each step by less than one quantum,
so the exact network is at least as close to float64 as plain float32.
"""
from typing import List, Optional

import torch
from torch import Tensor

#: The grid's step: every state is an integer multiple of it.
QUANTUM = 2.0**-32
#: The largest magnitude a state may reach (exclusive). With ``|beta| <= 2``
#: every partial sum of a step stays below ``2^21 = 2^53 * QUANTUM``.
LIMIT = 2.0**19
#: The dtype of the pair.
STATE_DTYPE = torch.float64


class FixedPointRangeError(OverflowError):
    """A state of an exact unit left the range where its arithmetic is
    exact, or is not finite."""


def check_exact_step(alpha: float, beta: float, owner: str = 'ShiftStep'):
    """Raise ``ValueError`` unless a step with these coefficients inverts
    exactly on the grid: ``alpha`` must be 1 or -1 and ``beta`` an integer
    with ``|beta| <= 2``."""
    if alpha not in (1, -1) or beta != int(beta) or abs(beta) > 2:
        raise ValueError(
            f'{owner}: exact mode needs alpha = +-1 and an integer beta with '
            f'|beta| <= 2 (every scheme here has them), got alpha={alpha}, '
            f'beta={beta}; build it with exact=False.')


class _ToGrid(torch.autograd.Function):
    """Round to the grid, as float64; the identity in the backward."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        ctx.dtype = x.dtype
        return _round_to_grid(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad.to(ctx.dtype)


class _Increment(torch.autograd.Function):
    """``q * trunc(gamma * f / q)``, as float64; ``gamma`` times the
    gradient in the backward (straight-through)."""

    @staticmethod
    def forward(ctx, f: Tensor, gamma: float, dtype: torch.dtype) -> Tensor:
        ctx.gamma, ctx.dtype = gamma, f.dtype
        return increment_units(f, gamma, dtype).mul_(QUANTUM)

    @staticmethod
    def backward(ctx, grad: Tensor):
        return (grad * ctx.gamma).to(ctx.dtype), None, None


def _round_to_grid(x: Tensor) -> Tensor:
    return torch.round(x.to(STATE_DTYPE) / QUANTUM).mul_(QUANTUM)


def _straight_through(value: Tensor, rounded: Tensor) -> Tensor:
    """``rounded`` with the gradient of ``value``, in plain operations that
    a tracer records (``torch.jit.trace``, ONNX export, FLOP counters).

    ``value + (rounded - value)`` is ``rounded`` exactly: the two differ by
    less than a quantum and so lie within a factor of two of each other
    (or ``rounded`` is zero), which makes the difference exact in float64
    (Sterbenz), and adding it back gives the representable ``rounded``.
    """
    return value + (rounded - value).detach()


def to_grid(x: Tensor) -> Tensor:
    """``x`` rounded to the nearest multiple of :data:`QUANTUM`, as float64
    (straight-through under autograd)."""
    if recording():  # one graph, with or without grad
        return _straight_through(x.to(STATE_DTYPE), _round_to_grid(x))
    if not (x.requires_grad and torch.is_grad_enabled()):
        return _round_to_grid(x)
    return _ToGrid.apply(x)


def increment_units(f: Tensor, gamma: float, dtype: torch.dtype) -> Tensor:
    """``trunc(gamma * f / q)``: the step's increment in quanta, computed
    in ``dtype`` and returned as an integer-valued float64 tensor (``f`` is
    not written).

    Adding it to a float64 state with ``alpha=q`` is exact; converting it
    first is faster on a CPU than letting the addition mix the dtypes
    (0.46 + 0.62 ms against 1.08 ms for 64 x 16 x 32 x 32 elements)."""
    # at least float32: ``gamma / q`` overflows float16, and bfloat16's
    # 8 bits would round the increment far more coarsely than F computed it
    dtype = torch.promote_types(dtype, torch.float32)
    if f.dtype != dtype:
        f = f.to(dtype)  # e.g. a bfloat16 F under autocast
    return torch.div(f, QUANTUM / gamma, rounding_mode='trunc').to(STATE_DTYPE)


def increment(f: Tensor, gamma: float, dtype: torch.dtype) -> Tensor:
    """``q * trunc(gamma * f / q)`` as float64, straight-through under
    autograd (its gradient is that of ``gamma * f``)."""
    if recording():  # one graph, with or without grad
        return _straight_through(
            f.to(STATE_DTYPE) * gamma,
            increment_units(f.detach(), gamma, dtype).mul_(QUANTUM))
    if not (f.requires_grad and torch.is_grad_enabled()):
        return increment_units(f, gamma, dtype).mul_(QUANTUM)
    return _Increment.apply(f, gamma, dtype)


class RangeGuard:
    """Collects the extremes of a unit's states and checks them once.

    Every state a unit computes is the input of a later step's ``F`` or one
    of the final pair, so :meth:`watch` on each ``F`` input and on the final
    pair covers them all. The check is deferred to :meth:`check` so that a
    GPU synchronises once per unit, not once per step.

    Args:
        owner (str): Who holds the pair, for the message.
    """

    def __init__(self, owner: str = 'ReversibleSequence'):
        self.owner = owner
        self.extremes: List[Tensor] = []

    def watch(self, x: Tensor):
        """Note the extremes of ``x``."""
        if not recording():
            low, high = torch.aminmax(x.detach())
            self.extremes.append(torch.stack([-low.float(), high.float()]))

    def check(self):
        """Raise :class:`FixedPointRangeError` if a watched value was not
        finite or reached :data:`LIMIT`."""
        if not self.extremes:
            return
        peak = torch.stack(self.extremes).max().item()
        self.extremes = []
        if peak < LIMIT:
            return
        what = f'a state is not finite ({peak})' if peak != peak or \
            peak == float('inf') else (
                f'a state reached |x| = {peak:.4g}, beyond the exact range '
                f'+-{LIMIT:.0f} (2^19)')
        raise FixedPointRangeError(
            f'{self.owner} (exact=True): {what} of its fixed-point pair '
            f'(quantum 2^-32); the network diverges or its states are too '
            'large for exact mode: lower the learning rate or h, or build '
            'it with exact=False.')


def recording() -> bool:
    """Whether the forward is being recorded as a graph (``torch.jit.trace``
    and the exporters and FLOP counters built on it, or ``torch.compile``):
    then the rounding is written in plain, traceable operations."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export() or \
        torch.compiler.is_compiling()


def value(b: Tensor, dtype: torch.dtype,
          guard: Optional[RangeGuard] = None) -> Tensor:
    """The state ``b`` in the working ``dtype``: what ``F`` sees."""
    v = b if b.dtype == dtype else b.to(dtype)
    if guard is not None:
        guard.watch(v)
    return v
