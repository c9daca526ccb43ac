"""Hamiltonian (Verlet) block, Chang et al. 2018, Eq. (7)/(8)."""
from typing import Callable, List, Optional, Tuple

from mmpretrain.registry import MODELS
from torch import Tensor

from ..reversible import ShiftStep
from .layers import SymmetricConvLayer
from .pairs import ChannelHalvesBlock


@MODELS.register_module()
class HamiltonianBlock(ChannelHalvesBlock):
    """One Verlet step of the Hamiltonian system on the channel halves.

    .. math::

        Y_{j+1} = Y_j + h K_1^T \\sigma(N(K_1 Z_j)), \\qquad
        Z_{j+1} = Z_j - h K_2^T \\sigma(N(K_2 Y_{j+1}))

    As shift steps: ``(Y, Z) -> (Z, Y')`` with ``(1, 0, +h)`` and then
    ``(Z, Y') -> (Y', Z')`` with ``(1, 0, -h)``. The unit input is split into
    the halves ``(Y, Z)`` and the output is their concatenation.

    Args:
        channels (int): Channels of the unit (even): each half has
            ``channels // 2``.
        h (float, optional): Step size. Defaults to 0.1 (:attr:`default_h`).
        norm_cfg (dict, optional): Normalisation inside ``F``. Defaults to
            ``dict(type='BN')``.
        act_cfg (dict): Activation inside ``F``. Defaults to
            ``dict(type='ReLU')``.
        init_cfg (dict, optional): Initialisation config. Defaults to None.
    """
    default_h = 0.1
    num_layers = 4  # K1, K1^T, K2, K2^T

    def build_functions(self, channels: int, norm_cfg: Optional[dict],
                        act_cfg: dict) -> None:
        half = self.half_channels(channels)
        self.f1 = SymmetricConvLayer(half, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.f2 = SymmetricConvLayer(half, norm_cfg=norm_cfg, act_cfg=act_cfg)

    def shift_steps(self) -> List[ShiftStep]:
        return [
            ShiftStep(self.f1, 1.0, 0.0, self.h),
            ShiftStep(self.f2, 1.0, 0.0, -self.h)
        ]

    def right_hand_side(self, a: Tensor, b: Tensor
                        ) -> Tuple[Callable, Tuple[Tensor, ...]]:
        """``(Y, Z) -> (F1(Z), -F2(Y))`` at ``(Y, Z) = (a, b)``."""
        return lambda s: (self.f1(s[1]), -self.f2(s[0])), (a, b)
