"""The interface every reversible block implements."""
from typing import List, Tuple

from mmengine.model import BaseModule
from torch import Tensor

from .shift_step import ShiftStep, run_steps, unshift


class ReversibleBlock(BaseModule):
    """Base class of the blocks of a reversible unit.

    A block is a short, fixed sequence of shift steps on a pair of tensors
    (see :class:`ShiftStep`). A scheme only says which steps
    (:meth:`shift_steps`) and how a unit's input becomes the pair and back
    (:meth:`split`, :meth:`merge`); running them forward, backward and in
    reverse is the engine's job.
    """

    def shift_steps(self) -> List[ShiftStep]:
        """The block's steps, in the order they are applied."""
        raise NotImplementedError

    def split(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        """Turn a unit's input into the pair the first block starts from."""
        raise NotImplementedError

    def merge(self, a: Tensor, b: Tensor) -> Tensor:
        """Turn the pair the last block ends with into the unit's output."""
        raise NotImplementedError

    def forward(self, a: Tensor, b: Tensor) -> Tuple[Tensor, Tensor]:
        """Apply the block's steps to the pair ``(a, b)`` under autograd."""
        return run_steps(self.shift_steps(), a, b)

    def inverse(self, a: Tensor, b: Tensor) -> Tuple[Tensor, Tensor]:
        """Recover the pair the block was given from the pair it returned."""
        for step in reversed(self.shift_steps()):
            a, b = unshift(step, a, b, step.fn(a)), a
        return a, b
