"""The shift step: the one update that every reversible scheme is made of.

A shift step maps a pair of equal-shaped tensors ``(a, b)`` to ``(b, c)`` with

.. math::

    c = \\alpha a + \\beta b + \\gamma F(b), \\qquad \\alpha \\neq 0,

and is inverted exactly by ``a = (c - beta * b - gamma * F(b)) / alpha``.
Hamiltonian (Verlet), Midpoint, Leapfrog and RevNet blocks are short sequences
of such steps that differ only in ``F`` and the three coefficients.
"""
from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .fixed_point import (QUANTUM, RangeGuard, recording, increment,
                          increment_units, value)


@dataclass(frozen=True)
class ShiftStep:
    """One step ``(a, b) -> (b, alpha * a + beta * b + gamma * fn(b))``.

    Args:
        fn (Callable): The step's function ``F``, usually an ``nn.Module``
            whose parameters the step trains.
        alpha (float): Coefficient of ``a``. Must not be zero, since the step
            is inverted by dividing by it.
        beta (float): Coefficient of ``b``.
        gamma (float): Coefficient of ``fn(b)``.
    """
    fn: Callable[[Tensor], Tensor]
    alpha: float
    beta: float
    gamma: float

    def __post_init__(self):
        if self.alpha == 0:
            raise ValueError('ShiftStep needs alpha != 0 to be invertible, '
                             f'got alpha={self.alpha}.')


def _exact_increment(step: ShiftStep, f: Tensor,
                     fixed_dtype: torch.dtype) -> Tuple[Tensor, float]:
    """``(g, s)`` with ``s * g = q * trunc(gamma * f / q)``: float64 and 1
    where autograd tracks ``f`` (straight-through), else the integer-valued
    increment in quanta and ``q`` (exact in float64, one pass fewer)."""
    if (f.requires_grad and torch.is_grad_enabled()) or recording():
        return increment(f, step.gamma, fixed_dtype), 1.0
    return increment_units(f, step.gamma, fixed_dtype), QUANTUM


def shift(step: ShiftStep,
          a: Tensor,
          b: Tensor,
          f: Tensor,
          inplace: bool = False,
          fixed_dtype: Optional[torch.dtype] = None) -> Tensor:
    """Compute ``c = alpha * a + beta * b + gamma * f``.

    Every execution mode (plain autograd, the reversible function, the
    block's own ``forward``) goes through this function, so their outputs are
    bitwise identical.

    Args:
        step (ShiftStep): The coefficients.
        a, b (Tensor): The input pair.
        f (Tensor): ``step.fn(b)``.
        inplace (bool): Write ``c`` into ``a``'s memory. Only for tensors
            that autograd does not track and nothing else reads.
            Defaults to False.
        fixed_dtype (torch.dtype, optional): Exact mode: the pair is on the
            fixed-point grid of :mod:`.fixed_point` and ``F`` works in this
            dtype; the step adds ``q * trunc(gamma * f / q)``, exactly.
            Defaults to None (floating point).
    """
    gamma = step.gamma
    if fixed_dtype is not None:
        f, gamma = _exact_increment(step, f, fixed_dtype)
    if step.alpha == 1:
        c = a.add_(f, alpha=gamma) if inplace else a.add(f, alpha=gamma)
    else:
        c = a.mul_(step.alpha) if inplace else a.mul(step.alpha)
        c.add_(f, alpha=gamma)
    if step.beta != 0:
        c.add_(b, alpha=step.beta)
    return c


def unshift(step: ShiftStep,
            b: Tensor,
            c: Tensor,
            f: Tensor,
            inplace: bool = False,
            fixed_dtype: Optional[torch.dtype] = None) -> Tensor:
    """Reconstruct ``a = (c - beta * b - gamma * f) / alpha``.

    Args:
        step (ShiftStep): The coefficients.
        b, c (Tensor): The output pair of the step.
        f (Tensor): ``step.fn(b)``.
        inplace (bool): Write ``a`` into ``c``'s memory. Only for tensors
            that autograd does not track and nothing else reads.
            Defaults to False.
        fixed_dtype (torch.dtype, optional): Exact mode, as in
            :func:`shift`: the step is undone bit for bit. Defaults to None.
    """
    gamma = step.gamma
    if fixed_dtype is not None:
        f, gamma = _exact_increment(step, f.detach(), fixed_dtype)
    a = c.sub_(f, alpha=gamma) if inplace else c.sub(f, alpha=gamma)
    if step.beta != 0:
        a.sub_(b, alpha=step.beta)
    if step.alpha == -1:
        a.neg_()
    elif step.alpha != 1:
        a.div_(step.alpha)
    return a


def run_steps(steps: Sequence[ShiftStep],
              a: Tensor,
              b: Tensor,
              fixed_dtype: Optional[torch.dtype] = None,
              guard: Optional[RangeGuard] = None) -> Tuple[Tensor, Tensor]:
    """Apply shift steps to the pair ``(a, b)`` under plain autograd.

    Args:
        steps (Sequence[ShiftStep]): The steps.
        a, b (Tensor): The pair.
        fixed_dtype (torch.dtype, optional): Exact mode (see :func:`shift`);
            ``F`` sees the state in this dtype. Defaults to None.
        guard (RangeGuard, optional): Notes the states ``F`` sees, in exact
            mode. Defaults to None.
    """
    if fixed_dtype is None:
        for step in steps:
            a, b = b, shift(step, a, b, step.fn(b))
        return a, b
    for step in steps:
        f = step.fn(value(b, fixed_dtype, guard))
        a, b = b, shift(step, a, b, f, fixed_dtype=fixed_dtype)
    return a, b
