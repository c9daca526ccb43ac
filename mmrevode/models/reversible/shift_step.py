"""The shift step: the one update that every reversible scheme is made of.

A shift step maps a pair of equal-shaped tensors ``(a, b)`` to ``(b, c)`` with

.. math::

    c = \\alpha a + \\beta b + \\gamma F(b), \\qquad \\alpha \\neq 0,

and is inverted exactly by ``a = (c - beta * b - gamma * F(b)) / alpha``.
Hamiltonian (Verlet), Midpoint, Leapfrog and RevNet blocks are short sequences
of such steps that differ only in ``F`` and the three coefficients.
"""
from dataclasses import dataclass
from typing import Callable, Sequence, Tuple

from torch import Tensor


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


def shift(step: ShiftStep,
          a: Tensor,
          b: Tensor,
          f: Tensor,
          inplace: bool = False) -> Tensor:
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
    """
    if step.alpha == 1:
        c = a.add_(f, alpha=step.gamma) if inplace else a.add(
            f, alpha=step.gamma)
    else:
        c = a.mul_(step.alpha) if inplace else a.mul(step.alpha)
        c.add_(f, alpha=step.gamma)
    if step.beta != 0:
        c.add_(b, alpha=step.beta)
    return c


def unshift(step: ShiftStep,
            b: Tensor,
            c: Tensor,
            f: Tensor,
            inplace: bool = False) -> Tensor:
    """Reconstruct ``a = (c - beta * b - gamma * f) / alpha``.

    Args:
        step (ShiftStep): The coefficients.
        b, c (Tensor): The output pair of the step.
        f (Tensor): ``step.fn(b)``.
        inplace (bool): Write ``a`` into ``c``'s memory. Only for tensors
            that autograd does not track and nothing else reads.
            Defaults to False.
    """
    a = c.sub_(f, alpha=step.gamma) if inplace else c.sub(
        f, alpha=step.gamma)
    if step.beta != 0:
        a.sub_(b, alpha=step.beta)
    if step.alpha == -1:
        a.neg_()
    elif step.alpha != 1:
        a.div_(step.alpha)
    return a


def run_steps(steps: Sequence[ShiftStep], a: Tensor,
              b: Tensor) -> Tuple[Tensor, Tensor]:
    """Apply shift steps to the pair ``(a, b)`` under plain autograd."""
    for step in steps:
        a, b = b, shift(step, a, b, step.fn(b))
    return a, b
