"""Leapfrog block, Chang et al. 2018, Eq. (17)."""
from typing import Callable, List, Optional, Tuple

import torch
from mmpretrain.registry import MODELS
from torch import Tensor

from ..reversible import ShiftStep
from .layers import SymmetricConvLayer
from .pairs import TwoStateBlock

LEAPFROG_STARTS = ('rest', 'zero')


@MODELS.register_module()
class LeapfrogBlock(TwoStateBlock):
    """``Y_{j+1} = 2 Y_j - Y_{j-1} - h^2 K_j^T act(N(K_j Y_j))``.

    A discretisation of the second-order system ``Y'' = -K^T act(N(K Y))``.
    The state is the pair ``(Y_{j-1}, Y_j)`` and each block is one shift
    step with ``(-1, 2, -h^2)``. The unit's output is the last state.

    How a unit starts is set by ``start``:

    - ``'rest'`` (default): ``Y_{-1} = Y_0``, i.e. zero initial velocity.
      This keeps the state's norm flat through deep units.
    - ``'zero'``: ``Y_{-1} = 0``, the paper's literal Eq. (17). The first step
      then doubles the state, and each unit multiplies the state's norm by
      about its number of blocks.

    Args:
        channels (int): Channels of the state.
        h (float, optional): Step size; each step adds ``-h^2 F``.
            Defaults to 0.1 (:attr:`default_h`).
        norm_cfg (dict, optional): Normalisation inside ``F``. Defaults to
            ``dict(type='BN')``.
        act_cfg (dict): Activation inside ``F``. Defaults to
            ``dict(type='ReLU')``.
        start (str): ``'rest'`` or ``'zero'``, see above. Defaults to
            ``'rest'``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """
    default_h = 0.1
    num_layers = 2  # K, K^T

    def __init__(self, *args, start: str = 'rest', **kwargs):
        if start not in LEAPFROG_STARTS:
            raise ValueError(f'LeapfrogBlock: start must be one of '
                             f'{LEAPFROG_STARTS}, got {start!r}.')
        super().__init__(*args, **kwargs)
        self.start = start

    def build_functions(self, channels: int, norm_cfg: Optional[dict],
                        act_cfg: dict) -> None:
        self.f = SymmetricConvLayer(
            channels, norm_cfg=norm_cfg, act_cfg=act_cfg)

    def shift_steps(self) -> List[ShiftStep]:
        return [ShiftStep(self.f, -1.0, 2.0, -self.h**2)]

    def split(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        if self.start == 'zero':
            return torch.zeros_like(x), x
        return x, x

    def right_hand_side(self, a: Tensor, b: Tensor
                        ) -> Tuple[Callable, Tuple[Tensor, ...]]:
        """``(Y, V) -> (V, -F(Y))`` (``Y'' = -F(Y)`` as a first-order
        system) at ``Y = Y_j = b`` and the velocity
        ``V = (Y_j - Y_{j-1}) / h``."""
        velocity = (b - a) / self.h
        return lambda s: (s[1], -self.f(s[0])), (b, velocity)
