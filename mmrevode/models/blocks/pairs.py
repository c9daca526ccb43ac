"""The blocks' common base: the step size, the step functions and how a
unit's input becomes the state pair, and the pair its output."""
from typing import Optional, Tuple

import torch
from torch import Tensor

from ..reversible import ReversibleBlock


class SchemeBlock(ReversibleBlock):
    """A block of one scheme: a step size ``h`` and the step functions built
    from the unit's width, a norm and an activation.

    A subclass sets :attr:`default_h`, builds its functions in
    :meth:`build_functions` and applies them in :meth:`shift_steps`. Its own
    arguments are keyword-only; those that :meth:`build_functions` reads are
    stored before this constructor is called.

    Args:
        channels (int): Channels of the unit.
        h (float, optional): Step size. Defaults to :attr:`default_h`.
        norm_cfg (dict, optional): Normalisation inside the step functions;
            None for none. Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation inside the step functions. Defaults to
            ``dict(type='ReLU')``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """
    #: The step size of a block built without ``h``.
    default_h: float = 0.1

    def __init__(self,
                 channels: int,
                 h: Optional[float] = None,
                 norm_cfg: Optional[dict] = dict(type='BN'),
                 act_cfg: dict = dict(type='ReLU'),
                 *,
                 init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        self.h = self.default_h if h is None else h
        self.build_functions(channels, norm_cfg, act_cfg)

    def build_functions(self, channels: int, norm_cfg: Optional[dict],
                        act_cfg: dict) -> None:
        """Build the block's step functions (its submodules)."""
        raise NotImplementedError


class ChannelHalvesBlock(SchemeBlock):
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


class TwoStateBlock(SchemeBlock):
    """A block whose pair is two consecutive states ``(Y_{j-1}, Y_j)`` of a
    two-step rule (Midpoint, Leapfrog). A unit starts from ``(Y_0, Y_0)``
    and returns its last state."""

    def split(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        return x, x

    def merge(self, a: Tensor, b: Tensor) -> Tensor:
        return b
