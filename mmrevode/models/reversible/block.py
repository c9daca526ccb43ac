"""The interface every reversible block implements."""
from typing import Callable, List, Tuple

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

    A block also states the facts the measurements need: its number of
    layers in the paper's depth count (:attr:`num_layers`) and the
    continuous-time system it discretises (:meth:`right_hand_side`).
    """
    #: Layers of the block in the paper's depth count: its convolutions,
    #: ``K`` and ``K^T`` counted apiece (a network of ``n`` blocks and a
    #: stem and a classifier is ``num_layers * n + 2`` deep).
    num_layers: int = None

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

    def right_hand_side(self, a: Tensor, b: Tensor
                        ) -> Tuple[Callable, Tuple[Tensor, ...]]:
        """The right-hand side of the continuous-time system the block
        discretises, and the state at which to linearise it.

        Args:
            a, b (Tensor): The pair the block is given.

        Returns:
            tuple: ``(rhs, point)``: ``rhs`` maps a tuple of tensors shaped
            like ``point`` to a tuple of the same shapes (the state's time
            derivative); ``point`` is the block's input as that state.
        """
        raise NotImplementedError(
            f'{type(self).__name__} states no right-hand side.')
