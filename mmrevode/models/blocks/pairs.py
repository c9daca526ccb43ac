"""How a unit's input becomes the state pair, and the pair its output."""
from typing import Tuple

import torch
from torch import Tensor

from ..reversible import ReversibleBlock


class ChannelHalvesBlock(ReversibleBlock):
    """A block whose pair is the two channel halves of the unit's input
    (Hamiltonian, RevNet); the output is their concatenation."""

    def half_channels(self, channels: int) -> int:
        """Channels of each half; ``channels`` must be even."""
        if channels % 2:
            raise ValueError(f'{type(self).__name__} splits its input into '
                             'two channel halves; '
                             f'channels={channels} is odd.')
        return channels // 2

    def split(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        first, second = x.chunk(2, dim=1)
        return first.contiguous(), second.contiguous()

    def merge(self, a: Tensor, b: Tensor) -> Tensor:
        return torch.cat([a, b], dim=1)


class TwoStateBlock(ReversibleBlock):
    """A block whose pair is two consecutive states ``(Y_{j-1}, Y_j)`` of a
    two-step rule (Midpoint, Leapfrog). A unit starts from ``(Y_0, Y_0)``
    and returns its last state."""

    def split(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        return x, x

    def merge(self, a: Tensor, b: Tensor) -> Tensor:
        return b
